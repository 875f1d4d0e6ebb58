"""Live time series: zoom and pan read the visible range again, at screen resolution.

Each lane is a HoloViews ``DynamicMap`` on one shared ``RangeX`` stream: when the x
range changes, the range (wall clock of the dataset's zone on the axis) is turned into
UTC and read with ``points=`` about the plot's width, so a month at 1 Hz comes back as
a few thousand rows and an hour as its samples. The lanes share one ``RangeReader``,
which reads each range once. A read that fails (the API's refusal, a lost connection)
leaves the lanes empty with the error written where the data would be, and is kept in
the reader's ``errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import holoviews as hv
import pandas as pd
import xarray as xr

from stream0d_nb.errors import Stream0dError
from stream0d_nb.plots.episodes import Episode, alert_episodes
from stream0d_nb.plots.residuals import prediction_lanes
from stream0d_nb.plots.series import HEIGHT, WIDTH, lane, lanes, stack
from stream0d_nb.plots.source import DatasetFacts, RangeReader, ReadFn
from stream0d_nb.plots.times import TimeLike, from_axis, range_text

if TYPE_CHECKING:
    from stream0d_nb.client import Client

AXIS_RESOLUTION = pd.Timedelta(1, "ms")
LaneFn = Callable[[xr.Dataset, pd.Timestamp, pd.Timestamp, str | None], hv.Overlay]
"""Builds a lane from a read, its UTC range and a message to show instead of data."""
Episodes = Sequence[Episode] | bool | None


def visible(
    x_range: tuple[Any, Any] | None, tz: str, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC range an x range of the axis shows (the initial range before any zoom)."""
    if x_range is None or x_range[0] is None or x_range[1] is None:
        return start, end
    t0 = from_axis(x_range[0], tz, earliest=True)
    t1 = from_axis(x_range[1], tz, earliest=False)
    if t0 >= t1:
        return start, end
    # the axis keeps milliseconds: the initial range coming back is the initial range
    same = abs(t0 - start) < AXIS_RESOLUTION and abs(t1 - end) < AXIS_RESOLUTION
    return (start, end) if same else (t0, t1)


@dataclass
class LastFrame:
    """A lane's builder and the frame it built for the last range shown. The same range
    again gives the same frame, not a new one: HoloViews' renderer fires the range stream
    once more after the first draw (as the axis's initial range), and a redraw with the
    same element leaves the plot's data sources as they are."""

    build: LaneFn
    range: tuple[pd.Timestamp, pd.Timestamp] | None = None
    frame: hv.Overlay | None = None


def live(
    reader: RangeReader,
    builders: Sequence[LaneFn],
    tz: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    width: int,
) -> hv.DynamicMap | hv.Layout:
    """One ``DynamicMap`` per lane on a shared ``RangeX`` stream, each frame built from
    ``reader(range, points=width)``."""
    stream = hv.streams.RangeX()

    def draw(build: LaneFn, t0: pd.Timestamp, t1: pd.Timestamp) -> hv.Overlay:
        try:
            return build(reader(t0, t1, width), t0, t1, None)
        except Stream0dError as exc:
            note = f"Could not read {range_text(t0, t1, tz)}: {exc}"
            return build(reader.empty(), t0, t1, note)

    def frame(last: LastFrame, x_range: tuple[Any, Any] | None = None) -> hv.Overlay:
        t0, t1 = visible(x_range, tz, start, end)
        if last.frame is None or last.range != (t0, t1):
            last.range, last.frame = (t0, t1), draw(last.build, t0, t1)
        return last.frame

    maps = [hv.DynamicMap(partial(frame, LastFrame(b)), streams=[stream]) for b in builders]
    out = stack(maps)
    assert isinstance(out, hv.DynamicMap | hv.Layout)
    return out


def _episodes(
    client: Client, dataset: str, episodes: Episodes, start: pd.Timestamp, end: pd.Timestamp
) -> list[Episode]:
    """``episodes`` as given, or (True) the dataset's stored alert episodes of the range."""
    if episodes is True:
        return alert_episodes(client, dataset, start, end)
    return list(episodes or ())


def _lane(
    ds: xr.Dataset,
    t0: pd.Timestamp,
    t1: pd.Timestamp,
    message: str | None,
    *,
    names: list[str],
    tz: str,
    episodes: list[Episode],
    width: int,
    height: int,
    title: str,
) -> hv.Overlay:
    return lane(
        ds, names, tz, t0, t1, episodes, width=width, height=height, title=title, message=message
    )


def live_timeseries(
    client: Client,
    dataset: str,
    channels: Sequence[str] | str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    layout: str = "multi_y",
    episodes: Episodes = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
    read: ReadFn | None = None,
    facts: DatasetFacts | None = None,
) -> hv.DynamicMap | hv.Layout:
    """Channels (stored or derived) of a dataset over ``[start, end)`` (default: all it
    stores) in its time zone, re-read at ``width`` points on every zoom; ``height`` is
    each lane's. ``episodes``: a list, or True for the dataset's alert episodes; ``read``
    replaces ``client.read``; ``facts`` saves asking for the dataset again."""
    names = [channels] if isinstance(channels, str) else list(channels)
    info = facts or DatasetFacts.fetch(client, dataset)
    t0, t1 = info.range(start, end)
    reader = RangeReader(client, dataset, names, read)
    first = reader(t0, t1, width)  # the API checks the names; gives the units for lanes
    eps = _episodes(client, dataset, episodes, t0, t1)
    builders: list[LaneFn] = [
        partial(
            _lane,
            names=g,
            tz=info.tz,
            episodes=eps,
            width=width,
            height=height,
            title=title if i == 0 else "",
        )
        for i, g in enumerate(lanes(first, names, layout))
    ]
    return live(reader, builders, info.tz, t0, t1, width)


def _prediction_lane(
    ds: xr.Dataset,
    t0: pd.Timestamp,
    t1: pd.Timestamp,
    message: str | None,
    *,
    which: int,
    measured: str,
    predicted: str,
    tz: str,
    episodes: list[Episode],
    width: int,
    height: int,
    title: str,
) -> hv.Overlay:
    parts = prediction_lanes(
        ds,
        measured,
        predicted,
        tz,
        t0,
        t1,
        episodes,
        width=width,
        height=height,
        title=title,
        message=message,
    )
    return parts[which]


def live_predictions(
    client: Client,
    dataset: str,
    measured: str,
    predicted: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    episodes: Episodes = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
    read: ReadFn | None = None,
    facts: DatasetFacts | None = None,
) -> hv.Layout:
    """Measured and predicted channels with their residual lane, re-read on every zoom.
    The residual is exact at each row read (both channels are sampled at the same rows),
    but its own extremes between rows are not kept as the channels' are."""
    info = facts or DatasetFacts.fetch(client, dataset)
    t0, t1 = info.range(start, end)
    reader = RangeReader(client, dataset, [measured, predicted], read)
    prediction_lanes(reader(t0, t1, width), measured, predicted, info.tz, t0, t1)  # checks
    eps = _episodes(client, dataset, episodes, t0, t1)
    builders: list[LaneFn] = [
        partial(
            _prediction_lane,
            which=i,
            measured=measured,
            predicted=predicted,
            tz=info.tz,
            episodes=eps,
            width=width,
            height=height,
            title=title,
        )
        for i in (0, 1)
    ]
    out = live(reader, builders, info.tz, t0, t1, width)
    assert isinstance(out, hv.Layout)
    return out
