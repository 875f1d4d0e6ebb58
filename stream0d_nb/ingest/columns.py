"""Shared by every reader: which column is time, which are channels, and batch building.

``plan_columns`` applies the options (time_column, date_column, columns, skip_columns,
rename, units) to a header list plus a few sample values; ``BatchBuilder`` turns arrow
arrays of one batch into a ``RawBatch`` with the bad-value and missing-time rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest import timeparse
from stream0d_nb.ingest.sentinels import SentinelScan
from stream0d_nb.ingest.sniff import DEFAULT_NULLS, is_number, split_units
from stream0d_nb.ingest.timeparse import TimeParser
from stream0d_nb.ingest.types import Counters, RawBatch
from stream0d_nb.specs import IngestOptions

MAX_BAD_LISTED = 20


@dataclass
class ColumnPlan:
    """Indices into the file's columns and the channel each value column becomes."""

    headers: list[str]
    time_index: int
    date_index: int | None
    value_indices: list[int]
    channels: list[str]
    units: dict[str, str | None]
    detected: dict[str, object] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Headers of columns not read -> why: ``'skip_columns'`` or ``'text'``."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Header -> ``'number'``, ``'text'`` or ``'empty'`` from the samples (time columns aside)."""

    @property
    def time_header(self) -> str:
        """Header of the time (or time-of-day) column."""
        return self.headers[self.time_index]

    @property
    def time_columns(self) -> list[str]:
        """Headers of the time column(s), date first."""
        if self.date_index is None:
            return [self.time_header]
        return [self.headers[self.date_index], self.time_header]


def _find(headers: list[str], name: str, what: str, file: str) -> int:
    """Index of the column called ``name`` (raw header or header without units)."""
    for i, h in enumerate(headers):
        if h == name:
            return i
    for i, h in enumerate(headers):
        if split_units(h)[0] == name:
            return i
    for i, h in enumerate(headers):
        if h.strip().lower() == name.strip().lower():
            return i
    raise IngestError(
        f"{what} {name!r} is not a column of the file; columns are: "
        + ", ".join(repr(h) for h in headers),
        [Location(file, None, name)],
    )


def plan_columns(
    file: str,
    headers: list[str],
    samples: list[list[object]],
    options: IngestOptions,
    file_units: Sequence[str | None] | None = None,
    decimal: str = ".",
    typed_time: Sequence[bool] | None = None,
) -> ColumnPlan:
    """Decide time and value columns from headers and per-column sample values.

    ``samples[i]`` holds a few values of column ``i`` (text for text files, Python objects
    otherwise); ``typed_time[i]`` marks columns whose storage type is already a time.
    """
    headers = [h if h else f"column{i + 1}" for i, h in enumerate(headers)]
    detected: dict[str, object] = {}
    date_index: int | None = None
    if options.time_column:
        time_index = _find(headers, options.time_column, "the time column", file)
        if options.date_column:
            date_index = _find(headers, options.date_column, "the date column", file)
    else:
        time_index, date_index = _detect_time(file, headers, samples, typed_time)
        detected["time_column"] = headers[time_index]
        if date_index is not None:
            detected["date_column"] = headers[date_index]
    time_set = {time_index} | ({date_index} if date_index is not None else set())
    skipped: dict[str, str] = {}
    if options.columns is not None:
        value_indices = [_find(headers, c, "the column to read", file) for c in options.columns]
        value_indices = [i for i in value_indices if i not in time_set]
    else:
        skip = {_find(headers, c, "the column to skip", file) for c in options.skip_columns}
        value_indices = [i for i in range(len(headers)) if i not in time_set and i not in skip]
        skipped = {headers[i]: "skip_columns" for i in sorted(skip - time_set)}
    texts = {
        i: t
        for i in range(len(headers))
        if i not in time_set
        and (t := _text_sample(samples[i] if i < len(samples) else [], decimal, options))
    }
    text_values = [i for i in value_indices if i in texts]
    if text_values and options.text_columns == "error":
        _raise_text_columns(file, [(headers[i], texts[i]) for i in text_values])
    value_indices = [i for i in value_indices if i not in texts]
    skipped.update({headers[i]: "text" for i in text_values})
    skipped = {
        headers[i]: skipped[headers[i]] for i in range(len(headers)) if headers[i] in skipped
    }
    rename: dict[int, str] = {}
    for old, new in options.rename.items():
        rename[_find(headers, old, "the column to rename", file)] = new
    channels: list[str] = []
    units: dict[str, str | None] = {}
    for i in value_indices:
        base, unit = split_units(headers[i])
        if file_units is not None and i < len(file_units) and file_units[i]:
            unit = file_units[i]
        name = rename.get(i, base)
        if name in units:
            raise IngestError(
                f"two columns become channel {name!r}; give them distinct names",
                [Location(file, None, headers[i])],
                [Fix("rename", example={headers[i]: f"{name}_2"})],
            )
        channels.append(name)
        units[name] = options.units.get(name, unit)
    return ColumnPlan(
        headers,
        time_index,
        date_index,
        value_indices,
        channels,
        units,
        detected,
        skipped,
        {
            headers[i]: "text"
            if i in texts
            else _sample_kind(samples[i] if i < len(samples) else [])
            for i in range(len(headers))
            if i not in time_set
        },
    )


def _detect_time(
    file: str,
    headers: list[str],
    samples: list[list[object]],
    typed_time: Sequence[bool] | None,
) -> tuple[int, int | None]:
    """The single time column (or date + time-of-day pair); an error when unclear."""

    def texts(i: int) -> list[str | None]:
        col = samples[i] if i < len(samples) else []
        return [None if v is None else str(v) for v in col]

    typed = [i for i in range(len(headers)) if typed_time and typed_time[i]]
    if len(typed) == 1:
        return typed[0], None
    named = [i for i, h in enumerate(headers) if timeparse.is_time_header(h)]
    content = [
        i for i in range(len(headers)) if i not in typed and timeparse.looks_like_times(texts(i))
    ]
    cands = typed or [i for i in named if i in content] or content
    if not cands and len(named) == 1:
        cands = named
    dates = [i for i in (cands or named) if timeparse.is_date_only(texts(i))]
    days = [i for i in named if timeparse.is_time_of_day(texts(i))]
    if len(dates) == 1 and len(days) == 1 and len(cands) <= 2:
        return days[0], dates[0]
    if len(cands) == 1:
        return cands[0], None
    found = ", ".join(repr(headers[i]) for i in cands) if cands else "none"
    raise IngestError(
        f"cannot tell which column holds the time (candidates: {found})",
        [Location(file, None, None)],
        [Fix("time_column", headers[i]) for i in cands],
    )


def _text_sample(sample: list[object], decimal: str, options: IngestOptions) -> str | None:
    """The first text of a column whose samples are all text (a status column), else None."""
    nulls = set(DEFAULT_NULLS) | set(options.missing_values)
    texts = [v for v in sample if isinstance(v, str) and v.strip() not in nulls]
    others = [v for v in sample if v is not None and not isinstance(v, str)]
    if texts and not others and not any(is_number(t, decimal) for t in texts):
        return texts[0]
    return None


def _sample_kind(sample: list[object]) -> str:
    """``'empty'`` when no sample holds a value, else ``'number'`` (text is found apart)."""
    nulls = set(DEFAULT_NULLS)
    empty = all(v is None or (isinstance(v, str) and v.strip() in nulls) for v in sample)
    return "empty" if empty else "number"


def _raise_text_columns(file: str, found: list[tuple[str, str]]) -> None:
    """Value columns holding text are an error naming them all, and the two ways past it."""
    if len(found) == 1:
        header, text = found[0]
        what = f"column {header!r} holds text such as {text!r}, not numbers"
    else:
        listed = ", ".join(f"{h!r} ({t!r})" for h, t in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        what = f"{len(found)} columns hold text, not numbers: {listed}{more}"
    raise IngestError(
        what,
        [Location(file, None, h, t) for h, t in found],
        [Fix("skip_columns", [h for h, _ in found]), Fix("text_columns", "skip")],
    )


def values_to_float(
    arr: pa.Array, decimal: str, sentinels: Sequence[str]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Any arrow column -> float64 with NaN for missing, plus a mask of unparseable cells."""
    t = arr.type
    n = len(arr)
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        out = arr.cast(pa.float64())
        vals = np.asarray(out.to_numpy(zero_copy_only=False), dtype=np.float64)
        sent = [float(x) for x in sentinels if is_number(x.strip())]
        if sent:
            vals = np.where(np.isin(vals, sent), np.nan, vals)
        return vals, np.zeros(n, bool)
    if pa.types.is_boolean(t):
        vals = np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
        return vals, np.zeros(n, bool)
    if pa.types.is_null(t):
        return np.full(n, np.nan), np.zeros(n, bool)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        try:
            arr = arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return np.full(n, np.nan), np.asarray(arr.is_valid())
    text = pc.utf8_trim_whitespace(arr)
    nulls = pa.array(sorted(set(DEFAULT_NULLS) | set(sentinels)), pa.string())
    is_null = np.asarray(
        pc.or_kleene(pc.is_null(text), pc.is_in(text, value_set=nulls)).fill_null(True)
    )
    if decimal == ",":
        text = pc.replace_substring(text, ",", ".")
    raw = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
    vals = np.asarray(pd.to_numeric(raw, errors="coerce"), dtype=np.float64)
    sent = [float(x) for x in sentinels if is_number(x.strip())]
    if sent:  # numeric sentinels match by value on every path: -9999 == -9999.0
        is_null |= np.isin(vals, sent)
    vals[is_null] = np.nan
    bad = np.isnan(vals) & ~is_null
    if bad.any():
        low = np.asarray(pc.utf8_lower(text).to_numpy(zero_copy_only=False), dtype=object)
        booleans = {"true": 1.0, "false": 0.0}
        for i in np.flatnonzero(bad):
            b = booleans.get(str(low[i]))
            if b is not None:
                vals[i] = b
                bad[i] = False
    return vals, bad


@dataclass
class BatchBuilder:
    """Turns the arrays of one batch into a ``RawBatch`` applying value and time rules."""

    file: str
    plan: ColumnPlan
    options: IngestOptions
    parser: TimeParser
    counters: Counters
    decimal: str = "."
    sentinels: SentinelScan = field(init=False)
    """Probable missing-value sentinels among the values built so far."""

    def __post_init__(self) -> None:
        headers = {
            c: self.plan.headers[i]
            for c, i in zip(self.plan.channels, self.plan.value_indices, strict=True)
        }
        self.sentinels = SentinelScan(headers)

    @property
    def _numeric_sentinels(self) -> list[float]:
        return [float(x) for x in self.options.missing_values if is_number(x.strip())]

    def build(
        self,
        time_arr: pa.Array,
        date_arr: pa.Array | None,
        value_arrs: list[pa.Array],
        lines: npt.NDArray[np.int64],
        bytes_read: int = 0,
    ) -> RawBatch | None:
        """One batch; None when every row of it was skipped."""
        n = len(lines)
        values: dict[str, npt.NDArray[np.float64]] = {}
        bad_locs: list[Location] = []
        bad_total = 0
        for name, idx, arr in zip(
            self.plan.channels, self.plan.value_indices, value_arrs, strict=True
        ):
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if pa.types.is_float64(arr.type):
                vals = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
                if self._numeric_sentinels:  # same result as the text path: -9999 == -9999.0
                    vals = np.where(np.isin(vals, self._numeric_sentinels), np.nan, vals)
            else:
                vals, bad = values_to_float(arr, self.decimal, self.options.missing_values)
                if bad.any():
                    k = int(bad.sum())
                    bad_total += k
                    if self.options.bad_values == "missing":
                        self.counters.bad_cells_missing += k
                    else:
                        header = self.plan.headers[idx]
                        for i in np.flatnonzero(bad)[: MAX_BAD_LISTED - len(bad_locs)]:
                            bad_locs.append(
                                Location(self.file, int(lines[i]), header, str(arr[i].as_py()))
                            )
            values[name] = vals
        if bad_total and self.options.bad_values == "error":
            found = sorted({x.value for x in bad_locs if x.value is not None})
            raise IngestError(
                f"{bad_total} value(s) are not numbers",
                bad_locs,
                [Fix("bad_values", "missing")] + ([Fix("missing_values", found)] if found else []),
            )
        if date_arr is not None:
            times, missing, drop = self.parser.convert_date_time(date_arr, time_arr, lines)
        else:
            times, missing, drop = self.parser.convert(time_arr, lines)
        keep = ~drop
        if missing.any():
            empty = missing.copy()
            for vals in values.values():
                empty &= np.isnan(vals)
            orphan = missing & ~empty
            if orphan.any():
                locs = [
                    Location(self.file, int(lines[i]), self.plan.time_header, "")
                    for i in np.flatnonzero(orphan)[:10]
                ]
                raise IngestError(
                    f"{int(orphan.sum())} row(s) have values but no time; fix the file or "
                    "check which column holds the time",
                    locs,
                    [Fix("time_column")],
                )
            self.counters.rows_skipped += int(empty.sum())
            keep &= ~empty
        if not keep.all():
            times = times[keep]
            lines = lines[keep]
            values = {k: v[keep] for k, v in values.items()}
        self.counters.rows_read += len(times)
        self.sentinels.add(values, lines)
        if n and not len(times):
            return None
        return RawBatch(times=times, values=values, lines=lines, bytes_read=bytes_read)
