"""Recalibration over the API (issue 12, point 1) with real HTTP and real API tokens:
models and versions, notebook runs (one real run of recalibrate.ipynb end to end: start,
poll, log, notebook, report), schedules.

Seats: alice (fersa, write token: editor through her partner), alice's read-level token
(viewer), bob (zf: fersa's models, runs and schedules must look like a missing dataset).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import ConflictError, NotFoundError, PermissionDeniedError
from stream0d_nb.db.recal_tables import RecalRegistry
from stream0d_nb.demo import OVEN, oven_frame
from stream0d_nb.recalibration.service import Recalibration
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
}
DS, OTHER, MISSING = "fersa-oven", "zf-oven", "fersa-nothing"
END = pd.Timestamp("2026-11-20", tz="UTC")
ZONE = {
    "kind": "first_order_thermal",
    "output": "zone_temp",
    "inputs": ["heater_power", "ambient_temp"],
    "options": {"initial": {"gain": 3, "tau": 600}},
    "activation": {"metric": "cv_rmse", "margin": 0.02},
}
RUN: dict[str, Any] = {
    "parameters": {"model": "zone", "end": "2026-11-18", "train": "1d"},
    "timeout_s": 300,
}


class Server(ApiOverHttp):
    """Store with one oven per partner, the app under uvicorn, tokens per seat."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        frame = oven_frame(END)
        for ds, partner in ((DS, "fersa"), (OTHER, "zf")):
            store.create_dataset(OVEN.model_copy(update={"id": ds, "partner": partner}))
            store.write(ds, frame)
        super().__init__(store, USERS)
        self.tokens["alice-ro"] = self.token("alice", "read")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("recal-api") / "home")
    yield s
    s.stop()


def error(r: httpx.Response) -> tuple[int, str]:
    """Status and error message of an answer."""
    return r.status_code, r.json()["error"]["message"]


def hidden(srv: Server, who: str, method: str, path: str, **kw: Any) -> None:
    """``path`` on another partner's dataset answers exactly like on a missing one."""
    theirs = srv.call(who, method, path.format(ds=OTHER), **kw)
    missing = srv.call(who, method, path.format(ds=MISSING), **kw)
    assert theirs.status_code == missing.status_code == 404, theirs.text
    assert theirs.json()["error"]["message"].replace(OTHER, "X") == missing.json()["error"][
        "message"
    ].replace(MISSING, "X")


def audit_actions(srv: Server, prefix: str) -> list[str]:
    return [e.action for e in srv.store.registry.audit_log(DS) if e.action.startswith(prefix)]


# ----------------------------------------------------------------------------- models


def test_models_create_update_show_versions(srv: Server) -> None:
    r = srv.call("alice", "PUT", f"/datasets/{DS}/models/zone", json=ZONE)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "zone" and body["kind"] == "first_order_thermal"
    assert body["spec"]["inputs"] == ["heater_power", "ambient_temp"] and body["active"] is None
    assert body["activation"] == {"metric": "cv_rmse", "margin": 0.02, "require_acceptance": False}
    # redefine: 200, audited as an update
    again = {**ZONE, "activation": {"metric": "rmse", "margin": 0.05}}
    r = srv.call("alice", "PUT", f"/datasets/{DS}/models/zone", json=again)
    assert r.status_code == 200, r.text
    assert r.json()["activation"]["metric"] == "rmse"
    r = srv.call("alice", "PUT", f"/datasets/{DS}/models/zone", json=ZONE)
    assert r.status_code == 200
    assert audit_actions(srv, "recal.model") == [
        "recal.model.update",
        "recal.model.update",
        "recal.model.create",
    ]
    # viewer reads list, one, versions (none yet)
    r = srv.call("alice-ro", "GET", f"/datasets/{DS}/models")
    assert r.status_code == 200 and [m["name"] for m in r.json()] == ["zone"]
    assert srv.call("alice-ro", "GET", f"/datasets/{DS}/models/zone").json()["name"] == "zone"
    assert srv.call("alice-ro", "GET", f"/datasets/{DS}/models/zone/versions").json() == []
    assert error(srv.call("alice", "GET", f"/datasets/{DS}/models/nope")) == (
        404,
        f"dataset {DS!r} has no model 'nope' (models: zone)",
    )
    r = srv.call("alice", "GET", f"/datasets/{DS}/models/nope/versions")
    assert r.status_code == 404 and "no model 'nope'" in r.text
    # client
    c = srv.client("alice")
    assert [m.name for m in c.models(DS)] == ["zone"]
    assert c.model(DS, "zone").spec["output"] == "zone_temp"
    assert c.model(DS, "zone").active is None
    assert c.model_versions(DS, "zone") == []


def test_models_refused(srv: Server) -> None:
    for method, path in (
        ("GET", "/datasets/{ds}/models"),
        ("GET", "/datasets/{ds}/models/zone"),
        ("GET", "/datasets/{ds}/models/zone/versions"),
    ):
        hidden(srv, "alice", method, path)
    hidden(srv, "alice", "PUT", "/datasets/{ds}/models/zone", json=ZONE)
    r = srv.call("alice-ro", "PUT", f"/datasets/{DS}/models/zone2", json=ZONE)
    assert r.status_code == 403, r.text
    with pytest.raises(PermissionDeniedError):
        srv.client("alice-ro").save_model(DS, "z", kind="linear", output="zone_temp", inputs=["x"])
    with pytest.raises(NotFoundError):
        srv.client("bob").models(DS)
    cases = {
        "kind: 'cubic' is not a model kind": {**ZONE, "kind": "cubic"},
        "output: Field required": {k: v for k, v in ZONE.items() if k != "output"},
        "activation.metric: Input should be": {**ZONE, "activation": {"metric": "mse"}},
        "activation.margin: Input should be less than 1": {**ZONE, "activation": {"margin": 2}},
        "options: ": {**ZONE, "options": {"colour": "red"}},
        "model input 'nope' is neither a channel": {**ZONE, "inputs": ["nope"]},
    }
    for message, body in cases.items():
        status, text = error(srv.call("alice", "PUT", f"/datasets/{DS}/models/zone3", json=body))
        assert status == 422 and message in text, (message, text)
    status, text = error(srv.call("alice", "PUT", f"/datasets/{DS}/models/Bad Name", json=ZONE))
    assert status == 422 and "model name" in text
    assert [m.name for m in srv.client("alice").models(DS)] == ["zone"]


# ----------------------------------------------------------------------------- runs


def test_run_refused_before_anything_starts(srv: Server) -> None:
    runs = f"/datasets/{DS}/recalibration/runs"
    hidden(srv, "alice", "POST", "/datasets/{ds}/recalibration/runs", json=RUN)
    hidden(srv, "alice", "GET", "/datasets/{ds}/recalibration/runs")
    assert srv.call("alice-ro", "POST", runs, json=RUN).status_code == 403
    cases = {
        "parameters: recalibrate.ipynb: unknown parameter(s) modle": {
            "parameters": {"modle": "zone"}
        },
        "parameters.dataset: 'zf-oven' is not this dataset": {
            "parameters": {"model": "zone", "dataset": OTHER}
        },
        "notebook: String should match pattern": {"notebook": "../../etc/x", "parameters": {}},
        "notebook 'nope' not found": {"notebook": "nope", "parameters": {"model": "zone"}},
        "timeout_s: Input should be less than or equal to 600": {**RUN, "timeout_s": 3600},
    }
    for message, body in cases.items():
        status, text = error(srv.call("alice", "POST", runs, json=body))
        assert status == 422 and text.startswith(message), (message, text)
    assert srv.call("alice", "GET", runs).json() == []  # refused: nothing recorded


def test_real_run_end_to_end(srv: Server) -> None:
    c = srv.client("alice")
    r = srv.call("alice", "POST", f"/datasets/{DS}/recalibration/runs", json=RUN)
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"] == "queued" and run["dataset"] == DS and run["trigger"] == "api"
    assert run["notebook"] == "recalibrate.ipynb" and run["created_by"] == "alice"
    assert r.headers["location"].endswith(f"/api/datasets/{DS}/recalibration/runs/{run['id']}")
    assert run["parameters"] == {**RUN["parameters"], "dataset": DS}
    done = srv.client("alice-ro").wait_recal_run(DS, run["id"], timeout=300, poll=0.5)
    assert done.status == "succeeded", done
    assert done.model_version_id is not None and sorted(done.files) == [
        "log",
        "notebook",
        "report",
    ]
    assert "/" not in done.notebook  # no server paths in answers
    base = f"/datasets/{DS}/recalibration/runs/{run['id']}"
    # files, with the dataset's read permission (viewer)
    report = srv.call("alice-ro", "GET", base + "/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    csp = report.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp and "sandbox" in csp
    assert "<svg" in report.text and "Version 1: active" in report.text
    nb = srv.call("alice-ro", "GET", base + "/notebook")
    assert nb.status_code == 200
    assert nb.headers["content-type"] == "application/x-ipynb+json"
    assert "attachment" in nb.headers["content-disposition"]
    assert json.loads(nb.content)["nbformat"] == 4
    log = srv.call("alice-ro", "GET", base + "/log")
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert c.recal_run_file(DS, run["id"], "report") == report.content
    # the version it made, with metrics and decision
    (v1,) = c.model_versions(DS, "zone")
    assert v1.status == "active" and v1.run_id == run["id"]
    assert v1.metrics["holdout"]["cv_rmse"] < 1 and v1.reason
    active = c.model(DS, "zone").active
    assert active is not None and active.version == 1
    assert [x.id for x in c.recal_runs(DS, status="succeeded")] == [run["id"]]
    assert "recal.run.succeeded" in audit_actions(srv, "recal.run")
    # another partner, or a run of another dataset: missing
    for what in ("", "/log", "/notebook", "/report"):
        r = srv.call("bob", "GET", base + what)
        assert r.status_code == 404, r.text
        r = srv.call("bob", "GET", f"/datasets/{OTHER}/recalibration/runs/{run['id']}{what}")
        assert error(r) == (404, f"dataset {OTHER!r} has no run {run['id']}")
    assert srv.call("alice", "GET", base + "/metrics").status_code == 422
    assert srv.call("alice", "GET", f"/datasets/{DS}/recalibration/runs/x").status_code == 422


def test_run_files_only_from_the_runs_folder(srv: Server) -> None:
    table = RecalRegistry(srv.store.registry)
    rec = table.create_run(
        notebook="/etc/passwd", parameters={}, trigger="api", actor="alice", dataset_id=DS
    )
    table.update_run(
        rec.id,
        status="failed",
        outputs={"html": "/etc/passwd", "notebook": str(srv.store.settings.home / "x.ipynb")},
    )
    base = f"/datasets/{DS}/recalibration/runs/{rec.id}"
    assert error(srv.call("alice", "GET", base + "/report")) == (
        404,
        f"run {rec.id} has no report",
    )
    assert srv.call("alice", "GET", base + "/notebook").status_code == 404
    assert error(srv.call("alice", "GET", base + "/log")) == (
        404,
        f"run {rec.id} has no log (status failed)",
    )


# ----------------------------------------------------------------------------- schedules


NAME = "fersa-oven-nightly"
NIGHTLY: dict[str, Any] = {
    "name": NAME,
    "cron": "0 3 * * *",
    "parameters": {"model": "zone", "train": "1d"},
    "catch_up": "skip",
}


def test_schedules_crud(srv: Server) -> None:
    base = f"/datasets/{DS}/recalibration/schedules"
    r = srv.call("alice", "POST", base, json=NIGHTLY)
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["parameters"] == {"model": "zone", "train": "1d", "dataset": DS}
    assert s["enabled"] and s["notebook"] == "recalibrate.ipynb" and s["running_run"] is None
    assert s["next_slot"].endswith("03:00:00Z") or "T03:00:00" in s["next_slot"]
    # the same name: 409 (names are unique across datasets)
    assert error(srv.call("alice", "POST", base, json=NIGHTLY)) == (
        409,
        "a schedule named 'fersa-oven-nightly' exists already",
    )
    c = srv.client("alice")
    with pytest.raises(ConflictError):
        c.add_recal_schedule(DS, NAME, "0 4 * * *", {"model": "zone"})
    assert [x.name for x in srv.client("alice-ro").recal_schedules(DS)] == [NAME]
    one = srv.call("alice-ro", "GET", f"{base}/{NAME}")
    assert one.status_code == 200 and one.json()["cron"] == "0 3 * * *"
    # update, disable, enable
    r = srv.call("alice", "PATCH", f"{base}/{NAME}", json={"cron": "30 2 * * *"})
    assert r.status_code == 200 and r.json()["cron"] == "30 2 * * *"
    assert c.update_recal_schedule(DS, NAME, enabled=False).enabled is False
    assert c.update_recal_schedule(DS, NAME, enabled=True).enabled is True
    # while a run holds its claim: 409 to change or delete it
    table = RecalRegistry(srv.store.registry)
    assert table.claim(NAME, "test-owner")
    table.attach_run(NAME, "test-owner", 4242)  # the run holding the claim is shown
    try:
        assert [x.running_run for x in c.recal_schedules(DS)] == [4242]
        r = srv.call("alice", "PATCH", f"{base}/{NAME}", json={"timeout_s": 60})
        assert r.status_code == 409 and "is running" in r.json()["error"]["message"]
        assert srv.call("alice", "DELETE", f"{base}/{NAME}").status_code == 409
    finally:
        table.release(NAME, "test-owner")
    # disabled at creation
    r = srv.call(
        "alice", "POST", base, json={**NIGHTLY, "name": "fersa-oven-paused", "enabled": False}
    )
    assert r.status_code == 201 and r.json()["enabled"] is False
    assert srv.call("alice", "DELETE", f"{base}/fersa-oven-paused").status_code == 204
    c.delete_recal_schedule(DS, NAME)
    assert c.recal_schedules(DS) == []
    assert audit_actions(srv, "recal.schedule")[::-1] == [
        "recal.schedule.create",
        "recal.schedule.update",
        "recal.schedule.disable",
        "recal.schedule.enable",
        "recal.schedule.create",
        "recal.schedule.disable",
        "recal.schedule.delete",
        "recal.schedule.delete",
    ]


def test_schedules_refused(srv: Server) -> None:
    base = f"/datasets/{DS}/recalibration/schedules"
    theirs = {**NIGHTLY, "name": "zf-oven-nightly"}
    table = RecalRegistry(srv.store.registry)
    r = srv.call("bob", "POST", f"/datasets/{OTHER}/recalibration/schedules", json=theirs)
    assert r.status_code == 201, r.text
    hidden(srv, "alice", "GET", "/datasets/{ds}/recalibration/schedules/zf-oven-nightly")
    hidden(srv, "alice", "PATCH", "/datasets/{ds}/recalibration/schedules/zf-oven-nightly", json={})
    hidden(srv, "alice", "DELETE", "/datasets/{ds}/recalibration/schedules/zf-oven-nightly")
    hidden(srv, "alice", "POST", "/datasets/{ds}/recalibration/schedules", json=NIGHTLY)
    # bob's schedule is not alice's dataset's either
    assert error(srv.call("alice", "GET", f"{base}/zf-oven-nightly")) == (
        404,
        f"dataset {DS!r} has no schedule 'zf-oven-nightly'",
    )
    assert srv.call("alice", "GET", base).json() == []
    assert srv.call("alice-ro", "POST", base, json=NIGHTLY).status_code == 403
    assert srv.call("alice-ro", "DELETE", f"{base}/x").status_code == 403
    cases = {
        "'every day' is not a cron expression": {**NIGHTLY, "cron": "every day"},
        "catch_up: Input should be": {**NIGHTLY, "catch_up": "twice"},
        "missing required parameter 'model'": {**NIGHTLY, "parameters": {}},
        "schedule name": {**NIGHTLY, "name": "Bad Name"},
        "parameters.dataset: 'zf-oven' is not this dataset": {
            **NIGHTLY,
            "parameters": {"model": "zone", "dataset": OTHER},
        },
    }
    for message, body in cases.items():
        status, text = error(srv.call("alice", "POST", base, json=body))
        assert status == 422 and message in text, (message, text)
    # names live in the dataset's namespace, decided on the text: bob's existing schedule
    # and a name nobody has get the same answer, so creating reveals nothing
    answers = []
    for name in ("zf-oven-nightly", "zf-oven-nosuch"):
        r = srv.call("alice", "POST", base, json={**NIGHTLY, "name": name})
        answers.append((r.status_code, r.text.replace(name, "<name>")))
    assert answers[0] == answers[1] and answers[0][0] == 422, answers
    assert "schedules of dataset 'fersa-oven' are named 'fersa-oven-<name>'" in answers[0][1]
    r = srv.call("alice", "POST", base, json={**NIGHTLY, "name": "fersa-oven-mine"})
    assert r.status_code == 201
    r = srv.call("alice", "PATCH", f"{base}/fersa-oven-mine", json={"cron": None})
    assert error(r) == (422, "cron: null is not a value (leave the field out instead)")
    r = srv.call(
        "alice", "PATCH", f"{base}/fersa-oven-mine", json={"parameters": {"modle": "zone"}}
    )
    assert r.status_code == 422 and "unknown parameter(s) modle" in r.text
    assert table.schedule("fersa-oven-mine").parameters["model"] == "zone"  # nothing changed
    srv.call("alice", "DELETE", f"{base}/fersa-oven-mine")
    srv.call("bob", "DELETE", f"/datasets/{OTHER}/recalibration/schedules/zf-oven-nightly")


def test_run_schedule_now(srv: Server) -> None:
    """`stream0d recal run --schedule` over the API: the schedule's own notebook and
    parameters, through its claim (409 while it runs), executed like POST .../runs."""
    if not srv.client("alice").models(DS):
        test_models_create_update_show_versions(srv)  # the model the notebook fits
    base = f"/datasets/{DS}/recalibration/schedules"
    now = "fersa-oven-now"
    mine = {**NIGHTLY, "name": now, "parameters": RUN["parameters"], "timeout_s": 300}
    assert srv.call("alice", "POST", base, json=mine).status_code == 201
    theirs = {**NIGHTLY, "name": "zf-oven-now"}
    r = srv.call("bob", "POST", f"/datasets/{OTHER}/recalibration/schedules", json=theirs)
    assert r.status_code == 201, r.text
    table = RecalRegistry(srv.store.registry)
    runs_before = table.runs(None, None, None, 1000)
    # refused before anything starts: viewer 403; another partner's dataset, a schedule of
    # another dataset and an unknown one look missing; a running schedule is 409
    assert srv.call("alice-ro", "POST", f"{base}/{now}/run").status_code == 403
    with pytest.raises(PermissionDeniedError):
        srv.client("alice-ro").run_recal_schedule(DS, now)
    hidden(srv, "alice", "POST", "/datasets/{ds}/recalibration/schedules/zf-oven-now/run")
    assert srv.call("bob", "POST", f"{base}/{now}/run").status_code == 404
    with pytest.raises(NotFoundError):
        srv.client("bob").run_recal_schedule(DS, now)
    for name in ("zf-oven-now", "fersa-oven-nosuch"):
        assert error(srv.call("alice", "POST", f"{base}/{name}/run")) == (
            404,
            f"dataset {DS!r} has no schedule {name!r}",
        )
    assert table.claim(now, "test-owner")
    try:
        assert error(srv.call("alice", "POST", f"{base}/{now}/run")) == (
            409,
            f"schedule {now!r} is running already (claimed by test-owner)",
        )
        with pytest.raises(ConflictError):
            srv.client("alice").run_recal_schedule(DS, now)
        # a queued run renews its claim when it starts, unless it was taken over
        assert table.renew(now, "test-owner") and not table.renew(now, "someone-else")
    finally:
        table.release(now, "test-owner")
    assert table.runs(None, None, None, 1000) == runs_before  # nothing recorded
    # the editor: 202 with the queued run, which holds the schedule's claim until it ends
    r = srv.call("alice", "POST", f"{base}/{now}/run")
    assert r.status_code == 202, r.text
    run = r.json()
    sched = table.schedule(now)
    assert run["status"] == "queued" and run["trigger"] == f"manual:{now}"
    assert run["schedule_id"] == sched.id and run["scheduled_for"] is None
    assert run["dataset"] == DS and run["created_by"] == "alice"
    assert run["notebook"] == "recalibrate.ipynb"
    assert run["parameters"] == {**RUN["parameters"], "dataset": DS} == sched.parameters
    assert r.headers["location"].endswith(f"/api/datasets/{DS}/recalibration/runs/{run['id']}")
    done = srv.client("alice-ro").wait_recal_run(DS, run["id"], timeout=300, poll=0.5)
    assert done.status == "succeeded", done
    assert done.parameters == sched.parameters and done.trigger == f"manual:{now}"
    assert done.model_version_id is not None and "report" in done.files
    after = table.schedule(now)
    assert after.claimed_by is None and after.claim_run_id is None  # released
    assert after.last_fired_for == sched.last_fired_for  # its cron slots did not move
    (entry,) = [
        e
        for e in srv.store.registry.audit_log(DS)
        if e.action.startswith("recal.run.") and e.detail.get("run") == run["id"]
    ]
    assert entry.action == "recal.run.succeeded" and entry.actor == "alice"
    assert entry.detail["trigger"] == f"manual:{now}"
    # the client: the same, once the first run has ended
    again = srv.client("alice").run_recal_schedule(DS, now)
    assert again.id != run["id"] and again.trigger == f"manual:{now}"
    done = srv.client("alice").wait_recal_run(DS, again.id, timeout=300, poll=0.5)
    assert done.status == "succeeded" and done.parameters == sched.parameters, done
    srv.call("alice", "DELETE", f"{base}/{now}")
    srv.call("bob", "DELETE", f"/datasets/{OTHER}/recalibration/schedules/zf-oven-now")


# ----------------------------------------------------------------------------- drift

DAY = pd.Timedelta("1D")
DRIFT = END - 2 * DAY  # oven_frame's insulation starts to degrade here


def utc(t: pd.Timestamp | None) -> pd.Timestamp | None:
    """A drift report's time (naive UTC) as an aware one, as the API answers it."""
    return None if t is None else t.tz_localize("UTC")


def test_model_drift(srv: Server) -> None:
    c = srv.client("alice")
    c.save_model(DS, "drifty", **{k: v for k, v in ZONE.items() if k != "activation"})
    base = f"/datasets/{DS}/models/drifty/drift"
    assert error(srv.call("alice", "GET", base)) == (
        422,
        f"model 'drifty' of {DS!r} has no active version yet",
    )
    # the first version in-process, on the days before the drift: then drift is checked
    # from the end of its hold-out window (DRIFT) to the end of the data
    rc = Recalibration(srv.store)
    done = rc.recalibrate(DS, "drifty", (END - 7 * DAY, END - 5 * DAY), (END - 5 * DAY, DRIFT))
    assert done.activated
    # defaults, by the viewer: the same as `stream0d recal drift` in-process
    r = srv.call("alice-ro", "GET", base)
    assert r.status_code == 200, r.text
    body = r.json()
    want = rc.check_drift(DS, "drifty")
    assert want.drifted and want.first_alarm is not None
    assert body["drifted"] is True and body["version"] == 1 and body["model"] == "drifty"
    assert body["dataset"] == DS and body["window"] == "1h" and body["cv_threshold"] == 30
    assert (body["delta"], body["threshold"]) == (0.5, 50)
    assert pd.Timestamp(body["start"]) == DRIFT and pd.Timestamp(body["end"]) == END
    for key in ("cv_rmse_alarm", "sequential_alarm", "first_alarm"):
        got = body[key] and pd.Timestamp(body[key])
        assert got == utc(getattr(want, key)), (key, body[key])
    assert DRIFT < pd.Timestamp(body["first_alarm"]) < END
    # the CLI's flags as query parameters, through the client
    flags: dict[str, Any] = {"window": "2h", "cv_threshold": 1.0, "delta": 0.2, "threshold": 200}
    got = srv.client("alice-ro").model_drift(DS, "drifty", **flags)
    want = rc.check_drift(DS, "drifty", **flags)
    assert (got.cv_rmse_alarm, got.sequential_alarm, got.first_alarm) == tuple(
        map(utc, (want.cv_rmse_alarm, want.sequential_alarm, want.first_alarm))
    )
    assert got.drifted and got.window == "2h" and got.threshold == 200
    # over a chosen range: the hold-out window itself shows no drift
    held = c.model_drift(DS, "drifty", start=END - 5 * DAY, end=DRIFT)
    assert rc.check_drift(DS, "drifty", END - 5 * DAY, DRIFT).drifted is False
    assert held.drifted is False and held.first_alarm is None
    assert (held.start, held.end) == (END - 5 * DAY, DRIFT)
    # refused: another partner's dataset looks missing, an unknown model is 404, the
    # settings are checked as query parameters
    hidden(srv, "alice", "GET", "/datasets/{ds}/models/drifty/drift")
    assert srv.call("bob", "GET", base).status_code == 404
    with pytest.raises(NotFoundError):
        srv.client("bob").model_drift(DS, "drifty")
    status, text = error(srv.call("alice", "GET", f"/datasets/{DS}/models/nope/drift"))
    assert status == 404 and text.startswith(f"dataset {DS!r} has no model 'nope'"), text
    cases = {
        "query.threshold: Input should be greater than 0": {"threshold": 0},
        "query.delta: Input should be greater than or equal to 0": {"delta": -1},
        "query.cv_threshold: Input should be greater than 0": {"cv_threshold": -5},
        "query.start: Input should be a valid datetime": {"start": "yesterday"},
        "window": {"window": "often"},
    }
    for message, params in cases.items():
        status, text = error(srv.call("alice", "GET", base, params=params))
        assert status == 422 and text.startswith(message), (message, text)


def test_model_residual_alert_rule(srv: Server) -> None:
    """`stream0d recal alert` is a model_residual rule saved through POST .../alerts: the
    same AlertRule and AlertService.add_rule, so the same checks, audit and answers."""
    if RecalRegistry(srv.store.registry).active_version(DS, "drifty") is None:
        test_model_drift(srv)  # the residual channel the rule watches
    rule = {
        "name": "drifty-bias",
        "kind": "model_residual",
        "model": "drifty",
        "window": "2h",
        "bias": 1.5,
        "for": "10min",
        "severity": "major",
    }
    base = f"/datasets/{DS}/alerts"
    hidden(srv, "alice", "POST", "/datasets/{ds}/alerts", json=rule)
    assert srv.call("alice-ro", "POST", base, json=rule).status_code == 403
    cases = {
        "a model_residual rule needs 'cv_rmse' and/or 'bias'": {**rule, "bias": None},
        "unknown channel 'nope.residual'": {**rule, "model": "nope"},
        "model name": {**rule, "model": "Bad Model"},
    }
    for message, body in cases.items():
        status, text = error(srv.call("alice", "POST", base, json=body))
        assert status == 422 and message in text, (message, text)
    r = srv.call("alice", "POST", base, json=rule)
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["kind"] == "model_residual" and saved["model"] == "drifty"
    assert saved["bias"] == 1.5 and saved["for_duration"] == "10min"
    got = srv.client("alice-ro").alert_rule(DS, "drifty-bias")
    assert got.kind == "model_residual" and got.series_names(None) == ["drifty.residual"]
    # the client's add_alert_rule takes it too (the CLI adds nothing to the rule)
    c = srv.client("alice")
    cv = c.add_alert_rule(
        DS, {**rule, "name": "drifty-cv", "bias": None, "cv_rmse": 5, "units": "K"}
    )
    assert cv.cv_rmse == 5 and cv.units == "K"
    assert [e.action for e in srv.store.registry.audit_log(DS) if e.action.startswith("alert.")][
        :2
    ] == ["alert.create", "alert.create"]
    preview = srv.call(
        "alice-ro",
        "POST",
        f"{base}/preview",
        json={"rule": rule, "start": str(END - 5 * DAY), "end": str(END)},
    )
    assert preview.status_code == 200, preview.text
    episodes = preview.json()["episodes"]
    assert episodes and DRIFT < pd.Timestamp(episodes[0]["start"]) < END
    for name in ("drifty-bias", "drifty-cv"):
        c.delete_alert_rule(DS, name)
