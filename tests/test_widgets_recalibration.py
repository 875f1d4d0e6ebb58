"""The Recalibration screen driven without a browser, against a real API over HTTP with
real tokens, and real notebook runs (``recalibration_runs/recalibrate.ipynb`` executed
by papermill in the API's run threads, as tests/test_api_recalibration.py does).

Seats: alice (fersa, write: editor of ``fersa-oven``), alice's read-level token
(viewer), bob (zf: owner-partner of ``zf-oven``, sees nothing of fersa's).
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import panel as pn
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import Client, PermissionDeniedError
from stream0d_nb.demo import OVEN, oven_frame
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store
from stream0d_nb.widgets.recal_views import REPORT_CSP, report_frame
from stream0d_nb.widgets.recalibration import Recalibration
from tests.api_servers import ApiOverHttp

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
}
DS, OTHER = "fersa-oven", "zf-oven"
END = pd.Timestamp("2026-11-20", tz="UTC")
ZONE = {
    "kind": "first_order_thermal",
    "output": "zone_temp",
    "inputs": ["heater_power", "ambient_temp"],
    "options": {"initial": {"gain": 3, "tau": 600}},
    "activation": {"metric": "cv_rmse", "margin": 0.02},
}
RUN_WAIT = 300.0  # the time limit of the runs below


class Server(ApiOverHttp):
    """One oven per partner, each with the model ``zone`` saved through the API."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        frame = oven_frame(END)
        for ds, partner in ((DS, "fersa"), (OTHER, "zf")):
            store.create_dataset(OVEN.model_copy(update={"id": ds, "partner": partner}))
            store.write(ds, frame)
        super().__init__(store, USERS)
        self.tokens["alice-ro"] = self.token("alice", "read")
        for who, ds in (("alice", DS), ("bob", OTHER)):
            with self.client(who) as c:
                c.save_model(ds, "zone", **ZONE)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("widgets-recal") / "home")
    yield s
    s.stop()


@pytest.fixture
def alice(srv: Server) -> Iterator[Client]:
    with srv.client("alice") as c:
        yield c


def form(screen: Recalibration, **values: object) -> None:
    """The run form as a person fills it (the oven's data end on 2026-11-20)."""
    filled: dict[str, object] = {"model": "zone", "train": "1d", "end": "2026-11-18"}
    screen.param.update({**filled, "timeout_s": 300, **values})


def test_a_viewer_sees_but_cannot_start_and_another_partner_sees_nothing(
    srv: Server, alice: Client
) -> None:
    runs_before = alice.recal_runs(DS)
    with srv.client("alice-ro") as ro:
        screen = Recalibration(ro)
        assert screen.dataset == DS and not screen.can_edit
        assert screen.viewer_note.visible and "<b>viewer</b>" in screen.viewer_note.object
        assert screen.model == "zone" and "first_order_thermal" in screen.models_pane.object
        form(screen)
        screen.start_run()  # the form is hidden from viewers; forced, the API refuses
        assert screen.status.state == "error"
        assert screen.status.error.startswith("Starting recalibrate on fersa-oven failed: ")
        with pytest.raises(PermissionDeniedError) as refused:
            ro.start_recal_run(DS, {"model": "zone"})
        assert str(refused.value) in screen.status.error  # the API's own message
        assert not screen.following and not screen.follower.running
        screen.schedule_name = "sneaky"
        screen.add_schedule()
        assert "Adding schedule fersa-oven-sneaky failed" in screen.status.error
    assert alice.recal_runs(DS) == runs_before and alice.recal_schedules(DS) == []
    with srv.client("bob") as bob:
        theirs = Recalibration(bob)
        assert theirs.param.dataset.objects == [OTHER] and theirs.can_edit  # positive control
        assert theirs.model == "zone"
        theirs.param.dataset.objects = [OTHER, DS]  # forced in bob's own kernel
        theirs.dataset = DS
        assert theirs.status.state == "error" and f"no dataset '{DS}'" in theirs.status.error
        assert theirs.models == [] and theirs.runs == []


def test_a_run_is_followed_on_the_event_loop_to_its_report(alice: Client) -> None:
    screen = Recalibration(alice, poll_s=0.5)
    assert screen.can_edit and not screen.viewer_note.visible
    assert "none yet" in screen.models_pane.object
    form(screen)
    assert screen.run_parameters() == {"model": "zone", "train": "1d", "end": "2026-11-18"}

    async def kernel() -> list[tuple[str, str]]:
        """As in a kernel: the cell returns at once, the loop keeps turning."""
        screen.start_run()
        seen = [(screen.runs_pane.object, screen.status.message)]
        deadline = time.monotonic() + RUN_WAIT
        while screen.following:
            assert time.monotonic() < deadline, screen.status.text()
            await asyncio.sleep(0.1)  # the loop is free: the run goes on elsewhere
            seen.append((screen.runs_pane.object, screen.status.message))
        return seen

    seen = asyncio.run(kernel())
    assert screen.follower.mode == "periodic callback" and screen.follower.ticks >= 1
    first_table, first_message = seen[0]  # the run may have left the queue already
    assert ("… queued" in first_table or "… running" in first_table) and "Run " in first_message
    # while it ran, the table and the status line said so, with the time so far
    running = [(t, m) for t, m in seen if "… running" in t]
    assert running and all("s so far</td>" in t for t, _ in running)
    assert any(m.startswith("Run ") and " is running (" in m for _, m in running)
    assert screen.status.state == "ready", screen.status.error
    (run,) = alice.recal_runs(DS, status="succeeded")
    assert screen.status.message == f"Run {run.id} succeeded in {run.duration_s:.1f} s."
    assert screen.run == run.id and run.duration_s is not None
    row = screen.runs_pane.object.split(f"<tr><td>{run.id}</td>")[1].split("</tr>")[0]
    assert "● succeeded" in row and f"<td>{run.duration_s:.1f} s</td>" in row
    assert "#1a7f37" in row  # state as text and colour
    assert "Run " + str(run.id) in screen.run_pane.object and "no cell" not in row
    # the report, in a frame that runs no script and acts as nobody
    frame = screen.report_pane.object
    assert frame.startswith('<iframe title="Report of run') and ' sandbox="" ' in frame
    assert "allow-" not in frame.split("srcdoc=")[0]
    doc = html.unescape(frame.split('srcdoc="')[1].split('" style=')[0])
    assert REPORT_CSP in doc and "<svg" in doc and "Version 1: active" in doc
    assert doc.encode() != alice.recal_run_file(DS, run.id, "report")  # only the CSP added
    assert doc.replace(
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">', ""
    ) == (alice.recal_run_file(DS, run.id, "report").decode())
    # the version it made, with its metrics and decision
    (v1,) = alice.model_versions(DS, "zone")
    assert v1.status == "active" and v1.run_id == run.id
    assert "<td>v1</td><td><span" in screen.versions_pane.object
    assert "● active" in screen.versions_pane.object and v1.reason in html.unescape(
        screen.versions_pane.object
    )
    assert f"{v1.metrics['holdout']['cv_rmse']:.4g}" in screen.versions_pane.object
    assert "<td>v1</td>" in screen.models_pane.object  # the model's active version


def test_a_failing_run_shows_its_failing_cell(alice: Client) -> None:
    screen = Recalibration(alice, poll_s=0.5)
    form(screen, end="2019-01-01")  # years before the oven's data: the fit cannot run
    screen.start_run()
    assert screen.follower.mode == "thread"  # no event loop in this test: a thread follows
    screen.follower.join(RUN_WAIT)
    assert not screen.following and not screen.follower.running
    (run,) = alice.recal_runs(DS, status="failed")
    assert run.error_cell is not None and run.error_name
    assert screen.status.state == "error"
    assert screen.status.error.startswith(f"Run {run.id} failed at cell {run.error_cell}: ")
    assert run.error_name in screen.status.error
    row = screen.runs_pane.object.split(f"<tr><td>{run.id}</td>")[1].split("</tr>")[0]
    assert "✖ failed" in row and f"cell {run.error_cell}: {run.error_name}" in row
    detail = screen.run_pane.object
    assert f"Failed at cell {run.error_cell}" in detail
    nb = json.loads(alice.recal_run_file(DS, run.id, "notebook"))
    source = "".join(nb["cells"][run.error_cell]["source"])
    assert html.escape(source) in detail and 'aria-label="source of the failing cell"' in detail
    # another choice and back; the banner stays until an action succeeds
    screen.run = None
    assert screen.run_pane.object == "" and screen.status.state == "error"
    screen.run = run.id
    assert f"Failed at cell {run.error_cell}" in screen.run_pane.object
    assert screen.status.state == "ready"


def test_schedules_add_pause_edit_run_now_delete(srv: Server, alice: Client) -> None:
    screen = Recalibration(alice, poll_s=0.5)
    form(screen)
    screen.schedule_name, screen.cron, screen.catch_up = "nightly", "0 3 * * *", "skip"
    screen.add_schedule()
    assert screen.status.state == "ready", screen.status.error
    name = f"{DS}-nightly"
    (s,) = alice.recal_schedules(DS)
    assert (s.name, s.cron, s.catch_up, s.enabled) == (name, "0 3 * * *", "skip", True)
    assert s.parameters == {"model": "zone", "train": "1d", "end": "2026-11-18", "dataset": DS}
    assert screen.schedule == name and "● enabled" in screen.schedules_pane.object
    screen.toggle_schedule()
    assert alice.recal_schedules(DS)[0].enabled is False
    assert "○ paused" in screen.schedules_pane.object and "is paused" in screen.status.message
    screen.cron, screen.train = "30 2 * * *", "2d"
    screen.update_schedule()
    (s,) = alice.recal_schedules(DS)
    assert s.cron == "30 2 * * *" and "train" not in s.parameters  # 2d: the default
    screen.cron = "every night"
    screen.update_schedule()
    assert screen.status.state == "error" and "is not a cron expression" in screen.status.error
    assert alice.recal_schedules(DS)[0].cron == "30 2 * * *"
    screen.toggle_schedule()
    # run now: the schedule's own notebook and parameters, followed to the end
    before = {r.id for r in alice.recal_runs(DS)}
    screen.run_schedule_now()
    assert screen.status.state == "ready", screen.status.error
    screen.follower.join(RUN_WAIT)
    (run,) = [r for r in alice.recal_runs(DS) if r.id not in before]
    assert run.trigger == f"manual:{name}" and run.status == "succeeded", run
    assert screen.run == run.id and f"Run {run.id} succeeded" in screen.status.message
    # delete asks first
    screen.ask_delete_schedule()
    assert screen.pending_delete == name and "Confirm or cancel" in screen.status.message
    screen.cancel_delete_schedule()
    assert len(alice.recal_schedules(DS)) == 1
    screen.ask_delete_schedule()
    screen.confirm_delete_schedule()
    assert alice.recal_schedules(DS) == [] and screen.param.schedule.objects == [""]
    assert "no schedules" in screen.schedules_pane.object
    screen.toggle_schedule()
    assert "choose a schedule first" in screen.status.error
    audit = [e.action for e in srv.store.registry.audit_log(DS, limit=1000)]
    assert {"recal.schedule.create", "recal.schedule.disable", "recal.schedule.delete"} <= set(
        audit
    )


def test_code_labels_and_report_frame(alice: Client) -> None:
    screen = Recalibration(alice)
    form(screen, extra='{"every": "5min"}')
    assert screen.run_parameters()["every"] == "5min"
    screen.extra = "[1, 2]"
    with pytest.raises(ValueError, match="give a JSON object"):
        screen.run_parameters()
    screen.start_run()
    assert "Other parameters: give a JSON object" in screen.status.error
    screen.extra = ""
    screen.show_code = True
    code = screen.code.object
    assert screen.code.visible and "client.models('fersa-oven')" in code
    assert "client.model_versions('fersa-oven', 'zone')" in code
    assert "client.start_recal_run('fersa-oven', {'model': 'zone', 'train': '1d'" in code
    body = code.split("```python\n")[1].split("```")[0]
    scope: dict[str, object] = {"CLIENT": alice}
    exec(body.replace("Client.from_env()", "CLIENT"), scope)  # the shown code runs as is
    layout = screen.__panel__()
    assert isinstance(layout, pn.Row)
    controls = [
        w
        for w in _walk(layout)
        if isinstance(w, pn.widgets.Widget)
        and not isinstance(w, pn.widgets.Button | pn.widgets.indicators.Indicator)
    ]
    assert len(controls) >= 16 and all(w.name.strip() for w in controls), [
        type(w).__name__ for w in controls if not w.name.strip()
    ]
    assert all(b.label.strip() for b in _walk(layout) if isinstance(b, pn.widgets.Button))
    # a report's own scripts and links stay inert: sandboxed, and its CSP loads nothing
    evil = b"<html><head><title>r</title></head><body><script>parent.x=1</script></body></html>"
    frame = report_frame(evil, 'run "7"')
    assert 'title="run &quot;7&quot;"' in frame and ' sandbox="" ' in frame
    assert "<script>" not in frame and "&lt;script&gt;" in frame
    doc = html.unescape(frame.split('srcdoc="')[1].split('" style=')[0])
    assert doc.index("Content-Security-Policy") < doc.index("<title>")
    assert "script-src 'none'" in REPORT_CSP and "default-src 'none'" in REPORT_CSP


def _walk(obj: object) -> Iterator[object]:
    """Every panel object in a layout, depth first."""
    yield obj
    for child in getattr(obj, "objects", None) or []:
        yield from _walk(child)
