"""Plots (issue 13, the plots part) over a real API server with real API tokens.

The app runs under uvicorn on a store holding two real recordings, ingested through the
client as they are: SKAB's pump rig (``pump``: 8 channels at ~1 Hz, 2.6 hours, time zone
Europe/Moscow, the file's naive times read in it) and NAB's machine temperature
(``machine``: 5-minute samples over 11 weeks, time zone America/New_York, the file's
times declared UTC, duplicates keep the last), plus a naive prediction of the latter in
degC (``temp_pred_c``) and a saved alert rule ``cold`` whose events a real alert run
stored. Plots only ever use the ``Client`` of alice (fersa); bob (zf) sees nothing.

Every plot is rendered to a Bokeh model and checked against what the client reads
directly: axes per unit, the zone's wall clock on the time axis, zoom re-reads (counted
at the HTTP level too), rasterization, carpet cells, episodes, residuals, the accessor,
offline HTML and the errors.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import holoviews as hv
import httpx
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from bokeh.document import Document
from bokeh.models import GridPlot, HoverTool
from bokeh.models.renderers import GlyphRenderer
from bokeh.resources import CDN

from stream0d_nb import plots
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import AuthenticationError, Client, NotFoundError
from stream0d_nb.errors import ChannelNotFoundError, ValidationError
from stream0d_nb.plots import common, dynamic, offline, remote, series
from stream0d_nb.plots.curves import NumericCurvePlot
from stream0d_nb.plots.source import RangeReader
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
SKAB = DATA / "skab" / "anomaly-free.csv"
NAB = DATA / "nab" / "machine_temperature_system_failure.csv"
pytestmark = pytest.mark.skipif(
    not (SKAB.is_file() and NAB.is_file()), reason=f"real recordings not found at {DATA}"
)

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
}
PUMP, MACHINE = "pump", "machine"
PUMP_TZ, MACHINE_TZ = "Europe/Moscow", "America/New_York"
SKAB_UNITS = {
    "Accelerometer1RMS": "g",
    "Accelerometer2RMS": "g",
    "Current": "A",
    "Pressure": "bar",
    "Temperature": "degC",
    "Thermocouple": "degC",
    "Voltage": "V",
    "Volume Flow RateRMS": "L/min",
}
SERIES = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Temperature", "Thermocouple"]
COLD = {
    "name": "cold",
    "kind": "threshold",
    "channels": ["temp"],
    "op": "<",
    "value": 40,
    "severity": "critical",
    "for": "30min",
}
WIDTH = 400


class Server(ApiOverHttp):
    """The store with both recordings, the app under uvicorn, a write token per user."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        store.create_dataset(DatasetSpec(id=PUMP, interval="1s", partner="fersa", tz=PUMP_TZ))
        store.create_dataset(
            DatasetSpec(id=MACHINE, interval="5min", partner="fersa", tz=MACHINE_TZ)
        )
        super().__init__(store, USERS)
        alice = self.client("alice")
        alice.ingest(PUMP, SKAB, {"units": SKAB_UNITS})
        nab = {"units": {"value": "degF"}, "rename": {"value": "temp"}}
        alice.ingest(MACHINE, NAB, {**nab, "duplicates": "last", "tz": "UTC"})
        # a naive model: the mean of the previous hour, in other units than the measurement
        temp = alice.read_pandas(MACHINE, ["temp"])["temp"]
        pred_f = temp.rolling(12, min_periods=1).mean().shift(1)
        pred = pd.DataFrame({"temp_pred_c": (pred_f - 32) * 5 / 9})
        alice.ingest(MACHINE, pred, {"units": {"temp_pred_c": "degC"}})
        alice.add_alert_rule(MACHINE, COLD)
        alerts = AlertService(store)  # a real run stores the events (state from 12-16 on)
        alerts.run(MACHINE, until_ns=pd.Timestamp("2013-12-16T00:00Z").value, notify=False)
        alerts.run(MACHINE, notify=False)
        alice.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("plots") / "home")
    yield s
    s.stop()


@pytest.fixture
def alice(srv: Server) -> Iterator[Client]:
    c = srv.client("alice")
    yield c
    c.close()


class Counter:
    """An injected ``read`` that records its calls and asks the real client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[dict[str, Any]] = []

    def __call__(self, dataset: str, channels: list[str], **kw: Any) -> xr.Dataset:
        self.calls.append({"dataset": dataset, "channels": list(channels), **kw})
        return self.client.read(dataset, channels, **kw)


def data_requests(client: Client) -> list[httpx.URL]:
    """A list that fills with the URL of every ``.../data`` request the client sends."""
    seen: list[httpx.URL] = []
    client.http.event_hooks["request"].append(
        lambda r: seen.append(r.url) if r.url.path.endswith("/data") else None
    )
    return seen


def renderers(fig: Any, glyph: str) -> list[Any]:
    """The glyph renderers of a Bokeh model whose glyph class is ``glyph``."""
    return [r for r in fig.select({"type": GlyphRenderer}) if type(r.glyph).__name__ == glyph]


def curves(frame: hv.Overlay) -> dict[str, hv.Curve]:
    """The curves of an overlay by channel (their label)."""
    return {c.label: c for c in frame if isinstance(c, hv.Curve)}


def the(frame: hv.Overlay, kind: type) -> Any:
    """The one element of ``kind`` in an overlay."""
    found = [e for e in frame if isinstance(e, kind)]
    assert len(found) == 1, frame
    return found[0]


def local_naive(times: Any, tz: str) -> pd.DatetimeIndex:
    """Naive UTC times as naive wall-clock times of ``tz`` (the reference)."""
    return pd.DatetimeIndex(times).tz_localize("UTC").tz_convert(tz).tz_localize(None)


# ----------------------------------------------------------------------------- time series


def test_series_have_one_y_axis_per_unit_in_the_dataset_time_zone(alice: Client) -> None:
    live = plots.live_timeseries(alice, PUMP, SERIES, width=WIDTH)
    assert isinstance(live, hv.DynamicMap)
    fig = hv.render(live, backend="bokeh")
    assert [a.axis_label for a in fig.yaxis] == ["g", "A", "degC"]  # 5 channels, 3 units
    assert fig.xaxis[0].axis_label == f"time ({PUMP_TZ})"
    assert len(renderers(fig, "Line")) == 5
    frame = live[()]
    # what the client reads itself: naive UTC times, 3 h behind Moscow's wall clock
    whole = ("2020-02-08T10:30:47Z", "2020-02-08T13:16:48Z")  # first sample .. last + 1 s
    want = alice.read(PUMP, SERIES, *whole, points=WIDTH)
    assert pd.Timestamp(want["time"].values[0]) == pd.Timestamp("2020-02-08 10:30:47")
    for name, curve in curves(frame).items():
        t = pd.DatetimeIndex(curve.dimension_values("time"))
        assert t[0] == pd.Timestamp("2020-02-08 13:30:47")  # the file's own wall clock
        assert t.equals(local_naive(want["time"].values, PUMP_TZ))
        np.testing.assert_array_equal(curve.dimension_values(1), want[name].values)
    assert the(frame, hv.Text).text == ""  # the message layer is empty when data is there
    # the values reach the Bokeh sources unchanged, times as the wall clock
    line = renderers(fig, "Line")[2]
    src = line.data_source.data
    assert pd.Timestamp(src["time"][0]) == pd.Timestamp("2020-02-08 13:30:47")
    assert len(src["time"]) == want.sizes["time"]


@pytest.mark.parametrize(
    ("layout", "lanes"),
    [("units", [["g"], ["A"], ["degC"]]), ("channels", [["g"], ["g"], ["A"], ["degC"], ["degC"]])],
)
def test_stacked_lanes_share_the_time_axis(
    alice: Client, layout: str, lanes: list[list[str]]
) -> None:
    read = Counter(alice)
    live = plots.live_timeseries(alice, PUMP, SERIES, layout=layout, width=WIDTH, read=read)
    assert isinstance(live, hv.Layout) and len(live) == len(lanes)
    grid = hv.render(live, backend="bokeh")
    assert isinstance(grid, GridPlot)
    figs: list[Any] = [child[0] for child in grid.children]
    assert [[a.axis_label for a in f.yaxis] for f in figs] == lanes
    assert len({id(f.x_range) for f in figs}) == 1  # zoom one lane, all follow
    assert len(read.calls) == 1
    live[0].streams[0].event(
        x_range=(np.datetime64("2020-02-08T14:00"), np.datetime64("2020-02-08T14:10"))
    )
    assert len(read.calls) == 2  # every lane redrawn, one read for all
    want = alice.read(PUMP, SERIES, "2020-02-08T11:00Z", "2020-02-08T11:10Z", points=WIDTH)
    for dm in live:
        for name, curve in curves(dm[()]).items():
            t = pd.DatetimeIndex(curve.dimension_values("time"))
            assert t[0] == pd.Timestamp("2020-02-08 14:00") and len(t) == want.sizes["time"]
            np.testing.assert_array_equal(curve.dimension_values(1), want[name].values)


def test_zoom_reads_the_visible_range_again_at_screen_resolution(
    srv: Server, alice: Client
) -> None:
    ref = srv.client("alice")  # the test's own reads, not counted
    want = ref.read(PUMP, ["Current"], start="2020-02-08T11:00Z", end="2020-02-08T11:05Z")
    ref.close()
    seen = data_requests(alice)
    read = Counter(alice)
    live = plots.live_timeseries(alice, PUMP, ["Current", "Pressure"], width=WIDTH, read=read)
    assert isinstance(live, hv.DynamicMap)
    fig = hv.render(live, backend="bokeh")
    assert len(read.calls) == len(seen) == 1  # rendering asks nothing more
    first = read.calls[0]
    assert (first["start"], first["end"]) == (
        pd.Timestamp("2020-02-08T10:30:47Z"),
        pd.Timestamp("2020-02-08T13:16:48Z"),
    )
    assert first["points"] == WIDTH and "points=400" in str(seen[0])
    coarse = pd.DatetimeIndex(curves(live[()])["Current"].dimension_values("time"))
    assert len(coarse) <= 4 * 2 * WIDTH < 9_961  # M4 rows of 2 channels, not the samples
    assert coarse[0] == pd.Timestamp("2020-02-08 13:30:47")

    stream = live.streams[0]
    zoom = (np.datetime64("2020-02-08T14:00:00"), np.datetime64("2020-02-08T14:05:00"))
    stream.event(x_range=zoom)
    assert len(read.calls) == len(seen) == 2
    assert (read.calls[1]["start"], read.calls[1]["end"], read.calls[1]["points"]) == (
        pd.Timestamp("2020-02-08T11:00Z"),  # Moscow's 14:00 in UTC
        pd.Timestamp("2020-02-08T11:05Z"),
        WIDTH,
    )
    fine = pd.DatetimeIndex(curves(live[()])["Current"].dimension_values("time"))
    assert len(fine) == 300 and (np.diff(fine.asi8) == 10**9).all()  # every second
    np.testing.assert_array_equal(
        curves(live[()])["Current"].dimension_values(1), want["Current"].values
    )
    line = renderers(fig, "Line")[0]
    assert len(line.data_source.data["time"]) == 300  # the Bokeh source was updated
    stream.event(x_range=zoom)  # the same range again: nothing read
    assert len(read.calls) == len(seen) == 2
    stream.event(x_range=(zoom[0], np.datetime64("2020-02-08T14:30:00")))
    assert len(read.calls) == len(seen) == 3 and read.calls[2]["points"] == WIDTH
    assert len(curves(live[()])["Current"]) <= 4 * 2 * WIDTH


class Builder:
    """A lane builder (``series.lane``) that records the range of each frame it builds."""

    def __init__(self, names: list[str], tz: str) -> None:
        self.names, self.tz = names, tz
        self.built: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def __call__(
        self, ds: xr.Dataset, t0: pd.Timestamp, t1: pd.Timestamp, message: str | None
    ) -> hv.Overlay:
        self.built.append((t0, t1))
        return series.lane(ds, self.names, self.tz, t0, t1, width=WIDTH, message=message)


def test_a_live_plot_reads_and_builds_each_range_once(srv: Server, alice: Client) -> None:
    """Shown as the Explorer shows it (a panel pane in a document), a live plot reads its
    range once and builds its frame once, although HoloViews fires the range stream again
    after the first draw; each new range is read and built once, the same range again
    neither. A user of another partner is refused before any read."""
    import panel as pn

    names = ["Current", "Pressure"]
    start, end = pd.Timestamp("2020-02-08T10:30:47Z"), pd.Timestamp("2020-02-08T13:16:48Z")
    read = Counter(alice)
    build = Builder(names, PUMP_TZ)
    live = dynamic.live(RangeReader(alice, PUMP, names, read), [build], PUMP_TZ, start, end, WIDTH)
    assert isinstance(live, hv.DynamicMap)
    pane = pn.pane.HoloViews(None, linked_axes=False)
    doc = Document()  # (kept: the shown document)
    pane.get_root(doc)
    pane.object = live  # what Explorer.plot does: the plot is drawn in the shown document
    assert len(read.calls) == 1 and build.built == [(start, end)]
    frame = live[()]
    assert live[()] is frame  # the same range: the same frame
    ((plot, _),) = pane._plots.values()
    (line,) = [r for r in renderers(plot.state, "Line") if r.name == "Current"]
    assert len(line.data_source.data["time"]) == len(curves(frame)["Current"])
    stream = live.streams[0]
    zoom = (np.datetime64("2020-02-08T14:00:00"), np.datetime64("2020-02-08T14:05:00"))
    stream.event(x_range=zoom)
    stream.event(x_range=zoom)  # (the browser sends the range it shows again)
    five = (pd.Timestamp("2020-02-08T11:00Z"), pd.Timestamp("2020-02-08T11:05Z"))
    assert len(read.calls) == 2 and build.built == [(start, end), five]
    assert len(line.data_source.data["time"]) == 300 and live[()] is not frame
    stream.event(
        x_range=(np.datetime64("2020-02-08T13:30:47"), np.datetime64("2020-02-08T16:16:48"))
    )
    assert len(read.calls) == 3 and build.built[-1] == (start, end)  # back out: read again
    # a plain render (no panel) draws once too
    build2 = Builder(names, PUMP_TZ)
    read2 = Counter(alice)
    live2 = dynamic.live(
        RangeReader(alice, PUMP, names, read2), [build2], PUMP_TZ, start, end, WIDTH
    )
    hv.render(live2, backend="bokeh")
    assert len(read2.calls) == 1 and build2.built == [(start, end)]
    bob = srv.client("bob")  # zf's token: fersa's dataset does not exist for him
    read3 = Counter(bob)
    with pytest.raises(NotFoundError, match=PUMP):
        plots.live_timeseries(bob, PUMP, names, start, end, width=WIDTH, read=read3)
    assert read3.calls == []  # refused when asking for the dataset, before any read
    bob.close()


def test_each_column_goes_to_the_browser_once_and_hover_names_the_channel(
    alice: Client,
) -> None:
    """A curve's data source holds its time and its values, nothing twice (a value column
    whose name is not an identifier would be copied for the hover tool); the hover tool
    shows the channel, the wall-clock time of the zone and the value with its units."""
    names = ["Current", "Volume Flow RateRMS", "Accelerometer1RMS"]
    live = plots.live_timeseries(alice, PUMP, names, width=WIDTH)
    fig = hv.render(live, backend="bokeh")
    lines = renderers(fig, "Line")
    assert sorted(r.name for r in lines) == sorted(names)
    want = {"Current": "value_A", "Volume Flow RateRMS": "value_L_2f_min"}
    want["Accelerometer1RMS"] = "value_g"
    hovers = {h.renderers[0].name: h for h in fig.select({"type": HoverTool})}
    for r in lines:
        column, units = want[r.name], SKAB_UNITS[r.name]
        assert set(r.data_source.data) == {"time", column}, r.name
        assert hovers[r.name].tooltips == [
            ("channel", r.name),
            (f"time ({PUMP_TZ})", "@{time}{%F %T}"),
            (units, f"@{{{column}}}"),
        ]
        assert hovers[r.name].formatters == {"@{time}": "datetime"}
    assert [a.axis_label for a in fig.yaxis] == ["A", "L/min", "g"]
    live.streams[0].event(
        x_range=(np.datetime64("2020-02-08T14:00"), np.datetime64("2020-02-08T14:10"))
    )
    rows = alice.read(PUMP, names, "2020-02-08T11:00Z", "2020-02-08T11:10Z", points=WIDTH)
    for r in lines:
        assert set(r.data_source.data) == {"time", want[r.name]}
        assert len(r.data_source.data["time"]) == rows.sizes["time"] > 500
    # one name per unit, an identifier HoloViews keeps as it is
    units = ["L/min", "L_2f_min", "m/s", "m.s", "m_s", "°C", "1", "g"]
    columns = [common.value_name(u) for u in units]
    assert len(set(columns)) == len(units)
    assert all(c.isidentifier() and hv.core.util.dimension_sanitizer(c) == c for c in columns)


def test_lane_curves_take_curve_options_and_keep_them_to_their_frame(alice: Client) -> None:
    """The lanes' curves are Curves to HoloViews' options (``opts.Curve`` applies) drawn by
    a plot class without implicit categorical axes; options set on one frame (curves,
    the empty episode layers) do not reach the next frame."""
    live = plots.live_timeseries(alice, PUMP, SERIES, width=WIDTH)
    plot = hv.renderer("bokeh").get_plot(live)
    drawn = [sp for sp in plot.subplots.values() if isinstance(sp.current_frame, hv.Curve)]
    assert len(drawn) == len(SERIES) and all(isinstance(sp, NumericCurvePlot) for sp in drawn)
    frame = live[()]
    frame.opts({"Curve": {"line_width": 4}, "VSpans": {"alpha": 0.9}})  # as a user may
    fig = hv.render(frame, backend="bokeh")
    assert {r.glyph.line_width for r in renderers(fig, "Line")} == {4}
    assert renderers(fig, "VStrip")[0].glyph.fill_alpha == 0.9
    live.streams[0].event(
        x_range=(np.datetime64("2020-02-08T14:00"), np.datetime64("2020-02-08T14:10"))
    )
    fig = hv.render(live[()], backend="bokeh")
    assert {r.glyph.line_width for r in renderers(fig, "Line")} == {1.5}
    assert renderers(fig, "VStrip")[0].glyph.fill_alpha == 0.25


def test_a_range_without_data_says_so(alice: Client) -> None:
    live = plots.live_timeseries(
        alice, PUMP, ["Current"], "2020-02-09T00:00Z", "2020-02-09T01:00Z", width=WIDTH
    )
    frame = live[()]
    text = the(frame, hv.Text).text
    assert text == "No data in 2020-02-09 03:00:00 .. 04:00:00 (Europe/Moscow)"
    assert curves(frame).keys() == {"Current (no data)"}
    fig = hv.render(live, backend="bokeh")
    texts = [list(r.data_source.data["text"]) for r in renderers(fig, "Text")]
    assert [t for t in texts if t] == [[text]]  # (the episode labels are empty)
    # zoomed out of the data, a live plot says so too
    live2 = plots.live_timeseries(alice, PUMP, ["Current"], width=WIDTH)
    live2.streams[0].event(
        x_range=(np.datetime64("2020-02-08T20:00"), np.datetime64("2020-02-08T21:00"))
    )
    assert the(live2[()], hv.Text).text.startswith("No data in 2020-02-08 20:00:00 .. 21:00")


def test_a_refused_zoom_shows_the_api_message_in_the_plot(srv: Server) -> None:
    """The token is revoked while the plot is open: the next zoom gets the API's 401,
    written where the data would be; the lanes keep their layers."""
    mine = Client(srv.url, srv.token("alice", "write"))
    failures: list[Exception] = []

    def read(dataset: str, channels: list[str], **kw: Any) -> xr.Dataset:
        try:
            return mine.read(dataset, channels, **kw)
        except Exception as exc:
            failures.append(exc)
            raise

    live = plots.live_timeseries(mine, PUMP, SERIES, layout="units", width=WIDTH, read=read)
    assert isinstance(live, hv.Layout)
    hv.render(live, backend="bokeh")
    mine.revoke_token(mine.tokens()[0].id)  # the newest of alice's tokens: this one
    live[0].streams[0].event(
        x_range=(np.datetime64("2020-02-08T14:00"), np.datetime64("2020-02-08T14:10"))
    )
    assert len(failures) == 1 and isinstance(failures[0], AuthenticationError)
    for dm in live:
        frame = dm[()]
        assert the(frame, hv.Text).text == (
            f"Could not read 2020-02-08 14:00:00 .. 14:10:00 (Europe/Moscow): {failures[0]}"
        )
        assert all(len(c) == 0 for c in curves(frame).values())
    mine.close()


# ----------------------------------------------------------------------------- distributions


def test_scatter_is_rasterized_above_the_threshold_only(alice: Client) -> None:
    xy = ["Accelerometer1RMS", "Current"]
    raw = alice.read(PUMP, xy)
    n = int((raw[xy[0]].notnull() & raw[xy[1]].notnull()).sum())
    assert 9_000 < n < plots.RASTERIZE_ABOVE
    pts = plots.plot(alice, PUMP, "scatter", xy)
    assert isinstance(pts, hv.Points) and len(pts) == n
    fig = hv.render(pts, backend="bokeh")
    assert renderers(fig, "Scatter") and not renderers(fig, "Image")
    assert [fig.xaxis[0].axis_label, fig.yaxis[0].axis_label] == [
        "Accelerometer1RMS [g]",
        "Current [A]",
    ]

    raster = plots.plot(alice, PUMP, "scatter", xy, threshold=5_000)
    assert isinstance(raster, hv.DynamicMap)  # re-rasterized on zoom
    fig = hv.render(raster, backend="bokeh")
    assert renderers(fig, "Image") and not renderers(fig, "Scatter")
    image = plots.scatter(raw, *xy, threshold=5_000, dynamic=False, width=200, height=100)
    assert isinstance(image, hv.Image)
    counts = image.dimension_values(2, flat=False)
    assert counts.shape == (100, 200) and np.nansum(counts) == n  # every point counted

    ten = ("2020-02-08T11:00Z", "2020-02-08T11:10Z")
    short = plots.plot(alice, PUMP, "scatter", xy, *ten, threshold=5_000)
    few = alice.read(PUMP, xy, *ten)
    m = int((few[xy[0]].notnull() & few[xy[1]].notnull()).sum())
    assert isinstance(short, hv.Points) and len(short) == m and 500 < m <= 600  # not rasterized
    np.testing.assert_array_equal(short.dimension_values(0), few[xy[0]].dropna("time").values)


def test_carpet_is_hours_by_days_in_the_dataset_time_zone(alice: Client) -> None:
    seen = data_requests(alice)
    img = plots.plot(alice, MACHINE, "carpet", ["temp"])
    assert isinstance(img, hv.Image)
    assert "every=1h" in str(seen[-1])  # hourly bins read, not 22,000 samples
    raw = alice.read_pandas(MACHINE, ["temp"], tz=MACHINE_TZ)["temp"].dropna()
    index = pd.DatetimeIndex(raw.index)
    days = pd.date_range(index.min().normalize(), index.max().normalize(), freq="D")
    cells = img.dimension_values(2, flat=False)
    assert cells.shape == (24, len(days)) == (24, 80)
    wall = index.tz_localize(None)
    cell_means = raw.groupby([wall.normalize(), wall.hour]).mean().unstack()
    want = cell_means.reindex(index=days.tz_localize(None), columns=range(24))
    got = pd.DataFrame(cells.T, index=want.index, columns=range(24))  # row 0: 00:00-01:00
    pd.testing.assert_frame_equal(got, want, check_names=False, rtol=1e-12)
    # the first sample, 21:15 UTC on 2 December, sits at 16:00 in New York
    first_day = got.iloc[0].to_numpy(dtype=float)
    assert np.isfinite(first_day[16]) and np.isnan(first_day[15])
    fig = hv.render(img, backend="bokeh")
    assert renderers(fig, "Image")
    assert [fig.xaxis[0].axis_label, fig.yaxis[0].axis_label] == [
        f"day ({MACHINE_TZ})",
        f"hour of day ({MACHINE_TZ})",
    ]
    with pytest.raises(ValidationError, match="a carpet plot needs one channel"):
        plots.plot(alice, MACHINE, "carpet", ["temp", "temp_pred_c"])
    with pytest.raises(ValidationError, match="carpet how='mode' unknown"):
        plots.plot(alice, MACHINE, "carpet", ["temp"], how="mode")


def test_histogram_and_box_per_channel(alice: Client) -> None:
    names = ["Accelerometer1RMS", "Accelerometer2RMS", "Current"]
    raw = alice.read(PUMP, names)
    hist = plots.plot(alice, PUMP, "hist", names, bins=30)
    assert isinstance(hist, hv.Layout) and len(hist) == 3
    for h, name in zip(hist, names, strict=True):
        v = raw[name].values[np.isfinite(raw[name].values)]
        counts, edges = np.histogram(v, bins=30)
        np.testing.assert_array_equal(h.dimension_values(1), counts)
        np.testing.assert_allclose(h.edges, edges)
        assert h.kdims[0].label == f"{name} [{SKAB_UNITS[name]}]"
    box = plots.plot(alice, PUMP, "box", names)
    assert isinstance(box, hv.Layout) and len(box) == 2  # g (two channels) and A
    g, amps = list(box)
    assert sorted(set(g.dimension_values("channel"))) == names[:2]
    assert len(g) == sum(int(np.isfinite(raw[n].values).sum()) for n in names[:2])
    assert g.vdims[0].label == "g" and amps.vdims[0].label == "A"
    grid = hv.render(box, backend="bokeh")
    halves = [len(next(iter(r.data_source.data.values()))) for r in renderers(grid, "VBar")]
    assert sorted(halves) == [1, 1, 2, 2]  # two halves of a box per channel, per unit
    hv.render(hist, backend="bokeh")


# ----------------------------------------------------------------------------- episodes


def test_alert_episodes_are_shaded_and_labelled(alice: Client) -> None:
    stored = plots.alert_episodes(alice, MACHINE)
    preview = plots.episodes_from_preview(
        alice.preview_alert_rule(MACHINE, COLD, "2013-12-15T00:00Z", "2014-03-01T00:00Z")
    )
    assert len(stored) == 2
    assert [(e.start, e.end, e.severity) for e in stored] == [
        (e.start, e.end, e.severity) for e in preview
    ]
    assert stored[0].start == pd.Timestamp("2013-12-16T16:10Z")
    live = plots.live_timeseries(alice, MACHINE, ["temp"], episodes=True, width=WIDTH)
    frame = live[()]
    spans = the(frame, hv.VSpans)
    assert len(spans) == 2
    assert list(spans.dimension_values("color")) == [plots.SEVERITY_COLORS["critical"]] * 2
    starts = pd.DatetimeIndex(spans.dimension_values(0))
    assert starts[0] == pd.Timestamp("2013-12-16 11:10")  # 16:10 UTC in New York
    labels = the(frame, hv.Labels)
    assert list(labels.dimension_values("text")) == ["cold on temp (critical)"] * 2
    fig = hv.render(live, backend="bokeh")
    (strips,) = renderers(fig, "VStrip")
    ends = pd.DatetimeIndex(strips.data_source.data["time_until"])
    assert list(ends) == [pd.Timestamp("2013-12-16 12:40"), pd.Timestamp("2014-02-09 06:55")]
    assert strips.glyph.fill_color == plots.SEVERITY_COLORS["critical"]  # (one colour: constant)
    (text,) = [r for r in renderers(fig, "Text") if any(r.data_source.data["text"])]
    assert list(text.data_source.data["text"]) == ["cold on temp (critical)"] * 2
    # zoomed where nothing fired: the layers stay, empty
    live.streams[0].event(
        x_range=(np.datetime64("2014-01-01T00:00"), np.datetime64("2014-01-02T00:00"))
    )
    assert len(the(live[()], hv.VSpans)) == 0 and len(the(live[()], hv.Labels)) == 0
    # firing without a later change: still open, shaded to the end of the range
    last = next(e for e in alice.alert_events(MACHINE, limit=100) if e.to_state == "firing")
    (still,) = plots.episodes_from_events([last.model_dump()])  # records or dicts
    assert (still.start, still.end) == (pd.Timestamp("2014-02-08T05:40Z"), None)
    live = plots.live_timeseries(
        alice, MACHINE, ["temp"], "2014-02-08T00:00Z", "2014-02-08T12:00Z", episodes=[still]
    )
    (span,) = the(live[()], hv.VSpans).data.itertuples()
    assert (span[1], span[2]) == (
        pd.Timestamp("2014-02-08 00:40"),
        pd.Timestamp("2014-02-08 07:00"),
    )


# ----------------------------------------------------------------------------- predictions


def test_predictions_with_residuals_in_the_measured_units(alice: Client) -> None:
    read = Counter(alice)
    start, end = "2014-01-10T00:00Z", "2014-01-20T00:00Z"
    layout = plots.plot(
        alice, MACHINE, "prediction", ["temp", "temp_pred_c"], start, end, width=WIDTH, read=read
    )
    assert isinstance(layout, hv.Layout) and len(layout) == 2
    top, bottom = (dm[()] for dm in layout)
    assert set(curves(top)) == {"temp", "temp_pred_c"}
    want = alice.read(MACHINE, ["temp", "temp_pred_c"], start, end, points=WIDTH)
    pred_f = want["temp_pred_c"].values * 9 / 5 + 32
    np.testing.assert_allclose(curves(top)["temp_pred_c"].dimension_values(1), pred_f)
    np.testing.assert_allclose(
        curves(bottom)["residual"].dimension_values(1),
        want["temp"].values - pred_f,
        rtol=1e-9,
        atol=1e-9,
    )
    assert the(bottom, hv.HLine).data == 0.0
    grid = hv.render(layout, backend="bokeh")
    figs: list[Any] = [child[0] for child in grid.children]
    assert [[a.axis_label for a in f.yaxis] for f in figs] == [["degF"], ["degF"]]
    assert len(read.calls) == 1
    layout[0].streams[0].event(
        x_range=(np.datetime64("2014-01-12T00:00"), np.datetime64("2014-01-12T06:00"))
    )
    assert len(read.calls) == 2  # both lanes from one read
    res = curves(layout[1][()])["residual"]
    assert len(res) == 72  # six hours of 5-minute samples, all of them
    with pytest.raises(ValidationError, match="does not convert"):
        plots.plot(alice, PUMP, "prediction", ["Current", "Pressure"])


# ----------------------------------------------------------------------------- accessor


def test_the_accessor_is_a_thin_front_over_the_same_plots(alice: Client) -> None:
    ds = alice.read(PUMP, SERIES, "2020-02-08T11:00Z", "2020-02-08T11:30Z")
    assert ds.attrs["tz"] == PUMP_TZ
    line = ds.s0d.plot()
    assert isinstance(line, hv.Overlay)
    first = next(iter(curves(line).values()))
    assert pd.Timestamp(first.dimension_values("time")[0]) == pd.Timestamp("2020-02-08 14:00")
    fig = hv.render(line, backend="bokeh")
    assert [a.axis_label for a in fig.yaxis] == ["g", "A", "degC"]
    assert len(ds.s0d.plot("lanes")) == 3
    utc_line = ds.s0d.plot("line", ["Current"], tz="UTC")
    t0 = next(iter(curves(utc_line).values())).dimension_values("time")[0]
    assert pd.Timestamp(t0) == pd.Timestamp("2020-02-08 11:00")
    assert isinstance(ds.s0d.plot("scatter", ["Current", "Temperature"]), hv.Points)
    one_day = ds.s0d.plot("carpet", ["Current"])  # 14:00-14:30 in Moscow
    cells = one_day.dimension_values(2, flat=False)
    assert cells.shape == (24, 1) and np.isnan(np.delete(cells, 14)).all()
    assert cells[14, 0] == pytest.approx(float(ds["Current"].mean()), rel=1e-12)
    assert len(ds.s0d.plot("hist", ["Current"], bins=10)) == 1
    assert len(ds.s0d.plot("box")) == 3
    pred = ds.s0d.plot("prediction", ["Temperature", "Thermocouple"])
    res = curves(pred[1])["residual"].dimension_values(1)
    np.testing.assert_array_equal(res, ds["Temperature"].values - ds["Thermocouple"].values)
    # the formulas still live on the same accessor
    assert ds.s0d.formula("Current * 2").attrs["units"] == "A"
    with pytest.raises(ValidationError, match="plot kind 'pie' unknown; use one of line"):
        ds.s0d.plot("pie")
    with pytest.raises(ChannelNotFoundError, match="no channel 'Curent' in the data"):
        ds.s0d.plot("line", ["Current", "Curent"])


def test_the_accessor_says_when_the_plots_are_not_imported() -> None:
    code = (
        "import numpy as np, xarray as xr\n"
        "import stream0d_nb.formulas.accessor\n"
        "t = np.array(['2024-05-01T00:00', '2024-05-01T00:01'], dtype='datetime64[ns]')\n"
        "ds = xr.Dataset({'a': ('time', np.zeros(2))}, coords={'time': t})\n"
        "try:\n    ds.s0d.plot()\nexcept RuntimeError as e:\n    print(e)\n"
        "import stream0d_nb.plots\n"
        "print(type(ds.s0d.plot()).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "ds.s0d.plot needs the plots: import stream0d_nb.plots first",
        "Overlay",
    ]


# ----------------------------------------------------------------------------- offline


def test_saved_pages_load_nothing_from_a_cdn(alice: Client, tmp_path: Path) -> None:
    """Each kind saved as a standalone page (the screenshots of this test)."""
    shots = {
        "line": plots.live_timeseries(alice, PUMP, SERIES, width=WIDTH),
        "lanes": plots.plot(alice, PUMP, "lanes", SERIES, width=WIDTH),
        "scatter": plots.plot(alice, PUMP, "scatter", ["Accelerometer1RMS", "Current"]),
        "scatter_raster": plots.plot(
            alice, PUMP, "scatter", ["Accelerometer1RMS", "Current"], threshold=10
        ),
        "carpet": plots.plot(alice, MACHINE, "carpet", ["temp"]),
        "hist": plots.plot(alice, PUMP, "hist", SERIES),
        "box": plots.plot(alice, PUMP, "box", SERIES),
        "episodes": plots.plot(alice, MACHINE, "line", ["temp"], episodes=True),
        "prediction": plots.plot(alice, MACHINE, "prediction", ["temp", "temp_pred_c"]),
    }
    for name, obj in shots.items():
        page = plots.save_html(obj, tmp_path / f"{name}.html")
        html = page.read_text()
        assert plots.remote_resources(html) == [], name
        assert len(html) > 1_000_000 and "Bokeh" in html  # BokehJS is in the page
    # the check finds what a default (CDN) save would fetch
    cdn_page = tmp_path / "cdn.html"
    hv.save(shots["hist"], cdn_page, backend="bokeh", resources=CDN)
    remote_urls = plots.remote_resources(cdn_page.read_text())
    assert any(u.startswith("https://cdn.bokeh.org/") for u in remote_urls)
    with pytest.raises(ValidationError, match=r"cdn\.html loads \d+ remote resources"):
        plots.check_offline_html(cdn_page)
    # a panel page, after the notebook set-up, is offline too
    import panel as pn

    plots.use_inline_resources()
    assert pn.config.inline
    page = plots.save_html(pn.Column("# Pump", shots["carpet"]), tmp_path / "panel.html")
    assert "Pump" in page.read_text()
    with pytest.raises(ValidationError, match=r"save plots as \.html"):
        plots.save_html(shots["hist"], tmp_path / "hist.png")


def test_remote_resources_recognises_script_link_and_import() -> None:
    html = (
        '<script src="https://cdn.bokeh.org/bokeh/release/bokeh-3.10.2.min.js"></script>'
        "<link rel='stylesheet' href='//unpkg.com/x.css'>"
        '<script>import("https://esm.sh/thing")</script>'
        '<script src="data:text/javascript,1"></script><script>var a = 1;</script>'
        '"name":"ImportedStyleSheet","id":"p7","attributes":{"url":"https://cdn.holoviz.org/a.css"}'
    )
    assert offline.remote_resources(html) == [
        "//unpkg.com/x.css",
        "https://cdn.bokeh.org/bokeh/release/bokeh-3.10.2.min.js",
        "https://cdn.holoviz.org/a.css",
        "https://esm.sh/thing",
    ]
    # addresses in code that a plot never fetches (BokehJS's MathJax) are not resources
    code = (
        '<script>const mathjax = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js";</script>'
    )
    assert offline.remote_resources(code + '<script src="app.js"></script>') == []


# ----------------------------------------------------------------------------- errors, views


def test_bad_input_gives_clear_errors(srv: Server, alice: Client) -> None:
    with pytest.raises(ValidationError, match="plot kind 'pie' unknown; use one of line, lanes"):
        plots.plot(alice, PUMP, "pie", ["Current"])
    with pytest.raises(NotFoundError, match="no channel or derived channel 'Curent'"):
        plots.plot(alice, PUMP, "line", ["Current", "Curent"])
    with pytest.raises(NotFoundError, match="no channel or derived channel 'Curent'"):
        plots.plot(alice, PUMP, "hist", ["Curent"])
    for start, end in (("2020-02-08T12:00Z", "2020-02-08T12:00Z"), ("2020-02-09", "2020-02-08")):
        with pytest.raises(ValidationError, match="is empty: start must be before end"):
            plots.plot(alice, PUMP, "line", ["Current"], start, end)
    with pytest.raises(ValidationError, match="a scatter plot needs two channels"):
        plots.plot(alice, PUMP, "scatter", ["Current"])
    with pytest.raises(ValidationError, match="every= does not apply to a line plot"):
        plots.plot(alice, PUMP, "line", ["Current"], every="1min")
    with pytest.raises(ValidationError, match="layout 'grid' unknown"):
        plots.plot(alice, PUMP, "line", ["Current"], layout="grid")
    empty = plots.plot(alice, PUMP, "scatter", ["Current", "Pressure"], "2021-01-01", "2021-01-02")
    assert isinstance(empty, hv.Text) and empty.text.startswith("No data in")
    bob = srv.client("bob")  # zf's token: fersa's dataset does not exist for him
    with pytest.raises(NotFoundError, match=PUMP):
        plots.plot(bob, PUMP, "line", ["Current"])
    bob.close()


def test_a_saved_view_opens_as_its_kind(alice: Client) -> None:
    alice.save_view(
        MACHINE,
        "january",
        channels=["temp"],
        start="2014-01-01T00:00:00Z",
        end="2014-02-01T00:00:00Z",
        kind="carpet",
        options={"title": "January", "ylim": [0, 24]},
    )
    img = plots.plot_view(alice, MACHINE, "january")
    assert isinstance(img, hv.Image) and img.dimension_values(2, flat=False).shape == (24, 32)
    fig = hv.render(img, backend="bokeh")
    assert fig.title.text == "January"
    line = plots.plot_view(alice, MACHINE, alice.view(MACHINE, "january"), kind="line")
    assert isinstance(line, hv.DynamicMap)
    alice.delete_view(MACHINE, "january")


def test_lazy_exports_are_not_shadowed_by_submodules() -> None:
    import importlib
    import types

    for sub in set(plots._LAZY.values()):
        importlib.import_module(f"stream0d_nb.plots.{sub}")
    shadowed = [n for n in plots._LAZY if isinstance(getattr(plots, n), types.ModuleType)]
    assert not shadowed
    assert remote.plot is plots.plot
