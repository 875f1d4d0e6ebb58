"""Reads: a time range of some channels as an ``xarray.Dataset``, optionally aggregated.

Times are computed from the grid, never loaded. Ranges are half-open: ``start`` is
included, ``end`` excluded. Aggregation to a coarser interval uses bins aligned to the
epoch (so 15-minute bins start at :00, :15, ...) and fast NaN-aware kernels (bottleneck);
a bin's sum, mean, min, max, first or last is NaN when the bin holds no sample.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import bottleneck as bn
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.specs import format_duration, parse_duration_ns
from stream0d_nb.store.grid import Grid, to_ns
from stream0d_nb.store.repo import Snapshot

Aggregation = Literal["mean", "min", "max", "sum", "count", "first", "last"]
AGGREGATIONS: tuple[str, ...] = ("mean", "min", "max", "sum", "count", "first", "last")
MAX_READ_VALUES = 500_000_000
F8 = npt.NDArray[np.float64]


def index_range(snap: Snapshot, start: object | None, end: object | None) -> tuple[int, int]:
    """Grid indices ``[i0, i1)`` for a half-open time range (default: all stored data)."""
    grid = snap.grid
    i0 = snap.start if start is None else -(-to_ns(start) // grid.interval_ns)
    i1 = snap.stop if end is None else -(-to_ns(end) // grid.interval_ns)
    if i0 is None or i1 is None:  # empty dataset and open range
        return 0, 0
    return max(i0, 0), max(i1, max(i0, 0))


def _reduce(blocks: F8, how: str) -> F8:
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
    if step % grid.interval_ns:
        raise ValidationError(
            f"every={every!r} must be a multiple of the dataset interval "
            f"{format_duration(grid.interval_ns)}"
        )
    return step // grid.interval_ns


def aggregate(values: F8, i0: int, k: int, how: str) -> tuple[F8, int]:
    """Reduce ``values`` (grid indices from ``i0``) over epoch-aligned bins of ``k`` steps.

    Returns the binned values and the grid index of the first bin.
    """
    b0 = (i0 // k) * k
    front = i0 - b0
    total = front + values.size
    nb = -(-total // k) if values.size else 0
    padded = np.full(nb * k, np.nan)
    padded[front:total] = values
    return _reduce(padded.reshape(nb, k), how), b0


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
        hi = min(i1, arr.shape[0])
        if hi == i1 and i1 > i0:  # the usual case: no copy into a NaN-filled buffer
            vals = np.asarray(arr[i0:i1], dtype=np.float64)
        else:
            vals = np.full(i1 - i0, np.nan)
            if hi > i0:
                vals[: hi - i0] = arr[i0:hi]
        attrs = dict(snap.channels[name])
        if k > 1:
            vals, first = aggregate(vals, i0, k, how)
            attrs["cell_methods"] = f"time: {how} (interval: {every})"
            if how == "count":
                attrs["units"] = "1"
        data_vars[name] = (("time",), vals, attrs)
    n = next(iter(data_vars.values()))[1].size if data_vars else max(i1 - i0, 0)
    step_ns = grid.interval_ns * k
    t0 = first * grid.interval_ns
    times = np.arange(t0, t0 + n * step_ns, step_ns, dtype=np.int64).view("datetime64[ns]")
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


def to_pandas(ds: xr.Dataset, tz: str | None = None) -> pd.DataFrame:
    """A DataFrame with a tz-aware index (UTC, or ``tz`` such as the dataset's zone)."""
    df = ds.to_dataframe()
    idx = pd.DatetimeIndex(df.index).tz_localize("UTC")
    df.index = idx.tz_convert(tz) if tz else idx
    df.index.name = "time"
    return df


def _arrow_meta(attrs: dict[Any, Any]) -> dict[str, str]:
    """Attributes as Arrow metadata: text as is, lists and numbers as JSON."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str):
            out[str(k)] = v
        elif isinstance(v, list | tuple | int | float | bool):
            out[str(k)] = json.dumps(list(v) if isinstance(v, tuple) else v)
    return out


def to_arrow(ds: xr.Dataset) -> pa.Table:
    """An Arrow table: ``time`` (timestamp[ns, UTC]) then one float64 column per channel.

    Channel attributes go to field metadata and dataset attributes (dataset, snapshot,
    interval, tz) to schema metadata; lists such as tags are JSON text.
    """
    cols: dict[str, pa.Array] = {
        "time": pa.array(
            ds["time"].values.astype("datetime64[ns]"), type=pa.timestamp("ns", tz="UTC")
        )
    }
    fields = [pa.field("time", pa.timestamp("ns", tz="UTC"))]
    for name, var in ds.data_vars.items():
        cols[str(name)] = pa.array(var.values, type=pa.float64(), from_pandas=True)
        fields.append(pa.field(str(name), pa.float64(), metadata=_arrow_meta(var.attrs) or None))
    schema = pa.schema(fields, metadata=_arrow_meta(ds.attrs) or None)
    return pa.Table.from_arrays(list(cols.values()), schema=schema)
