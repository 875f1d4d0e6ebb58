"""The regular time grid of a dataset: times are arithmetic, never a stored coordinate.

Index ``i`` of every channel array holds the sample at ``EPOCH + i * interval`` (UTC).
The grid is anchored at the Unix epoch so that it never moves: data can arrive for any
time after 1970, earlier or later than what is stored, and always maps to the same
index. Arrays are sized in whole chunks and unwritten chunks cost nothing (Zarr fill
value), so the time axis grows at either end without rewriting anything.

Chunks are the smallest calendar-aligned span from ``CHUNK_SPANS`` holding at least
``MIN_CHUNK_SAMPLES`` samples (DESIGN §4: 50 k-500 k samples; one day at 1 s):

=========  ==========  ==============
interval   chunk span  samples/chunk
=========  ==========  ==============
1 ms       1 min       60,000
100 ms     6 h         216,000
1 s        1 day       86,400
5 s        7 days      120,960
1 min      364 days    524,160
5 min      364 days    104,832
1 h        3640 days   87,360
=========  ==========  ==============

Spans are multiples of one another and of the day, so chunk edges fall on UTC
midnights (weeks start on Thursdays, as 1970-01-01 did).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream0d_nb.errors import ValidationError

NS = 1
SECOND = 10**9
DAY = 86_400 * SECOND
MIN_CHUNK_SAMPLES = 50_000
CHUNK_SPANS = (
    60 * SECOND,
    600 * SECOND,
    3600 * SECOND,
    6 * 3600 * SECOND,
    DAY,
    7 * DAY,
    28 * DAY,
    364 * DAY,
    3640 * DAY,
)


def chunk_length_for(interval_ns: int) -> int:
    """Samples per chunk for a sampling interval (see the module table)."""
    for span in CHUNK_SPANS:
        if span % interval_ns == 0 and span // interval_ns >= MIN_CHUNK_SAMPLES:
            return span // interval_ns
    # Intervals that divide no span (e.g. 7 s): a plain size in the target range.
    return max(1, min(MIN_CHUNK_SAMPLES, CHUNK_SPANS[-1] // interval_ns))


@dataclass(frozen=True)
class Grid:
    """Maps UTC nanoseconds to array indices and back, for one interval and chunk length."""

    interval_ns: int
    chunk_len: int

    @classmethod
    def for_interval(cls, interval_ns: int) -> Grid:
        """The grid a new dataset with this interval gets."""
        return cls(interval_ns, chunk_length_for(interval_ns))

    def snap(
        self, times_ns: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Nearest grid index of each time and its signed distance to it (ns)."""
        half = self.interval_ns // 2
        idx = np.floor_divide(times_ns + half, self.interval_ns)
        return idx, times_ns - idx * self.interval_ns

    def time_of(self, index: int) -> pd.Timestamp:
        """The UTC time of grid index ``index``."""
        return pd.Timestamp(index * self.interval_ns, unit="ns", tz="UTC")

    def times(self, start: int, stop: int) -> pd.DatetimeIndex:
        """UTC times of indices ``start`` (inclusive) to ``stop`` (exclusive)."""
        return pd.DatetimeIndex(
            np.arange(start, stop, dtype=np.int64) * self.interval_ns, tz="UTC"
        ).as_unit("ns")

    def index_at_or_after(self, t: pd.Timestamp) -> int:
        """First grid index whose time is >= ``t``."""
        return -(-to_ns(t) // self.interval_ns)

    def chunk_of(self, index: int) -> int:
        """Chunk number holding ``index``."""
        return index // self.chunk_len

    def shape_for(self, stop_index: int) -> int:
        """Array length covering ``stop_index`` (exclusive), rounded up to whole chunks."""
        return -(-stop_index // self.chunk_len) * self.chunk_len


def to_ns(t: pd.Timestamp | str | np.datetime64 | object) -> int:
    """UTC nanoseconds of a time; naive times are taken as UTC."""
    try:
        ts = pd.Timestamp(t)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{t!r} is not a time (use ISO 8601, e.g. 2024-01-31T12:00)") from exc
    if pd.isna(ts):
        raise ValidationError(f"{t!r} is not a time")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.tz_convert("UTC").as_unit("ns").value)
