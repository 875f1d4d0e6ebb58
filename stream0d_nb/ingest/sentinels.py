"""Probable missing-value sentinels: a value such as -9999 repeated far outside a column's others.

Found while reading and only reported, never applied. A value far outside the others is
the column's smallest or largest, so ``SentinelScan.add`` keeps per column the two smallest
and the two largest distinct values, with the count and first line of the extremes: two
numpy reductions per column and batch, a few more only when an extreme looks like a
sentinel. ``hints`` judges the extremes once the file is read. A hint needs all of:

- the value is whole or has one decimal, and is at least ``MIN_MAGNITUDE`` in size
  (-9999, -999.9, 9999, 65535: not 0 or -1, which are often real);
- it appears at least ``MIN_COUNT`` times;
- it lies beyond the range of the column's other values by more than ``FAR`` times their
  spread and by more than half their size (so 240 next to 229..231 V is no sentinel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream0d_nb.specs import SentinelHint

MIN_COUNT = 3
MIN_MAGNITUDE = 99.0
FAR = 1.5


def looks_like_sentinel(v: float) -> bool:
    """Whole or one decimal (``-9999``, ``-999.9``), finite, and at least ``MIN_MAGNITUDE``."""
    if not math.isfinite(v) or abs(v) < MIN_MAGNITUDE:
        return False
    return abs(v) >= 1e15 or abs(round(v * 10) - v * 10) < 1e-6


@dataclass
class _End:
    """One end of a column's values: the extreme, its count and first line, the next value.

    ``count`` is 0 when the extreme cannot be a sentinel (it was not counted).
    """

    low: bool
    value: float = math.nan
    count: int = 0
    line: int | None = None
    second: float = math.nan

    def add(self, v: npt.NDArray[np.float64], lines: npt.NDArray[np.int64], m: float) -> None:
        """Merge one batch whose extreme at this end is ``m``."""
        pick = np.fmin if self.low else np.fmax
        if math.isnan(self.value) or (m < self.value if self.low else m > self.value):
            count, line, second = self._count(v, lines, m, pick)
            self.second = float(pick(self.value, second))
            self.value, self.count, self.line = m, count, line
        elif m == self.value:
            if self.count:
                count, _, second = self._count(v, lines, m, pick)
                self.count += count
                self.second = float(pick(self.second, second))
        else:
            self.second = float(pick(self.second, m))

    @staticmethod
    def _count(
        v: npt.NDArray[np.float64], lines: npt.NDArray[np.int64], m: float, pick: np.ufunc
    ) -> tuple[int, int | None, float]:
        """How often ``m`` appears, its first line, and the next distinct value inward."""
        if not looks_like_sentinel(m):
            return 0, None, math.nan
        eq = v == m
        first = int(np.argmax(eq))
        rest = np.where(eq, np.nan, v)
        return int(eq.sum()), int(lines[first]), float(pick.reduce(rest))


@dataclass
class _Column:
    low: _End = field(default_factory=lambda: _End(True))
    high: _End = field(default_factory=lambda: _End(False))


def _far(v: float, lo: float, hi: float) -> bool:
    """``v`` beyond ``[lo, hi]`` by more than FAR spreads and half the values' size."""
    if math.isnan(lo) or math.isnan(hi):
        return False
    beyond = lo - v if v < lo else v - hi
    return beyond > max(FAR * (hi - lo), 0.5 * max(abs(lo), abs(hi)))


def _text(v: float) -> str:
    """``-9999`` for whole numbers, the shortest exact form otherwise (``-999.9``)."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


class SentinelScan:
    """Per-column extremes of the values read, judged as sentinels by ``hints``."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        """Channel -> the column's header (hints name the file's column)."""
        self._cols: dict[str, _Column] = {}

    def add(self, values: dict[str, npt.NDArray[np.float64]], lines: npt.NDArray[np.int64]) -> None:
        """Take one batch into account (float64 columns, NaN for missing)."""
        if not len(lines):
            return
        for name, v in values.items():
            lo = float(np.fmin.reduce(v))
            if math.isnan(lo):
                continue
            col = self._cols.setdefault(name, _Column())
            col.low.add(v, lines, lo)
            col.high.add(v, lines, float(np.fmax.reduce(v)))

    def hints(self) -> list[SentinelHint]:
        """The probable sentinels, in column order (low end first)."""
        out: list[SentinelHint] = []
        for name, col in self._cols.items():
            lo, hi = col.low, col.high
            ok_lo = lo.count >= MIN_COUNT
            ok_hi = hi.count >= MIN_COUNT and hi.value != lo.value
            # one end alone, against every other value; or both ends against the values
            # between them (-9999 and 9999 in one column)
            inner = lo.second <= hi.second
            both = (
                ok_lo
                and ok_hi
                and inner
                and _far(lo.value, lo.second, hi.second)
                and _far(hi.value, lo.second, hi.second)
            )
            low = both or (ok_lo and _far(lo.value, lo.second, hi.value))
            high = both or (ok_hi and _far(hi.value, lo.value, hi.second))
            found: list[tuple[_End, float, float]] = []
            if low:
                found.append((lo, lo.second, hi.second if high else hi.value))
            if high:
                found.append((hi, lo.second if low else lo.value, hi.second))
            for end, a, b in found:
                out.append(
                    SentinelHint(
                        column=self.headers.get(name, name),
                        value=_text(end.value),
                        count=end.count,
                        first_line=end.line,
                        range_of_others=None if math.isnan(a) else (a, b),
                    )
                )
        return out
