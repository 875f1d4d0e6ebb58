"""``stream0d history`` and ``stream0d audit``: a dataset's commits and who changed what."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from stream0d_nb.cli.common import out, store


def history(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    limit: Annotated[int, typer.Option(help="Most recent N commits.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List a dataset's commits, newest first (ids work with --as-of)."""
    with store() as st:
        hist = st.history(dataset_id, limit)
    if as_json:
        out.print_json(json.dumps([h.model_dump(mode="json") for h in hist]))
        return
    for h in hist:  # plain lines: ids and messages stay whole for copying
        out.print(f"{h.id}  {h.written_at:%Y-%m-%d %H:%M:%S}  {h.message}")


def audit(
    dataset_id: Annotated[str | None, typer.Argument(metavar="[DATASET]")] = None,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Show the audit log (who changed what, when), newest first."""
    with store() as st:
        entries = st.registry.audit_log(dataset_id, limit=limit)
    t = Table("at (UTC)", "actor", "action", "dataset", "detail")
    for e in entries:
        t.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.action,
            e.dataset or "",
            json.dumps(e.detail, default=str)[:80],
        )
    out.print(t)
