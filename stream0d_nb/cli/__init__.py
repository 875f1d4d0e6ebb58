"""The ``stream0d`` command: datasets, ingest, read, export, history and the demo.

Every subcommand has ``--help``. Errors print one line (plus the offending places) and
exit 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import pydantic
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stream0d_nb.cli import recalibration as recal_cli
from stream0d_nb.errors import Stream0dError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import (
    ChannelSpec,
    Compression,
    DatasetSpec,
    IngestOptions,
    IngestReport,
    format_duration,
)
from stream0d_nb.store import Store

app = typer.Typer(
    help="stream0d: manufacturing sensor datasets on Icechunk/Zarr. "
    "Store location: --home, $STREAM0D_HOME or ./var.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dataset_app = typer.Typer(help="Create, list, show and delete datasets.", no_args_is_help=True)
channel_app = typer.Typer(help="List, describe and delete channels.", no_args_is_help=True)
formula_app = typer.Typer(
    help="Derived channels: formulas over channels (docs/formulas.md).", no_args_is_help=True
)
app.add_typer(dataset_app, name="dataset")
app.add_typer(channel_app, name="channel")
alerts_app = typer.Typer(
    help="Alert rules, their evaluation, events and silences.", no_args_is_help=True
)
app.add_typer(formula_app, name="formula")
app.add_typer(alerts_app, name="alerts")
app.add_typer(recal_cli.app, name="recal")

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
STATE: dict[str, Any] = {"debug": False, "home": None, "user": None}


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option(help="Store folder (default $STREAM0D_HOME or ./var).")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Who is acting (recorded in commits).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
) -> None:
    STATE.update(home=home, user=user, debug=debug)


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


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    outd: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            fail(f"{what} {item!r} must look like NAME=VALUE")
        k, v = item.split("=", 1)
        outd[k.strip()] = v.strip()
    return outd


# ---- datasets ----------------------------------------------------------------------
@dataset_app.command("create")
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
    chans = [ChannelSpec(name=k, units=v) for k, v in _pairs(channel, "--channel").items()]
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


@dataset_app.command("list")
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


@dataset_app.command("show")
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


@dataset_app.command("delete")
def dataset_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="ID")],
    confirm: Annotated[str | None, typer.Option(help="Repeat the dataset id to confirm.")] = None,
) -> None:
    """Delete a dataset with all its data and history (needs --confirm ID)."""
    with store() as st:
        n = st.delete_dataset(dataset_id, confirm)
    out.print(f"deleted dataset {dataset_id} ({n} objects removed); the audit log keeps the record")


# ---- channels ------------------------------------------------------------------------
@channel_app.command("list")
def channel_list(dataset_id: Annotated[str, typer.Argument(metavar="DATASET")]) -> None:
    """List a dataset's channels."""
    with store() as st:
        chans = st.channels(dataset_id)
    t = Table("channel", "units", "long name", "description", "tags")
    for c in chans:
        t.add_row(c.name, c.units, c.long_name, c.description, ", ".join(c.tags))
    out.print(t)


@channel_app.command("set")
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


@channel_app.command("delete")
def channel_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    confirm: Annotated[str | None, typer.Option(help="Repeat the channel name to confirm.")] = None,
) -> None:
    """Delete a channel from now on (history keeps its data; needs --confirm NAME)."""
    with store() as st:
        snap = st.delete_channel(dataset_id, name, confirm)
    out.print(f"deleted channel {name} of {dataset_id} in commit {snap}")


# ---- ingest ----------------------------------------------------------------------------
def print_report(r: IngestReport) -> None:
    """Human summary of an ingest."""
    head = "unchanged: every value was already stored" if r.unchanged else f"commit {r.commit}"
    out.print(f"[bold]{escape(r.source)}[/] -> {r.dataset}: {head}", markup=True)
    span = (
        f"{r.start:%Y-%m-%d %H:%M:%S} .. {r.end:%Y-%m-%d %H:%M:%S} UTC"
        if r.start and r.end
        else "-"
    )
    out.print(f"  rows read {r.rows_read:,} (skipped {r.rows_skipped:,}) · time span {span}")
    out.print(
        f"  values: {r.values_read:,} read, {r.values_written:,} written ({r.values_new:,} new, "
        f"{r.values_changed:,} changed), {r.values_unchanged:,} unchanged, {r.values_kept:,} kept"
    )
    out.print(
        f"  snapped {r.values_snapped:,} · duplicates dropped {r.duplicates_dropped:,}, resolved "
        f"{r.duplicates_resolved:,} · bad cells as missing {r.bad_cells_missing:,} · "
        f"gaps {r.gaps:,}" + (f" (longest {r.longest_gap})" if r.longest_gap else "")
    )
    if r.new_channels:
        out.print(f"  new channels: {', '.join(r.new_channels)}")
    det = ", ".join(f"{k}={v!r}" for k, v in r.detected.items())
    if det:
        out.print(f"  detected: {det}")
    for w in r.warnings:
        out.print(f"  [yellow]warning:[/] {escape(w)}", markup=True)
    out.print(f"  took {r.seconds:.2f} s")


@app.command("ingest")
def ingest(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    file: Annotated[Path, typer.Argument(help="CSV/TSV, Excel (.xlsx), Parquet or JSON file.")],
    format: Annotated[str, typer.Option(help="auto, csv, excel, parquet, json.")] = "auto",
    delimiter: Annotated[str | None, typer.Option(help="Field separator (detected).")] = None,
    decimal: Annotated[str | None, typer.Option(help="Decimal mark . or , (detected).")] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding (detected).")] = None,
    skip_rows: Annotated[
        int | None, typer.Option(help="Metadata lines before the header (detected).")
    ] = None,
    units_row: Annotated[
        bool | None,
        typer.Option(
            "--units-row/--no-units-row", help="Second header row holds units (detected)."
        ),
    ] = None,
    sheet: Annotated[
        str | None,
        typer.Option(help="Excel sheet name, or its 0-based index if no sheet has that name."),
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="Time column (detected when unambiguous).")
    ] = None,
    date_column: Annotated[
        str | None, typer.Option(help="Separate date column (time column = time of day).")
    ] = None,
    time_format: Annotated[str | None, typer.Option(help="strptime format of times.")] = None,
    epoch_unit: Annotated[
        str | None, typer.Option(help="Times are epoch numbers in s, ms, us or ns.")
    ] = None,
    tz: Annotated[
        str | None, typer.Option(help="Zone of naive times (default: the dataset's).")
    ] = None,
    utc_offset: Annotated[
        str | None, typer.Option(help="Fixed offset of naive times, e.g. +02:00.")
    ] = None,
    ambiguous: Annotated[
        str, typer.Option(help="DST repeated hour: error, earliest, latest, infer.")
    ] = "error",
    nonexistent: Annotated[
        str, typer.Option(help="DST skipped hour: error, shift_forward, shift_backward, drop.")
    ] = "error",
    missing: Annotated[
        list[str] | None, typer.Option(help="Missing-value sentinel, e.g. -9999 (repeatable).")
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option(help="Only these value columns (repeatable).")
    ] = None,
    skip_column: Annotated[
        list[str] | None, typer.Option(help="Column to ignore (repeatable).")
    ] = None,
    rename: Annotated[list[str] | None, typer.Option(help="COLUMN=CHANNEL (repeatable).")] = None,
    unit: Annotated[list[str] | None, typer.Option(help="CHANNEL=UNITS (repeatable).")] = None,
    allow_missing_units: Annotated[
        bool, typer.Option(help="Create channels without units.")
    ] = False,
    bad_values: Annotated[str, typer.Option(help="Unparseable cells: error or missing.")] = "error",
    duplicates: Annotated[
        str, typer.Option(help="Same time, different values: error, first, last, mean.")
    ] = "error",
    off_grid: Annotated[
        str, typer.Option(help="Times off the grid: error, nearest, mean.")
    ] = "error",
    off_grid_tolerance: Annotated[
        str | None, typer.Option(help="Accepted distance to the grid, e.g. 100ms.")
    ] = None,
    on_existing: Annotated[
        str, typer.Option(help="Values already stored: overwrite, keep, error.")
    ] = "overwrite",
    new_channels: Annotated[
        bool,
        typer.Option("--new-channels/--no-new-channels", help="Create channels the dataset lacks."),
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Ingest a file as one commit. Bad input stores nothing and names file, line, column."""
    opts = IngestOptions.model_validate(
        {
            "format": format,
            "delimiter": delimiter,
            "decimal": decimal,
            "encoding": encoding,
            "skip_rows": skip_rows,
            "units_row": units_row,
            "sheet": sheet,
            "time_column": time_column,
            "date_column": date_column,
            "time_format": time_format,
            "epoch_unit": epoch_unit,
            "tz": tz,
            "utc_offset": utc_offset,
            "ambiguous": ambiguous,
            "nonexistent": nonexistent,
            "missing_values": missing or [],
            "columns": column,
            "skip_columns": skip_column or [],
            "rename": _pairs(rename, "--rename"),
            "units": _pairs(unit, "--unit"),
            "allow_missing_units": allow_missing_units,
            "bad_values": bad_values,
            "duplicates": duplicates,
            "off_grid": off_grid,
            "off_grid_tolerance": off_grid_tolerance,
            "on_existing": on_existing,
            "new_channels": new_channels,
        }
    )
    bar = None
    cb = None
    if progress and not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(
            total=file.stat().st_size if file.exists() else None,
            unit="B",
            unit_scale=True,
            desc=file.name,
            file=sys.stderr,
            leave=False,
        )

        def cb(done: int, total: int) -> None:
            if bar is not None and done:
                bar.update(done - bar.n)

    try:
        with store() as st:
            report = st.ingest(dataset_id, file, opts, progress=cb)
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        out.print_json(report.model_dump_json())
    else:
        print_report(report)


# ---- formulas ------------------------------------------------------------------------
@formula_app.command("add")
def formula_add(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument(help="Name of the derived channel.")],
    formula: Annotated[
        str, typer.Argument(help='Formula, e.g. "{Accelerometer1RMS} / {Accelerometer2RMS}".')
    ],
    description: Annotated[str, typer.Option()] = "",
    replace: Annotated[
        bool, typer.Option(help="Replace an existing formula of that name.")
    ] = False,
    materialize: Annotated[
        bool, typer.Option(help="Also store the values (kept fresh after every write).")
    ] = False,
) -> None:
    """Save a derived channel after checking it (syntax, channels, units, cycles)."""
    from stream0d_nb import derived
    from stream0d_nb.specs import FormulaSpec

    with store() as st:
        if not replace and any(f.name == name for f in derived.list_formulas(st, dataset_id)):
            fail(f"derived channel {name!r} exists; pass --replace to change it")
        saved = derived.save_formula(
            st,
            dataset_id,
            FormulaSpec(
                name=name, formula=formula, description=description, materialize=materialize
            ),
        )
    out.print(f"saved derived channel {saved.name} = {saved.formula}  [{saved.units or '1'}]")


@formula_app.command("list")
def formula_list(dataset_id: Annotated[str, typer.Argument(metavar="DATASET")]) -> None:
    """List a dataset's derived channels."""
    from stream0d_nb import derived

    with store() as st:
        formulas = derived.list_formulas(st, dataset_id)
    if not formulas:
        out.print(f"no derived channels in {dataset_id}: add one with `stream0d formula add`")
        return
    t = Table("name", "units", "formula", "description")
    for f in formulas:
        t.add_row(f.name, f.units, f.formula, f.description)
    out.print(t)


@formula_app.command("show")
def formula_show(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Show one derived channel: formula, units, inputs, margins."""
    from stream0d_nb import derived

    with store() as st:
        ctx = derived.DerivedContext(st, dataset_id)
        if name not in ctx.formulas:
            fail(f"dataset {dataset_id!r} has no derived channel {name!r}")
        spec, compiled = ctx.formulas[name], ctx.compile(name)
    out.print(f"{spec.name} = {spec.formula}")
    out.print(
        f"  units {spec.units or '1'} · grid {format_duration(compiled.interval_ns)} · "
        f"inputs {', '.join(sorted(compiled.refs))}"
    )
    before, after = compiled.margin_ns
    out.print(
        f"  reads {format_duration(before) if before else '0s'} before and "
        f"{format_duration(after) if after else '0s'} after a range"
    )
    if spec.description:
        out.print(f"  {spec.description}")


@formula_app.command("delete")
def formula_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    confirm: Annotated[str | None, typer.Option(help="Repeat the name to confirm.")] = None,
) -> None:
    """Delete a derived channel (refused while other formulas use it; needs --confirm NAME)."""
    from stream0d_nb import derived

    with store() as st:
        derived.delete_formula(st, dataset_id, name, confirm)
    out.print(f"deleted derived channel {name} of {dataset_id}")


@formula_app.command("eval")
def formula_eval(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    formula: Annotated[str, typer.Argument(help="Formula to evaluate (not saved).")],
    start: Annotated[str | None, typer.Option(help="First time (included).")] = None,
    end: Annotated[str | None, typer.Option(help="End time (excluded).")] = None,
    as_of: Annotated[str | None, typer.Option(help="Snapshot id or a past time.")] = None,
    format: Annotated[str, typer.Option(help="csv or json.")] = "csv",
) -> None:
    """Evaluate a formula over a time range without saving it."""
    from stream0d_nb import derived
    from stream0d_nb.tables import to_pandas

    with store() as st:
        arr = derived.evaluate_text(st, dataset_id, formula, start, end, as_of)
    df = to_pandas(arr.to_dataset(name="value"))
    _emit(df, format, None, aggregated=False)


# ---- alerts ----------------------------------------------------------------------------
def _utc(ns: int) -> str:
    """A UTC time in ns as text to the second."""
    return str(np.datetime64(ns, "ns").astype("datetime64[s]"))


def _alerts(st: Store) -> Any:
    from stream0d_nb.alerts.service import AlertService

    return AlertService(st)


@alerts_app.command("add")
def alerts_add(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument(help="Rule name (slug).")],
    kind: Annotated[
        str,
        typer.Option(
            help="threshold, rate_of_change, no_data, flatline, spike, missing_share, formula."
        ),
    ],
    channel: Annotated[
        list[str] | None, typer.Option(help="Watched channel (repeatable; '*' = all).")
    ] = None,
    formula: Annotated[
        str | None, typer.Option(help="Watched value, or the condition of kind formula.")
    ] = None,
    op: Annotated[str | None, typer.Option(help="Threshold: > < >= <= outside inside.")] = None,
    value: Annotated[float | None, typer.Option(help="Threshold value.")] = None,
    low: Annotated[float | None, typer.Option(help="Range low end (outside/inside).")] = None,
    high: Annotated[float | None, typer.Option(help="Range high end (outside/inside).")] = None,
    units: Annotated[str | None, typer.Option(help="Units of value/low/high.")] = None,
    limit: Annotated[float | None, typer.Option(help="Rate of change limit.")] = None,
    per: Annotated[str | None, typer.Option(help="Rate per s or min.")] = None,
    direction: Annotated[str | None, typer.Option(help="both, up, down.")] = None,
    window: Annotated[
        str | None, typer.Option(help="Window of no_data, flatline, spike, missing_share.")
    ] = None,
    tolerance: Annotated[float | None, typer.Option(help="Flatline tolerance.")] = None,
    method: Annotated[str | None, typer.Option(help="Spike: zscore or mad.")] = None,
    k: Annotated[float | None, typer.Option(help="Spike score limit.")] = None,
    min_good: Annotated[
        float | None, typer.Option(help="Missing share: percent of good samples.")
    ] = None,
    for_duration: Annotated[
        str, typer.Option("--for", help="How long the condition must hold.")
    ] = "0s",
    clear_below: Annotated[float | None, typer.Option(help="Hysteresis: clear below.")] = None,
    clear_above: Annotated[float | None, typer.Option(help="Hysteresis: clear above.")] = None,
    clear_formula: Annotated[
        str | None, typer.Option(help="Clear when this formula is true.")
    ] = None,
    severity: Annotated[
        str, typer.Option(help="critical, major, minor, warning, info.")
    ] = "warning",
    label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    description: Annotated[str, typer.Option()] = "",
    runbook: Annotated[str, typer.Option()] = "",
    evaluation_interval: Annotated[
        str, typer.Option(help="How often live evaluation runs.")
    ] = "1min",
    replace: Annotated[bool, typer.Option(help="Replace a rule of that name.")] = False,
) -> None:
    """Save an alert rule after checking it against the dataset (channels, units)."""
    from stream0d_nb.alerts.rules import AlertRule

    fields = {
        "name": name,
        "kind": kind,
        "channels": channel or [],
        "formula": formula,
        "op": op,
        "value": value,
        "low": low,
        "high": high,
        "units": units,
        "limit": limit,
        "per": per,
        "direction": direction,
        "window": window,
        "tolerance": tolerance,
        "method": method,
        "k": k,
        "min_good": min_good,
        "for_duration": for_duration,
        "clear_below": clear_below,
        "clear_above": clear_above,
        "clear_formula": clear_formula,
        "severity": severity,
        "labels": _pairs(label, "--label"),
        "description": description,
        "runbook": runbook,
        "evaluation_interval": evaluation_interval,
    }
    rule = AlertRule.model_validate({k_: v for k_, v in fields.items() if v is not None})
    with store() as st:
        svc = _alerts(st)
        if not replace and any(r.name == name for r in svc.rules(dataset_id)):
            fail(f"alert rule {name!r} exists; pass --replace to change it")
        svc.add_rule(dataset_id, rule)
    out.print(
        f"saved alert rule {name} ({kind}, {severity}): {rule.condition_formula(rule.series_names(None)[0])}"
    )


@alerts_app.command("list")
def alerts_list(dataset_id: Annotated[str, typer.Argument(metavar="DATASET")]) -> None:
    """List a dataset's alert rules."""
    with store() as st:
        rules = _alerts(st).rules(dataset_id)
    if not rules:
        out.print(f"no alert rules in {dataset_id}: add one with `stream0d alerts add`")
        return
    t = Table("name", "kind", "severity", "for", "series", "condition", "enabled")
    for r in rules:
        series = r.series_names(None)
        t.add_row(
            r.name,
            r.kind,
            r.severity,
            r.for_duration,
            ", ".join(s or "(formula)" for s in series),
            r.condition_formula(series[0]),
            "yes" if r.enabled else "no",
        )
    out.print(t)


@alerts_app.command("show")
def alerts_show(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Show a rule, its live state and its latest events."""
    with store() as st:
        svc = _alerts(st)
        rule = svc.rule(dataset_id, name)
        states = svc.table.states(dataset_id, name)
        events = svc.table.events(dataset_id, rule=name, limit=10)
    out.print_json(rule.model_dump_json(exclude_defaults=True))
    for series, (state, until) in states.items():
        when = "" if until is None else f" (evaluated until {np.datetime64(until, 'ns')} UTC)"
        out.print(f"  series {series or '(formula)'}: {state.get('state', state)}{when}")
    for e in events:
        out.print(
            f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.series or '(formula)'}  {e.from_state} -> {e.to_state}  value {e.value}"
        )


@alerts_app.command("delete")
def alerts_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    confirm: Annotated[str | None, typer.Option(help="Repeat the rule name to confirm.")] = None,
) -> None:
    """Delete a rule and its live state (its events stay in the history)."""
    with store() as st:
        _alerts(st).delete_rule(dataset_id, name, confirm)
    out.print(f"deleted alert rule {name} of {dataset_id}")


@alerts_app.command("backfill")
def alerts_backfill(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    start: Annotated[str | None, typer.Option(help="From (default: start of data).")] = None,
    end: Annotated[str | None, typer.Option(help="To (default: end of data).")] = None,
    rule: Annotated[list[str] | None, typer.Option(help="Only these rules (repeatable).")] = None,
) -> None:
    """Run rules over history and list the episodes they give (nothing stored or sent)."""
    with store() as st:
        res = _alerts(st).backfill(dataset_id, start, end, rule)
    if not res.episodes:
        out.print("no episodes")
        return
    t = Table("rule", "series", "start (UTC)", "end (UTC)", "peak", "severity")
    for e in res.episodes:
        t.add_row(
            e.rule,
            e.series or "(formula)",
            _utc(e.start),
            "open" if e.end is None else _utc(e.end),
            f"{e.peak_value:.6g}",
            e.severity,
        )
    out.print(t)
    out.print(f"{len(res.episodes)} episodes")


@alerts_app.command("run")
def alerts_run(
    dataset_id: Annotated[str | None, typer.Argument(metavar="[DATASET]")] = None,
    every: Annotated[
        str | None, typer.Option(help="Keep running, once per interval (e.g. 1min).")
    ] = None,
) -> None:
    """Evaluate rules on new data (and no_data rules up to now), store events, notify."""
    from stream0d_nb.specs import parse_duration_ns

    with store() as st:
        svc = _alerts(st)
        while True:
            ids = [dataset_id] if dataset_id else [r.spec.id for r in st.list_datasets()]
            for ds_id in ids:
                for e in svc.run(ds_id):
                    out.print(
                        f"{ds_id}: {e.rule} {e.series or '(formula)'} {e.from_state} -> {e.to_state} at {e.at:%Y-%m-%d %H:%M:%S}"
                    )
            if every is None:
                break
            time.sleep(parse_duration_ns(every, what="--every") / 1e9)


@alerts_app.command("events")
def alerts_events(
    dataset_id: Annotated[str | None, typer.Argument(metavar="[DATASET]")] = None,
    rule: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option(help="pending, firing, resolved, ok ...")] = None,
    since: Annotated[str | None, typer.Option(help="A time, or a duration ago such as 2h.")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alert events (state changes), newest first."""
    from datetime import UTC, datetime

    from stream0d_nb.alerts.service import parse_when

    when = parse_when(since)
    with store() as st:
        events = _alerts(st).table.events(
            dataset_id,
            rule,
            state,
            None if when is None else datetime.fromtimestamp(when / 1e9, tz=UTC),
            None,
            limit,
        )
    if as_json:
        out.print_json(json.dumps([e.model_dump(mode="json") for e in events]))
        return
    t = Table("at (UTC)", "dataset", "rule", "series", "from", "to", "severity", "value")
    for e in events:
        t.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.dataset,
            e.rule,
            e.series or "(formula)",
            e.from_state,
            e.to_state,
            e.severity,
            "" if e.value is None else f"{e.value:.6g}",
        )
    out.print(t)


@alerts_app.command("silence")
def alerts_silence(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    rule: Annotated[str | None, typer.Option(help="Only this rule (default: all rules).")] = None,
    start: Annotated[str | None, typer.Option(help="One-off window start.")] = None,
    end: Annotated[str | None, typer.Option(help="One-off window end.")] = None,
    days: Annotated[str | None, typer.Option(help="Weekly: days 0-6 (Monday=0), e.g. 5,6.")] = None,
    from_time: Annotated[
        str | None, typer.Option("--from", help="Weekly: from HH:MM local.")
    ] = None,
    to_time: Annotated[str | None, typer.Option("--to", help="Weekly: to HH:MM local.")] = None,
    tz: Annotated[str, typer.Option(help="Zone of the weekly times.")] = "UTC",
    comment: Annotated[str, typer.Option()] = "",
    remove: Annotated[int | None, typer.Option(help="Remove the silence with this id.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List silences.")] = False,
) -> None:
    """Mute notifications of a dataset or rule: one-off or weekly windows."""
    from stream0d_nb.alerts.service import Silence

    with store() as st:
        svc = _alerts(st)
        if list_:
            for sid, r, spec in svc.table.silences(dataset_id):
                out.print(f"{sid}  {r or '(all rules)'}  {json.dumps(spec)}")
            return
        if remove is not None:
            svc.table.delete_silence(dataset_id, remove, st.actor(None))
            out.print(f"removed silence {remove}")
            return
        sil = Silence.model_validate(
            {
                k_: v
                for k_, v in {
                    "start": start,
                    "end": end,
                    "from_time": from_time,
                    "to_time": to_time,
                    "tz": tz,
                    "comment": comment,
                    "days": [int(d) for d in days.split(",")] if days else None,
                }.items()
                if v is not None
            }
        )
        sid = svc.silence(dataset_id, sil, rule)
    out.print(f"silence {sid} saved for {rule or 'all rules'} of {dataset_id}")


@alerts_app.command("sink")
def alerts_sink(
    name: Annotated[str | None, typer.Argument(help="Sink name (omit to list sinks).")] = None,
    kind: Annotated[str | None, typer.Option(help="email, webhook or log.")] = None,
    config: Annotated[
        str | None,
        typer.Option(help='JSON settings, e.g. \'{"url": "https://...", "secret": "..."}\'.'),
    ] = None,
) -> None:
    """Add or replace a notification sink (secrets are never printed), or list sinks."""
    from stream0d_nb.alerts.sinks import sink_from_config

    with store() as st:
        svc = _alerts(st)
        if name is None:
            for sink_name, (sink_kind, _) in svc.table.sinks().items():
                out.print(f"{sink_name}  {sink_kind}")
            out.print("in-app  log (built in: <home>/alerts/notifications.jsonl)")
            return
        if kind is None or config is None:
            fail("give --kind and --config to add a sink")
        try:
            settings_json = json.loads(config)
        except json.JSONDecodeError as exc:
            fail(f"--config is not JSON: {exc}")
        sink = sink_from_config({"name": name, "kind": kind, **settings_json})  # validates
        svc.table.save_sink(
            name, kind, sink.config.dump_with_secrets() | {"kind": kind}, st.actor(None)
        )
    out.print(f"saved {kind} sink {name}: {sink.config!r}")


@alerts_app.command("routes")
def alerts_routes(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    set_json: Annotated[
        str | None,
        typer.Option(
            "--set",
            help='Routing table JSON: {"routes": [{"min_severity": "major", "sinks": ["ops"]}], "default_sinks": ["in-app"]}',
        ),
    ] = None,
) -> None:
    """Show or set which sinks a dataset's alerts go to, by severity and labels."""
    from stream0d_nb.alerts.routing import RoutingTable

    with store() as st:
        svc = _alerts(st)
        if set_json is not None:
            names = [*svc.table.sinks(), "in-app"]
            try:
                data = json.loads(set_json)
            except json.JSONDecodeError as exc:
                fail(f"--set is not JSON: {exc}")
            table = RoutingTable.parse(data, sink_names=names)
            svc.table.set_routes(
                dataset_id, table.model_dump(mode="json", by_alias=True), st.actor(None)
            )
        current = svc.table.routes(dataset_id)
    out.print_json(json.dumps(current or {"default_sinks": ["in-app"]}))


@alerts_app.command("deliveries")
def alerts_deliveries(
    dataset_id: Annotated[str | None, typer.Argument(metavar="[DATASET]")] = None,
    failed: Annotated[bool, typer.Option(help="Only failed deliveries.")] = False,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Notification deliveries and failures, newest first."""
    with store() as st:
        rows = _alerts(st).table.deliveries(dataset_id, failed, limit)
    t = Table("at (UTC)", "sink", "ok", "attempts", "notification", "error")
    for d in rows:
        t.add_row(
            f"{d.at:%Y-%m-%d %H:%M:%S}",
            d.sink,
            "yes" if d.ok else "NO",
            str(d.attempts),
            d.key,
            d.error or "",
        )
    out.print(t)


# ---- read / export / history ------------------------------------------------------------
@app.command("read")
def read(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    start: Annotated[str | None, typer.Option(help="First time (included); naive = UTC.")] = None,
    end: Annotated[str | None, typer.Option(help="End time (excluded); naive = UTC.")] = None,
    channels: Annotated[
        str | None, typer.Option(help="Comma-separated channel names (default all).")
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="Aggregate to this interval, e.g. 15min.")
    ] = None,
    how: Annotated[str, typer.Option(help="mean, min, max, sum, count, first, last.")] = "mean",
    as_of: Annotated[str | None, typer.Option(help="Snapshot id or a past time.")] = None,
    format: Annotated[str, typer.Option(help="csv, json or parquet.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file (default stdout).")
    ] = None,
    local_time: Annotated[
        bool, typer.Option(help="Times in the dataset's zone instead of UTC.")
    ] = False,
) -> None:
    """Read a time range [start, end) of channels, stored or derived."""
    from stream0d_nb import derived
    from stream0d_nb.tables import to_arrow, to_pandas

    names = [c.strip() for c in channels.split(",")] if channels else None
    with store() as st:
        ds = derived.read(st, dataset_id, names, start, end, every, how, as_of)
        tzname = st.get_dataset(dataset_id).spec.tz if local_time else None
    if format == "parquet":
        import pyarrow.parquet as pq

        if output is None:
            fail("--format parquet needs --output FILE")
        pq.write_table(to_arrow(ds), output)
        return
    _emit(to_pandas(ds, tzname), format, output, aggregated=every is not None)


def _emit(df: Any, format: str, output: Path | None, aggregated: bool) -> None:
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


@app.command("export")
def export_cmd(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    out_path: Annotated[
        Path, typer.Argument(metavar="OUT", help="File or folder: .csv .xlsx .parquet .nc .zarr")
    ],
    format: Annotated[
        str | None, typer.Option(help="csv, xlsx, parquet, netcdf, zarr (default from OUT).")
    ] = None,
    start: Annotated[str | None, typer.Option()] = None,
    end: Annotated[str | None, typer.Option()] = None,
    channels: Annotated[str | None, typer.Option(help="Comma-separated channel names.")] = None,
    every: Annotated[str | None, typer.Option()] = None,
    how: Annotated[str, typer.Option()] = "mean",
    as_of: Annotated[str | None, typer.Option()] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Export a time range and channel subset as CSV, Parquet, NetCDF or Zarr."""
    from stream0d_nb.export import export

    names = [c.strip() for c in channels.split(",")] if channels else None
    with store() as st:
        res = export(
            st,
            dataset_id,
            out_path,
            format=format,
            channels=names,
            start=start,
            end=end,
            every=every,
            how=how,
            as_of=as_of,
            overwrite=overwrite,
        )
    out.print(f"exported {res!s}")


@app.command("history")
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


@app.command("audit")
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


@app.command("demo")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning our errors into one clear message."""
    from stream0d_nb.hub.accounts import become_owner_of

    become_owner_of(Settings().home)  # as root on the hub's store: as the platform account
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):  # click returns Exit's code instead of raising it here
            return rv
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (Stream0dError, pydantic.ValidationError) as exc:
        if STATE["debug"]:
            raise
        if isinstance(exc, pydantic.ValidationError):
            msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        else:
            msg = str(exc)
        err.print(f"[bold red]error:[/] {escape(msg)}", markup=True)
        return 1
    except Exception as exc:
        # typer's own click: bad usage (a missing argument, an unknown choice) has a message
        # to show and an exit code; anything else is a bug and keeps its traceback
        if STATE["debug"] or not hasattr(exc, "exit_code"):
            raise
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"[bold red]error:[/] {escape(str(exc) or type(exc).__name__)}", markup=True)
        return int(getattr(exc, "exit_code", 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
