"""Day-first or month-first: decided once per file, from an option, a header hint or the dates.

Dates such as ``03/07/2024`` read two ways. ``decide`` settles the order before any row is
converted: ``time_format`` or ``date_order`` given; else a hint in the header (``Date
(MM/DD/YYYY)``, ``Datum [TT.MM.JJJJ]``), which decides alone; else the file's own dates,
scanned until the first whose first field (day-first) or second field (month-first) is
above 12. The time parser then holds every date of the file to that order
(``contradiction``), so every value counts while the scan usually stops early.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.specs import IngestOptions

Order = Literal["day_first", "month_first", "year_first"]
Scan = Callable[[], Iterable[tuple[pa.Array, npt.NDArray[np.int64]]]]
"""The date-bearing column of the whole file, in chunks, with each row's line number."""

_DAY_MONTH = re.compile(r"^\s*(\d{1,2})([./-])(\d{1,2})\2(\d{2,4})(?!\d)")
_YEAR_FIRST = re.compile(r"^\s*\d{4}([./-])\d{1,2}\1\d{1,2}(?!\d)")
_ISO = re.compile(r"^\s*\d{4}-\d\d-\d\d(?:[T ]|$)")
_HINT = re.compile(
    r"(?<![A-Za-z])([A-Za-z])\1{0,3}([./-])([A-Za-z])\3{0,3}\2([A-Za-z])\4{0,3}(?![A-Za-z])",
    re.IGNORECASE,
)
_DAY_LETTERS = frozenset("dtg")  # day, Tag, giorno
_YEAR_LETTERS = frozenset("ya")  # year, año/année/anno; "j" is jour (day) or Jahr (year)
_SEPARATORS = np.array([ord("/"), ord("."), ord("-")], np.uint8)
_WORDS = {"day_first": "day-first", "month_first": "month-first"}


class DateOrderUnclear(IngestError):
    """Every date of the file reads both day-first and month-first, and no hint says which."""


@dataclass(frozen=True)
class OrderDecision:
    """The order dates are read in, and what decided it (for the report and for errors)."""

    order: Order
    source: Literal["time_format", "option", "hint", "data", "convention", "year_first"]
    reason: str
    line: int | None = None
    value: str | None = None

    def text(self) -> str:
        """``month_first (header hint 'MM/DD/YYYY')``: what ``detected['date_order']`` says."""
        return f"{self.order} ({self.reason})"


def header_hint(header: str) -> tuple[Literal["day_first", "month_first"], str] | None:
    """The order a header spells out (``MM/DD/YYYY``, ``TT.MM.JJJJ``, ``jj/mm/aaaa``), and
    the spelling; None without such a pattern (or for year-first ones)."""
    for m in _HINT.finditer(header):
        token = m.group(0)
        parts = token.split(m.group(2))
        letters = [p[0].lower() for p in parts]
        if letters.count("m") != 1:
            continue
        month = letters.index("m")
        rest = [i for i in range(3) if i != month]
        roles: dict[int, str] = {}
        for i in rest:
            if letters[i] in _DAY_LETTERS:
                roles[i] = "day"
            elif letters[i] in _YEAR_LETTERS:
                roles[i] = "year"
        for i in rest:  # "j": the day next to a year, the year (4 letters) next to a day
            if letters[i] == "j" and i not in roles:
                other = roles.get(rest[0] if i == rest[1] else rest[1])
                if other == "year" or (other is None and len(parts[i]) <= 2):
                    roles[i] = "day"
                elif other == "day" or len(parts[i]) == 4:
                    roles[i] = "year"
        if sorted(roles.values()) != ["day", "year"] or roles.get(2) != "year":
            continue
        day = next(i for i, r in roles.items() if r == "day")
        return ("day_first" if day < month else "month_first"), token
    return None


def _format_order(fmt: str) -> Order | None:
    """The order a strptime format reads dates in (None: no day and month in it)."""
    pos = {k: fmt.find(k) for k in ("%d", "%m", "%Y", "%y")}
    year = max(pos["%Y"], pos["%y"])
    if pos["%d"] < 0 or pos["%m"] < 0:
        return None
    if 0 <= year < min(pos["%d"], pos["%m"]):
        return "year_first"
    return "day_first" if pos["%d"] < pos["%m"] else "month_first"


def day_month_fields(arr: pa.Array) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """The first two fields of dates such as ``3/07/2024`` or ``13.07.24`` in a text column,
    vectorised on the string bytes; -1 where a cell has no such shape (or is missing)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    none = np.full(n, -1, np.int16)
    if not n or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return none, none.copy()
    bufs = arr.buffers()
    if bufs[2] is None:
        return none, none.copy()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(
        bufs[1], width, count=n + 1, offset=arr.offset * np.dtype(width).itemsize
    )
    a, b = _fields_at(
        np.frombuffer(bufs[2], np.uint8),
        offsets[:-1].astype(np.int64),
        offsets[1:].astype(np.int64),
    )
    if arr.null_count:
        valid = np.asarray(arr.is_valid())
        a, b = np.where(valid, a, -1).astype(np.int16), np.where(valid, b, -1).astype(np.int16)
    return a, b


def lines_may_decide(text: memoryview | bytes) -> bool:
    """Whether any line of UTF-8 ``text`` starts with a date whose first or second field
    is above 12 (a quick look at the first field of each line, quotes and blanks aside)."""
    data = np.frombuffer(text, np.uint8)
    if not len(data):
        return False
    newlines = np.flatnonzero(data == 10)
    start = np.concatenate([[0], newlines + 1]).astype(np.int64)
    end = np.concatenate([newlines, [len(data)]]).astype(np.int64)
    a, b = _fields_at(data, start, end)
    return bool((a > 12).any() or (b > 12).any())


def _fields_at(
    data: npt.NDArray[np.uint8], start: npt.NDArray[np.int64], end: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Day/month fields of the texts ``data[start:end]`` (-1: no such date at the start)."""
    n = len(start)
    if not len(data):
        none = np.full(n, -1, np.int16)
        return none, none.copy()

    def at(pos: npt.NDArray[np.int64]) -> npt.NDArray[np.int16]:
        """The byte at ``pos`` of each text; -1 past its end."""
        inside = pos < end
        return np.where(inside, data[np.minimum(pos, len(data) - 1)].astype(np.int16), -1)

    pos = start.copy()
    for _ in range(3):  # leading blanks or a quote
        c = at(pos)
        pos += (c == ord(" ")) | (c == ord('"'))

    def field(pos: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int64]]:
        """A 1-2 digit number followed by a separator: its value (-1: none) and what follows."""
        c0, c1, c2 = at(pos), at(pos + 1), at(pos + 2)
        d0 = (c0 >= 48) & (c0 <= 57)
        d1 = (c1 >= 48) & (c1 <= 57)
        two = d0 & d1 & np.isin(c2, _SEPARATORS)
        one = d0 & np.isin(c1, _SEPARATORS)
        value = np.where(two, (c0 - 48) * 10 + (c1 - 48), np.where(one, c0 - 48, -1))
        nxt = np.where(two, pos + 3, pos + 2)
        return value.astype(np.int16), nxt

    a, pos = field(pos)
    b, pos = field(pos)
    c0, c1 = at(pos), at(pos + 1)
    year = (c0 >= 48) & (c0 <= 57) & (c1 >= 48) & (c1 <= 57)
    ok = (a >= 0) & (b >= 0) & year
    return np.where(ok, a, -1).astype(np.int16), np.where(ok, b, -1).astype(np.int16)


def _evidence(arr: pa.Array) -> tuple[int | None, int | None, int | None]:
    """Indices of the first day-first date, first month-first date and first date of
    either reading in ``arr`` (None where there is none)."""
    a, b = day_month_fields(arr)
    shaped = a >= 0
    day = shaped & (a > 12) & (b <= 12)
    month = shaped & (b > 12) & (a <= 12)
    first = [int(np.argmax(m)) if m.any() else None for m in (day, month, shaped)]
    return first[0], first[1], first[2]


def _cell(arr: pa.Array, i: int) -> str:
    v = arr[i].as_py()
    return "" if v is None else str(v)


def decide(
    file: str,
    column: str,
    headers: Sequence[str],
    sample: Sequence[object],
    options: IngestOptions,
    scan: Scan | None,
) -> OrderDecision | None:
    """The order of the dates of a time (or date) column; None when it does not apply
    (epoch numbers, typed timestamps, shapes other than day/month/year).

    ``headers`` are the headers of the time and date columns, ``sample`` a few of the
    column's cells; ``scan`` reads the whole column when the sample does not decide.
    Raises when the dates contradict each other, or (with ``/``) when they read both ways.
    """
    if options.time_format:
        given = _format_order(options.time_format)
        return (
            None
            if given is None
            else OrderDecision(given, "time_format", f"time_format {options.time_format!r}")
        )
    if options.epoch_unit:
        return None
    texts = [v.strip() for v in sample if isinstance(v, str) and v.strip()]
    if not texts:
        return None
    first = next((t for t in texts if _DAY_MONTH.match(t)), None)
    if first is None:
        if _YEAR_FIRST.match(texts[0]):
            why = "ISO 8601" if _ISO.match(texts[0]) else "the year comes first"
            return OrderDecision("year_first", "year_first", why)
        return None
    if options.date_order != "auto":
        return OrderDecision(options.date_order, "option", "given")
    for h in headers:
        hint = header_hint(h)
        if hint is not None:
            return OrderDecision(hint[0], "hint", f"header hint {hint[1]!r}")
    sep = _DAY_MONTH.match(first).group(2)  # type: ignore[union-attr]
    where: tuple[int, str] | None = None
    for arr, lines in scan() if scan is not None else ():
        day, month, shaped = _evidence(arr)
        if where is None and shaped is not None:
            where = int(lines[shaped]), _cell(arr, shaped)
        if day is not None and month is not None:
            found = sorted([(day, "day_first"), (month, "month_first")])
            locs = [Location(file, int(lines[i]), column, _cell(arr, i)) for i, _ in found]
            raise IngestError(
                f"column {column!r} mixes day-first and month-first dates: line "
                f"{locs[0].line} has {locs[0].value!r} ({_WORDS[found[0][1]]}), line "
                f"{locs[1].line} has {locs[1].value!r} ({_WORDS[found[1][1]]})",
                locs,
            )
        if day is not None or month is not None:
            i = day if day is not None else month
            assert i is not None
            order: Order = "day_first" if day is not None else "month_first"
            value = _cell(arr, i)
            line = int(lines[i])
            return OrderDecision(order, "data", f"line {line}: {value!r}", line, value)
    if sep in ".-":
        return OrderDecision(
            "day_first", "convention", f"no day above 12; dates with {sep!r} read day-first"
        )
    at, value = where if where is not None else (None, first)
    raise DateOrderUnclear(
        f"dates such as {value!r} in column {column!r} could be day-first or month-first: "
        "no date has a day above 12 and the header gives no hint such as 'DD/MM/YYYY'",
        [Location(file, at, column, value)],
        [Fix("date_order", "month_first"), Fix("date_order", "day_first")]
        + [Fix("time_format", f) for f in _both_formats(texts)],
    )


def _both_formats(texts: list[str]) -> list[str]:
    """The month-first and the day-first strptime format that read ``texts`` (if any)."""
    from stream0d_nb.ingest.timeparse import fitting_formats

    fits = fitting_formats(texts)
    month = [f for f in fits if _format_order(f) == "month_first"][:1]
    day = [f for f in fits if _format_order(f) == "day_first"][:1]
    return month + day


def contradiction(
    decision: OrderDecision | None,
    file: str,
    column: str,
    failed: pa.Array,
    lines: npt.NDArray[np.int64],
) -> IngestError | None:
    """The error for cells that failed to parse because they read the other way round
    than ``decision`` (``13/01/2024`` under month-first), else None.

    ``failed`` holds the failing cells as text, ``lines`` their lines.
    """
    if decision is None or decision.order not in _WORDS or decision.source == "time_format":
        return None
    day, month, _ = _evidence(failed)
    i = month if decision.order == "day_first" else day
    if i is None:
        return None
    other = "month_first" if decision.order == "day_first" else "day_first"
    here = Location(file, int(lines[i]), column, _cell(failed, i))
    said = f"line {here.line} has {here.value!r}, a {_WORDS[other]} date"
    if decision.source == "data":
        there = Location(file, decision.line, column, decision.value)
        return IngestError(
            f"column {column!r} mixes day-first and month-first dates: line {there.line} has "
            f"{there.value!r} ({_WORDS[decision.order]}), {said}",
            [there, here],
        )
    if decision.source == "hint":
        return IngestError(
            f"the header of column {column!r} says dates are {_WORDS[decision.order]} "
            f"({decision.reason[len('header hint ') :]}), but {said}",
            [here],
            [Fix("date_order", other)],
        )
    return IngestError(
        f"dates in column {column!r} are read {_WORDS[decision.order]} ({decision.reason}), "
        f"but {said}",
        [here],
        [Fix("date_order", other)],
    )
