"""Ingest preview: what ingesting a file would do, read through the real readers, storing nothing.

``preview`` opens the file with ``open_source`` (the same sniffing and parsing as ingest),
collects the first rows, counts and the time range, and passes every batch to ``check``
(the caller's grid staging, so duplicates and off-grid times are found as ingest finds
them). Each ``IngestError`` becomes a problem with its locations and the option sets that
would fix it (the error's own ``fixes``, those with a value); the first fix is applied and
reading starts again, so one preview lists several problems and still shows rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream0d_nb.errors import Fix, IngestError, ValidationError
from stream0d_nb.ingest import detect_format, open_source
from stream0d_nb.ingest.dateorder import DateOrderUnclear
from stream0d_nb.ingest.types import RawBatch, Source, SourceInfo
from stream0d_nb.specs import (
    IngestOptions,
    IngestPreview,
    PreviewColumn,
    PreviewLocation,
    PreviewProblem,
    PreviewRow,
    PreviewSummary,
    format_duration,
)
from stream0d_nb.units import parse_units

Check = Callable[[list[str], IngestOptions], Callable[[RawBatch], None]]
"""Given the channels and options of a run, a function every batch goes through."""

MAX_ATTEMPTS = 8
INTERVAL_SAMPLE = 100_000


def cut_at_last_line(path: Path) -> bool:
    """Drop the possibly cut last line of a truncated text upload; True when bytes were cut."""
    data = path.read_bytes()
    end = data.rfind(b"\n")
    if end < 0 or end == len(data) - 1:
        return False
    path.write_bytes(data[: end + 1])
    return True


def fixes_for(exc: IngestError) -> list[dict[str, object]]:
    """Option sets that would each get past ``exc``: its fixes that come with a value
    (empty when only the file, or a value the user must choose, can fix it)."""
    return [{f.option: f.value} for f in exc.fixes if f.value is not None]


def _merge(options: IngestOptions, fix: dict[str, object]) -> IngestOptions:
    """``options`` with one fix applied (lists such as skip_columns are extended)."""
    raw = options.model_dump()
    for key, value in fix.items():
        if isinstance(value, list) and isinstance(raw.get(key), list):
            raw[key] = list(dict.fromkeys([*raw[key], *value]))
        else:
            raw[key] = value
    return IngestOptions.model_validate(raw)


class _Run:
    """What one read of the file collected before it ended or stopped at a problem."""

    def __init__(self) -> None:
        self.source: Source | None = None
        self.rows: list[PreviewRow] = []
        self.nonempty: set[str] = set()
        self.start: int | None = None
        self.stop: int | None = None
        self.sample: list[npt.NDArray[np.int64]] = []
        self.sampled = 0
        self.rows_read = 0
        self.off_grid = 0


def _read(
    path: Path,
    options: IngestOptions,
    run: _Run,
    limit_rows: int,
    default_tz: str,
    interval_ns: int | None,
    check: Check | None,
) -> None:
    """Read the file through ``open_source`` into ``run``; IngestError as ingest raises it."""
    source = open_source(path, options, default_tz=default_tz)
    run.source = source
    staged = check(list(source.info.channels), options) if check is not None else None
    for batch in source.batches():
        if staged is not None:
            staged(batch)
        times = batch.times
        n = len(times)
        if not n:
            continue
        for name, vals in batch.values.items():
            if name not in run.nonempty and not np.isnan(vals).all():
                run.nonempty.add(name)
        for i in range(min(n, limit_rows - len(run.rows))):
            run.rows.append(
                PreviewRow(
                    line=int(batch.lines[i]),
                    time=_iso(int(times[i])),
                    values={
                        k: None if np.isnan(v[i]) else float(v[i]) for k, v in batch.values.items()
                    },
                )
            )
        lo, hi = int(times.min()), int(times.max())
        run.start = lo if run.start is None else min(run.start, lo)
        run.stop = hi if run.stop is None else max(run.stop, hi)
        if run.sampled < INTERVAL_SAMPLE:
            run.sample.append(times[: INTERVAL_SAMPLE - run.sampled])
            run.sampled += len(run.sample[-1])
        if interval_ns:
            run.off_grid += int(np.count_nonzero(times % interval_ns))
        run.rows_read += n


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat().replace("+00:00", "Z")


def _problem(exc: IngestError, file: str, path: Path) -> PreviewProblem:
    """The error as a problem naming ``file`` (not the server's temp path)."""

    def name(f: str) -> str:
        return file if f in (str(path), path.name) else f

    return PreviewProblem(
        message=exc.message.replace(str(path), file),
        locations=[
            PreviewLocation(file=name(x.file), line=x.line, column=x.column, value=x.value)
            for x in exc.locations
        ],
        fixes=fixes_for(exc),
    )


def _notes(info: SourceInfo) -> list[PreviewColumn]:
    """The columns ingest leaves out, with their kind and why."""
    why = {
        "skip_columns": "skipped (skip_columns)",
        "text": "skipped: holds text (text_columns='skip')",
    }
    out = []
    for header, reason in info.skipped.items():
        kind = info.kinds.get(header, "text" if reason == "text" else "number")
        out.append(
            PreviewColumn(
                name=header,
                header=header,
                kind=kind,
                note=why.get(reason, f"skipped ({reason})"),
            )
        )
    return out


PART_SENT = "decided from the part of the file sent"


def preview(
    path: str | Path,
    options: IngestOptions | None = None,
    *,
    limit_rows: int = 20,
    default_tz: str = "UTC",
    interval: str | None = None,
    interval_ns: int | None = None,
    truncated: bool = False,
    check: Check | None = None,
    file: str | None = None,
    stored_channels: Collection[str] | None = None,
) -> IngestPreview:
    """What ``ingest`` of ``path`` would do: detected layout, columns, first rows, problems.

    ``truncated`` marks the first bytes of a longer file (text files lose their cut last
    line). ``interval``/``interval_ns`` is the dataset's grid, ``check`` its staging;
    with ``stored_channels``, new channels without units are flagged as ingest refuses them.
    """
    p = Path(path)
    label = file or p.name
    opts = options or IngestOptions()
    fmt = detect_format(p, opts)
    if truncated and fmt != "csv":
        raise ValidationError(
            f"a truncated {fmt} file cannot be read; send the whole file (only text files "
            "can be previewed from their first megabytes)"
        )
    if truncated:
        cut_at_last_line(p)
    problems: list[PreviewProblem] = []
    run = _Run()
    complete = False
    for _ in range(MAX_ATTEMPTS):
        run = _Run()
        try:
            _read(p, opts, run, limit_rows, default_tz, interval_ns, check)
            complete = True
            break
        except IngestError as exc:
            problem = _problem(exc, label, p)
            if truncated and isinstance(exc, DateOrderUnclear):
                problem.message += f" ({PART_SENT}: a later date may decide)"
            problems.append(problem)
            if not problem.fixes:
                break
            problem.applied = problem.fixes[0]
            opts = _merge(opts, problem.applied)
    info = run.source.info if run.source is not None else None
    detected: dict[str, object] = dict(info.detected) if info is not None else {}
    if info is not None:
        detected["format"] = info.format
        order = detected.get("date_order")
        if truncated and info.date_order_from_data and isinstance(order, str):
            detected["date_order"] = order[:-1] + f"; {PART_SENT})"
    columns: list[PreviewColumn] = []
    if info is not None:
        columns += [PreviewColumn(name=h, header=h, kind="time") for h in info.time_columns]
        for ch in info.channels:
            units = info.units.get(ch)
            known: bool | None = None
            new = stored_channels is not None and ch not in stored_channels
            if units is None and new and not opts.allow_missing_units:
                fixes = [Fix("units", {ch: "1"}), Fix("allow_missing_units", True)]
                problems.append(
                    PreviewProblem(
                        message=f"no units for new channel {ch!r}: declare them (1 for "
                        "dimensionless) or allow channels without units",
                        locations=[PreviewLocation(file=label, column=info.columns[ch])],
                        fixes=[{f.option: f.value} for f in fixes],
                    )
                )
            if units is not None:
                try:
                    parse_units(units)
                    known = True
                except ValidationError:
                    known = False
                    problems.append(
                        PreviewProblem(
                            message=f"units {units!r} of column {info.columns[ch]!r} are unknown; "
                            "declare known ones (pint names such as degC, bar, percent)",
                            locations=[
                                PreviewLocation(file=label, column=info.columns[ch], value=units)
                            ],
                        )
                    )
            columns.append(
                PreviewColumn(
                    name=ch,
                    header=info.columns[ch],
                    kind="number" if ch in run.nonempty else "empty",
                    units=units,
                    units_known=known,
                )
            )
    if info is not None:
        columns += _notes(info)
    summary = PreviewSummary(
        rows_read=run.rows_read,
        rows_skipped=run.source.counters.rows_skipped if run.source is not None else 0,
        start=_iso(run.start) if run.start is not None else None,
        end=_iso(run.stop) if run.stop is not None else None,
        dataset_interval=interval,
        off_grid_rows=run.off_grid,
    )
    if run.sample:
        steps = np.diff(np.sort(np.concatenate(run.sample)))
        steps = steps[steps > 0]
        if steps.size:
            guess = int(np.median(steps))
            summary.interval_guess = format_duration(guess)
            if interval_ns:
                summary.interval_matches = guess == interval_ns
    given = opts.model_dump(mode="json", exclude_defaults=True)
    return IngestPreview(
        file=label,
        format=fmt,
        truncated=truncated,
        complete=complete,
        detected=detected,
        options=given,
        columns=columns,
        rows=run.rows,
        problems=problems,
        sentinels=run.source.sentinels() if run.source is not None else [],
        summary=summary,
    )
