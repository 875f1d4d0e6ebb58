"""Turning time columns (text, numbers, timestamps) into UTC int64 nanoseconds.

Fast paths are vectorised (pyarrow casts, ``pandas.to_datetime`` with one format); per-cell
Python runs only on cells those reject (``24:00`` or real errors). Naive times are local
times in a zone (with explicit DST policies) or at a fixed UTC offset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest.dateorder import OrderDecision, contradiction
from stream0d_nb.ingest.types import Counters
from stream0d_nb.ingest.zones import Localizer
from stream0d_nb.specs import AmbiguousPolicy, NonexistentPolicy

NS_PER_DAY = 86_400 * 10**9
EPOCH_FACTORS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# Epoch counts are guessed only when the magnitude lands in 1990..2100 for exactly one unit.
_PLAUSIBLE_NS = (631_152_000 * 10**9, 4_102_444_800 * 10**9)

_TIME_WORDS = re.compile(
    r"\b(time|timestamp|timestamps|datetime|date|zeit|zeitstempel|datum|uhrzeit|fecha|hora|"
    r"tiempo|horodatage|temps|data|ora|tijd|datum tijd|ts|utc)\b"
)
ISO_NAIVE = re.compile(r"^\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?)?$")
ISO_AWARE = re.compile(
    r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$"
)
_OFFSET_TAIL = r"[T ]\d\d?:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$"
_HAS_OFFSET = re.compile(_OFFSET_TAIL)
_H24 = re.compile(r"(?<![\d])24:00(?::00(?:[.,]0+)?)?(?=\s*(?:Z|[+-]\d\d(?::?\d\d)?)?$)")
_TIME_OF_DAY = re.compile(r"^\d{1,2}:\d\d(?::\d\d(?:[.,]\d+)?)?$")
_DATE_ONLY = re.compile(r"^(?:\d{4}-\d\d-\d\d|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}/\d\d/\d\d)$")

_BASE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%Y%m%d %H%M%S",
    "%Y%m%dT%H%M%S",
    "%Y%m%d%H%M%S",
    # two-digit years (tried after the four-digit ones, which they never match)
    "%d.%m.%y %H:%M:%S",
    "%d.%m.%y %H:%M",
    "%d.%m.%y",
    "%d/%m/%y %H:%M:%S",
    "%d/%m/%y %H:%M",
    "%m/%d/%y %H:%M:%S",
    "%m/%d/%y %H:%M",
    "%d/%m/%y",
    "%m/%d/%y",
)
CANDIDATE_FORMATS = tuple(
    f for base in _BASE_FORMATS for f in ((base, base + ".%f") if base.endswith("%S") else (base,))
)


def _swap_day_month(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _day_before_month(fmt: str) -> bool | None:
    """True for day-first formats, False for month-first ones, None without both."""
    d, m = fmt.find("%d"), fmt.find("%m")
    year = max(fmt.find("%Y"), fmt.find("%y"))
    if d < 0 or m < 0 or 0 <= year < min(d, m):
        return None
    return d < m


def candidate_formats(order: str | None = None) -> tuple[str, ...]:
    """The formats tried on text times: all of them, or those of one date order.

    Month-first adds the month-first twins of day-first-only formats (``%m.%d.%Y``), so a
    month-first file with dots reads too; day-first drops the month-first formats.
    """
    if order == "day_first":
        return tuple(f for f in CANDIDATE_FORMATS if _day_before_month(f) is not False)
    if order == "month_first":
        out = (_swap_day_month(f) if _day_before_month(f) else f for f in CANDIDATE_FORMATS)
        return tuple(dict.fromkeys(out))
    return CANDIDATE_FORMATS


def is_time_header(name: str) -> bool:
    """Whether a column header names a time (``Time``, ``timestamp``, ``Zeit``, ``fecha``...)."""
    text = re.sub(r"[_\-.]+", " ", name.lower())
    text = re.sub(r"\s*[\[(].*?[\])]\s*", " ", text).strip()
    return bool(_TIME_WORDS.search(text))


def _samples(values: Sequence[str | None]) -> list[str]:
    return [v.strip() for v in values if v is not None and v.strip()]


FORMAT_OR_EPOCH = (Fix("time_format", example="%d.%m.%Y %H:%M:%S"), Fix("epoch_unit", example="s"))
"""How to read times that no known format parses: a strptime format, or epoch numbers."""
EPOCH_OR_FORMAT = FORMAT_OR_EPOCH[::-1]
"""The same for numbers that look like no epoch: the unit first."""


def fitting_formats(values: Sequence[str | None], order: str | None = None) -> list[str]:
    """The candidate formats (of ``order``, if given) that parse every sample."""
    texts = [_H24.sub("00:00:00", t) for t in _samples(values)]
    if not texts:
        return []
    arr = np.array(texts, dtype=object)
    return [f for f in candidate_formats(order) if _all_parse(arr, f)]


def detect_format(values: Sequence[str | None], order: str | None = None) -> str | None:
    """``'ISO8601'``, a strptime format that parses every sample, or None.

    ``order`` (``day_first``/``month_first``) picks among formats reading dates both ways;
    without it, such samples raise (the caller must decide: ``ingest.dateorder``).
    """
    texts = [_H24.sub("00:00:00", t) for t in _samples(values)]
    if not texts:
        return None
    if all(ISO_NAIVE.match(t) or ISO_AWARE.match(t) for t in texts):
        return "ISO8601"
    fits = fitting_formats(texts, order)
    if not fits:
        return None
    first = fits[0]
    both = {_day_before_month(f) for f in fits}
    if order is None and True in both and False in both:
        month_first = [f for f in fits if _day_before_month(f) is False][:1]
        day_first = [f for f in fits if _day_before_month(f)][:1]
        raise IngestError(
            f"times such as {texts[0]!r} could be day-first or month-first",
            fixes=[Fix("date_order", "month_first"), Fix("date_order", "day_first")]
            + [Fix("time_format", f) for f in month_first + day_first],
        )
    return first


def best_format(values: Sequence[str | None], order: str | None = None) -> str | None:
    """The format parsing the most samples (so that the others can be reported), or None."""
    texts = [_H24.sub("00:00:00", t) for t in _samples(values)]
    if not texts:
        return None
    scores = {"ISO8601": sum(1 for t in texts if ISO_NAIVE.match(t) or ISO_AWARE.match(t))}
    arr = np.array(texts, dtype=object)
    for f in candidate_formats(order):
        try:
            out = pd.to_datetime(pd.Index(arr), format=f, errors="coerce")
        except (ValueError, TypeError):
            continue
        scores[f] = int((~pd.isna(out)).sum())
    best = max(scores, key=lambda f: scores[f])
    return best if scores[best] else None


def _all_parse(arr: npt.NDArray[np.object_], fmt: str) -> bool:
    try:
        out = pd.to_datetime(pd.Index(arr), format=fmt, errors="coerce")
    except (ValueError, TypeError):
        return False
    return not bool(pd.isna(out).any())


def looks_like_times(values: Sequence[str | None]) -> bool:
    """Whether the non-empty samples are date-times (not plain numbers)."""
    texts = _samples(values)
    if not texts or any(_is_plain_number(t) for t in texts):
        return False
    try:
        return detect_format(texts) is not None
    except IngestError:
        return True


def is_time_text(text: str) -> bool:
    """One cell that reads as a date-time, a date or a time of day."""
    t = text.strip()
    if not t or _is_plain_number(t):
        return False
    return bool(_TIME_OF_DAY.match(t) or _DATE_ONLY.match(t) or looks_like_times([t]))


def is_time_of_day(values: Sequence[str | None]) -> bool:
    """Every sample is a time of day such as ``13:45`` or ``13:45:00``."""
    texts = _samples(values)
    return bool(texts) and all(_TIME_OF_DAY.match(t) for t in texts)


def is_date_only(values: Sequence[str | None]) -> bool:
    """Every sample is a date without time."""
    texts = _samples(values)
    return bool(texts) and all(_DATE_ONLY.match(t) for t in texts)


def _is_plain_number(t: str) -> bool:
    try:
        float(t.replace(",", "."))
    except ValueError:
        return False
    return True


def guess_epoch_unit(numbers: Sequence[float]) -> str | None:
    """The single epoch unit putting every sample in 1990..2100, else None."""
    xs = [x for x in numbers if x == x]
    if not xs:
        return None
    fits = [
        u
        for u, f in EPOCH_FACTORS.items()
        if all(_PLAUSIBLE_NS[0] <= x * f <= _PLAUSIBLE_NS[1] for x in xs)
    ]
    return fits[0] if len(fits) == 1 else None


@dataclass
class TimeParser:
    """Converts one time column (or a date + time-of-day pair) of a file to UTC nanoseconds.

    Holds state across batches: whether times carry offsets (mixing is an error) and, for
    ``ambiguous='infer'``, where each repeated DST hour switched to its second pass.
    """

    file: str
    column: str
    tz: str = "UTC"
    offset_minutes: int | None = None
    time_format: str | None = None
    epoch_unit: str | None = None
    ambiguous: AmbiguousPolicy = "error"
    nonexistent: NonexistentPolicy = "error"
    counters: Counters = field(default_factory=Counters)
    decision: OrderDecision | None = None
    """The date order decided for the file (``ingest.dateorder.decide``), if it applies."""
    aware: bool | None = None
    used: set[str] = field(default_factory=set)
    _zone: Localizer | None = None

    def _localize(
        self,
        naive: npt.NDArray[np.int64],
        missing: npt.NDArray[np.bool_],
        lines: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        if self._zone is None:
            self._zone = Localizer(
                self.file,
                self.column,
                self.tz,
                self.offset_minutes,
                self.ambiguous,
                self.nonexistent,
                self.counters,
            )
        out = self._zone.localize(naive, missing, lines)
        self.used |= self._zone.used
        return out

    @property
    def order(self) -> str | None:
        """``day_first`` or ``month_first`` when the file's date order was decided."""
        d = self.decision
        return d.order if d is not None and d.order != "year_first" else None

    # -- entry points ---------------------------------------------------------------------

    def convert(
        self, arr: pa.Array | pa.ChunkedArray, lines: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Return ``(utc_ns, missing, drop)`` for one batch of the time column.

        ``missing`` marks empty time cells (the caller decides); ``drop`` marks rows removed
        by ``nonexistent='drop'``.
        """
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        t = arr.type
        if pa.types.is_null(t):
            n = len(arr)
            return np.zeros(n, np.int64), np.ones(n, bool), np.zeros(n, bool)
        if pa.types.is_timestamp(t):
            self._set_aware(t.tz is not None, lines, arr)
            missing = np.asarray(arr.is_null())
            ns = arr.cast(pa.timestamp("ns", tz=t.tz)).fill_null(0).cast(pa.int64())
            values = np.asarray(ns, dtype=np.int64)
            if t.tz is not None:
                self.used.add("timestamps with zone")
                return values, missing, np.zeros(len(arr), bool)
            self.used.add("timestamps")
            return self._localize(values, missing, lines)
        if pa.types.is_date(t):
            return self.convert(arr.cast(pa.timestamp("ns")), lines)
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return self._from_epoch(arr, lines)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return self._from_text(arr, lines)
        raise IngestError(
            f"time column {self.column!r} has type {t}, which is not a time",
            [Location(self.file, None, self.column)],
            [Fix("time_column")],
        )

    def convert_date_time(
        self, dates: pa.Array, times: pa.Array, lines: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Combine a date column and a time-of-day column, then convert."""
        d = _as_text(dates)
        t = _as_text(times)
        joined = pc.binary_join_element_wise(d, t, " ")
        return self._from_text(joined, lines)

    # -- parsing --------------------------------------------------------------------------

    def _from_epoch(
        self, arr: pa.Array, lines: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        missing = np.asarray(arr.is_null())
        unit = self.epoch_unit
        if unit is None:
            sample = arr.drop_null().slice(0, 50).cast(pa.float64()).to_pylist()
            unit = guess_epoch_unit(sample)
            if unit is None:
                first = next((v for v in sample), None)
                raise IngestError(
                    f"time column {self.column!r} holds numbers such as {first!r}, which are "
                    "no epoch times of a plausible unit",
                    [Location(self.file, int(lines[0]) if len(lines) else None, self.column)],
                    EPOCH_OR_FORMAT,
                )
            self.epoch_unit = unit
        factor = EPOCH_FACTORS[unit]
        self.used.add(f"epoch {unit}")
        self._set_aware(True, lines, arr)
        if pa.types.is_integer(arr.type):
            ints = np.asarray(arr.fill_null(0).cast(pa.int64()), dtype=np.int64)
            return ints * factor, missing, np.zeros(len(arr), bool)
        floats = np.asarray(arr.cast(pa.float64()).fill_null(0.0), dtype=np.float64)
        bad = ~np.isfinite(floats)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise IngestError(
                f"time column {self.column!r} holds a non-finite epoch value",
                [Location(self.file, int(lines[i]), self.column, str(floats[i]))],
            )
        return np.round(floats * factor).astype(np.int64), missing, np.zeros(len(arr), bool)

    def _from_text(
        self, arr: pa.Array, lines: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        arr = pc.utf8_trim_whitespace(arr)
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
        missing = np.asarray(arr.is_null())
        n = len(arr)
        if self.epoch_unit is not None:
            nums = pd.to_numeric(np.asarray(arr.to_numpy(zero_copy_only=False)), errors="coerce")
            bad = np.isnan(nums) & ~missing
            if bad.any():
                self._raise_unparseable(arr, lines, bad)
            return self._from_epoch(pa.array(nums, pa.float64(), mask=missing), lines)
        fmt = self.time_format
        if fmt is None:
            sample = arr.drop_null().slice(0, 200).to_pylist()
            order = self.order
            try:
                fmt = detect_format(sample, order) if sample else "ISO8601"
            except IngestError as exc:
                loc = Location(self.file, int(lines[0]) if len(lines) else None, self.column)
                raise IngestError(exc.message, [loc], exc.fixes) from None
            if fmt is None:
                fmt = best_format(sample, order)
            if fmt is None:
                self._raise_unparseable(arr, lines, ~missing, hint=True)
            self.time_format = fmt
        assert fmt is not None
        if fmt == "ISO8601":
            aware_mask = np.asarray(pc.match_substring_regex(arr, _OFFSET_TAIL).fill_null(False))
        else:
            aware_mask = np.full(n, "%z" in fmt or "%Z" in fmt)
        aware_mask &= ~missing
        if aware_mask.any() and not aware_mask[~missing].all():
            self._raise_mixed(arr, lines, aware_mask, missing)
        aware = bool(aware_mask.any())
        if (~missing).any():
            self._set_aware(aware, lines, arr)
        ns, failed = self._parse_strings(arr, fmt, aware, missing)
        if failed.any():
            ns, failed = self._fix_24h(arr, fmt, aware, ns, failed)
        if failed.any():
            pos = np.flatnonzero(failed)
            wrong = contradiction(
                self.decision, self.file, self.column, arr.take(pa.array(pos)), lines[pos]
            )
            if wrong is not None:
                raise wrong
            self._raise_unparseable(arr, lines, failed)
        self.used.add("text " + fmt)
        if aware:
            return ns, missing, np.zeros(n, bool)
        return self._localize(ns, missing, lines)

    def _parse_strings(
        self, arr: pa.Array, fmt: str, aware: bool, missing: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Vectorised parse; ``failed`` marks non-empty cells that did not parse."""
        if fmt == "ISO8601":
            try:
                target = pa.timestamp("ns", tz="UTC") if aware else pa.timestamp("ns")
                out = arr.cast(target).cast(pa.int64())
                return np.asarray(out.fill_null(0), dtype=np.int64), np.zeros(len(arr), bool)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
        try:
            parsed = pd.to_datetime(values, format=fmt, errors="coerce", utc=aware)
        except (ValueError, TypeError, re.error) as exc:  # re.error: '%Y%Y' repeats a group
            raise IngestError(
                f"the time format {fmt!r} is not usable: {exc}",
                [Location(self.file, None, self.column)],
                [Fix("time_format", example="%d.%m.%Y %H:%M:%S")],
            ) from exc
        idx = pd.DatetimeIndex(parsed)
        if idx.tz is not None and not aware:
            idx = idx.tz_convert("UTC").tz_localize(None)
        nat = np.asarray(idx.isna())
        ns = np.where(nat, 0, idx.as_unit("ns").asi8).astype(np.int64)
        return ns, nat & ~missing

    def _fix_24h(
        self,
        arr: pa.Array,
        fmt: str,
        aware: bool,
        ns: npt.NDArray[np.int64],
        failed: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """``24:00`` (``24:00:00``) is midnight at the end of the day: parse as 00:00 + 1 day."""
        idx = np.flatnonzero(failed)
        texts = arr.take(pa.array(idx)).to_pylist()
        ns = ns.copy()
        failed = failed.copy()
        fixed: list[str] = []
        where: list[int] = []
        for i, text in zip(idx, texts, strict=True):
            if text is not None and _H24.search(text):
                repl = "00:00:00" if fmt == "ISO8601" else None
                if repl is None:
                    m = _H24.search(text)
                    assert m is not None
                    repl = "00:00" + m.group(0)[5:]
                fixed.append(_H24.sub(repl, text, count=1))
                where.append(int(i))
        if fixed:
            sub_ns, sub_failed = self._parse_strings(
                pa.array(fixed, pa.string()), fmt, aware, np.zeros(len(fixed), bool)
            )
            ok = ~sub_failed
            pos = np.asarray(where)[ok]
            ns[pos] = sub_ns[ok] + NS_PER_DAY
            failed[pos] = False
            self.used.add("24:00 as next midnight")
        return ns, failed

    # -- errors ---------------------------------------------------------------------------

    def _set_aware(self, aware: bool, lines: npt.NDArray[np.int64], arr: pa.Array) -> None:
        if self.aware is None:
            self.aware = aware
        elif self.aware != aware:
            first = arr.drop_null()[0].as_py() if arr.null_count < len(arr) else None
            raise IngestError(
                f"time column {self.column!r} mixes times with and without UTC offset; "
                "make them consistent",
                [
                    Location(
                        self.file,
                        int(lines[0]) if len(lines) else None,
                        self.column,
                        None if first is None else str(first),
                    )
                ],
                [Fix("time_format")],
            )

    def _raise_mixed(
        self,
        arr: pa.Array,
        lines: npt.NDArray[np.int64],
        aware: npt.NDArray[np.bool_],
        missing: npt.NDArray[np.bool_],
    ) -> None:
        i_aware = int(np.flatnonzero(aware)[0])
        i_naive = int(np.flatnonzero(~aware & ~missing)[0])
        locs = [
            Location(self.file, int(lines[i]), self.column, str(arr[i].as_py()))
            for i in sorted((i_aware, i_naive))
        ]
        raise IngestError(
            f"time column {self.column!r} mixes times with a UTC offset and times without "
            "one; make them consistent",
            locs,
        )

    def _raise_unparseable(
        self,
        arr: pa.Array,
        lines: npt.NDArray[np.int64],
        failed: npt.NDArray[np.bool_],
        hint: bool = False,
    ) -> None:
        idx = np.flatnonzero(failed)[:10]
        locs = [Location(self.file, int(lines[i]), self.column, str(arr[i].as_py())) for i in idx]
        fmt = f" with the format {self.time_format!r}" if self.time_format else ""
        raise IngestError(
            f"cannot parse {int(failed.sum())} time value(s) in column {self.column!r}{fmt}",
            locs,
            FORMAT_OR_EPOCH,
        )


def _as_text(arr: pa.Array) -> pa.Array:
    """A column as trimmed text (dates, times and numbers included)."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return pc.utf8_trim_whitespace(arr.cast(pa.string()))
    if pa.types.is_timestamp(arr.type):
        return pc.strftime(arr, format="%Y-%m-%d %H:%M:%S")
    return arr.cast(pa.string())
