"""``stream0d ingest``: a file into a dataset as one commit, and the report of what it did;
``--dry-run`` shows what it would do (the ingest preview) and stores nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from stream0d_nb.cli.common import out, pairs, store
from stream0d_nb.cli.errors import cli_fixes
from stream0d_nb.errors import Fix, Location
from stream0d_nb.specs import IngestOptions, IngestPreview, IngestReport


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
    if r.skipped_columns:
        out.print(f"  skipped columns: {escape(', '.join(r.skipped_columns))}")
    det = ", ".join(f"{k}={v!r}" for k, v in r.detected.items())
    if det:
        out.print(f"  detected: {det}")
    hints = {h.warning(): h for h in r.sentinels}
    for w in r.warnings:
        hint = hints.get(w)
        if hint is not None:  # said with the flag that accepts it
            w = f"{hint.describe()}; {cli_fixes([Fix('missing_values', [hint.value])])}"
        out.print(f"  [yellow]warning:[/] {escape(w)}", markup=True)
    out.print(f"  took {r.seconds:.2f} s")


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
    date_order: Annotated[
        str,
        typer.Option(
            help="Dates such as 03/07/2024: auto (a header hint such as MM/DD/YYYY, else "
            "every date of the file), day_first or month_first."
        ),
    ] = "auto",
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
    text_columns: Annotated[
        str,
        typer.Option(help="Value columns holding text: error, or skip (listed in the report)."),
    ] = "error",
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
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show what ingest would do (layout, columns, first rows, problems and the "
            "flags that fix them) and store nothing; exit 1 if ingest would stop.",
        ),
    ] = False,
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
            "date_order": date_order,
            "ambiguous": ambiguous,
            "nonexistent": nonexistent,
            "missing_values": missing or [],
            "columns": column,
            "skip_columns": skip_column or [],
            "text_columns": text_columns,
            "rename": pairs(rename, "--rename"),
            "units": pairs(unit, "--unit"),
            "allow_missing_units": allow_missing_units,
            "bad_values": bad_values,
            "duplicates": duplicates,
            "off_grid": off_grid,
            "off_grid_tolerance": off_grid_tolerance,
            "on_existing": on_existing,
            "new_channels": new_channels,
        }
    )
    if dry_run:
        _dry_run(dataset_id, file, opts, as_json)
        return
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


def _flags(option_sets: list[dict[str, object]]) -> str:
    """Option sets of the preview (``{"duplicates": "last"}``) as a CLI fix line."""
    return cli_fixes(Fix(k, v) for fix in option_sets for k, v in fix.items())


def _dry_run(dataset_id: str, file: Path, opts: IngestOptions, as_json: bool) -> None:
    """Print the ingest preview of ``file`` into the dataset; exit 1 when it has problems."""
    from stream0d_nb.store.preview import preview_ingest

    with store() as st:
        spec = st.get_dataset(dataset_id).spec
    p = preview_ingest(spec, file, opts, rows=5, file=str(file))
    if as_json:
        out.print_json(p.model_dump_json())
    else:
        print_preview(p, dataset_id)
    if p.problems:
        raise typer.Exit(1)


def print_preview(p: IngestPreview, dataset_id: str) -> None:
    """Human summary of an ingest preview: what would be read, and what would stop it."""
    out.print(f"[bold]{escape(p.file)}[/] -> {dataset_id}: dry run, nothing stored", markup=True)
    det = ", ".join(f"{k}={v!r}" for k, v in p.detected.items())
    out.print(f"  detected: {det}")
    cols = []
    for c in p.columns:
        units = (
            "" if c.units is None else f", {c.units}" + (" unknown" if not c.units_known else "")
        )
        cols.append(f"{c.name} ({c.kind}{units})")
    out.print(f"  columns: {', '.join(cols)}")
    notes = [f"{c.name} ({c.note})" for c in p.columns if c.note]
    if notes:
        out.print(f"  skipped columns: {escape(', '.join(notes))}")
    s = p.summary
    span = f"{s.start} .. {s.end}" if s.start else "-"
    out.print(
        f"  rows read {s.rows_read:,} (skipped {s.rows_skipped:,}) · time span {span} · "
        f"interval {s.interval_guess or '?'} (dataset {s.dataset_interval})"
        + (f" · {s.off_grid_rows:,} rows off its grid" if s.off_grid_rows else "")
    )
    if p.rows:
        names = list(p.rows[0].values)
        t = Table("line", "time (UTC)", *names)
        for r in p.rows:
            t.add_row(
                str(r.line),
                r.time,
                *("" if r.values.get(n) is None else f"{r.values[n]:g}" for n in names),
            )
        out.print(t)
    for hint in p.sentinels:
        where = f" (first on line {hint.first_line})" if hint.first_line else ""
        out.print(
            f"  [yellow]probable missing value:[/] {escape(hint.describe())}{where}; "
            + escape(cli_fixes([Fix("missing_values", [hint.value])])),
            markup=True,
        )
    for prob in p.problems:
        out.print(f"  [yellow]problem:[/] {escape(prob.message)}", markup=True)
        for loc in prob.locations[:10]:
            out.print(f"    {Location(loc.file, loc.line, loc.column, loc.value)}")
        if prob.fixes:
            out.print(f"    {_flags(prob.fixes)}")
        if prob.applied:
            out.print(f"    (read on as with {_flags([prob.applied])[len('fix: ') :]})")
    if p.problems:
        out.print("ingest would stop at the first problem; nothing was stored")
    else:
        out.print("ingest would read the whole file; nothing was stored")
