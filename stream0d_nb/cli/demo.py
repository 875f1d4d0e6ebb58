"""``stream0d demo``: demo datasets of two partners, ingested and described."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream0d_nb.cli.common import out, store


def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder of real recordings (default ../shared/data).")
    ] = None,
    days: Annotated[int, typer.Option(help="Days of generated production data per line.")] = 7,
) -> None:
    """Create demo datasets for two partners, ingest them, and print what is stored."""
    from stream0d_nb.demo import run_demo

    with store() as st:
        run_demo(st, out, data_dir=data_dir, days=days)
