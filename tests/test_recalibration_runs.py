"""Papermill runs through the runner: success, failing cell, refused parameters, time limit,
outputs on Azure (Azurite). The light ``tests/notebooks/probe.ipynb`` keeps each run at
about one kernel start (~1.5 s here); the real recalibration notebook runs in the CLI test.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from stream0d_nb.db.alert_tables import AlertRegistry
from stream0d_nb.db.recal_tables import RecalRegistry
from stream0d_nb.errors import ValidationError
from stream0d_nb.recalibration.runner import (
    ALERT_NAME,
    check_parameters,
    notebook_parameters,
    run_notebook,
)
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec
from stream0d_nb.store import Store
from tests.servers import AzuriteServer

PROBE = Path(__file__).with_name("notebooks") / "probe.ipynb"
RECAL = Path(__file__).resolve().parents[1] / "recalibration_runs" / "recalibrate.ipynb"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = Store(Settings(home=tmp_path_factory.mktemp("runs")))
    st.create_dataset(DatasetSpec(id="probe-line", interval="1s"))
    return st


def test_parameters_are_checked_before_anything_starts(store: Store) -> None:
    declared = notebook_parameters(PROBE)
    assert declared["dataset"]["type"] == "str" and declared["dataset"]["default"] is None
    assert declared["value"] == {
        "type": "float",
        "default": 1.0,
        "help": "reported back in the metrics",
    }
    check_parameters(PROBE, {"dataset": "x", "value": 2})  # an int is a fine float
    cases = {
        "unknown parameter(s) colour": {"dataset": "x", "colour": "red"},
        "missing required parameter 'dataset'": {"value": 2.0},
        "parameter 'value' must be float, not str": {"dataset": "x", "value": "high"},
        "parameter 'fail' must be bool, not int": {"dataset": "x", "fail": 1},
        "set by the runner": {"dataset": "x", "run_id": 3},
    }
    for message, params in cases.items():
        with pytest.raises(ValidationError, match=re.escape(message)):
            run_notebook(store, PROBE, params)
    with pytest.raises(ValidationError, match="unknown parameter"):
        check_parameters(RECAL, {"dataset": "d", "model": "m", "windows": 3})
    with pytest.raises(ValidationError, match="not found"):
        run_notebook(store, PROBE.with_name("nope.ipynb"), {})
    assert RecalRegistry(store.registry).runs() == []  # refused: nothing ran, nothing recorded


def test_success_keeps_notebook_report_and_metrics(store: Store) -> None:
    res = run_notebook(store, PROBE, {"dataset": "probe-line", "value": 4.5}, timeout_s=60)
    run = res.run
    assert res.ok and run.status == "succeeded" and run.error_message is None
    assert run.duration_s is not None and 0 < run.duration_s < 60
    assert run.snapshot == "probe-snapshot" and run.metrics["value"] == 4.5
    assert run.parameters == {"dataset": "probe-line", "value": 4.5}
    out_nb, html, metrics = (Path(run.outputs[k]) for k in ("notebook", "html", "metrics"))
    assert (
        out_nb.parent
        == store.settings.home.resolve() / "recalibration_runs" / f"{run.id:06d}-probe"
    )
    nb = json.loads(out_nb.read_text())
    assert any(
        "value is 4.5" in "".join(o.get("text", ""))
        for c in nb["cells"]
        for o in c.get("outputs", [])
    )
    page = html.read_text()
    assert "value is 4.5" in page and "time.sleep" not in page  # outputs without code
    assert "cdnjs" not in page and '<script src=""' not in page  # renders offline
    assert json.loads(metrics.read_text())["run"]["status"] == "succeeded"
    assert Path(run.outputs["kernel_log"]).is_file()  # the kernel's own stderr, not ours
    assert AlertRegistry(store.registry).events("probe-line", rule=ALERT_NAME) == []


def test_failing_cell_is_recorded_kept_and_alerted(store: Store) -> None:
    res = run_notebook(store, PROBE, {"dataset": "probe-line", "fail": True, "value": 7.0})
    run = res.run
    assert run.status == "failed" and not res.ok
    # index in the saved notebook, where papermill adds an error banner at the top and an
    # anchor before the failing cell: banner, markdown, parameters, injected, sleep, anchor
    assert run.error_cell == 6
    assert run.error_name == "RuntimeError"
    assert run.error_message == "probe failed on purpose with value=7.0"
    nb = json.loads(Path(run.outputs["notebook"]).read_text())
    assert nb["cells"][run.error_cell]["outputs"][0]["ename"] == "RuntimeError"
    assert Path(run.outputs["html"]).is_file()
    events = AlertRegistry(store.registry).events("probe-line", rule=ALERT_NAME)
    assert len(events) == 1 and events[0].to_state == "firing"
    assert events[0].detail["run"] == run.id and "in cell 6" in events[0].detail["description"]
    audit = store.registry.audit_log("probe-line", action="recal.run.failed")
    assert audit and audit[0].detail["run"] == run.id


def test_time_limit_stops_the_run_and_keeps_its_notebook(store: Store) -> None:
    res = run_notebook(
        store, PROBE, {"dataset": "probe-line", "sleep": 60.0}, timeout_s=3, alert=False
    )
    run = res.run
    assert run.status == "timed_out"
    assert run.duration_s is not None and 2.5 < run.duration_s < 20
    assert run.error_cell == 3 and "time limit of 3 s" in (run.error_message or "")
    assert Path(run.outputs["notebook"]).is_file()


@pytest.mark.slow
def test_outputs_go_to_azure_when_the_store_is_there(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    container = azurite.container("recal-runs")
    settings = Settings(
        home=tmp_path,
        storage_url=f"az://{container}/platform",
        azure_account=azurite.account,
        azure_key=azurite.key,
        azure_endpoint=azurite.endpoint,
    )
    st = Store(settings)
    res = run_notebook(st, PROBE, {"dataset": "remote-line"}, timeout_s=60)
    assert res.ok, res.run.error_message
    prefix = f"az://{container}/platform/recalibration_runs/{res.run.id:06d}-probe/"
    assert res.run.outputs == {
        "notebook": prefix + "probe.ipynb",
        "html": prefix + "probe.html",
        "metrics": prefix + "metrics.json",
        "kernel_log": prefix + "kernel.log",
    }
    with azurite.blob_service() as service:
        cc = service.get_container_client(container)
        blob = f"platform/recalibration_runs/{res.run.id:06d}-probe/metrics.json"
        assert json.loads(cc.download_blob(blob).readall())["value"] == 1.0
        html = cc.get_blob_client(blob.replace("metrics.json", "probe.html"))
        assert html.get_blob_properties().content_settings.content_type == "text/html"
    assert not (tmp_path / "recalibration_runs").exists()
    st.close()


def test_run_whose_process_is_killed_ends_as_abandoned(tmp_path: Path) -> None:
    """A run's process killed with SIGKILL leaves it 'running'; once its time limit plus the
    grace has passed, listing runs (or the scheduler's concurrency count) ends it as failed
    'Abandoned', so it can never hold a concurrency slot forever. The grace is set to 0
    in both processes here, instead of 5 minutes."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import timedelta

    from stream0d_nb.db import recal_tables

    home = tmp_path / "home"
    with Store(Settings(home=home)) as st:
        st.create_dataset(DatasetSpec(id="probe-line", interval="1s"))
    child = textwrap.dedent(
        f"""
        from datetime import timedelta
        from stream0d_nb.db import recal_tables
        recal_tables.CLAIM_GRACE = timedelta(0)
        from stream0d_nb.recalibration.runner import run_notebook
        from stream0d_nb.settings import Settings
        from stream0d_nb.store import Store
        st = Store(Settings(home={str(home)!r}))
        run_notebook(st, {str(PROBE)!r}, {{"dataset": "probe-line", "sleep": 60.0}},
                     timeout_s=4, alert=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], start_new_session=True)
    try:
        with Store(Settings(home=home)) as st:
            table = RecalRegistry(st.registry)
            give_up = time.monotonic() + 60
            while not (runs := table.runs()) or runs[0].status != "running":
                assert time.monotonic() < give_up, "the run never started"
                assert proc.poll() is None, "the child process ended early"
                time.sleep(0.2)
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel
            proc.wait(10)
            run = runs[0]
            assert run.deadline is not None and run.started_at is not None
            assert run.deadline - run.started_at == timedelta(seconds=4)
            assert table.run(run.id).status == "running"  # its time limit has not passed
            time.sleep(max((run.deadline - recal_tables.utcnow()).total_seconds(), 0) + 0.5)
            assert table.count_running() == 0
            ended = table.run(run.id)
            assert ended.status == "failed" and ended.error_name == "Abandoned"
            assert "stopped without finishing" in (ended.error_message or "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
