"""``stream0d dataset``: create, list, show and delete datasets."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from stream0d_nb.cli.common import out, pairs, store
from stream0d_nb.specs import ChannelSpec, Compression, DatasetSpec

app = typer.Typer(help="Create, list, show and delete datasets.", no_args_is_help=True)


@app.command("create")
def dataset_create(
    dataset_id: Annotated[
        str, typer.Argument(metavar="ID", help="Lowercase slug, e.g. plant-a-line1.")
    ],
    interval: Annotated[str, typer.Option(help="Sampling interval: 1s, 5min, 1h ...")],
    tz: Annotated[str, typer.Option(help="Time zone of naive times in files (IANA name).")] = "UTC",
    title: Annotated[str, typer.Option()] = "",
    partner: Annotated[str, typer.Option(help="Owner partner (JupyterHub group).")] = "",
    description: Annotated[str, typer.Option()] = "",
    channel: Annotated[
        list[str] | None, typer.Option(help="Declare a channel NAME=UNITS (repeatable).")
    ] = None,
    compression: Annotated[
        Compression,
        typer.Option(help="Chunk compression, fixed for good: lz4 (fast) or zstd (smaller)."),
    ] = "lz4",
) -> None:
    """Create an empty dataset."""
    chans = [ChannelSpec(name=k, units=v) for k, v in pairs(channel, "--channel").items()]
    spec = DatasetSpec(
        id=dataset_id,
        interval=interval,
        tz=tz,
        title=title,
        partner=partner,
        description=description,
        compression=compression,
        channels=chans,
    )
    with store() as st:
        rec = st.create_dataset(spec)
    out.print(
        f"created dataset {rec.spec.id} (interval {rec.spec.interval}, tz {rec.spec.tz}) at {rec.storage_uri}"
    )


@app.command("list")
def dataset_list(
    partner: Annotated[str | None, typer.Option(help="Only this partner's datasets.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List datasets."""
    with store() as st:
        recs = st.list_datasets(partner)
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in recs]))
        return
    if not recs:
        out.print(
            "no datasets yet: try `stream0d dataset create ID --interval 1s` or `stream0d demo`"
        )
        return
    t = Table("id", "title", "partner", "interval", "tz", "channels", "created")
    for r in recs:
        t.add_row(
            r.spec.id,
            r.spec.title,
            r.spec.partner,
            r.spec.interval,
            r.spec.tz,
            str(len(r.spec.channels)),
            f"{r.created_at:%Y-%m-%d %H:%M} by {r.created_by}",
        )
    out.print(t)


@app.command("show")
def dataset_show(
    dataset_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a dataset: metadata, stored time span, channels, latest commits."""
    with store() as st:
        rec = st.get_dataset(dataset_id)
        summ = st.summary(dataset_id)
        hist = st.history(dataset_id, limit=5)
    if as_json:
        payload = {
            **rec.model_dump(mode="json"),
            "stored": {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in summ.items()
                if k != "channels"
            },
            "channels": [c.model_dump() for c in summ["channels"]],
        }
        out.print_json(json.dumps(payload, default=str))
        return
    s = rec.spec
    out.print(f"[bold]{s.id}[/]  {escape(s.title)}", markup=True)
    out.print(
        f"  partner {s.partner or '-'} · interval {s.interval} · tz {s.tz} · chunks of "
        f"{summ['chunk']} ({s.compression})"
    )
    out.print(f"  storage {rec.storage_uri}")
    span = f"{summ['start']} .. {summ['end']}" if summ["start"] is not None else "no data yet"
    out.print(
        f"  stored  {span} ({summ['samples']:,} grid steps) · {summ['commits']} commits · head {summ['snapshot']}"
    )
    t = Table("channel", "units", "long name", "description", "tags")
    for c in summ["channels"]:
        t.add_row(c.name, c.units, c.long_name, c.description, ", ".join(c.tags))
    out.print(t)
    out.print("latest commits:")
    for h in hist:
        out.print(f"  {h.id}  {h.written_at:%Y-%m-%d %H:%M:%S}  {h.message}")


@app.command("delete")
def dataset_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="ID")],
    confirm: Annotated[str | None, typer.Option(help="Repeat the dataset id to confirm.")] = None,
) -> None:
    """Delete a dataset with all its data and history (needs --confirm ID)."""
    with store() as st:
        n = st.delete_dataset(dataset_id, confirm)
    out.print(f"deleted dataset {dataset_id} ({n} objects removed); the audit log keeps the record")
