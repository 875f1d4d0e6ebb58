"""Reads: a time range of some channels as an ``xarray.Dataset``, optionally aggregated.

Times are computed from the grid, never loaded. Ranges are half-open: ``start`` is
included, ``end`` excluded. Aggregation to a coarser interval uses bins aligned to the
epoch (so 15-minute bins start at :00, :15, ...) and NaN-aware segment reductions; a
bin's sum, mean, min, max, first or last is NaN when the bin holds no sample. Aggregated
reads go window by window (whole chunks, ``AGGREGATE_WINDOW`` samples at most), each
window reduced to partial bins merged into the result: memory depends on the window and
the number of bins, never on the range read nor on the bin width.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import bottleneck as bn
import numpy as np
import numpy.typing as npt
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.specs import format_duration, parse_duration_ns
from stream0d_nb.store.grid import Grid, to_ns
from stream0d_nb.store.repo import Snapshot

Aggregation = Literal["mean", "min", "max", "sum", "count", "first", "last"]
AGGREGATIONS: tuple[str, ...] = ("mean", "min", "max", "sum", "count", "first", "last")
MAX_READ_VALUES = 500_000_000
AGGREGATE_WINDOW = 4_000_000  # samples of one channel held at once by an aggregated read
MAX_STEP_NS = 2**63 - 1  # every= beyond this overflows nanosecond times
F8 = npt.NDArray[np.float64]


def index_range(snap: Snapshot, start: object | None, end: object | None) -> tuple[int, int]:
    """Grid indices ``[i0, i1)`` for a half-open time range (default: all stored data)."""
    grid = snap.grid
    i0 = snap.start if start is None else -(-to_ns(start) // grid.interval_ns)
    i1 = snap.stop if end is None else -(-to_ns(end) // grid.interval_ns)
    if i0 is None or i1 is None:  # empty dataset and open range
        return 0, 0
    return max(i0, 0), max(i1, max(i0, 0))


def reduce_rows(blocks: F8, how: str) -> F8:
    """Each row of ``blocks`` reduced with ``how`` (NaN-aware; formula kernels use it)."""
    valid = ~np.isnan(blocks)
    n = valid.sum(axis=1)
    if how == "count":
        return n.astype(np.float64)
    if how in ("first", "last"):
        pos = (
            np.argmax(valid, axis=1)
            if how == "first"
            else blocks.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
        )
        out = blocks[np.arange(blocks.shape[0]), pos]
    else:
        fn = {"mean": bn.nanmean, "min": bn.nanmin, "max": bn.nanmax, "sum": bn.nansum}[how]
        if how in ("min", "max") and not n.all():
            out = np.full(blocks.shape[0], np.nan)
            if n.any():
                out[n > 0] = fn(blocks[n > 0], axis=1)
            return out
        out = np.asarray(fn(blocks, axis=1), dtype=np.float64)
    return np.where(n > 0, out, np.nan)


def bin_steps(grid: Grid, every: str | None, how: str) -> int:
    """Grid steps per aggregation bin (1 without ``every``); checks ``every`` and ``how``."""
    if how not in AGGREGATIONS:
        raise ValidationError(f"aggregation {how!r} unknown; use one of {', '.join(AGGREGATIONS)}")
    if every is None:
        return 1
    try:
        step = parse_duration_ns(every, what="every")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if step > MAX_STEP_NS:
        raise ValidationError(
            f"every={every!r} is longer than any time range that can be read "
            "(about 292 years): choose a shorter every="
        )
    if step % grid.interval_ns:
        raise ValidationError(
            f"every={every!r} must be a multiple of the dataset interval "
            f"{format_duration(grid.interval_ns)}"
        )
    return step // grid.interval_ns


class Bins:
    """Epoch-aligned bins of ``k`` grid steps, fed blocks of values in time order.

    Each block is reduced to one partial result per bin it touches (segment reductions,
    ``ufunc.reduceat``) and merged, so a bin may span blocks and memory is O(bins) plus
    the block: neither the bin width nor the range allocates anything.
    """

    def __init__(self, i0: int, i1: int, k: int, how: str) -> None:
        self.k, self.how = k, how
        self.b0 = i0 // k  # number of the first bin
        n = (i1 - 1) // k - self.b0 + 1 if i1 > i0 else 0
        self.count = np.zeros(n, dtype=np.int64)
        self.acc = np.full(n, np.nan) if how != "count" else self.count
        if how in ("sum", "mean"):
            self.acc = np.zeros(n)

    def add(self, values: F8, i: int) -> None:
        """Merge the values of grid indices ``[i, i + values.size)``."""
        n = values.size
        if n == 0:
            return
        g0, g1 = i // self.k, (i + n - 1) // self.k
        offs = np.maximum(np.arange(g0, g1 + 1, dtype=np.int64) * self.k - i, 0)
        at = slice(g0 - self.b0, g1 - self.b0 + 1)
        valid = ~np.isnan(values)
        self.count[at] += np.add.reduceat(valid, offs, dtype=np.int64)
        how = self.how
        if how in ("sum", "mean"):
            self.acc[at] += np.add.reduceat(np.where(valid, values, 0.0), offs)
        elif how in ("min", "max"):
            op = np.fmin if how == "min" else np.fmax
            self.acc[at] = op(self.acc[at], op.reduceat(values, offs))
        elif how in ("first", "last"):
            pos = np.flatnonzero(valid)
            if pos.size == 0:
                return
            ends = np.append(offs[1:], n)
            if how == "first":  # the first valid sample at or after each segment's start
                j = np.searchsorted(pos, offs)
                jc = np.minimum(j, pos.size - 1)
                ok = (j < pos.size) & (pos[jc] < ends)
            else:  # the last valid sample before each segment's end
                j = np.searchsorted(pos, ends) - 1
                jc = np.maximum(j, 0)
                ok = (j >= 0) & (pos[jc] >= offs)
            part = np.where(ok, values[pos[jc]], np.nan)
            cur = self.acc[at]
            self.acc[at] = np.where(np.isnan(cur) if how == "first" else ok, part, cur)

    def result(self) -> F8:
        """The binned values (NaN for bins without a sample; counts as float)."""
        if self.how == "count":
            return self.count.astype(np.float64)
        if self.how == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(self.count > 0, self.acc / self.count, np.nan)
        return np.where(self.count > 0, self.acc, np.nan)


def aggregate(values: F8, i0: int, k: int, how: str) -> tuple[F8, int]:
    """Reduce ``values`` (grid indices from ``i0``) over epoch-aligned bins of ``k`` steps.

    Returns the binned values and the grid index of the first bin.
    """
    bins = Bins(i0, i0 + values.size, k, how)
    for a in range(0, values.size, AGGREGATE_WINDOW):
        bins.add(values[a : a + AGGREGATE_WINDOW], i0 + a)
    return bins.result(), bins.b0 * k


def aggregate_array(arr: Any, i0: int, i1: int, k: int, how: str, chunk_len: int) -> tuple[F8, int]:
    """``aggregate`` of ``arr[i0:i1]`` read window by window (whole chunks, bounded memory).

    Samples beyond the array's end count as missing.
    """
    bins = Bins(i0, i1, k, how)
    for a, b in windows(i0, min(i1, arr.shape[0]), chunk_len):
        bins.add(np.asarray(arr[a:b], dtype=np.float64), a)
    return bins.result(), bins.b0 * k


def windows(i0: int, i1: int, chunk_len: int, n_channels: int = 1) -> Iterator[tuple[int, int]]:
    """Windows ``[a, b)`` over ``[i0, i1)`` on whole chunks, each holding at most
    ``AGGREGATE_WINDOW`` values of ``n_channels`` channels (one chunk at least)."""
    window = max(AGGREGATE_WINDOW // (chunk_len * max(n_channels, 1)), 1) * chunk_len
    a = i0
    while a < i1:
        b = min(i1, (a // window + 1) * window)
        yield a, b
        a = b


# ---- plot-sized reads (points=): M4 per bucket -----------------------------------------
MAX_POINTS = 20_000  # buckets per read: far more than the pixels of any screen's width


class PlotBuckets:
    """M4 reduction of channels read together: ``[i0, i1)`` cut into at most ``points``
    buckets of ``k`` grid steps from ``i0``; each channel keeps per bucket its first and
    last valid sample, its minimum and its maximum (earliest on ties), so no spike is lost.

    A bucket without a valid sample keeps its start as one NaN point, so gaps stay gaps.
    The answer's rows are the union of every channel's kept samples, each channel taking
    its real value there. Fed windows in time order: a bucket cut by a window's end stays
    pending with its candidates' rows (every channel's values), so memory is one window
    plus the answer.
    """

    def __init__(self, i0: int, i1: int, points: int, n_channels: int) -> None:
        self.i0, self.i1, self.c = i0, i1, n_channels
        self.k = max(-(-(i1 - i0) // points), 1)
        self.pending: list[list[tuple[int, float]] | None] = [None] * n_channels
        self.rows: dict[int, F8] = {}  # every channel's values at pending candidates
        self.index: list[npt.NDArray[np.int64]] = []
        self.values: list[F8] = []

    def _segments(self, v: F8, offs: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
        """Per segment: count, then the positions of first, min, max and last (a segment
        without a valid sample: its start). Whole buckets go as rows of a reshaped view
        of ``v`` (bottleneck's arg-reductions, no copy), cut ones one by one."""
        k, n = self.k, v.size
        lens = np.append(offs[1:], n) - offs
        out = [np.zeros(len(offs), np.int64)] + [offs.copy() for _ in range(4)]
        full = np.flatnonzero(lens == k)
        lo, hi = (int(full[0]), int(full[-1]) + 1) if full.size else (0, 0)
        if hi > lo:  # buckets lo..hi-1 are whole and consecutive
            rows = v[offs[lo] : offs[lo] + (hi - lo) * k].reshape(hi - lo, k)
            valid = ~np.isnan(rows)
            cnt = valid.sum(axis=1)
            base = offs[lo:hi]
            empty = cnt == 0  # bottleneck refuses all-NaN rows: 0 there for a moment
            rows[empty] = 0.0
            mn, mx = bn.nanargmin(rows, axis=1), bn.nanargmax(rows, axis=1)
            rows[empty] = np.nan
            if cnt.min() == k:
                first, last = np.zeros(hi - lo, np.int64), np.full(hi - lo, k - 1)
            else:
                first = np.argmax(valid, axis=1)
                last = k - 1 - np.argmax(valid[:, ::-1], axis=1)
            for o, part in zip(out, (cnt, first, mn, mx, last), strict=True):
                o[lo:hi] = part if o is out[0] else base + np.where(cnt > 0, part, 0)
        for s in (*range(lo), *range(hi, len(offs))):  # at most the first and the last
            seg = v[offs[s] : offs[s] + lens[s]]
            pos = np.flatnonzero(~np.isnan(seg))
            out[0][s] = pos.size
            if pos.size:
                at = (pos[0], np.nanargmin(seg), np.nanargmax(seg), pos[-1])
                for o, p in zip(out[1:], at, strict=True):
                    o[s] = offs[s] + p
        return out

    def add(self, block: F8, a: int) -> None:
        """Merge the values of grid indices ``[a, a + m)`` (one row per channel; all-NaN
        buckets of ``block`` are written to and restored, so it must be writable)."""
        m = block.shape[1]
        if m == 0:
            return
        i0, k = self.i0, self.k
        g0, g1 = (a - i0) // k, (a + m - 1 - i0) // k
        starts = i0 + np.arange(g0, g1 + 1, dtype=np.int64) * k
        offs = np.maximum(starts - a, 0)
        last = len(starts) - 1
        done = last + 1 if min(starts[-1] + k, self.i1) <= a + m else last
        kept: list[npt.NDArray[np.int64]] = []
        pending: list[list[tuple[int, float]] | None] = []
        for c in range(self.c):
            v = block[c]
            cnt, *where = self._segments(v, offs)
            idx = np.stack(where) + a  # first, min, max, last (rows) per segment (columns)
            has = cnt > 0
            heads = [(int(i), float(v[i - a])) for i in idx[:, 0]] if has[0] else None
            prev = self.pending[c]
            if prev is not None:  # the first segment goes on with the pending bucket
                if heads is None or np.isnan(prev[0][1]):
                    heads = heads or prev
                else:
                    heads = [
                        prev[0],
                        prev[1] if prev[1][1] <= heads[1][1] else heads[1],
                        prev[2] if prev[2][1] >= heads[2][1] else heads[2],
                        heads[3],
                    ]
                has[0] = not np.isnan(heads[0][1])
                idx[:, 0] = [i for i, _ in heads]
            chosen = np.where(has[:done], idx[:, :done], starts[:done])  # a gap: its start
            kept.append(chosen.ravel())
            if done == last + 1:
                pending.append(None)
            elif not has[last]:
                pending.append([(int(starts[last]), np.nan)] * 4)
            elif last == 0 and heads is not None:
                pending.append(heads)
            else:
                pending.append([(int(i), float(v[i - a])) for i in idx[:, last]])
        self._emit(np.unique(np.concatenate(kept)) if kept else np.empty(0, np.int64), block, a)
        self.pending = pending
        wanted = {i for p in pending if p for i, _ in p}
        self.rows = {i: block[:, i - a].copy() if i >= a else self.rows[i] for i in wanted}

    def _emit(self, idx: npt.NDArray[np.int64], block: F8, a: int) -> None:
        """Every channel's values at the kept indices ``idx`` (earlier ones from ``rows``)."""
        if idx.size == 0:
            return
        here = idx >= a
        vals = np.empty((self.c, idx.size))
        vals[:, here] = block[:, idx[here] - a]
        for j in np.flatnonzero(~here):
            vals[:, j] = self.rows[int(idx[j])]
        self.index.append(idx)
        self.values.append(vals)

    def result(self) -> tuple[npt.NDArray[np.int64], F8]:
        """Kept grid indices (sorted) and every channel's values there (channels x rows)."""
        if not self.index:
            return np.empty(0, np.int64), np.empty((self.c, 0))
        return np.concatenate(self.index), np.concatenate(self.values, axis=1)


def reduce_points(
    arrays: Sequence[Any], i0: int, i1: int, points: int, chunk_len: int, base: int = 0
) -> tuple[npt.NDArray[np.int64], F8, int]:
    """``PlotBuckets`` of grid indices ``[i0, i1)`` of arrays whose element 0 is grid index
    ``base``, read window by window (whole chunks; samples beyond an array's end count as
    missing). Returns the kept grid indices, the values there, the bucket width in steps."""
    pb = PlotBuckets(i0, i1, points, len(arrays))
    for a, b in windows(i0, i1, chunk_len, len(arrays)):
        block = np.full((len(arrays), b - a), np.nan)
        for c, arr in enumerate(arrays):
            hi = min(b, base + arr.shape[0])
            if hi > a:
                block[c, : hi - a] = arr[a - base : hi - base]
        pb.add(block, a)
    idx, vals = pb.result()
    return idx, vals, pb.k


def _points_dataset(
    arrays: Sequence[Any],
    names: list[str],
    attrs: list[dict[str, Any]],
    bounds: tuple[int, int],
    points: int,
    chunk_len: int,
    step_ns: int,
    ds_attrs: dict[str, Any],
    base: int = 0,
) -> xr.Dataset:
    """The ``reduce_points`` answer in ``read``'s layout: irregular ``time`` (the kept
    samples), one variable per channel; ``bucket`` and ``points`` in the attributes."""
    idx, vals, k = reduce_points(arrays, *bounds, points, chunk_len, base)
    times = (idx * step_ns).view("datetime64[ns]")
    data_vars = {
        n: (("time",), vals[c], a) for c, (n, a) in enumerate(zip(names, attrs, strict=True))
    }
    ds = xr.Dataset(
        data_vars, coords={"time": ("time", times, {"standard_name": "time", "timezone": "UTC"})}
    )
    ds.attrs.update(ds_attrs)
    ds.attrs.update(
        {
            "interval": format_duration(step_ns),
            "bucket": format_duration(k * step_ns),
            "points": points,
        }
    )
    return ds


def read_points(
    snap: Snapshot,
    dataset_id: str,
    channels: list[str] | None,
    start: object | None,
    end: object | None,
    points: int,
    tz: str = "UTC",
) -> xr.Dataset:
    """Stored channels over ``[start, end)`` reduced to at most ``points`` M4 buckets,
    read window by window from the snapshot (``PlotBuckets``)."""
    names = list(snap.channels) if channels is None else list(channels)
    arrays = [snap.array(n) for n in names]
    attrs = [dict(snap.channels[n]) for n in names]
    meta = {"dataset": dataset_id, "snapshot": snap.id, "tz": tz, "Conventions": "CF-1.10"}
    bounds = index_range(snap, start, end)
    grid = snap.grid
    return _points_dataset(
        arrays, names, attrs, bounds, points, grid.chunk_len, grid.interval_ns, meta
    )


def to_points(ds: xr.Dataset, points: int, chunk_len: int) -> xr.Dataset:
    """An in-memory regular read (e.g. of derived channels) reduced like ``read_points``,
    in windows of whole chunks of ``chunk_len`` samples."""
    step_ns = parse_duration_ns(str(ds.attrs["interval"]), what="interval")
    times = ds["time"].values.astype("datetime64[ns]").view(np.int64)
    i0 = int(times[0]) // step_ns if times.size else 0
    names = [str(n) for n in ds.data_vars]
    arrays = [np.asarray(ds[n].values, dtype=np.float64) for n in names]
    attrs = [dict(ds[n].attrs) for n in names]
    bounds = (i0, i0 + times.size)
    return _points_dataset(
        arrays, names, attrs, bounds, points, chunk_len, step_ns, dict(ds.attrs), i0
    )


def read(
    snap: Snapshot,
    dataset_id: str,
    channels: list[str] | None = None,
    start: object | None = None,
    end: object | None = None,
    every: str | None = None,
    how: str = "mean",
    tz: str = "UTC",
) -> xr.Dataset:
    """Read channels over ``[start, end)`` from one snapshot."""
    grid: Grid = snap.grid
    names = list(snap.channels) if channels is None else list(channels)
    arrays = [snap.array(n) for n in names]
    i0, i1 = index_range(snap, start, end)
    if (i1 - i0) * max(len(names), 1) > MAX_READ_VALUES:
        raise ValidationError(
            f"read of {(i1 - i0) * len(names):,} values is over the limit of {MAX_READ_VALUES:,}: "
            "narrow the time range or the channels, or aggregate with every="
        )
    k = bin_steps(grid, every, how)
    data_vars: dict[str, Any] = {}
    first = i0
    for name, arr in zip(names, arrays, strict=True):
        attrs = dict(snap.channels[name])
        if k > 1:  # window by window: never all raw samples at once
            vals, first = aggregate_array(arr, i0, i1, k, how, grid.chunk_len)
            attrs["cell_methods"] = f"time: {how} (interval: {every})"
            if how == "count":
                attrs["units"] = "1"
        else:
            hi = min(i1, arr.shape[0])
            if hi == i1 and i1 > i0:  # the usual case: no copy into a NaN-filled buffer
                vals = np.asarray(arr[i0:i1], dtype=np.float64)
            else:
                vals = np.full(i1 - i0, np.nan)
                if hi > i0:
                    vals[: hi - i0] = arr[i0:hi]
        data_vars[name] = (("time",), vals, attrs)
    if data_vars:
        n = next(iter(data_vars.values()))[1].size
    else:
        n = Bins(i0, i1, k, how).count.size if k > 1 else max(i1 - i0, 0)
        first = (i0 // k) * k
    step_ns = grid.interval_ns * k
    t0 = first * grid.interval_ns
    times = (t0 + np.arange(n, dtype=np.int64) * step_ns).view("datetime64[ns]")
    ds = xr.Dataset(
        data_vars, coords={"time": ("time", times, {"standard_name": "time", "timezone": "UTC"})}
    )
    ds.attrs.update(
        {
            "dataset": dataset_id,
            "interval": format_duration(step_ns),
            "snapshot": snap.id,
            "tz": tz,
            "Conventions": "CF-1.10",
        }
    )
    return ds
