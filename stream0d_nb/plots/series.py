"""Time series of many channels on one time axis, in the dataset's time zone.

Three layouts: ``multi_y`` (one plot, one y axis per unit), ``units`` (stacked lanes, one
per unit) and ``channels`` (one lane per channel); lanes share the time axis, so zoom
and pan move them together. Every lane has the same layers whatever the data (episode
spans, one curve per channel, episode labels, a message text), so a live plot can swap
frames; when no channel has a value, the message reads "No data in <range>".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import holoviews as hv
import numpy as np
import pandas as pd
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.plots import common
from stream0d_nb.plots.common import span
from stream0d_nb.plots.curves import Curve
from stream0d_nb.plots.episodes import Episode, episode_elements
from stream0d_nb.plots.times import TimeLike, local, to_local

LAYOUTS: tuple[str, ...] = ("multi_y", "units", "channels")
WIDTH, HEIGHT = 900, 320


TOOLS = ["save", "xpan", "xwheel_zoom", "xbox_zoom", "reset"]
ACTIVE = ["xpan", "xwheel_zoom"]
"""Time series zoom and pan along time only (the y axis follows the data shown)."""
LAYER_TOOLS = {"default_tools": TOOLS, "active_tools": ACTIVE}
"""On every layer, since a plot's tools are the union of its layers' tools."""


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


@functools.lru_cache(maxsize=256)
def curve_template(tz: str, units: str) -> Curve:
    """An empty curve of ``units`` carrying the options of every curve of that unit: the
    channels' curves are its clones, so options are set once, not on each curve of each
    frame. Zoom and pan along time only; framewise: each zoom rescales y to what is
    visible; the hover tool shows the channel, the time on the zone's wall clock and the
    value with its units. (Kept: HoloViews keeps options while an element uses them.)"""
    tdim, vdim = time_dim(tz), common.value_dim(units)
    empty = {tdim.name: np.array([], dtype="datetime64[ns]"), vdim.name: np.array([])}
    return Curve(empty, tdim, vdim).opts(
        tools=["hover"],
        hover_tooltips=[
            ("channel", "$label"),
            (tdim.label, f"@{{{tdim.name}}}"),
            (units, f"@{{{vdim.name}}}"),
        ],
        line_width=1.5,
        framewise=True,
        **LAYER_TOOLS,
    )


@functools.lru_cache(maxsize=256)
def no_episodes(tz: str, units: str) -> tuple[hv.VSpans, hv.Labels]:
    """The empty episode layers of a lane whose first axis is ``units`` (most frames show
    no episode: built once)."""
    tdim, ydim = time_dim(tz), common.value_dim(units)
    t = pd.Timestamp(0, tz="UTC")
    spans, labels = episode_elements((), tz, t, t + pd.Timedelta(1, "s"), tdim, ydim, 0.0)
    return spans.opts(**LAYER_TOOLS), labels.opts(**LAYER_TOOLS)


def _shown(episodes: Sequence[Episode], start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Whether any of ``episodes`` overlaps ``[start, end)``."""
    return any(e.start < end and (e.end is None or e.end > start) for e in episodes)


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
    times = t.values
    units = [common.units_of(ds, n) for n in names]
    first = common.value_dim(units[0])
    curves: list[hv.Element] = []
    top, bottom, have = -np.inf, np.inf, False
    for name, u in zip(names, units, strict=True):
        v = common.values(ds, name)
        ok = np.isfinite(v)
        some = bool(ok.any())
        have |= some
        if u == units[0] and some:
            top, bottom = max(top, float(v[ok].max())), min(bottom, float(v[ok].min()))
        label = name if some else f"{name} (no data)"
        template = curve_template(tz, u)
        data = {tdim.name: times, template.vdims[0].name: v}
        curves.append(template.clone(data, label=label))
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
    last = [
        *(x.opts(**LAYER_TOOLS) for x in extra),
        text.opts(text_font_size="13pt", text_color="#444444", **LAYER_TOOLS),
    ]
    layers: list[hv.Element] = [*curves, *last]
    if t0 is not None and t1 is not None:
        if _shown(episodes, t0, t1):
            spans, labels = episode_elements(episodes, tz, t0, t1, tdim, first, y_top)
            spans, labels = spans.opts(**LAYER_TOOLS), labels.opts(**LAYER_TOOLS)
        else:  # (clones: options set on one frame stay on that frame)
            spans, labels = (x.clone() for x in no_episodes(tz, units[0]))
        layers = [spans, *curves, labels, *last]
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
    # options on an empty overlay, then its layers: options on a full one look at each layer
    return hv.Overlay([]).opts(**opts).clone(layers)


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
