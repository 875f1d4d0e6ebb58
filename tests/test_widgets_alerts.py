"""The alert editor driven without a browser, against a real API over HTTP with real tokens.

Two partners' datasets hold SKAB's valve recording ``valve1_1.csv`` (fersa: ``valve``; zf:
``rig``): 20 minutes at 1 Hz in which the valve fault (labelled in the file's own
``anomaly`` column) drops the flow rate from about 32 to 30-31 L/min. Fersa's
``valve-live`` holds the recording's first 500 rows, before the fault, as a line whose
data is still arriving: the rest comes through the API in a test, and evaluates the rules. Seats: ``ops`` a
hub admin, ``alice`` owner of fersa's datasets, ``carl`` an editor of them, ``vera`` a
viewer of ``valve`` only, ``bob`` owner of zf's. Each drives the screen through their own
token, as their kernel on the hub would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import holoviews as hv
import pandas as pd
import panel as pn
import pytest

from stream0d_nb.alerts.routing import Route
from stream0d_nb.alerts.rules import KIND_FIELDS, AlertRule
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import Client
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec, IngestOptions
from stream0d_nb.store import Store
from stream0d_nb.widgets.alert_form import RuleForm
from stream0d_nb.widgets.alerts import AlertEditor
from stream0d_nb.widgets.studio import Studio
from tests.api_servers import ApiOverHttp
from tests.servers import free_port
from tests.test_plots import DATA, SKAB_UNITS

VALVE = DATA / "skab" / "valve1_1.csv"
pytestmark = pytest.mark.skipif(not VALVE.is_file(), reason=f"SKAB not found at {VALVE}")

TZ = "Europe/Moscow"
FLOW = "Volume Flow RateRMS"
UNITS = {**SKAB_UNITS, "anomaly": "1", "changepoint": "1"}
ADMIN = frozenset({"custom:stream0d:admin"})
WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "ops": UserInfo(frozenset(), True, ADMIN),  # hub admin
    "alice": UserInfo(frozenset({"fersa"}), False, ADMIN),  # owner of fersa's datasets
    "carl": UserInfo(frozenset({"fersa"}), False, WRITE),  # editor of them
    "vera": UserInfo(frozenset(), False, WRITE),  # viewer grant on valve only
    "bob": UserInfo(frozenset({"zf"}), False, ADMIN),  # owner of zf's
}
BEFORE_FAULT = 500
LOW_FLOW = {  # the valve fault: flow below 30.5 L/min, over only once back above 31.5
    "name": "low-flow",
    "kind": "threshold",
    "channels": [FLOW],
    "op": "<",
    "value": 30.5,
    "clear_above": 31.5,
    "severity": "major",
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiOverHttp]:
    home = tmp_path_factory.mktemp("alert-widgets")
    store = Store(Settings(home=home))
    before = home / "valve1_1-first-rows.csv"  # the header and the first 500 rows, as they are
    before.write_text("".join(VALVE.read_text().splitlines(keepends=True)[: BEFORE_FAULT + 1]))
    for ds, partner, path in (("valve", "fersa", VALVE), ("valve-live", "fersa", before),
                              ("rig", "zf", VALVE)):  # fmt: skip
        store.create_dataset(DatasetSpec(id=ds, interval="1s", tz=TZ, partner=partner))
        store.ingest(ds, path, IngestOptions(units=UNITS))
    server = ApiOverHttp(store, USERS, level="admin")
    server.access.grant("valve", "user", "vera", "viewer", actor="alice")
    yield server
    server.stop()


@pytest.fixture
def alice(srv: ApiOverHttp) -> Iterator[Client]:
    with srv.client("alice") as c:
        yield c


def fill(form: RuleForm, rule: dict[str, Any]) -> None:
    """Type a rule into the form as a person would: kind first, then each field."""
    form.inputs["kind"].widget.value = rule["kind"]
    if rule.get("formula") and rule["kind"] != "formula":
        form.watching = "formula"
    for name, value in rule.items():
        if name != "kind":
            form.inputs[name].set(value)


def anomaly_span(client: Client, ds: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last sample the file labels as the valve fault (its ``anomaly`` column)."""
    a = client.read_pandas(ds, ["anomaly"])["anomaly"]
    hit = a.index[a == 1]
    return hit.min(), hit.max()


def spans_of(editor: AlertEditor) -> pd.DataFrame:
    """The shaded spans of the preview plot, as rendered by Bokeh (its current frame)."""
    live = editor.figure.object
    hv.render(live, backend="bokeh")
    frame = live.last
    [spans] = [e for e in frame if isinstance(e, hv.VSpans)]
    return spans.dframe()


# ----------------------------------------------------------------------------- the form

SAMPLES: list[dict[str, Any]] = [
    {"kind": "threshold", "channels": [FLOW], "op": ">", "value": 33.0, "units": "L/min",
     "clear_below": 32.5},
    {"kind": "threshold", "channels": ["*"], "op": "outside", "low": 30.5, "high": 33.5,
     "clear_below": 33.0, "clear_above": 31.5},
    {"kind": "threshold", "formula": "Current * Voltage", "op": "inside", "low": 1.0,
     "high": 2.0, "clear_formula": "Current > 1"},
    {"kind": "rate_of_change", "channels": [FLOW], "limit": 0.5, "per": "min",
     "direction": "up", "window": "10s"},
    {"kind": "no_data", "channels": [FLOW], "window": "10min"},
    {"kind": "flatline", "formula": "Current * 2", "window": "5min", "tolerance": 0.01},
    {"kind": "spike", "channels": ["Current"], "window": "1min", "k": 4.0, "method": "mad",
     "direction": "down"},
    {"kind": "missing_share", "channels": [FLOW], "window": "1h", "min_good": 90.0},
    {"kind": "formula", "formula": "Current > 1 and Pressure < 0.1",
     "clear_formula": "Current < 0.5"},
    {"kind": "model_residual", "model": "flow", "window": "1h", "cv_rmse": 10.0,
     "bias": 0.5, "units": "L/min"},
]  # fmt: skip
COMMON = {
    "for_duration": "5min",
    "severity": "critical",
    "labels": {"area": "valves", "line": "1"},
    "description": "Valve 1 of the test rig.\nCall maintenance.",
    "runbook": "https://wiki.example/valve",
    "evaluation_interval": "5min",
    "enabled": False,
}


def test_the_form_holds_every_field_of_the_model() -> None:
    form = RuleForm()
    assert set(form.inputs) == set(AlertRule.model_fields)  # a new option gets an input
    labels = [f.widget.label for f in form.inputs.values()]
    assert all(labels) and len(set(labels)) == len(labels)  # every control labelled, apart
    assert form.watch_input.label == "Watch"
    # the samples set every field of the model between them, so each is round-tripped
    rules = [
        AlertRule.model_validate({"name": f"r{i}", **s, **COMMON}) for i, s in enumerate(SAMPLES)
    ]
    assert set().union(*(r.model_fields_set for r in rules)) == set(AlertRule.model_fields)
    assert {r.kind for r in rules} == set(KIND_FIELDS)
    for rule in rules:
        typed = RuleForm()
        typed.set_channels(["Current", "Pressure", FLOW])
        fill(typed, rule.model_dump(exclude_unset=True))
        assert typed.rule() == rule, rule.kind  # typed in: the same rule
        opened = RuleForm()
        opened.set_channels(["Current", "Pressure", FLOW])
        opened.load(rule)
        assert opened.rule() == rule, rule.kind  # opened: the same rule again
        required = KIND_FIELDS[rule.kind][0]
        hidden = set(opened.inputs) - set(opened.shown())
        assert not (required & hidden), (rule.kind, required & hidden)
        assert all(not opened.inputs[n].widget.visible for n in hidden)


def test_the_form_shows_the_fields_of_the_kind_and_sends_only_those() -> None:
    form = RuleForm()
    form.set_channels([FLOW])
    fill(form, LOW_FLOW)
    assert {"op", "value", "channels", "clear_above"} <= set(form.shown())
    assert not {"low", "high", "k", "window", "model"} & set(form.shown())
    form.inputs["op"].widget.value = "outside"  # a range: low and high instead of value
    assert {"low", "high"} <= set(form.shown()) and "value" not in form.shown()
    form.inputs["kind"].widget.value = "spike"
    assert {"window", "k", "method", "direction"} <= set(form.shown())
    assert "value" not in form.values() and "op" not in form.values()  # typed, not sent
    form.inputs["kind"].widget.value = "formula"
    assert form.inputs["formula"].widget.label == "Condition (a boolean formula)"
    assert not form.watch_input.visible and "channels" not in form.shown()
    assert not {"clear_below", "clear_above"} & set(form.shown())  # no value to clear on
    form.inputs["labels"].widget.value = "area valves"
    with pytest.raises(ValueError, match=r"line 1 \('area valves'\) is not key=value"):
        form.rule()


# ----------------------------------------------------------------------------- preview


def test_preview_shades_the_valve_fault_and_counts_it(alice: Client) -> None:
    ed = AlertEditor(alice)
    assert ed.param.dataset.objects == ["valve", "valve-live"] and ed.dataset == "valve"
    assert "**owner**" in ed.role_note.object
    assert ed.status.message == (
        "valve: 0 alert rule(s), 0 silence(s); data from 2020-03-09 10:34 to 2020-03-09 10:54 "
        f"({TZ})."
    )
    fill(ed.form, LOW_FLOW)
    ed.preset = "All data"
    ed.run_preview()
    assert ed.status.state == "ready", ed.status.error
    assert ed.preview is not None and len(ed.preview.episodes) == 1
    assert ed.count.object.startswith("**1 episode(s)**")
    assert "1 episode(s)" in ed.status.message and "Nothing was saved" in ed.status.message
    [ep] = ed.preview.episodes
    first, last = anomaly_span(alice, "valve")
    assert first <= ep.start < ep.end <= last + pd.Timedelta("1s")  # inside the labelled fault
    spans = spans_of(ed)
    assert len(spans) == 1  # the episode is shaded, in the dataset's wall clock
    start = pd.Timestamp(ep.start).tz_convert(TZ).tz_localize(None)
    assert pd.Timestamp(spans["time"].iloc[0]) == start
    assert list(ed.episode_table.object["channel"]) == [FLOW]
    assert alice.alert_rules("valve") == []  # a preview saves nothing

    # the same range without hysteresis fires on every dip of the noisy flow
    fill(ed.form, {**LOW_FLOW, "op": "outside", "low": 30.5, "high": 33.5, "clear_above": None})
    ed.run_preview()
    assert ed.status.state == "ready", ed.status.error
    many = len(ed.preview.episodes)
    assert many > 50 and ed.count.object.startswith(f"**{many} episode(s)**")
    assert len(spans_of(ed)) == many
    ed.form.inputs["clear_above"].set(31.5)  # back well inside the range to clear
    ed.form.inputs["clear_below"].set(33.0)
    ed.run_preview()
    assert len(ed.preview.episodes) == 1 and len(spans_of(ed)) == 1


def test_errors_stay_in_the_banner_until_an_action_succeeds(alice: Client) -> None:
    ed = AlertEditor(alice)
    fill(ed.form, {**LOW_FLOW, "value": None})
    ed.run_preview()
    assert ed.status.state == "error" and "op '<' needs value" in ed.status.error
    assert ed.status.text().startswith("✖ Error")
    ed.open_rule()  # nothing chosen: nothing done, the banner stays
    assert "needs value" in ed.status.error
    fill(ed.form, {**LOW_FLOW, "channels": ["Current"], "units": "bar"})
    ed.run_preview()  # the API's own check: the units do not agree
    assert ed.status.state == "error" and "bar" in ed.status.error, ed.status.error
    fill(ed.form, {**LOW_FLOW, "units": None})
    ed.preset = "Custom"
    ed.custom_range = None
    ed.run_preview()
    assert "choose the start and end of the custom window" in ed.status.error
    ed.preset = "Last hour"
    ed.run_preview()
    assert ed.status.state == "ready" and ed.status.error == ""


def test_an_api_out_of_reach_is_said_in_the_banner() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", "no-token") as nowhere:
        ed = AlertEditor(nowhere)
    assert ed.status.state == "error" and "cannot reach http://127.0.0.1:" in ed.status.error
    assert ed.param.dataset.objects == [] and ed.dataset is None
    assert "did not say who you are" in ed.notifications.sink_note.object
    assert not ed.notifications.may_manage_sinks


def test_show_code_runs_the_same_preview(alice: Client) -> None:
    ed = AlertEditor(alice)
    fill(ed.form, LOW_FLOW)
    ed.preset = "All data"
    ed.run_preview()
    ed.show_code = True
    assert ed.code.visible and "client.preview_alert_rule('valve', rule" in ed.code.object
    code = ed.code.object.removeprefix("```python\n").removesuffix("```")
    scope: dict[str, Any] = {"CLIENT": alice}
    exec(code.replace("Client.from_env()", "CLIENT"), scope)  # the shown code runs as is
    assert ed.preview is not None
    assert scope["preview"].episodes == ed.preview.episodes
    assert alice.alert_rules("valve") == []  # saving is left commented out


# ----------------------------------------------------------------------------- rules, events


def test_save_list_open_delete(alice: Client) -> None:
    ed = AlertEditor(alice)
    fill(ed.form, {**LOW_FLOW, "name": "kept", "labels": {"area": "valves"}})
    ed.save_rule()
    assert ed.status.state == "ready", ed.status.error
    assert "kept" in ed.param.rule.objects and ed.rule == "kept"
    assert list(ed.rules_table.object["name"]) == ["kept"]
    assert "kept" in ed.events.param.rule.objects and "kept" in ed.silences.param.rule.objects
    saved = alice.alert_rule("valve", "kept")
    assert saved.labels == {"area": "valves"} and saved.clear_above == 31.5

    other = AlertEditor(alice)  # a new session opens it as saved
    other.rule = "kept"
    other.open_rule()
    assert other.form.rule() == saved and other.status.state == "ready"
    other.delete_rule()  # asks first
    assert other.confirming == "kept" and "Press 'Yes, delete'" in other.status.message
    other.cancel_delete()
    assert other.confirming == "" and [r.name for r in alice.alert_rules("valve")] == ["kept"]
    other.delete_rule()
    other.confirm_delete()
    assert alice.alert_rules("valve") == [] and other.param.rule.objects == [""]
    assert "its events stay" in other.status.message
    other.delete_rule()  # nothing chosen any more
    assert other.status.state == "error" and "choose a rule" in other.status.error


def test_events_after_a_write_with_filters(alice: Client) -> None:
    ed = AlertEditor(alice)
    fill(ed.form, LOW_FLOW)
    ed.preset = "All data"
    ed.run_preview()  # on the whole recording
    assert ed.preview is not None
    [ep] = ed.preview.episodes
    ed.dataset = "valve-live"  # the line before the fault: the rule finds nothing yet
    ed.run_preview()
    assert ed.preview is not None and ed.preview.episodes == []
    ed.save_rule()
    assert ed.status.state == "ready", ed.status.error
    ev = ed.events
    ev.load()
    assert ev.events == [] and ev.summary.object.startswith("0 event(s) of valve-live")
    # the rest of the recording arrives through the API: the write evaluates the saved rule
    report = alice.ingest("valve-live", VALVE, {"units": UNITS})
    assert report.values_new > 0 and not report.warnings, report
    ev.rule = "low-flow"
    ev.load()
    assert ed.status.state == "ready", ed.status.error
    states = [e.to_state for e in ev.events]
    assert states.count("firing") == 1 and states.count("resolved") == 1, states
    firing = next(e for e in ev.events if e.to_state == "firing")
    assert pd.Timestamp(firing.at) == ep.start and firing.severity == "major"  # as previewed
    assert "1 firing" in ev.summary.object and "1 resolved" in ev.summary.object
    assert set(ev.table.object["to"]) == set(states)
    ev.state = "firing"
    ev.load()
    assert [e.to_state for e in ev.events] == ["firing"]
    local = pd.Timestamp(ep.start).tz_convert(TZ).tz_localize(None)
    assert ev.table.object["time"].iloc[0] == local  # in the dataset's wall clock
    ev.state, ev.severity = "", "critical"
    ev.load()
    assert ev.events == [] and "severity critical" in ev.summary.object
    ev.severity, ev.channel = "major", FLOW
    ev.load()
    assert len(ev.events) == len(states)
    ev.channel = "Current"
    ev.load()
    assert ev.events == [] and "channel Current" in ev.summary.object
    ed.rule = "low-flow"
    ed.delete_rule()
    ed.confirm_delete()
    assert alice.alert_rules("valve-live") == []


def test_silences_add_and_end(alice: Client, srv: ApiOverHttp) -> None:
    ed = AlertEditor(alice)
    fill(ed.form, {**LOW_FLOW, "name": "muted"})
    ed.save_rule()
    si = ed.silences
    si.rule, si.comment = "muted", "valve maintenance"
    si.end = (pd.Timestamp.now(tz=TZ) + pd.Timedelta("2h")).tz_localize(None).to_pydatetime()
    si.add()
    assert ed.status.state == "ready", ed.status.error
    [saved] = alice.silences("valve")
    assert saved.rule == "muted" and saved.comment == "valve maintenance"
    assert saved.end is not None and pd.Timestamp(saved.end) > pd.Timestamp.now(tz="UTC")
    assert list(si.table.object["rule"]) == ["muted"] and si.silence == saved.id
    si.weekly, si.rule, si.days = True, "", ["Saturday", "Sunday"]
    si.add()
    weekly = [s for s in alice.silences("valve") if s.days]
    assert [(s.rule, s.days, s.from_time, s.to_time, s.tz) for s in weekly] == [
        (None, [5, 6], "22:00", "06:00", TZ)
    ]
    assert "every Saturday, Sunday" in " ".join(si.table.object["when"])
    with srv.client("vera") as vera:  # a viewer sees them, cannot add or end one
        seen = AlertEditor(vera)
        assert len(seen.silences.silences) == 2
        seen.silences.end = si.end
        seen.silences.add()
        assert seen.status.state == "error" and "403" not in seen.status.error
        assert "editor" in seen.status.error, seen.status.error
        seen.silences.silence = saved.id
        seen.silences.end_silence()
        assert seen.status.state == "error"
    assert len(alice.silences("valve")) == 2
    for sid in [s.id for s in alice.silences("valve")]:
        si.silence = sid
        si.end_silence()
        assert si.status.state == "ready", si.status.error
    assert alice.silences("valve") == [] and si.table.object.empty
    ed.rule = "muted"
    ed.delete_rule()
    ed.confirm_delete()
    assert alice.alert_rules("valve") == []


# ----------------------------------------------------------------------------- refusals


def test_a_viewer_cannot_save_a_rule(srv: ApiOverHttp, alice: Client) -> None:
    with srv.client("vera") as vera:
        ed = AlertEditor(vera)
        assert ed.param.dataset.objects == ["valve"]
        assert "**viewer**" in ed.role_note.object and "editor or owner" in ed.role_note.object
        fill(ed.form, LOW_FLOW)
        ed.preset = "All data"
        ed.run_preview()  # positive control: a viewer may preview
        assert ed.status.state == "ready" and ed.preview is not None
        ed.save_rule()
        assert ed.status.state == "error"
        assert ed.status.error.startswith("Saving the rule on valve failed:"), ed.status.error
        assert "editor" in ed.status.error
    assert alice.alert_rules("valve") == []  # nothing saved


def test_another_partner_does_not_see_the_dataset(srv: ApiOverHttp, alice: Client) -> None:
    assert AlertEditor(alice).param.dataset.objects == ["valve", "valve-live"]  # positive control
    with srv.client("bob") as bob:
        ed = AlertEditor(bob)
        assert ed.param.dataset.objects == ["rig"]
        with pytest.raises(ValueError):
            ed.dataset = "valve"  # not offered, refused by the param itself
        ed.param.dataset.objects = ["rig", "valve"]  # forced in bob's own kernel...
        ed.dataset = "valve"
        assert ed.status.state == "error"
        assert ed.status.error.startswith("Opening valve failed: no dataset 'valve'")
        assert ed.param.rule.objects == [""] and ed.channel_names == []
        assert ed.events.dataset is None and ed.silences.dataset is None  # nothing follows it
        fill(ed.form, LOW_FLOW)
        ed.save_rule()
        assert "no dataset 'valve'" in ed.status.error
    assert alice.alert_rules("valve") == []


# ----------------------------------------------------------------------------- notifications


def test_sinks_for_hub_admins_routes_for_owners(srv: ApiOverHttp, alice: Client) -> None:
    secret = "s3cr3t-for-the-hook"
    with srv.client("ops") as ops:
        ed = AlertEditor(ops)
        assert ed.param.dataset.objects == ["rig", "valve", "valve-live"]
        ed.dataset = "valve"
        n = ed.notifications
        assert n.may_manage_sinks and not n.sink_note.visible
        ed.__panel__()
        assert n.sink_part.visible
        n.sink_name, n.sink_kind = "ops-hook", "webhook"
        n.sink_inputs["webhook"]["url"].widget.value = "https://hooks.example.org/valve"
        n.sink_inputs["webhook"]["secret"].widget.value = secret
        n.save_sink()
        assert ed.status.state == "ready", ed.status.error
        assert n.sink_inputs["webhook"]["secret"].widget.value == ""  # not kept on screen
        table = n.sink_table.object
        assert list(table["name"]) == ["ops-hook", "in-app"]
        assert "secret=**********" in table["settings"].iloc[0]
        assert secret not in table.to_csv()
        n.open_sink()
        assert n.sink_inputs["webhook"]["url"].widget.value == "https://hooks.example.org/valve"
        assert n.sink_inputs["webhook"]["secret"].widget.value == ""  # never shown back

        owner = AlertEditor(alice).notifications  # an owner: routes, no sinks
        assert not owner.may_manage_sinks and "only hub admins" in owner.sink_note.object
        assert owner.route_part.visible and not owner.route_note.visible
        assert set(owner.route_inputs) == set(Route.model_fields)  # built from the model
        owner.route_inputs["min_severity"].widget.value = "major"
        owner.route_inputs["sinks"].widget.value = "ops-hook"
        owner.route_inputs["match_labels"].widget.value = "area=valves"
        owner.add_route()
        owner.save_routes()
        assert owner.status.state == "ready", owner.status.error
        routes = alice.alert_routes("valve")
        assert [(r.min_severity, r.sinks, r.match_labels) for r in routes.routes] == [
            ("major", ["ops-hook"], {"area": "valves"})
        ]
        assert "major or worse and area = valves -> ops-hook" in owner.route_list.object

        n.sink = "ops-hook"
        n.delete_sink()  # still routed to: the API refuses, the banner says why
        assert ed.status.state == "error" and "change those routes first" in ed.status.error
        owner.route = 1
        owner.remove_route()
        owner.save_routes()
        assert alice.alert_routes("valve").routes == []
        n.delete_sink()
        assert ed.status.state == "ready", ed.status.error
        assert [s.name for s in ops.sinks()] == ["in-app"]


@pytest.mark.parametrize(("who", "role"), [("carl", "editor"), ("vera", "viewer")])
def test_others_see_why_notifications_are_absent(srv: ApiOverHttp, who: str, role: str) -> None:
    with srv.client(who) as client:
        ed = AlertEditor(client)
        n = ed.notifications
        assert not n.may_manage_sinks and "only hub admins" in n.sink_note.object
        assert n.route_note.visible and not n.route_part.visible
        assert f"your role on it is {role}" in n.route_note.object
        ed.__panel__()
        assert not n.sink_part.visible


def test_bob_routes_his_own_dataset(srv: ApiOverHttp) -> None:
    with srv.client("bob") as bob:
        n = AlertEditor(bob).notifications
        assert n.dataset == "rig" and n.route_part.visible  # an owner of another partner
        assert "When no route matches: in-app." in n.route_list.object


# ----------------------------------------------------------------------------- layout


def test_every_control_is_labelled_and_the_studio_holds_it(alice: Client) -> None:
    ed = AlertEditor(alice)
    layout = ed.__panel__()
    assert isinstance(layout, pn.Row)
    controls = [
        w
        for w in layout.select(pn.widgets.Widget)
        if not isinstance(w, pn.widgets.Button | pn.widgets.indicators.Indicator)
    ]
    assert len(controls) > 40
    assert [w for w in controls if not (w.label or "").strip()] == []
    assert all(b.label for b in layout.select(pn.widgets.Button))
    studio = Studio(alice, screens=(("Alerts", AlertEditor),))
    assert isinstance(studio.screens["Alerts"], AlertEditor)
    assert "Tabs" in str(studio.__panel__())
