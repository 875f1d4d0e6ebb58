"""The Explorer and the Studio driven without a browser, against a real API over HTTP.

Two partners' datasets hold the real SKAB pump recording (fersa: ``pump``; zf: ``rig``);
alice (fersa) drives the screens through her own token, as a kernel on the hub would.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest

from stream0d_nb.client import Client
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec, FormulaSpec, IngestOptions
from stream0d_nb.store import Store
from stream0d_nb.widgets import (
    AccessManager,
    AlertEditor,
    DatasetSetup,
    Explorer,
    FormulaEditor,
    Recalibration,
    Studio,
)
from stream0d_nb.widgets.code import explorer_code
from stream0d_nb.widgets.timerange import preset_range, shift_start
from tests.api_servers import ApiOverHttp
from tests.test_plots import PUMP_TZ as TZ
from tests.test_plots import SKAB, SKAB_UNITS, USERS

pytestmark = pytest.mark.skipif(not SKAB.is_file(), reason=f"SKAB not found at {SKAB}")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiOverHttp]:
    home = tmp_path_factory.mktemp("widgets")
    store = Store(Settings(home=home))
    opts = IngestOptions(units=SKAB_UNITS)
    for ds, partner in (("pump", "fersa"), ("rig", "zf")):
        store.create_dataset(DatasetSpec(id=ds, interval="1s", tz=TZ, partner=partner))
        store.ingest(ds, SKAB, opts)
    store.registry.save_formula(
        "pump", FormulaSpec(name="power", formula="Voltage * Current"), "test"
    )
    server = ApiOverHttp(store, USERS)
    yield server
    server.stop()


@pytest.fixture
def alice(srv: ApiOverHttp) -> Iterator[Client]:
    with srv.client("alice") as c:
        yield c


def test_presets_end_at_the_newest_data() -> None:
    start, end = pd.Timestamp("2024-05-01T00:00Z"), pd.Timestamp("2024-05-03T10:30Z")
    assert preset_range("Last hour", start, end, "UTC") == (end - pd.Timedelta("1h"), end)
    assert preset_range("Last 7 days", start, end, "UTC") == (start, end)  # clamped
    assert preset_range("All data", start, end, "UTC") == (start, end)
    # shifts start at 06, 14, 22 local: 10:30 UTC is 12:30 in Madrid (summer), shift of 06:00
    assert shift_start(end - pd.Timedelta(1), "Europe/Madrid") == pd.Timestamp("2024-05-03T04:00Z")
    night = pd.Timestamp("2024-05-03T02:00Z")  # 04:00 in Madrid: the shift of 22:00 the day before
    assert shift_start(night, "Europe/Madrid") == pd.Timestamp("2024-05-02T20:00Z")
    with pytest.raises(ValueError, match="no data"):
        preset_range("Last hour", None, None, "UTC")
    with pytest.raises(ValueError, match="not a preset"):
        preset_range("Custom", start, end, "UTC")


def test_the_explorer_lists_only_what_the_user_may_read(alice: Client, srv: ApiOverHttp) -> None:
    ex = Explorer(alice)
    assert ex.param.dataset.objects == ["pump"] and ex.dataset == "pump"
    assert "power" in ex.param.channels.objects  # derived channels too
    assert "Accelerometer1RMS" in ex.param.channels.objects
    assert len(ex.channels) == 3
    assert "newest data" in ex.status.message and TZ in ex.status.message
    with srv.client("bob") as bob:
        screen = Explorer(bob)
        assert screen.param.dataset.objects == ["rig"]  # positive control for zf
        with pytest.raises(ValueError):
            screen.dataset = "pump"  # not offered, refused by the param itself
        screen.param.dataset.objects = ["rig", "pump"]  # forced in bob's own kernel...
        screen.dataset = "pump"
        assert screen.status.state == "error" and "no dataset 'pump'" in screen.status.error
        assert screen.param.channels.objects == []


def test_plot_zoom_and_kinds(alice: Client) -> None:
    ex = Explorer(alice)
    ex.channels = ["Current", "Pressure", "power"]
    ex.preset = "All data"
    ex.plot()
    assert ex.status.state == "ready" and not ex.status.error, ex.status.error
    assert ex.reads == 1 and "3 channels" not in ex.status.message
    assert "Current, Pressure, power" in ex.status.message
    live = ex.figure.object
    hv.render(live, backend="bokeh")
    full = ex.window
    stream = live.streams[0]
    local = pd.Timestamp(full[0]).tz_convert(TZ).tz_localize(None)
    stream.event(x_range=(np.datetime64(local), np.datetime64(local + pd.Timedelta("5min"))))
    assert ex.reads == 2  # zoom read the visible range again
    assert ex.window == (full[0], full[0] + pd.Timedelta("5min"))
    assert "2 plot-sized read(s)" in ex.status.message
    for kind, channels in (
        ("scatter", ["Current", "Pressure"]),
        ("carpet", ["Current"]),
        ("hist", ["Current", "Pressure"]),
        ("box", ["Current"]),
        ("lanes", ["Current", "Pressure", "power"]),
    ):
        ex.kind, ex.channels = kind, channels
        ex.plot()
        assert ex.status.state == "ready", (kind, ex.status.error)
        hv.render(ex.figure.object, backend="bokeh")


def test_errors_stay_in_the_banner_until_an_action_succeeds(alice: Client) -> None:
    ex = Explorer(alice)
    ex.channels = ["Current", "Pressure", "power"]
    ex.kind = "scatter"  # keeps x and y
    assert ex.channels == ["Current", "Pressure"] and "kept Current, Pressure" in ex.status.message
    ex.channels = ["Current", "Pressure", "power"]
    ex.plot()
    assert ex.status.state == "error"
    assert "scatter plot needs two channels" in ex.status.error
    assert ex.status.text().startswith("✖ Error")
    ex.preset = "Custom"
    ex.custom_range = None
    ex.kind, ex.channels = "line", ["Current"]
    ex.plot()
    assert "choose the start and end of the custom range" in ex.status.error
    ex.preset = "Last hour"
    ex.plot()
    assert ex.status.state == "ready" and ex.status.error == ""


def test_views_save_open_delete(alice: Client) -> None:
    ex = Explorer(alice)
    ex.kind, ex.channels, ex.preset = "hist", ["Current", "Pressure"], "Last hour"
    ex.plot()
    shown = ex.window
    ex.view_name = "pump hour"
    ex.save_view()
    assert ex.status.state == "ready", ex.status.error
    assert "pump hour" in ex.param.view.objects and ex.view == "pump hour"
    assert [v.name for v in alice.views("pump")] == ["pump hour"]

    other = Explorer(alice)  # a new session opens it
    other.view = "pump hour"
    other.open_view()
    assert (other.kind, other.channels, other.preset) == ("hist", ["Current", "Pressure"], "Custom")
    assert other.window == shown and other.status.state == "ready"
    other.delete_view()
    assert alice.views("pump") == [] and other.param.view.objects == [""]

    ex.view_name = " "
    ex.save_view()
    assert "give the view a name first" in ex.status.error
    ex.view_name = "bad/name"
    ex.save_view()
    assert ex.status.state == "error" and "https://" not in ex.status.error, ex.status.error
    ex.kind = "prediction"
    ex.view_name = "no"
    ex.save_view()
    assert "cannot be saved as a view" in ex.status.error


def test_code_and_downloads_match_the_window(alice: Client) -> None:
    ex = Explorer(alice)
    ex.channels, ex.preset = ["Current", "power"], "Last hour"
    ex.plot()
    ex.show_code = True
    assert ex.code.visible and "client.read_pandas('pump', ['Current', 'power']" in ex.code.object
    code = explorer_code("pump", ["Current", "power"], "line", *ex.window, tz=TZ)
    assert code in ex.code.object
    scope: dict[str, object] = {"CLIENT": alice}
    exec(code.replace("Client.from_env()", "CLIENT"), scope)  # the shown code runs as is
    assert isinstance(scope["df"], pd.DataFrame) and len(scope["df"]) > 0
    frame = pd.read_csv(ex.csv_bytes(), index_col="time")
    want = alice.read_pandas("pump", ["Current", "power"], *ex.window)
    assert list(frame.columns) == ["Current", "power"] and len(frame) == len(want)
    parquet = pd.read_parquet(io.BytesIO(ex.parquet_bytes().read()))
    np.testing.assert_allclose(parquet["power"].to_numpy(), want["power"].to_numpy())


def test_the_studio_holds_every_screen_and_builds_each_on_first_view(alice: Client) -> None:
    studio = Studio(alice)
    layout = studio.__panel__()
    assert list(studio.screens) == ["Explore"]  # opening the Studio builds one screen
    assert isinstance(studio.screens["Explore"], Explorer)
    assert "Tabs" in str(layout) and "Signed in as **alice**" in layout[0].object
    assert isinstance(studio.screens["Explore"].__panel__(), pn.Row)
    titles = ["Explore", "Datasets", "Formulas", "Alerts", "Access", "Recalibration"]
    assert [t.name for t in studio.tabs] == titles
    kinds = [DatasetSetup, FormulaEditor, AlertEditor, AccessManager, Recalibration]
    for index, (title, kind) in enumerate(zip(titles[1:], kinds, strict=True), start=1):
        studio.tabs.active = index  # as a click on the tab does
        screen = studio.screens[title]
        assert isinstance(screen, kind) and screen.client is alice
        assert len(studio.tabs[index].objects) == 1  # the screen, in its tab
        assert screen.dataset == "pump", title  # alice's one dataset, never zf's rig
    studio.tabs.active = 1
    assert studio.screens["Datasets"] is studio.screen("Datasets")  # built once
