"""``stream0d recal`` round trip, as a new user does it: a model, a run of the real
recalibration notebook with its HTML report, versions, schedules, runs; errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stream0d_nb.demo import OVEN, oven_frame
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store
from tests.conftest import CliRun

END = pd.Timestamp("2026-11-20", tz="UTC")


def test_recal_round_trip(cli: CliRun, tmp_path: Path) -> None:
    with Store(Settings(home=tmp_path)) as st:
        st.create_dataset(OVEN)
        st.write(OVEN.id, oven_frame(END))
    code, out, err = cli(
        "recal", "model", "add", OVEN.id, "zone",
        "--kind", "first_order_thermal", "--output", "zone_temp",
        "--input", "heater_power", "--input", "ambient_temp",
        "-o", 'initial={"gain": 3, "tau": 600}', "--margin", "0.02",
    )  # fmt: skip
    assert code == 0, err
    assert "model zone of lab-oven-1: first_order_thermal zone_temp <- heater_power" in out
    # the real notebook, end of hold-out before the drift
    code, out, err = cli(
        "recal", "run", "recalibrate",
        "-p", f"dataset={OVEN.id}", "-p", "model=zone", "-p", "end=2026-11-18", "-p", "train=1d",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("run 1: succeeded in ") and "model version id 1" in out
    html = Path(out.split("html: ")[1].split()[0])
    assert html.is_file() and html.parent.parent == tmp_path.resolve() / "recalibration_runs"
    page = html.read_text()
    assert "<svg" in page and "cv_rmse" in page and "Version 1: active" in page
    assert "rc.recalibrate(" not in page  # no code in the report
    code, out, _ = cli("recal", "versions", OVEN.id, "zone", "--json")
    (v1,) = json.loads(out)
    assert v1["status"] == "active" and v1["trigger"] == "notebook (run 1)"
    assert v1["run_id"] == 1 and v1["metrics"]["holdout"]["cv_rmse"] < 1
    code, out, _ = cli("recal", "show", "1")
    assert "run 1: succeeded" in out and "decision:   version 1 active" in out
    code, out, _ = cli("recal", "model", "list")
    assert "zone" in out and "v1" in out
    # the process drifted after the hold-out window: the residuals say so, an alert watches them
    code, out, err = cli(
        "recal", "drift", OVEN.id, "zone",
        "--window", "2h", "--cv-threshold", "1", "--delta", "0.2", "--threshold", "200",
    )  # fmt: skip
    assert code == 0, err
    assert "lab-oven-1/zone: drift from 2026-11-18" in out
    code, out, err = cli(
        "recal", "alert", OVEN.id, "zone", "zone-drift", "--window", "2h", "--bias", "1.5"
    )
    assert code == 0, err
    assert "alert rule zone-drift on lab-oven-1: abs(rolling_mean({zone.residual}" in out
    code, out, _ = cli("alerts", "backfill", OVEN.id)
    assert code == 0 and "zone-drift" in out
    # bad parameters: refused before start, one line, exit 1
    code, out, err = cli("recal", "run", "-p", f"dataset={OVEN.id}", "-p", "modle=zone")
    assert code == 1 and "unknown parameter(s) modle" in err and "Traceback" not in err
    code, _, err = cli("recal", "run", "nope.ipynb")
    assert code == 1 and "notebook 'nope.ipynb' not found" in err
    # schedules
    code, out, err = cli(
        "recal", "schedule", "add", "oven-nightly", "--cron", "0 3 * * *",
        "-p", f"dataset={OVEN.id}", "-p", "model=zone", "--catch-up", "skip",
    )  # fmt: skip
    assert code == 0, err
    assert "schedule oven-nightly: '0 3 * * *'" in out and "next at" in out
    code, _, err = cli("recal", "schedule", "add", "x", "--cron", "0 3 * * *", "-p", "model=zone")
    assert code == 1 and "missing required parameter 'dataset'" in err
    code, out, _ = cli("recal", "schedule", "list", "--json")
    assert [s["name"] for s in json.loads(out)] == ["oven-nightly"]
    code, out, _ = cli("recal", "runs", "--json")
    assert [r["status"] for r in json.loads(out)] == ["succeeded"]
    code, _, err = cli("recal", "schedule", "remove", "oven-nightly")
    assert code == 1 and "--confirm oven-nightly" in err
    code, out, _ = cli("recal", "schedule", "remove", "oven-nightly", "--confirm", "oven-nightly")
    assert code == 0 and "removed schedule oven-nightly" in out
    code, _, err = cli("recal", "show", "99")
    assert code == 1 and "no run with id 99" in err
