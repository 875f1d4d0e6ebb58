"""Local (naive) times to UTC: a fixed offset, or an IANA zone with explicit DST policies.

Vectorised with pandas ``tz_localize``; only rows in a repeated or skipped hour get the
policy treatment (error naming the line, earliest/latest/infer, shift or drop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest.types import Counters
from stream0d_nb.specs import AmbiguousPolicy, NonexistentPolicy

NS_PER_DAY = 86_400 * 10**9
UTC_NAMES = ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z")


@dataclass
class Localizer:
    """Converts naive local nanoseconds of one column to UTC, keeping ``infer`` state."""

    file: str
    column: str
    tz: str = "UTC"
    offset_minutes: int | None = None
    ambiguous: AmbiguousPolicy = "error"
    nonexistent: NonexistentPolicy = "error"
    counters: Counters = field(default_factory=Counters)
    used: set[str] = field(default_factory=set)
    _infer_state: dict[int, tuple[int, bool]] = field(default_factory=dict)

    def localize(
        self,
        naive: npt.NDArray[np.int64],
        missing: npt.NDArray[np.bool_],
        lines: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """``(utc_ns, missing, drop)``: ``drop`` marks rows removed by ``nonexistent='drop'``."""
        n = len(naive)
        drop = np.zeros(n, bool)
        if self.offset_minutes is not None:
            return naive - self.offset_minutes * 60 * 10**9, missing, drop
        if self.tz in UTC_NAMES:
            return naive, missing, drop
        naive = np.where(missing, 0, naive)
        idx = pd.DatetimeIndex(naive.view("M8[ns]"))
        loc = idx.tz_localize(self.tz, ambiguous="NaT", nonexistent="NaT")
        bad = np.asarray(loc.isna())
        out = np.asarray(loc.as_unit("ns").asi8, dtype=np.int64).copy()
        if not bad.any():
            return out, missing, drop
        bad_idx = np.flatnonzero(bad)
        try_dst = idx[bad_idx].tz_localize(
            self.tz, ambiguous=np.ones(len(bad_idx), bool), nonexistent="NaT"
        )
        is_amb = ~np.asarray(try_dst.isna())
        amb = bad_idx[is_amb]
        gap = bad_idx[~is_amb]
        # Resolve in file order so that an error names the first problem of the batch.
        gap_first = len(gap) and (not len(amb) or gap[0] < amb[0])
        if gap_first:
            out[gap], drop[gap] = self._resolve_nonexistent(idx, gap, lines)
        if len(amb):
            out[amb] = self._resolve_ambiguous(idx, naive, amb, lines)
        if len(gap) and not gap_first:
            out[gap], drop[gap] = self._resolve_nonexistent(idx, gap, lines)
        self.counters.rows_dropped_time += int(drop.sum())
        return out, missing, drop

    def _resolve_ambiguous(
        self,
        idx: pd.DatetimeIndex,
        naive: npt.NDArray[np.int64],
        amb: npt.NDArray[np.intp],
        lines: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.int64]:
        if self.ambiguous == "error":
            locs = [Location(self.file, int(lines[i]), self.column, str(idx[i])) for i in amb[:10]]
            raise IngestError(
                f"local time {idx[amb[0]]} (line {int(lines[amb[0]])}) occurs twice in "
                f"{self.tz} when clocks go back",
                locs,
                [Fix("ambiguous", p) for p in ("earliest", "latest", "infer")]
                + [Fix("utc_offset", example="+01:00")],
            )
        if self.ambiguous in ("earliest", "latest"):
            flags = np.full(len(amb), self.ambiguous == "earliest")
        else:
            flags = self._infer_flags(naive, amb)
        loc = idx[amb].tz_localize(self.tz, ambiguous=flags)
        self.used.add(f"ambiguous={self.ambiguous}")
        return np.asarray(loc.as_unit("ns").asi8, dtype=np.int64)

    def _infer_flags(
        self, naive: npt.NDArray[np.int64], amb: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.bool_]:
        """In file order, a repeated hour is DST (first pass) until time steps back."""
        flags = np.ones(len(amb), bool)
        days = naive[amb] // NS_PER_DAY
        for day in np.unique(days):
            sel = np.flatnonzero(days == day)
            vals = naive[amb[sel]]
            last, switched = self._infer_state.get(int(day), (None, False))
            prev = np.concatenate([[vals[0] + 1 if last is None else last], vals[:-1]])
            back = vals <= prev
            if last is None:
                back[0] = False
            sw = np.logical_or.accumulate(back | switched)
            flags[sel] = ~sw
            self._infer_state[int(day)] = (int(vals[-1]), bool(sw[-1]))
        return flags

    def _resolve_nonexistent(
        self, idx: pd.DatetimeIndex, gap: npt.NDArray[np.intp], lines: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        if self.nonexistent == "error":
            locs = [Location(self.file, int(lines[i]), self.column, str(idx[i])) for i in gap[:10]]
            raise IngestError(
                f"local time {idx[gap[0]]} (line {int(lines[gap[0]])}) does not exist in "
                f"{self.tz} (clocks go forward)",
                locs,
                [Fix("nonexistent", p) for p in ("shift_forward", "shift_backward", "drop")],
            )
        self.used.add(f"nonexistent={self.nonexistent}")
        if self.nonexistent == "drop":
            return np.zeros(len(gap), np.int64), np.ones(len(gap), bool)
        # A time in the skipped hour moves by the length of the gap: forward reads it with
        # the offset in force before the change (02:30 -> 03:30 CEST, what a clock not yet
        # switched meant), backward with the offset after it (02:30 -> 01:30 CET). So rows
        # stay on the grid and keep their spacing. (pandas 3.1's shift_backward is off by
        # an hour, and its shifts land on the gap's edges, off any regular grid.)
        loc = idx[gap].tz_localize(self.tz, ambiguous="NaT", nonexistent="shift_forward")
        edge = np.asarray(loc.as_unit("ns").asi8, dtype=np.int64)
        pick = edge - 1 if self.nonexistent == "shift_forward" else edge
        local = pd.DatetimeIndex(pick, tz="UTC").tz_convert(self.tz).tz_localize(None)
        offset = np.asarray(local.as_unit("ns").asi8, dtype=np.int64) - pick
        naive = np.asarray(idx[gap].as_unit("ns").asi8, dtype=np.int64)
        after = naive - offset
        return after, np.zeros(len(gap), bool)
