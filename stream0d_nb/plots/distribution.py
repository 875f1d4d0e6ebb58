"""How values are distributed: scatter of two channels, histograms, boxes and carpets.

These read whole samples (not plot-sized buckets, which would bias a distribution).
A scatter above ``RASTERIZE_ABOVE`` points is rasterized with Datashader, re-aggregated
on zoom; a carpet is an image of hour of day by day in the dataset's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence

import holoviews as hv
import numpy as np
import pandas as pd
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.plots import common
from stream0d_nb.plots.times import to_local

RASTERIZE_ABOVE = 20_000
CARPET_HOW: tuple[str, ...] = ("mean", "min", "max", "median", "sum", "count", "std")


def scatter(
    ds: xr.Dataset,
    x: str,
    y: str,
    *,
    threshold: int = RASTERIZE_ABOVE,
    width: int = 520,
    height: int = 460,
    dynamic: bool = True,
    title: str = "",
) -> hv.Points | hv.Image | hv.DynamicMap | hv.Text:
    """Channel ``y`` against ``x`` at the same times; above ``threshold`` points a
    Datashader raster (``dynamic``: re-rasterized for the visible range on zoom)."""
    common.check_channels(ds, [x, y])
    if x == y:
        raise ValidationError(f"a scatter needs two different channels, got {x!r} twice")
    vx, vy = common.values(ds, x), common.values(ds, y)
    ok = np.isfinite(vx) & np.isfinite(vy)
    if not ok.any():
        return common.no_data(ds, common.dataset_tz(ds))
    dims = [
        common.channel_dim(x, common.units_of(ds, x)),
        common.channel_dim(y, common.units_of(ds, y)),
    ]
    points = hv.Points((vx[ok], vy[ok]), dims)
    size = {"width": width, "height": height, "title": title, "show_grid": True}
    if int(ok.sum()) <= threshold:
        return points.opts(tools=["hover"], size=3, alpha=0.5, **size)
    from holoviews.operation.datashader import rasterize

    raster = rasterize(points, dynamic=dynamic, width=width, height=height)
    return raster.opts(cmap="viridis", cnorm="eq_hist", colorbar=True, tools=["hover"], **size)


def histogram(
    ds: xr.Dataset,
    channels: Sequence[str] | str | None = None,
    *,
    bins: int = 50,
    width: int = 420,
    height: int = 260,
) -> hv.Layout:
    """One histogram per channel (its units on the x axis); a channel without values
    shows "No data"."""
    if bins < 1:
        raise ValidationError(f"bins must be at least 1, got {bins}")
    plots: list[hv.Element] = []
    for name in common.check_channels(ds, channels):
        v = common.values(ds, name)
        v = v[np.isfinite(v)]
        if v.size == 0:
            plots.append(common.no_data(ds, common.dataset_tz(ds)).opts(title=f"{name}: no data"))
            continue
        counts, edges = np.histogram(v, bins=bins)
        dim = common.channel_dim(name, common.units_of(ds, name))
        hist = hv.Histogram((edges, counts), kdims=[dim], vdims=[hv.Dimension("count")])
        plots.append(hist.opts(tools=["hover"], width=width, height=height, title=name))
    return hv.Layout(plots).cols(2)


def box(
    ds: xr.Dataset,
    channels: Sequence[str] | str | None = None,
    *,
    width: int = 420,
    height: int = 300,
) -> hv.Layout:
    """Box and whiskers per channel, channels of the same units side by side on one axis."""
    plots: list[hv.Element] = []
    for units, names in common.by_units(ds, common.check_channels(ds, channels)).items():
        groups, vals = [], []
        for name in names:
            v = common.values(ds, name)
            v = v[np.isfinite(v)]
            groups.append(np.full(v.size, name, dtype=object))
            vals.append(v)
        allv = np.concatenate(vals)
        if allv.size == 0:
            plots.append(common.no_data(ds, common.dataset_tz(ds)).opts(title=f"{units}: no data"))
            continue
        whiskers = hv.BoxWhisker(
            (np.concatenate(groups), allv),
            kdims=[hv.Dimension("channel")],
            vdims=[common.value_dim(units)],
        )
        plots.append(whiskers.opts(width=width, height=height, title=", ".join(names)))
    return hv.Layout(plots).cols(2)


def carpet_frame(values: pd.Series, how: str = "mean") -> pd.DataFrame:
    """Values with a naive wall-clock index as a table of day (rows, every day from the
    first to the last) by hour of day (columns 0..23), each cell reduced with ``how``."""
    if how not in CARPET_HOW:
        raise ValidationError(f"carpet how={how!r} unknown; use one of {', '.join(CARPET_HOW)}")
    s = values.dropna()
    idx = pd.DatetimeIndex(s.index)
    table = s.groupby([idx.normalize(), idx.hour]).agg(how).unstack()
    days = pd.date_range(idx.normalize().min(), idx.normalize().max(), freq="D")
    return table.reindex(index=days, columns=range(24))


def carpet(
    ds: xr.Dataset,
    channel: str,
    *,
    tz: str | None = None,
    how: str = "mean",
    width: int = 900,
    height: int = 320,
    title: str = "",
) -> hv.Image | hv.Text:
    """A channel as an image of hour of day (y) by day (x) in ``tz`` (default: the
    dataset's): daily and weekly patterns at a glance."""
    (name,) = common.check_channels(ds, [channel])
    zone = common.dataset_tz(ds, tz)
    s = pd.Series(common.values(ds, name), index=to_local(ds["time"].values, zone))
    if not s.notna().any():
        return common.no_data(ds, zone)
    table = carpet_frame(s, how)
    days = (pd.DatetimeIndex(table.index) + pd.Timedelta(hours=12)).to_numpy()
    hours = np.arange(24) + 0.5
    dims = [
        hv.Dimension("day", label=f"day ({zone})"),
        hv.Dimension("hour", label=f"hour of day ({zone})"),
    ]
    vdim = common.channel_dim(name, common.units_of(ds, name))
    if len(days) == 1:  # an image needs two columns to know its width: a day is 24 h
        bounds = (days[0] - np.timedelta64(12, "h"), 0, days[0] + np.timedelta64(12, "h"), 24)
        image = hv.Image(table.to_numpy().T[::-1], dims, [vdim], bounds=bounds)
    else:
        image = hv.Image((days, hours, table.to_numpy().T), dims, [vdim])
    return image.opts(
        cmap="viridis",
        colorbar=True,
        tools=["hover"],
        width=width,
        height=height,
        yticks=[0, 6, 12, 18, 24],
        title=title or f"{name} ({how} per hour)",
    )
