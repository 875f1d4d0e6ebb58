"""Recalibration on a real store: versions, the activation rule, model channels, drift alerts.

The data is the demo oven (1 min, 7 days, a first-order zone; its insulation degrades
over the last 2 days: ``loss`` +3 K/day). Measured here: the first calibration on the
undrifted days recovers gain/tau/delay/loss within 0.03 % (noise 0.2 K; asserted:
0.2 %); a ``model_residual`` bias rule (|2 h mean residual| > 1.5 K) fires 13 h 24 min
after the drift starts (a CV(RMSE) > 1 % rule in K alone: 33 h), Page–Hinkley on the
residuals (delta 0.2 K, lambda 200) alarms after 9 h 28 min (asserted: both within
24 h, never before the drift).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream0d_nb import derived
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.db.recal_tables import RecalRegistry
from stream0d_nb.demo import OVEN, OVEN_TRUTH, oven_frame
from stream0d_nb.errors import ValidationError
from stream0d_nb.recalibration.models import FirstOrderThermalModel, LinearRegressionModel
from stream0d_nb.recalibration.service import Activation, Recalibration, channel_names
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store

END = pd.Timestamp("2026-11-20", tz="UTC")
DRIFT = END - pd.Timedelta("2D")
DAY = pd.Timedelta("1D")


def _zone() -> FirstOrderThermalModel:
    return FirstOrderThermalModel(
        ["heater_power", "ambient_temp"], "zone_temp", initial={"gain": 3.0, "tau": 600.0}
    )


@pytest.fixture(scope="module")
def oven(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Recalibration]]:
    home = tmp_path_factory.mktemp("oven")
    st = Store(Settings(home=home))
    st.create_dataset(OVEN)
    st.write(OVEN.id, oven_frame(END))
    rc = Recalibration(st)
    st.add_write_hook(rc.after_write)
    rc.define_model(OVEN.id, "zone", _zone())
    try:
        yield st, rc
    finally:
        st.close()


def test_activation_rule_better_activates_worse_is_rejected_but_recorded(
    oven: tuple[Store, Recalibration],
) -> None:
    st, rc = oven
    before = st.data(OVEN.id).snapshot().id
    first = rc.recalibrate(OVEN.id, "zone", (END - 7 * DAY, END - 5 * DAY), (END - 5 * DAY, DRIFT))
    assert first.activated and first.version.version == 1
    for k, v in OVEN_TRUTH.items():
        assert first.result.params[k] == pytest.approx(v, rel=2e-3), k
    assert first.version.snapshot == before  # the data it read; materialising came after
    # after the drift: a version trained on the drifted day beats v1 on the last day
    newer = rc.recalibrate(
        OVEN.id, "zone", (END - 2 * DAY, END - DAY), (END - DAY, END), trigger="drift"
    )
    assert newer.activated, newer.version.reason
    assert newer.active_holdout is not None
    assert newer.result.holdout.cv_rmse < newer.active_holdout.cv_rmse
    # a candidate trained before the drift is worse on the last day: rejected, recorded
    worse = rc.recalibrate(OVEN.id, "zone", (END - 7 * DAY, END - 5 * DAY), (END - DAY, END))
    assert not worse.activated and worse.version.status == "rejected"
    assert "does not beat" in worse.version.reason
    table = RecalRegistry(st.registry)
    versions = table.versions(OVEN.id, "zone")
    assert [(v.version, v.status) for v in versions] == [
        (3, "rejected"),
        (2, "active"),
        (1, "retired"),
    ]
    assert (
        versions[0].metrics["holdout"]["cv_rmse"] > versions[0].metrics["active_holdout"]["cv_rmse"]
    )
    assert versions[1].trigger == "drift"
    actions = [e.action for e in st.registry.audit_log(OVEN.id, limit=200)]
    assert actions.count("recal.version.activate") == 2
    assert actions.count("recal.version.reject") == 1


def test_activation_rule_options() -> None:
    a = {"cv_rmse": 10.0, "rmse": 1.0, "mae": 1.0, "nmbe": -4.0, "r2": 0.80}
    c = {"cv_rmse": 9.6, "rmse": 0.9, "mae": 1.1, "nmbe": 2.0, "r2": 0.85}
    assert Activation().decide(c, a, accepted=True)[0]
    assert not Activation(margin=0.05).decide(c, a, accepted=True)[0]  # needs < 9.5
    assert not Activation(metric="mae").decide(c, a, accepted=True)[0]
    assert Activation(metric="abs_nmbe").decide(c, a, accepted=True)[0]
    assert Activation(metric="r2", margin=0.05).decide(c, a, accepted=True)[0]
    assert not Activation(require_acceptance=True).decide(c, None, accepted=False)[0]
    assert Activation().decide(c, None, accepted=False)[0]  # first version
    assert not Activation().decide({**c, "cv_rmse": float("nan")}, None, accepted=True)[0]
    with pytest.raises(ValidationError, match="margin"):
        Activation(margin=1.5)
    with pytest.raises(ValidationError, match="metric"):
        Activation(metric="aic")  # type: ignore[arg-type]


def test_predictions_and_residuals_read_like_channels(oven: tuple[Store, Recalibration]) -> None:
    st, rc = oven
    if RecalRegistry(st.registry).active_version(OVEN.id, "zone") is None:
        rc.recalibrate(OVEN.id, "zone", (END - 7 * DAY, END - 5 * DAY), (END - 5 * DAY, DRIFT))
    p_name, r_name = channel_names("zone")
    ds = st.read(OVEN.id, ["zone_temp", p_name, r_name], END - DAY, END)
    resid = ds[r_name].to_numpy()
    assert np.nanmax(np.abs(ds["zone_temp"] - ds[p_name] - resid)) < 1e-9
    assert ds[r_name].attrs["units"] == "delta_degC" and ds[p_name].attrs["units"] == "degC"
    tags = {c.name: c.tags for c in st.registry.list_channels(OVEN.id)}
    assert "model" in tags[p_name] and "model" in tags[r_name]
    # formulas and derived reads use them like any channel
    mean = derived.evaluate_text(st, OVEN.id, f'rolling_mean({{{r_name}}}, "1h")', END - DAY, END)
    assert np.isfinite(mean.values[60:]).all()
    # computed on the fly (no storage): the same once the warm-up (5 tau) has settled the
    # state, which the whole-data simulation carried in (e^-5 of the start error: < 0.05 K)
    live = rc.predictions(OVEN.id, "zone", END - DAY, END)
    assert np.allclose(live[r_name].values, resid, atol=0.05)


def test_after_write_refreshes_model_channels(oven: tuple[Store, Recalibration]) -> None:
    st, rc = oven
    if RecalRegistry(st.registry).active_version(OVEN.id, "zone") is None:
        rc.recalibrate(OVEN.id, "zone", (END - 7 * DAY, END - 5 * DAY), (END - 5 * DAY, DRIFT))
    nxt = oven_frame(END + pd.Timedelta("6h"), days=1, drift_from=None).loc[END:]
    st.write(OVEN.id, nxt)
    _, r_name = channel_names("zone")
    ds = st.read(OVEN.id, [r_name], END, END + pd.Timedelta("6h"))
    assert np.isfinite(ds[r_name].values).sum() >= 350


def test_model_residual_rule_fires_after_drift_and_drift_triggers_recalibration(
    tmp_path: Path,
) -> None:
    st = Store(Settings(home=tmp_path))
    st.create_dataset(OVEN)
    st.write(OVEN.id, oven_frame(END))
    rc = Recalibration(st)
    rc.define_model(OVEN.id, "zone", _zone())
    first = rc.recalibrate(OVEN.id, "zone", (END - 7 * DAY, END - 5 * DAY), (END - 5 * DAY, DRIFT))
    assert first.activated
    alerts = AlertService(st)
    rule = AlertRule(
        name="zone-model-drift",
        kind="model_residual",
        model="zone",
        window="2h",
        bias=1.5,
        cv_rmse=1.0,
        units="K",
        severity="major",
    )
    alerts.add_rule(OVEN.id, rule)
    episodes = alerts.backfill(OVEN.id, END - 5 * DAY, END).episodes
    assert episodes, "the drift was not detected"
    first_alarm = pd.Timestamp(episodes[0].start, unit="ns", tz="UTC")
    assert DRIFT < first_alarm < DRIFT + DAY, first_alarm
    # the sequential test on the residuals says the same, and a recalibration follows
    report = rc.check_drift(
        OVEN.id, "zone", window="2h", cv_threshold=1.0, delta=0.2, threshold=200
    )
    assert report.drifted and report.first_alarm is not None
    assert DRIFT.tz_convert(None) < report.first_alarm < (DRIFT + DAY).tz_convert(None)
    newer = rc.recalibrate(
        OVEN.id, "zone", (END - 2 * DAY, END - DAY), (END - DAY, END), trigger="drift"
    )
    assert newer.activated
    st.close()


def test_model_residual_rule_validation() -> None:
    with pytest.raises(ValueError, match="cv_rmse' and/or 'bias"):
        AlertRule(name="r", kind="model_residual", model="zone", window="1h")
    with pytest.raises(ValueError, match="does not apply"):
        AlertRule(
            name="r", kind="model_residual", model="zone", window="1h", bias=1, channels=["x"]
        )
    rule = AlertRule(name="r", kind="model_residual", model="zone", window="1h", cv_rmse=20)
    assert rule.series_names(None) == ["zone.residual"]
    text = rule.condition_formula("zone.residual")
    assert "{zone.predicted}" in text and "> 20.0" in text


def test_define_model_checks_inputs(oven: tuple[Store, Recalibration]) -> None:
    _, rc = oven
    with pytest.raises(ValidationError, match="neither a channel"):
        rc.define_model(OVEN.id, "bad", LinearRegressionModel(["nope"], "zone_temp"))
    with pytest.raises(ValidationError, match="lowercase slug"):
        rc.define_model(OVEN.id, "Bad Name", _zone())
    rec = rc.define_model(
        OVEN.id,
        "zone-lin",
        LinearRegressionModel(["heater_power", "ambient_temp - 20"], "zone_temp"),
    )
    assert rec.kind == "linear"
