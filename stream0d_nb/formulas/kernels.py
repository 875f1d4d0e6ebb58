"""NaN-aware numpy/bottleneck kernels on regular grids (no xarray rolling, no JIT).

Window kernels take the values of a window's margin plus the output range and return the
output range only: ``a`` has ``n + k - 1`` values for ``n`` outputs of a ``k``-sample
trailing window.
"""

from __future__ import annotations

from collections.abc import Callable

import bottleneck as bn
import numpy as np
import numpy.typing as npt
import pandas as pd

from stream0d_nb.store.reader import reduce_rows

F8 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int64]

MOVING: dict[str, Callable[..., F8]] = {
    "mean": bn.move_mean,
    "sum": bn.move_sum,
    "min": bn.move_min,
    "max": bn.move_max,
    "std": bn.move_std,
}


def rolling(a: F8, k: int, how: str) -> F8:
    """Trailing-window statistic over ``k`` samples, NaN-aware (NaN when none valid)."""
    if a.size < k:
        return np.empty(0)
    if how == "count":
        return window_count(a, k)
    fn = MOVING[how]
    if how == "std" and k == 1:
        return np.full(a.size, np.nan)
    if how == "std":
        # running sums leave rounding residue after large values; flat windows are exactly 0
        out = fn(a, window=k, min_count=2, ddof=1)[k - 1 :]
        out[flat_windows(a, k) & ~np.isnan(out)] = 0.0  # fewer than 2 samples stay NaN
        return np.asarray(out, dtype=np.float64)
    return np.asarray(fn(a, window=k, min_count=1)[k - 1 :], dtype=np.float64)


def flat_windows(a: F8, k: int) -> npt.NDArray[np.bool_]:
    """Trailing windows of ``k`` whose valid values are all equal (max == min).

    Exact for windows with two or more valid values (others: unspecified). Such a window
    holds two consecutive valid samples that are equal, so max/min are only computed on
    the stretches around those pairs (none at all in noisy data).
    """
    n = a.size - k + 1
    out = np.zeros(max(n, 0), dtype=bool)
    valid = np.flatnonzero(~np.isnan(a))
    vals = a[valid]
    eq = np.flatnonzero(vals[1:] == vals[:-1])  # pair (valid[j], valid[j + 1]) is equal
    eq = eq[valid[eq + 1] - valid[eq] < k]  # and fits in a window
    if n <= 0 or not eq.size:
        return out
    # windows (by output index) holding such a pair: [valid[j + 1] - k + 1, valid[j] + 1),
    # both ends non-decreasing in j, so overlapping ones merge where a gap opens
    lo = np.clip(valid[eq + 1] - k + 1, 0, n)
    hi = np.clip(valid[eq] + 1, 0, n)
    gap = lo[1:] > hi[:-1]
    starts = lo[np.concatenate(([True], gap))]
    ends = hi[np.concatenate((gap, [True]))]
    if starts.size > 64 or int((ends - starts).sum()) > n // 2:
        starts, ends = np.array([0]), np.array([n])
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        w = a[s : e + k - 1]
        out[s:e] = (
            bn.move_max(w, window=k, min_count=1)[k - 1 :]
            == bn.move_min(w, window=k, min_count=1)[k - 1 :]
        )
    return out


def window_count(a: F8, k: int) -> F8:
    """Valid samples in each trailing window of ``k`` (exact integer arithmetic)."""
    c = np.concatenate(([0], np.cumsum(~np.isnan(a), dtype=np.int64)))
    return (c[k:] - c[: c.size - k]).astype(np.float64)


def last_valid(a: F8) -> I8:
    """Index of the last valid value at or before each position (-1 when none)."""
    idx = np.where(np.isnan(a), -1, np.arange(a.size, dtype=np.int64))
    return np.maximum.accumulate(idx) if a.size else idx


def ffill(a: F8, limit: int) -> F8:
    """Carry the last valid value forward at most ``limit`` samples."""
    idx = last_valid(a)
    pos = np.arange(a.size, dtype=np.int64)
    ok = (idx >= 0) & (pos - idx <= limit)
    return np.where(ok, a[np.maximum(idx, 0)], np.nan)


def bfill(a: F8, limit: int) -> F8:
    """Carry the next valid value backward at most ``limit`` samples."""
    return ffill(a[::-1], limit)[::-1].copy()


def interpolate(a: F8, limit: int) -> F8:
    """Linear interpolation across gaps of at most ``limit`` missing samples (inside only)."""
    n = a.size
    p = last_valid(a)
    q = n - 1 - last_valid(a[::-1])[::-1]  # next valid index (n when none)
    pos = np.arange(n, dtype=np.int64)
    gap = np.isnan(a) & (p >= 0) & (q < n) & (q - p - 1 <= limit)
    out = a.copy()
    if gap.any():
        pg, qg, ig = p[gap], q[gap], pos[gap]
        out[gap] = a[pg] + (a[qg] - a[pg]) * (ig - pg) / (qg - pg)
    return out


def group_starts(i0: int, n: int, reset: int) -> I8:
    """For each of ``n`` grid indices from ``i0``: position of the start of its reset period."""
    pos = np.arange(n, dtype=np.int64)
    if reset <= 0:
        return np.zeros(n, dtype=np.int64)
    start = ((i0 + pos) // reset) * reset - i0
    return np.maximum(start, 0)


def cumsum(a: F8, i0: int, reset: int) -> F8:
    """Running sum of valid values from the range start (or each reset period); NaN stays NaN."""
    c = np.cumsum(np.nan_to_num(a, nan=0.0))
    starts = group_starts(i0, a.size, reset)
    base = np.concatenate(([0.0], c))[starts]
    return np.where(np.isnan(a), np.nan, c - base)


def integral(a: F8, i0: int, reset: int, dt_s: float) -> F8:
    """Trapezoid integral (value x seconds) over steps with both ends valid; NaN stays NaN."""
    steps = np.zeros(a.size)
    if a.size > 1:
        s = (a[1:] + a[:-1]) * (0.5 * dt_s)
        steps[1:] = np.nan_to_num(s, nan=0.0)
    starts = group_starts(i0, a.size, reset)
    c = np.cumsum(steps)
    return np.where(np.isnan(a), np.nan, c - c[starts])


def resample(a: F8, k: int, how: str) -> F8:
    """Reduce consecutive blocks of ``k`` samples (``a.size`` a multiple of ``k``)."""
    blocks = a.reshape(-1, k)
    if how == "twmean":
        # each valid sample holds until the next valid one or the end of its bin
        valid = ~np.isnan(blocks)
        idx = np.where(valid, np.arange(k, dtype=np.int64), -1)
        idx = np.maximum.accumulate(idx, axis=1)
        held = np.take_along_axis(blocks, np.maximum(idx, 0), axis=1)
        held[idx < 0] = np.nan
        return reduce_rows(held, "mean")
    return reduce_rows(blocks, how)


def mad(a: F8, k: int, check: Callable[[], None]) -> F8:
    """Trailing-window median absolute deviation from the window median (NaN-aware)."""
    n = a.size - k + 1
    out = np.full(max(n, 0), np.nan)
    step = max(1, 2_000_000 // k)
    windows = np.lib.stride_tricks.sliding_window_view(a, k) if n > 0 else None
    for s in range(0, max(n, 0), step):
        check()
        assert windows is not None
        w = windows[s : s + step]
        ok = ~np.isnan(w).all(axis=1)
        if not ok.any():
            continue
        w = w[ok]
        med = bn.nanmedian(w, axis=1)
        out[s : s + step][ok] = bn.nanmedian(np.abs(w - med[:, None]), axis=1)
    return out


TIME_FIELDS = ("hour", "minute", "weekday", "day", "month", "dayofyear")


def time_field(times_ns: I8, tz: str, field: str) -> F8:
    """A calendar field of UTC times in time zone ``tz`` (weekday: Monday = 0)."""
    idx = pd.DatetimeIndex(times_ns.astype("datetime64[ns]"), tz="UTC")
    if tz != "UTC":
        idx = idx.tz_convert(tz)
    attr = {"weekday": "day_of_week", "dayofyear": "day_of_year"}.get(field, field)
    return np.asarray(getattr(idx, attr), dtype=np.float64)
