"""``stream0d append``, ``fold`` and ``retain``: small writes through the append buffer,
moving them into the chunks now, and keeping the history bounded (docs/storage.md,
"Appends" and "Retention").

``append`` reads a file as ingest does (CSV/TSV, Excel, Parquet, JSON) and buffers its rows
durably, without a commit: what a gateway posting its last minutes does over the API.
``fold`` commits a dataset's buffered rows now (all of them, or only the chunks that are
due); ``fold --loop`` is the background folder for installations whose API does not fold
(``STREAM0D_API_FOLD_SECONDS=0``). ``retain`` applies the retention policy to a dataset
now; ``--dry-run`` says what it would tag, untag and expire, changing nothing.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape

from stream0d_nb.cli.common import fail, out, pairs, store
from stream0d_nb.errors import WriteConflictError
from stream0d_nb.specs import AppendReport, IngestOptions, format_duration, parse_duration
from stream0d_nb.store import Store
from stream0d_nb.store.retention import RetentionPolicy, RetentionResult, apply_retention

LEASE_WAIT_SECONDS = 120.0


def _duration(text: str, flag: str) -> timedelta:
    """A duration flag as a timedelta (``7d``, ``12h``...)."""
    ns = parse_duration(text)
    if ns is None or ns < 0:
        fail(f"{flag} {text!r} is not a duration (e.g. 7d, 12h, 30min)")
    return timedelta(microseconds=ns / 1000)


def print_append(r: AppendReport, source: str) -> None:
    """Human summary of an append."""
    head = (
        f"buffered {r.values_new:,} values (sequence {r.sequence})"
        if r.values_new
        else "unchanged: every value was buffered or stored already"
    )
    out.print(f"[bold]{escape(source)}[/] -> {r.dataset}: {head}", markup=True)
    span = (
        f"{r.start:%Y-%m-%d %H:%M:%S} .. {r.end:%Y-%m-%d %H:%M:%S} UTC"
        if r.start and r.end
        else "-"
    )
    out.print(f"  rows {r.rows:,} · time span {span} · channels {', '.join(r.channels) or '-'}")
    out.print(
        f"  values: {r.values:,} read, {r.values_new:,} new or changed, "
        f"{r.values_unchanged:,} unchanged, {r.values_snapped:,} snapped"
    )
    out.print("  readable now; folded into the chunks by the next fold (stream0d fold)")
    out.print(f"  took {r.seconds:.2f} s")


def append(
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
    sheet: Annotated[str | None, typer.Option(help="Excel sheet name or 0-based index.")] = None,
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
        str, typer.Option(help="Dates such as 03/07/2024: auto, day_first or month_first.")
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
        typer.Option(help="Value columns holding text: error, or skip them."),
    ] = "error",
    rename: Annotated[list[str] | None, typer.Option(help="COLUMN=CHANNEL (repeatable).")] = None,
    unit: Annotated[
        list[str] | None,
        typer.Option(help="CHANNEL=UNITS of the file's values, converted (repeatable)."),
    ] = None,
    bad_values: Annotated[str, typer.Option(help="Unparseable cells: error or missing.")] = "error",
    off_grid: Annotated[str, typer.Option(help="Times off the grid: error or nearest.")] = "error",
    off_grid_tolerance: Annotated[
        str | None, typer.Option(help="Accepted distance to the grid, e.g. 100ms.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Append a file's rows to existing channels through the durable buffer: no commit, the
    rows are readable at once and folded into the chunks later. Sending the same rows
    again changes nothing; a different value for a time already appended wins."""
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
            "bad_values": bad_values,
            "off_grid": off_grid,
            "off_grid_tolerance": off_grid_tolerance,
        }
    )
    with store() as st:
        report = st.append_file(dataset_id, file, opts)
    if as_json:
        out.print_json(report.model_dump_json())
    else:
        print_append(report, str(file))


def fold(
    dataset_id: Annotated[
        str | None, typer.Argument(metavar="[DATASET]", help="The dataset to fold now.")
    ] = None,
    due_only: Annotated[
        bool,
        typer.Option(
            "--due-only",
            help="Only the chunks the background folder would fold now (complete ones).",
        ),
    ] = False,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="Fold and compact every dataset's buffer until interrupted, as the API's "
            "background folder does (for an API run with STREAM0D_API_FOLD_SECONDS=0).",
        ),
    ] = False,
    every: Annotated[float, typer.Option(help="Seconds between passes of --loop.")] = 5.0,
    retention_hours: Annotated[
        float, typer.Option(help="With --loop: apply retention this often (0: never).")
    ] = 1.0,
) -> None:
    """Fold a dataset's buffered appends into its chunks now, as one commit (or, with
    --loop, run the background folder)."""
    if loop:
        if dataset_id is not None:
            fail("--loop folds every dataset: give no DATASET with it")
        _loop(every, retention_hours)
        return
    if dataset_id is None:
        fail("give the DATASET to fold, or --loop to fold every dataset as appends come")
    with store() as st:
        res = st.fold(dataset_id, everything=not due_only)
    if not res.chunks:
        out.print(f"{dataset_id}: nothing to fold" + (" now" if due_only else ""))
    elif res.snapshot is None:
        out.print(
            f"{dataset_id}: {res.values:,} buffered values were in the chunks already "
            f"(no commit); the buffer of {len(res.chunks)} chunk(s) is empty now"
        )
    else:
        out.print(
            f"{dataset_id}: folded {res.values:,} values ({res.values_written:,} changed the "
            f"chunks) from {res.segments:,} segments into {len(res.chunks)} chunk(s): "
            f"commit {res.snapshot}"
        )
    for w in res.warnings:
        out.print(f"  [yellow]warning:[/] {escape(w)}", markup=True)


def _loop(every: float, retention_hours: float) -> None:
    """The background folder in the foreground, until SIGINT or SIGTERM."""
    from stream0d_nb.store.fold import Folder
    from stream0d_nb.store.retention import RetentionSchedule

    if every <= 0:
        fail("--every must be more than 0 seconds")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with store() as st:
            after = (
                RetentionSchedule(every=timedelta(hours=retention_hours))
                if retention_hours > 0
                else None
            )
            folder = Folder(st, every, after_pass=after)
            out.print(f"folding every {every:g} s until interrupted (Ctrl-C)")
            while not stop.is_set():
                t0 = time.monotonic()
                for res in folder.run_once():
                    out.print(
                        f"{res.dataset}: folded {res.values:,} values into "
                        f"{len(res.chunks)} chunk(s): commit {res.snapshot}"
                    )
                stop.wait(max(0.0, every - (time.monotonic() - t0)))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    out.print("stopped")


def retain(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    keep_all: Annotated[str, typer.Option(help="Every commit younger than this is kept.")] = "7d",
    keep_daily: Annotated[
        str,
        typer.Option(
            help="Beyond --keep-all, each day's last commit is kept this long, or 'forever'."
        ),
    ] = "365d",
    gc_margin: Annotated[
        str, typer.Option(help="Objects younger than this are never deleted.")
    ] = "1h",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Say what would be tagged, untagged and expired; change nothing."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Apply the retention policy to a dataset now: expire old commits except each day's
    last, then delete what no kept commit refers to (Icechunk's expiry and garbage
    collection)."""
    import dataclasses
    import json

    policy = RetentionPolicy(
        keep_all=_duration(keep_all, "--keep-all"),
        keep_daily=None
        if keep_daily.strip().lower() == "forever"
        else _duration(keep_daily, "--keep-daily"),
        gc_margin=_duration(gc_margin, "--gc-margin"),
    )
    with store() as st:
        data = st.data(dataset_id)
        if dry_run:
            res = apply_retention(data, policy, dry_run=True)
        else:
            res = _retain_leased(st, dataset_id, policy)
    if as_json:
        out.print_json(json.dumps(dataclasses.asdict(res)))
        return
    would = "would " if dry_run else ""
    daily = (
        "forever"
        if policy.keep_daily is None
        else format_duration(int(policy.keep_daily.total_seconds() * 1e9))
    )
    out.print(
        f"{dataset_id}: {'dry run, nothing changed; ' if dry_run else ''}keeping every commit "
        f"of the last {format_duration(int(policy.keep_all.total_seconds() * 1e9))}, then each "
        f"day's last for {daily}"
    )
    out.print(f"  {would}expire {res.expired:,} commit(s); {res.kept:,} kept")
    if res.tagged:
        out.print(f"  {would}tag: {', '.join(res.tagged)}")
    if res.untagged:
        out.print(f"  {would}drop tags: {', '.join(res.untagged)}")
    if dry_run:
        out.print("  garbage collection would then delete what only the expired commits hold")
    else:
        out.print(
            f"  garbage collection deleted {res.deleted_objects:,} objects "
            f"({res.deleted_bytes:,} bytes)"
        )


def _retain_leased(st: Store, dataset_id: str, policy: RetentionPolicy) -> RetentionResult:
    """Retention under the dataset's fold lease (no fold or compaction alongside; one
    process at a time), waiting up to ``LEASE_WAIT_SECONDS`` for a folder to finish."""
    tables = st.appends.tables
    tables.ensure_state(dataset_id)
    owner = f"retain-cli-{id(st):x}"
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    while not tables.take_lease(dataset_id, owner, 3600):
        if time.monotonic() > deadline:
            raise WriteConflictError(
                f"dataset {dataset_id!r}: another process has been folding it for over "
                f"{LEASE_WAIT_SECONDS:g} s; try again later"
            )
        time.sleep(0.2)
    try:
        return apply_retention(st.data(dataset_id), policy)
    finally:
        tables.release_lease(dataset_id, owner)
