"""``ds.s0d.formula(text)``: evaluate a formula over a whole Dataset (a thin front);
``ds.s0d.plot(kind)``: the plots' front, registered by ``stream0d_nb.plots`` (a higher
layer this one may not import) when it is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from stream0d_nb.formulas.errors import FormulaError
from stream0d_nb.formulas.limits import Limits
from stream0d_nb.specs import parse_duration


def dataset_interval(ds: xr.Dataset) -> int:
    """The grid interval: ``attrs["interval"]`` or the time coordinate's spacing."""
    if "interval" in ds.attrs:
        ns = parse_duration(str(ds.attrs["interval"]))
        if ns is None or ns <= 0:
            raise FormulaError(f"interval {ds.attrs['interval']!r} is not a duration (e.g. '1s')")
        return ns
    times = ds["time"].values.astype("datetime64[ns]").astype(np.int64)
    if times.size < 2:
        raise FormulaError('cannot tell the interval: set ds.attrs["interval"] (e.g. "1s")')
    return int(np.min(np.diff(times)))


_PLOT_FRONT: list[Callable[..., Any]] = []


def register_plot_front(front: Callable[..., Any]) -> None:
    """Make ``front(ds, kind, **options)`` the function behind ``ds.s0d.plot``."""
    _PLOT_FRONT[:] = [front]


@xr.register_dataset_accessor("s0d")
class Stream0dAccessor:
    """stream0d helpers on an ``xarray.Dataset`` (units in each variable's attrs)."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def formula(self, text: str, limits: Limits | None = None) -> xr.DataArray:
        """Evaluate ``text`` over the whole Dataset; the result has units and formula attrs."""
        from stream0d_nb.formulas.evaluate import compile_formula

        ds = self._ds
        channels = {
            str(k): str(v.attrs.get("units", "1"))
            for k, v in ds.data_vars.items()
            if v.dims == ("time",)
        }
        interval = dataset_interval(ds)
        compiled = compile_formula(text, channels, interval, str(ds.attrs.get("tz", "UTC")), limits)
        times = ds["time"].values.astype("datetime64[ns]").astype(np.int64)
        if times.size == 0:
            start = end = 0
        else:
            # whole bins of the result grid, so a resample keeps the first partial bin
            start = int(times[0]) // compiled.interval_ns * compiled.interval_ns
            end = int(times[-1]) + interval
        if times.size and np.any(times % interval):
            raise FormulaError(
                "the time coordinate is not on the epoch-aligned grid of the interval"
            )
        if times.size and not np.all(np.diff(times) == interval):
            ds = ds.reindex(time=np.arange(int(times[0]), end, interval).astype("datetime64[ns]"))
        return compiled.evaluate({r: ds[r] for r in compiled.refs}, start, end)

    def plot(self, kind: str = "line", channels: Any = None, **options: Any) -> Any:
        """A plot of the Dataset (``stream0d_nb.plots.plot_dataset``; import the plots first)."""
        if not _PLOT_FRONT:
            raise RuntimeError("ds.s0d.plot needs the plots: import stream0d_nb.plots first")
        return _PLOT_FRONT[0](self._ds, kind, channels, **options)
