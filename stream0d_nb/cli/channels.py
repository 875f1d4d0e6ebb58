"""``stream0d channel``: list, describe and delete a dataset's channels."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stream0d_nb.cli.common import out, store
from stream0d_nb.specs import ChannelSpec

app = typer.Typer(help="List, describe and delete channels.", no_args_is_help=True)


@app.command("list")
def channel_list(dataset_id: Annotated[str, typer.Argument(metavar="DATASET")]) -> None:
    """List a dataset's channels."""
    with store() as st:
        chans = st.channels(dataset_id)
    t = Table("channel", "units", "long name", "description", "tags")
    for c in chans:
        t.add_row(c.name, c.units, c.long_name, c.description, ", ".join(c.tags))
    out.print(t)


@app.command("set")
def channel_set(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    units: Annotated[str | None, typer.Option(help="Units (pint names: degC, bar, 1 ...).")] = None,
    long_name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag (repeatable; replaces tags).")] = None,
) -> None:
    """Create a channel or change its description, long name, tags (units only while empty)."""
    with store() as st:
        current = {c.name: c for c in st.channels(dataset_id)}
        base = current.get(name) or ChannelSpec(name=name, units=units or "")
        upd = {
            k: v
            for k, v in {
                "units": units,
                "long_name": long_name,
                "description": description,
                "tags": tag,
            }.items()
            if v is not None
        }
        snap = st.set_channels(dataset_id, [base.model_copy(update=upd)])
    out.print(f"channel {name} saved" + (f" in commit {snap}" if snap else " (no change)"))


@app.command("delete")
def channel_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    confirm: Annotated[str | None, typer.Option(help="Repeat the channel name to confirm.")] = None,
) -> None:
    """Delete a channel from now on (history keeps its data; needs --confirm NAME)."""
    with store() as st:
        snap = st.delete_channel(dataset_id, name, confirm)
    out.print(f"deleted channel {name} of {dataset_id} in commit {snap}")
