"""What every ``stream0d`` command shares: the consoles, --home/--user, the store, failing.

The root callback fills ``STATE``; ``store()`` opens the platform (write hooks installed)
with those settings.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from stream0d_nb.settings import Settings
from stream0d_nb.store import Store

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
STATE: dict[str, Any] = {"debug": False, "home": None, "user": None}


def settings() -> Settings:
    """Settings from the environment, with --home and --user applied."""
    s = Settings()
    upd: dict[str, Any] = {}
    if STATE["home"] is not None:
        upd["home"] = STATE["home"]
    if STATE["user"]:
        upd["user"] = STATE["user"]
    return s.model_copy(update=upd) if upd else s


def store() -> Store:
    """The store for this invocation: derived channels, model channels and alert rules
    follow every write."""
    from stream0d_nb.platform import open_platform

    return open_platform(settings())


def fail(message: str) -> NoReturn:
    """Print an error and exit 1."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(1)


def pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict (``what`` names the flag in the error)."""
    outd: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            fail(f"{what} {item!r} must look like NAME=VALUE")
        k, v = item.split("=", 1)
        outd[k.strip()] = v.strip()
    return outd


def emit(df: Any, format: str, output: Path | None, aggregated: bool) -> None:
    """Write a table as CSV or JSON to a file or stdout (CSV headers spreadsheet-safe)."""
    if format == "csv":
        from stream0d_nb.safetext import spreadsheet_safe

        df = df.rename(columns=lambda c: spreadsheet_safe(str(c)))
        text = df.to_csv(date_format=None if aggregated else "%Y-%m-%dT%H:%M:%S%z")
    elif format == "json":
        buf = io.StringIO()
        df.reset_index().to_json(buf, orient="records", date_format="iso", date_unit="s")
        text = buf.getvalue()
    else:
        fail(f"unknown --format {format!r}: use csv, json or parquet")
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
