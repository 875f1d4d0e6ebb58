"""Time series of many channels on one time axis, in the dataset's time zone.

Three layouts: ``multi_y`` (one plot, one y axis per unit), ``units`` (stacked lanes, one
per unit) and ``channels`` (one lane per channel); lanes share the time axis, so zoom
and pan move them together. Every lane has the same layers whatever the data (episode
spans, one curve per channel, episode labels, a message text), so a live plot can swap
frames; when no channel has a value, the message reads "No data in <range>".
"""

from __future__ import annotations

from collections.abc import Sequence

import holoviews as hv
import numpy as np
import pandas as pd
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.plots import common
from stream0d_nb.plots.common import span
from stream0d_nb.plots.episodes import Episode, episode_elements
from stream0d_nb.plots.times import TimeLike, local, to_local

LAYOUTS: tuple[str, ...] = ("multi_y", "units", "channels")
WIDTH, HEIGHT = 900, 320


TOOLS = ["save", "xpan", "xwheel_zoom", "xbox_zoom", "reset"]
ACTIVE = ["xpan", "xwheel_zoom"]
"""Time series zoom and pan along time only (the y axis follows the data shown)."""


def time_dim(tz: str) -> hv.Dimension:
    """The shared time axis, labelled with the zone its wall clock is in."""
    return hv.Dimension("time", label=f"time ({tz})")


def lanes(ds: xr.Dataset, names: Sequence[str], layout: str) -> list[list[str]]:
    """The channels of each lane: all in one, one lane per unit, or one per channel."""
    if layout == "multi_y":
        return [list(names)]
    if layout == "units":
        return list(common.by_units(ds, names).values())
    if layout == "channels":
        return [[n] for n in names]
    raise ValidationError(f"layout {layout!r} unknown; use one of {', '.join(LAYOUTS)}")


def lane(
    ds: xr.Dataset,
    names: Sequence[str],
    tz: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    episodes: Sequence[Episode] = (),
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
    extra: Sequence[hv.Element] = (),
    message: str | None = None,
) -> hv.Overlay:
    """One plot of channels ``names`` of ``ds`` over ``[start, end)`` (UTC): a curve per
    channel with one y axis per unit, shaded episodes, ``extra`` layers (a zero line),
    and the message layer ("No data in <range>", or ``message`` when given)."""
    tdim = time_dim(tz)
    t = to_local(ds["time"].values, tz)
    units = [common.units_of(ds, n) for n in names]
    first = common.value_dim(units[0])
    curves, top, bottom, have = [], -np.inf, np.inf, False
    for name, u in zip(names, units, strict=True):
        v = common.values(ds, name)
        ok = np.isfinite(v)
        have |= bool(ok.any())
        if u == units[0] and ok.any():
            top, bottom = max(top, float(v[ok].max())), min(bottom, float(v[ok].min()))
        label = name if ok.any() else f"{name} (no data)"
        curve = hv.Curve((t, v), tdim, common.value_dim(u), label=label)
        # zoom and pan along time only; framewise: each zoom rescales y to what is visible
        curves.append(
            curve.opts(
                tools=["hover"],
                line_width=1.5,
                framewise=True,
            )
        )
    if start is None or end is None:
        t0 = t1 = None
        mid = t[len(t) // 2] if len(t) else pd.Timestamp(0)
    else:
        t0, t1 = start, end
        mid = local(start + (end - start) / 2, tz)
    y_top = top if have else 0.0
    if message is None:
        message = "" if have else common.no_data_text(t0, t1, tz)
    text = hv.Text(mid, (top + bottom) / 2 if have else 0.0, message, kdims=[tdim, first])
    parts: list[hv.Element] = []
    if t0 is not None and t1 is not None:
        spans, labels = episode_elements(episodes, tz, t0, t1, tdim, first, y_top)
        parts = [spans, *curves, labels]
    else:
        parts = list(curves)
    layers = [*parts, *extra, text.opts(text_font_size="13pt", text_color="#444444")]
    # every layer, since a plot's tools are the union of its layers' tools
    overlay = hv.Overlay([x.opts(default_tools=TOOLS, active_tools=ACTIVE) for x in layers])
    multi_y = len(set(units)) > 1
    opts: dict[str, object] = {
        "multi_y": multi_y,
        "xlabel": tdim.label,
        "width": width,
        "height": height,
        "show_grid": True,
        "legend_position": "top_left",
        "title": title,
    }
    if not multi_y:  # (the first layer, the spans, has no y)
        opts["ylabel"] = units[0]
    if t0 is not None and t1 is not None:
        opts["xlim"] = (local(t0, tz), local(t1, tz))
    return overlay.opts(**opts)


def stack(plots: Sequence[hv.Overlay | hv.DynamicMap]) -> hv.Overlay | hv.DynamicMap | hv.Layout:
    """One plot as is, several as lanes under each other sharing the time axis."""
    if len(plots) == 1:
        return plots[0]
    return hv.Layout(list(plots)).cols(1).opts(shared_axes=True)


def timeseries(
    ds: xr.Dataset,
    channels: Sequence[str] | str | None = None,
    *,
    tz: str | None = None,
    layout: str = "multi_y",
    episodes: Sequence[Episode] = (),
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
) -> hv.Overlay | hv.DynamicMap | hv.Layout:
    """Channels of ``ds`` (naive UTC times, as reads give) on one time axis in ``tz``
    (default: the dataset's), laid out as ``layout``, with ``episodes`` shaded."""
    names = common.check_channels(ds, channels)
    zone = common.dataset_tz(ds, tz)
    t0, t1 = span(ds, start, end)
    groups = lanes(ds, names, layout)
    plots = [
        lane(
            ds, g, zone, t0, t1, episodes, width=width, height=height, title=title if i == 0 else ""
        )
        for i, g in enumerate(groups)
    ]
    return stack(plots)
