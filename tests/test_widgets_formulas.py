"""The formula editor driven without a browser, against a real API over HTTP.

Two partners' datasets hold the real SKAB pump recording (fersa: ``pump``; zf: ``rig``);
``pump`` has the derived channel ``power``. alice (fersa, editor by partner) drives the
screen through her own token, as a kernel on the hub would; vera holds a viewer grant on
``pump`` only; bob (zf) sees only ``rig``. Typing is the editor's ``value_input`` changing;
time is a clock the test sets, and preview requests run through a runner the test holds,
so the debounce and the one-request-in-flight rule are checked without waiting.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import holoviews as hv
import httpx
import numpy as np
import pandas as pd
import panel as pn
import pytest
import xarray as xr

from stream0d_nb import derived
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import Client, RemoteFormulaError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec, FormulaSpec, IngestOptions
from stream0d_nb.store import Store
from stream0d_nb.units import ureg
from stream0d_nb.widgets.formula_preview import preview_every
from stream0d_nb.widgets.formulas import DEBOUNCE_S, FormulaEditor, Outcome
from stream0d_nb.widgets.studio import Studio
from stream0d_nb.widgets.throttle import Throttle
from tests.api_servers import ApiOverHttp
from tests.test_plots import PUMP_TZ as TZ
from tests.test_plots import SKAB, SKAB_UNITS, USERS, WRITE

pytestmark = pytest.mark.skipif(not SKAB.is_file(), reason=f"SKAB not found at {SKAB}")

PEOPLE = {**USERS, "vera": UserInfo(frozenset(), False, WRITE)}  # a viewer grant on pump


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiOverHttp]:
    store = Store(Settings(home=tmp_path_factory.mktemp("formulas")))
    opts = IngestOptions(units=SKAB_UNITS)
    for ds, partner in (("pump", "fersa"), ("rig", "zf")):
        store.create_dataset(DatasetSpec(id=ds, interval="1s", tz=TZ, partner=partner))
        store.ingest(ds, SKAB, opts)
    derived.save_formula(store, "pump", FormulaSpec(name="power", formula="Voltage * Current"))
    server = ApiOverHttp(store, PEOPLE)
    server.access.grant("pump", "user", "vera", "viewer", actor="test")
    yield server
    server.stop()


@pytest.fixture
def alice(srv: ApiOverHttp) -> Iterator[Client]:
    with srv.client("alice") as c:
        yield c


class Clock:
    """The screen's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HeldRunner:
    """Keeps each preview's work until the test runs it (a request 'in flight')."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[[], Outcome], Callable[[Outcome], None]]] = []

    def __call__(self, work: Callable[[], Outcome], then: Callable[[Outcome], None]) -> None:
        self.jobs.append((work, then))

    def finish(self, i: int = 0) -> None:
        """Run job ``i`` for real (its request to the API) and hand its answer back."""
        work, then = self.jobs.pop(i)
        try:
            out: Outcome = work()
        except Exception as exc:
            out = exc
        then(out)


def eval_requests(client: Client) -> list[str]:
    """A list that fills with the formula of every eval request the client sends."""
    seen: list[str] = []

    def hook(r: httpx.Request) -> None:
        if r.url.path.endswith("/formulas/eval"):
            seen.append(r.read().decode())

    client.http.event_hooks["request"].append(hook)
    return seen


def editor(client: Client) -> tuple[FormulaEditor, Clock]:
    ed = FormulaEditor(client)
    clock = Clock()
    ed.clock = clock
    return ed, clock


def type_(ed: FormulaEditor, text: str) -> None:
    """What the browser sends while the person types: the editor's text at a key press."""
    ed.editor.value_input = text


# ----------------------------------------------------------------------------- helpers


def test_throttle_keeps_the_newest_after_quiet_and_one_in_flight() -> None:
    t = Throttle[str](0.5)
    assert t.take(0.0) is None and t.wait(0.0) is None  # nothing waits
    t.submit("a", 0.0)
    t.submit("ab", 0.3)  # typing on: due 0.5 s after the last key
    assert t.wait(0.5) == pytest.approx(0.3) and t.take(0.5) is None
    assert t.take(0.8) == "ab" and t.in_flight and t.started == 1
    t.submit("abc", 0.9)
    t.submit("abcd", 1.0)
    assert t.take(5.0) is None and t.wait(5.0) is None  # one in flight: nothing more
    t.finish()
    assert t.wait(5.0) == 0.0 and t.take(5.0) == "abcd" and t.started == 2  # the newest only
    t.finish()
    t.submit("x", 6.0)
    t.cancel()
    assert not t.pending and t.take(10.0) is None
    with pytest.raises(ValueError):
        Throttle[str](-1)


def test_preview_bins_fit_the_screen() -> None:
    t0 = pd.Timestamp("2024-05-01T00:00Z")
    hour, day = t0 + pd.Timedelta("1h"), t0 + pd.Timedelta("1D")
    assert preview_every(t0, t0 + pd.Timedelta("10min"), "1s", 900) is None  # raw fits
    assert preview_every(t0, hour, "1s", 900) == "5s"  # 720 values
    assert preview_every(t0, day, "1s", 900) == "2min"  # 720 values
    # no round bin is a multiple of 7 s: the fewest intervals that fit, 14 x 7 s
    assert preview_every(t0, day, "7s", 900) == "98s"


def test_the_client_carries_the_compilers_position(alice: Client) -> None:
    end = pd.Timestamp("2020-02-08T13:16:48Z")
    with pytest.raises(RemoteFormulaError) as exc:
        alice.eval_formula("pump", "Voltage *\n  * 2", start=end - pd.Timedelta("1min"), end=end)
    assert (exc.value.line, exc.value.column, exc.value.status) == (2, 3, 422)
    assert "a number" in exc.value.expected and "(line 2, column 3)" in str(exc.value)


# ----------------------------------------------------------------------------- the screen


def test_lists_only_what_the_user_may_read(alice: Client, srv: ApiOverHttp) -> None:
    ed = FormulaEditor(alice)
    assert ed.param.dataset.objects == ["pump"] and ed.dataset == "pump"
    assert ed.can_edit and ed.access_note == ""
    assert "power" in ed.param.saved.objects
    options = ed.param.insert.names
    assert options["Current [A]"] == "Current" and options["power [A*V] (derived)"] == "power"
    assert list(ed.table.object["name"]) == ["power"]
    assert list(ed.table.object["units"]) == ["A*V"]
    with srv.client("bob") as bob:
        theirs = FormulaEditor(bob)
        assert theirs.param.dataset.objects == ["rig"]  # positive control: bob's own
        assert theirs.can_edit and theirs.status.state == "ready"
        with pytest.raises(ValueError):
            theirs.dataset = "pump"  # not offered, refused by the param itself
        theirs.param.dataset.objects = ["rig", "pump"]  # forced in bob's own kernel...
        theirs.dataset = "pump"
        assert theirs.status.state == "error" and "no dataset 'pump'" in theirs.status.error
        assert theirs.param.saved.objects == [""] and theirs.param.insert.objects == []
        assert theirs.table.object.empty


def test_a_compile_error_marks_its_line_and_column(alice: Client) -> None:
    ed, clock = editor(alice)
    sent = eval_requests(alice)
    type_(ed, "Voltage *")
    clock.now += 0.2
    type_(ed, "Voltage *\n  * 2")
    clock.now += DEBOUNCE_S / 2
    assert not ed.poll() and sent == []  # still typing: no request yet
    clock.now += DEBOUNCE_S
    assert ed.poll() and len(sent) == 1
    assert ed.editor.annotations == [
        {
            "row": 1,
            "column": 2,
            "text": ed.editor.annotations[0]["text"],
            "type": "error",
        }
    ]
    assert "syntax error: unexpected '*'" in ed.editor.annotations[0]["text"]
    assert ed.status.state == "error"
    assert ed.status.error.startswith("Preview failed: syntax error: unexpected '*'")
    assert "(line 2, column 3)" in ed.status.error
    assert ed.problem.visible and "    ^" in ed.problem.object  # the caret under column 3
    assert ed.figure.object is None and ed.units == ""
    # an unknown channel, on line 1 column 11
    type_(ed, "Voltage * Currnt")
    clock.now += DEBOUNCE_S
    assert ed.poll()
    assert [(a["row"], a["column"]) for a in ed.editor.annotations] == [(0, 10)]
    assert "did you mean 'Current'?" in ed.status.error


def test_a_correct_formula_previews_with_its_units(alice: Client) -> None:
    ed, clock = editor(alice)
    type_(ed, "Voltage * Curent")
    clock.now += DEBOUNCE_S
    ed.poll()
    assert ed.status.state == "error" and ed.editor.annotations
    type_(ed, "Voltage * Current")
    clock.now += DEBOUNCE_S
    assert ed.poll()
    assert ed.status.state == "ready" and ed.status.error == "", ed.status.error
    assert ed.editor.annotations == [] and not ed.problem.visible
    assert ureg.Unit(ed.units) == ureg.Unit("V") * ureg.Unit("A")  # pint's product
    assert (1 * ureg(ed.units)).to("W").magnitude == pytest.approx(1)
    assert "units A*V" in ed.status.message and "means of 5s bins" in ed.status.message
    # the preview is the last hour of data, in 5 s bins: each the mean of V*I over its bin
    shown = ed.shown
    assert shown is not None and ed.preview is not None
    assert shown.end - shown.start == pd.Timedelta("1h") and shown.every == "5s"
    raw = alice.read_pandas("pump", ["Voltage", "Current"], start=shown.start, end=shown.end)
    product = raw["Voltage"] * raw["Current"]
    want = product.groupby(product.index.floor("5s")).mean()
    got = pd.Series(ed.preview["value"].values, index=pd.DatetimeIndex(ed.preview["time"].values))
    got = got.tz_localize("UTC").tz_convert(want.index.tz).dropna()
    assert len(got) > 600
    np.testing.assert_allclose(got.to_numpy(), want.reindex(got.index).to_numpy())
    hv.render(ed.figure.object, backend="bokeh")
    # a formula on its own coarser grid is shown on that grid
    type_(ed, 'resample(Current, "1min")')
    clock.now += DEBOUNCE_S
    ed.poll()
    assert ed.status.state == "ready", ed.status.error
    assert ed.units == "A" and ed.preview["value"].sizes["time"] == 60


def test_a_plain_text_box_for_keyboard_users(alice: Client) -> None:
    """The code editor keeps Tab (it indents); the plain box lets Tab move on."""
    ed, clock = editor(alice)
    ed.plain_text = True
    assert ed.plain.visible and not ed.editor.visible
    ed.plain.value_input = "Voltage +"
    clock.now += DEBOUNCE_S
    assert ed.poll() and ed.formula == "Voltage +"
    assert ed.editor.value == "Voltage +"  # the code editor follows, for switching back
    assert ed.plain.value == ""  # nothing written back into the box typed in
    assert ed.status.state == "error" and "unexpected end of formula" in ed.status.error
    assert ed.problem.visible and ed.editor.annotations[0]["row"] == 0
    ed.plain.value_input = "Voltage + 1"
    clock.now += DEBOUNCE_S
    assert ed.poll() and ed.status.state == "ready" and ed.units == "V"
    ed.insert = "Current"
    ed.insert_channel()
    assert ed.plain.value == ed.editor.value == "Voltage + 1 {Current}"
    ed.plain_text = False
    assert ed.editor.visible and not ed.plain.visible


def test_one_preview_in_flight_and_only_the_newest_text(alice: Client) -> None:
    ed, clock = editor(alice)
    runner = HeldRunner()
    ed.runner = runner
    sent = eval_requests(alice)
    for text in ("V", "Vo", "Voltage", "Voltage * 2"):
        type_(ed, text)
        clock.now += 0.1
    clock.now += DEBOUNCE_S
    assert ed.poll() and len(runner.jobs) == 1 and ed.previewing
    for text in ("Voltage * 3", "Voltage * 4"):  # typing on while the request runs
        type_(ed, text)
        clock.now += DEBOUNCE_S * 2
        assert not ed.poll()
    assert len(runner.jobs) == 1 and ed.throttle.started == 1
    runner.finish()  # the answer for 'Voltage * 2' arrives; the newest text goes next
    assert json_formulas(sent) == ["Voltage * 2"]
    assert len(runner.jobs) == 1 and ed.throttle.started == 2
    runner.finish()
    assert json_formulas(sent) == ["Voltage * 2", "Voltage * 4"]
    assert not ed.previewing and ed.status.state == "ready" and ed.units == "V"
    assert ed.shown is not None and ed.shown.formula == "Voltage * 4"
    # an answer for a dataset no longer shown is dropped
    type_(ed, "Voltage * 5")
    clock.now += DEBOUNCE_S
    assert ed.poll()
    ed._dataset_changed()  # the same id reopened: a new generation asks again...
    assert len(runner.jobs) == 1 and ed.throttle.started == 3  # ...once the old one ends
    runner.finish()
    assert ed.shown is None and ed.figure.object is None  # the old answer dropped
    assert len(runner.jobs) == 1 and ed.throttle.started == 4
    runner.finish()
    assert ed.shown is not None and ed.shown.formula == "Voltage * 5"
    # an empty editor asks nothing and clears the preview
    type_(ed, "  ")
    clock.now += DEBOUNCE_S
    assert not ed.poll() and runner.jobs == []


def test_in_an_event_loop_the_preview_runs_off_it(alice: Client) -> None:
    """As in a kernel: the debounce is a timer on the loop, the request runs in a thread,
    and its answer comes back on the loop."""
    threads: list[int] = []

    def hook(r: httpx.Request) -> None:
        if r.url.path.endswith("/formulas/eval"):
            threads.append(threading.get_ident())

    alice.http.event_hooks["request"].append(hook)

    async def scenario() -> FormulaEditor:
        ed = FormulaEditor(alice)
        ed.throttle.delay = 0.05
        done = asyncio.Event()
        ed.param.watch(lambda e: None if e.new else done.set(), "previewing")
        type_(ed, "Voltage * Current")
        assert not ed.previewing and ed.throttle.pending  # waits for the timer
        await asyncio.wait_for(done.wait(), timeout=60)
        return ed

    ed = asyncio.run(scenario())
    assert ed.status.state == "ready" and ed.units == "A*V", ed.status.error
    assert len(threads) == 1 and threads[0] != threading.get_ident()


def json_formulas(bodies: list[str]) -> list[str]:
    import json

    return [json.loads(b)["formula"] for b in bodies]


def test_save_list_open_and_delete_with_confirmation(alice: Client) -> None:
    ed = FormulaEditor(alice)
    ed.insert = "Voltage"
    ed.insert_channel()
    type_(ed, ed.formula + " / 2")
    assert ed.formula == "{Voltage} / 2" and ed.editor.value == "{Voltage}"  # typed after
    ed.channel_name, ed.description = "half_volts", "half the voltage"
    ed.save()
    assert ed.status.state == "ready", ed.status.error
    assert "Saved 'half_volts' (V)" in ed.status.message
    assert ed.saved == "half_volts" and "half_volts" in ed.param.saved.objects
    row = ed.table.object.set_index("name").loc["half_volts"]
    assert (row["formula"], row["units"], row["description"]) == (
        "{Voltage} / 2",
        "V",
        "half the voltage",
    )
    # readable as a channel through the client
    assert sorted(f.name for f in alice.channels("pump").derived) == ["half_volts", "power"]
    data = alice.read_pandas("pump", ["half_volts", "Voltage"], start="2020-02-08T13:00Z")
    np.testing.assert_allclose(data["half_volts"], data["Voltage"] / 2)

    other = FormulaEditor(alice)  # a new session opens it
    other.saved = "half_volts"
    other.open_formula()
    assert (other.formula, other.channel_name, other.description) == (
        "{Voltage} / 2",
        "half_volts",
        "half the voltage",
    )
    assert other.editor.value == "{Voltage} / 2" and other.units == "V"
    assert other.status.state == "ready" and other.preview is not None

    other.delete_formula()  # first step only asks
    assert other.confirming == "half_volts" and "Press 'Yes, delete'" in other.status.message
    assert "half_volts" in [f.name for f in alice.formulas("pump")]
    other.cancel_delete()
    assert other.confirming == "" and "half_volts" in [f.name for f in alice.formulas("pump")]
    other.delete_formula()
    other.confirm_delete()
    assert other.status.state == "ready", other.status.error
    assert [f.name for f in alice.formulas("pump")] == ["power"]
    assert other.param.saved.objects == ["", "power"] and other.saved == ""
    other.confirm_delete()  # nothing waits for confirmation: nothing happens
    assert [f.name for f in alice.formulas("pump")] == ["power"]

    ed.saved = ""
    ed.delete_formula()
    assert "choose a formula of the list first" in ed.status.error
    ed.channel_name = " "
    ed.save()
    assert "give the derived channel a name first" in ed.status.error
    ed.channel_name = "Voltage"  # a stored channel's name
    ed.save()
    assert "is a stored channel of 'pump'" in ed.status.error
    ed.channel_name, ed.formula = "broken", "Voltage +"
    ed.save()
    assert ed.status.state == "error" and ed.editor.annotations[0]["row"] == 0
    assert [f.name for f in alice.formulas("pump")] == ["power"]


def test_a_viewer_previews_but_cannot_save(srv: ApiOverHttp, alice: Client) -> None:
    with srv.client("vera") as vera:
        ed, clock = editor(vera)
        assert ed.param.dataset.objects == ["pump"]
        assert not ed.can_edit
        assert "you can read this dataset but not change its formulas" in ed.access_note.lower()
        type_(ed, "Voltage * Current")
        clock.now += DEBOUNCE_S
        assert ed.poll() and ed.status.state == "ready" and ed.units == "A*V"
        ed.channel_name = "vera_power"
        ed.save()
        assert ed.status.state == "error"
        assert "Saving derived channel 'vera_power' failed: " in ed.status.error
        assert "vera acts as viewer on dataset 'pump'" in ed.status.error  # the API's 403
        assert "'formulas.edit' needs editor" in ed.status.error
        ed.saved = "power"
        ed.delete_formula()
        ed.confirm_delete()
        assert ed.status.state == "error" and "editor" in ed.status.error
    assert [f.name for f in alice.formulas("pump")] == ["power"]  # nothing saved or deleted


def test_preview_range_and_code(alice: Client) -> None:
    ed = FormulaEditor(alice)
    type_(ed, "Temperature - Thermocouple")
    ed.preview_now()  # no debounce
    assert ed.status.state == "ready", ed.status.error
    assert ed.units == "delta_degC"
    ed.window = "Custom"  # default: the last hour, in the dataset's local time
    assert ed.shown is not None and ed.shown.every == "5s"
    start, _ = ed.custom_range
    ed.custom_range = (start, start + pd.Timedelta("10min"))
    assert ed.shown is not None and ed.shown.every is None  # 600 samples fit
    assert ed.shown.end - ed.shown.start == pd.Timedelta("10min")
    ed.window = "Last 24 h"  # clamped to the data: 2 h 46 min in 15 s bins
    assert ed.status.state == "ready" and ed.shown is not None and ed.shown.every == "15s"
    ed.channel_name = "dt"
    ed.show_code = True
    ed._update_code()
    assert ed.code.visible and "client.eval_formula('pump', 'Temperature - Thermocouple'" in (
        ed.code.object
    )
    code = ed.code.object.removeprefix("```python\n").removesuffix("```")
    scope: dict[str, object] = {"CLIENT": alice}
    exec(code.replace("Client.from_env()", "CLIENT"), scope)  # the shown code runs as is
    got = scope["ds"]
    assert isinstance(got, xr.Dataset) and got["value"].attrs["units"] == "delta_degC"
    assert ed.preview is not None
    np.testing.assert_allclose(got["value"].values, ed.preview["value"].values)
    assert "dt" in [f.name for f in alice.formulas("pump")]  # saved by the code shown
    alice.delete_formula("pump", "dt")


def buttons(layout: pn.viewable.Viewable) -> dict[str, pn.widgets.Button]:
    return {b.label: b for b in layout.select(pn.widgets.Button)}


def test_the_screen_builds_and_joins_the_studio(alice: Client, srv: ApiOverHttp) -> None:
    ed = FormulaEditor(alice)
    layout = ed.__panel__()
    assert layout.name == "Formulas" and ed.__panel__() is layout
    layout.get_root()  # the Bokeh models: every bound control resolves
    found = buttons(layout)
    assert not found["Save as derived channel"].disabled and not found["Delete"].disabled
    labels = {x.label for x in layout.select(pn.widgets.Widget) if hasattr(x, "label")}
    assert {"Dataset", "Formulas of this dataset", "Channels (stored and derived)"} <= labels
    assert {"Name of the derived channel", "Preview range", "Description", "Formula"} <= labels
    ed.saved = "power"
    ed.delete_formula()
    confirm = next(r for r in layout.select(pn.Row) if "Yes, delete" in _labels(r))
    assert confirm.visible
    ed.cancel_delete()
    assert not confirm.visible
    with srv.client("vera") as vera:
        theirs = FormulaEditor(vera).__panel__()
        found = buttons(theirs)
        assert found["Save as derived channel"].disabled and found["Delete"].disabled
        assert not found["Preview now"].disabled and not found["Open"].disabled
        note = next(a for a in theirs.select(pn.pane.Alert) if "not change" in str(a.object))
        assert note.visible
    studio = Studio(alice, screens=(("Formulas", FormulaEditor),))
    assert isinstance(studio.screens["Formulas"], FormulaEditor)
    assert "Tabs" in str(studio.__panel__())


def _labels(row: pn.Row) -> list[str]:
    """The labels of the buttons directly in ``row``."""
    return [b.label for b in row.objects if isinstance(b, pn.widgets.Button)]
