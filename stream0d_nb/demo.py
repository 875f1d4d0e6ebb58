"""The demo behind ``make run``: two partners' production lines plus one real recording.

The generator makes plausible 1 s process data: shifts with start-up ramps and night
stops, first-order heated zones, a pressure that follows screw speed, a slow drift (heater
ageing, grinding-wheel wear) and a sensor dropout. Each day is seeded by its date, so
running the demo again on the same day changes nothing (idempotent ingest) and running it
a day later appends the new day.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape

from stream0d_nb import derived
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.errors import IngestError
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec, IngestOptions
from stream0d_nb.store import Store

DAY_S = 86_400


@dataclass(frozen=True)
class Line:
    """A demo production line: dataset spec and the generator of one day of its data."""

    spec: DatasetSpec
    kind: str


LINES = (
    Line(
        DatasetSpec(
            id="fersa-grinding-1",
            interval="1s",
            tz="Europe/Madrid",
            partner="fersa",
            title="Bearing ring grinding line 1",
            description="Generated demo data: spindle, motor current, coolant, vibration (wheel wear drift).",
            channels=[
                ChannelSpec(
                    name="spindle_speed", units="rpm", description="Grinding spindle speed"
                ),
                ChannelSpec(name="motor_current", units="A", description="Spindle motor current"),
                ChannelSpec(
                    name="coolant_temp", units="degC", description="Coolant return temperature"
                ),
                ChannelSpec(
                    name="vibration_rms",
                    units="mm/s",
                    description="Spindle vibration RMS",
                    tags=["condition"],
                ),
                ChannelSpec(
                    name="infeed_pressure", units="bar", description="Hydraulic infeed pressure"
                ),
            ],
        ),
        "grinding",
    ),
    Line(
        DatasetSpec(
            id="zf-extrusion-2",
            interval="1s",
            tz="Europe/Berlin",
            partner="zf",
            title="Rubber profile extrusion line 2",
            description="Generated demo data: barrel zones, melt pressure, screw and line speed; "
            "zone 3 heater ageing drift and a melt-pressure sensor dropout.",
            channels=[
                ChannelSpec(name="screw_speed", units="rpm"),
                ChannelSpec(name="line_speed", units="m/min"),
                ChannelSpec(name="zone1_temp", units="degC", tags=["barrel"]),
                ChannelSpec(name="zone2_temp", units="degC", tags=["barrel"]),
                ChannelSpec(name="zone3_temp", units="degC", tags=["barrel"]),
                ChannelSpec(name="melt_pressure", units="bar"),
            ],
        ),
        "extrusion",
    ),
)


FORMULAS: dict[str, tuple[FormulaSpec, ...]] = {
    "zf-extrusion-2": (
        FormulaSpec(
            name="zone_spread",
            formula="zone3_temp - zone1_temp",
            description="Barrel temperature spread: grows as the zone 3 heater ages",
        ),
        FormulaSpec(
            name="pressure_per_rpm",
            formula="melt_pressure / max(screw_speed, 1 rpm)",
            description="Melt pressure per screw revolution speed",
        ),
    ),
    "fersa-grinding-1": (
        FormulaSpec(
            name="vibration_1h",
            formula='rolling_mean(vibration_rms, "1h")',
            description="Hourly mean vibration: the wheel-wear trend",
        ),
    ),
}


RULES: dict[str, tuple[AlertRule, ...]] = {
    "zf-extrusion-2": (
        AlertRule(
            name="melt-pressure-spike",
            kind="spike",
            channels=["melt_pressure"],
            window="10min",
            k=6,
            severity="minor",
            description="Melt pressure jumps far outside its recent spread",
        ),
        AlertRule(
            name="melt-pressure-dropout",
            kind="missing_share",
            channels=["melt_pressure"],
            window="10min",
            min_good=90,
            severity="major",
            description="The melt pressure sensor stopped reporting",
        ),
    ),
    "fersa-grinding-1": (
        AlertRule(
            name="vibration-high",
            kind="threshold",
            channels=["vibration_rms"],
            op=">",
            value=1.6,
            for_duration="10min",
            clear_below=1.3,
            severity="major",
            description="Grinding wheel worn: dress it",
            labels={"area": "grinding"},
        ),
    ),
}


def _running(t_local: pd.DatetimeIndex) -> np.ndarray:
    """1.0 while the line runs (weekdays 06:00-22:00 local, with 10-minute ramps), else 0..1."""
    hours = (
        t_local.hour.to_numpy() + t_local.minute.to_numpy() / 60 + t_local.second.to_numpy() / 3600
    )
    weekday = t_local.weekday.to_numpy() < 5
    up = np.clip((hours - 6.0) * 6, 0, 1)
    down = np.clip((22.0 - hours) * 6, 0, 1)
    return np.where(weekday, np.minimum(up, down), 0.0)


def _first_order(u: np.ndarray, tau_s: float, y0: float) -> np.ndarray:
    """Discrete first-order lag of ``u`` (1 s steps), vectorised via an exponential filter."""
    a = float(np.exp(-1.0 / tau_s))
    y = np.empty_like(u)
    prev = y0
    for i, ui in enumerate(u.tolist()):
        prev = a * prev + (1 - a) * ui
        y[i] = prev
    return y


def day_frame(line: Line, day: pd.Timestamp) -> pd.DataFrame:
    """One day (UTC) of 1 s data for ``line``, deterministic for that day."""
    rng = np.random.default_rng([day.date().toordinal(), *map(ord, line.spec.id)])
    t = pd.date_range(day, periods=DAY_S, freq="1s", tz="UTC")
    run = _running(t.tz_convert(line.spec.tz))
    age = (day - pd.Timestamp("2026-01-01", tz="UTC")).days + t.hour.to_numpy() / 24
    n = DAY_S
    if line.kind == "grinding":
        speed = run * 3000 + rng.normal(0, 4, n) * (run > 0)
        wear = (age % 5) / 5  # wheel dressed every 5 days
        vib = 0.6 + 1.4 * wear * run + np.abs(rng.normal(0, 0.08, n))
        current = 2.0 + 9.0 * run + 1.5 * wear * run + rng.normal(0, 0.2, n)
        coolant = _first_order(20 + 8 * run, 1800, 21.0) + rng.normal(0, 0.05, n)
        infeed = np.where(run > 0.5, 42 + rng.normal(0, 0.6, n), 2 + rng.normal(0, 0.1, n))
        cols = {
            "spindle_speed": speed,
            "motor_current": current,
            "coolant_temp": coolant,
            "vibration_rms": vib,
            "infeed_pressure": infeed,
        }
    else:
        screw = run * 45 + rng.normal(0, 0.3, n) * (run > 0)
        heat = 0.35 + 0.65 * np.maximum(run, 0.3)
        drift = 0.5 * age / 30  # zone 3 heater ageing: +0.5 degC a month
        zones = [
            _first_order(20 + (sp - 20) * heat, tau, sp * 0.8) + rng.normal(0, 0.15, n)
            for sp, tau in ((80, 900), (95, 1100), (110, 1300))
        ]
        zones[2] = zones[2] + drift
        pressure = 20 + 160 * run + 1.5 * (screw - 45) * (run > 0) + rng.normal(0, 1.2, n)
        spikes = rng.random(n) < 3e-5
        pressure[spikes] += rng.normal(25, 5, spikes.sum())
        if day.dayofyear % 3 == 0:  # melt-pressure sensor dropout, 20 minutes
            pressure[10 * 3600 : 10 * 3600 + 1200] = np.nan
        cols = {
            "screw_speed": screw,
            "line_speed": screw * 0.18 + rng.normal(0, 0.01, n),
            "zone1_temp": zones[0],
            "zone2_temp": zones[1],
            "zone3_temp": zones[2],
            "melt_pressure": pressure,
        }
    return pd.DataFrame({k: np.round(v, 3) for k, v in cols.items()}, index=t)


OVEN = DatasetSpec(
    id="lab-oven-1",
    interval="1min",
    tz="UTC",
    partner="lab",
    title="Curing oven zone 1 (recalibration demo)",
    description="Generated demo data: heater power, ambient and zone temperature of a "
    "first-order heated zone whose insulation degrades (loss grows) over the last days.",
    channels=[
        ChannelSpec(name="heater_power", units="kW", description="Zone heater power"),
        ChannelSpec(name="ambient_temp", units="degC", description="Hall temperature"),
        ChannelSpec(name="zone_temp", units="degC", description="Zone air temperature"),
    ],
)
OVEN_TRUTH = {"gain": 6.0, "tau": 1800.0, "delay": 120.0, "loss": 4.0}


def oven_frame(
    end: pd.Timestamp, days: int = 7, drift_from: int | None = 2, seed: int = 7
) -> pd.DataFrame:
    """``days`` of 1 min oven data ending at ``end``: heater steps, the zone simulated.

    From ``drift_from`` days before ``end`` the insulation degrades: ``loss`` rises by
    3 K per day (the process drifts, so the model must follow it).
    """
    from stream0d_nb.recalibration.models import FirstOrderThermalModel

    n = days * 1440
    rng = np.random.default_rng(seed)
    idx = pd.date_range(end - pd.Timedelta(days=days), periods=n, freq="1min", tz="UTC")
    ends = rng.integers(20, 90, size=n // 20 + 1).cumsum()
    u = np.zeros(n)
    for lo, hi in zip(np.r_[0, ends[:-1]], ends, strict=True):
        u[lo:hi] = rng.uniform(5, 25)
    amb = 22 + 3 * np.sin(np.arange(n) * 2 * np.pi / 1440)
    model = FirstOrderThermalModel(["heater_power", "ambient_temp"], "zone_temp")
    df = pd.DataFrame({"heater_power": u, "ambient_temp": amb}, index=idx)
    loss = np.full(n, OVEN_TRUTH["loss"])
    if drift_from is not None:
        k0 = max(n - drift_from * 1440, 0)
        loss[k0:] += 3.0 * np.arange(n - k0) / 1440
    # the simulation with a time-varying loss: loss enters the forcing linearly
    base = model.predict(df, {**OVEN_TRUTH, "loss": 0.0}).to_numpy()
    a = float(np.exp(-60.0 / OVEN_TRUTH["tau"]))
    lagged = np.empty(n)
    acc = loss[0]
    for i, v in enumerate(loss.tolist()):
        acc = a * acc + (1 - a) * v if i else v
        lagged[i] = acc
    zone = base - lagged + rng.normal(0, 0.2, n)
    return pd.DataFrame(
        {"heater_power": np.round(u, 3), "ambient_temp": np.round(amb, 3), "zone_temp": zone},
        index=idx,
    )


def find_data_dir(explicit: Path | None = None) -> Path | None:
    """The shared folder of real recordings: explicit, ./../shared/data, or beside the repo."""
    for cand in (
        explicit,
        Path.cwd() / ".." / "shared" / "data",
        Path(__file__).resolve().parents[2] / "shared" / "data",
    ):
        if cand is not None and (cand / "nab").is_dir():
            return cand.resolve()
    return None


OVEN_SCHEDULE = "lab-oven-nightly"


def recalibration_demo(store: Store, out: Console) -> str | None:
    """The oven: a model, a drift alert on its residuals, a nightly schedule and one run.

    The first version is calibrated in-process on the days before the drift; the run of
    ``recalibration_runs/recalibrate.ipynb`` then recalibrates on the latest (drifted)
    days and activates a new version when it beats the active one. Returns the report.
    """
    from stream0d_nb.recalibration.models import FirstOrderThermalModel
    from stream0d_nb.recalibration.runner import run_notebook
    from stream0d_nb.recalibration.scheduler import add_schedule, resolve_notebook
    from stream0d_nb.recalibration.service import Recalibration

    rc = Recalibration(store)  # the store follows writes (hooks.follow_writes): no hook here
    end = pd.Timestamp.now(tz="UTC").floor("D")
    if OVEN.id not in {r.spec.id for r in store.list_datasets()}:
        store.create_dataset(OVEN, actor="demo")
    rep = store.write(OVEN.id, oven_frame(end), actor="demo", source="generator:oven")
    model = FirstOrderThermalModel(
        ["heater_power", "ambient_temp"], "zone_temp", initial={"gain": 3.0, "tau": 600.0}
    )
    rc.define_model(OVEN.id, "zone", model, actor="demo")
    day = pd.Timedelta("1D")
    if rc.table.active_version(OVEN.id, "zone") is None:
        rc.recalibrate(
            OVEN.id,
            "zone",
            (end - 7 * day, end - 5 * day),
            (end - 5 * day, end - 2 * day),
            trigger="demo: before the drift",
            actor="demo",
        )
    alerts = AlertService(store)
    alerts.add_rule(
        OVEN.id,
        AlertRule(
            name="zone-model-drift",
            kind="model_residual",
            model="zone",
            window="2h",
            bias=1.5,
            severity="major",
            description="The oven zone no longer follows its model: recalibrate or inspect",
        ),
        actor="demo",
    )
    params = {"dataset": OVEN.id, "model": "zone", "train": "1d", "holdout": "1d"}
    if OVEN_SCHEDULE not in {s.name for s in rc.table.schedules()}:
        add_schedule(
            store, OVEN_SCHEDULE, "0 3 * * *", "recalibrate", params, catch_up="once", actor="demo"
        )
    written = f"{rep.values_written:,} values written" if not rep.unchanged else "no new values"
    out.print(
        f"[bold]{OVEN.id}[/] (lab): {written}; model zone, schedule {OVEN_SCHEDULE} (03:00 UTC)",
        markup=True,
    )
    res = run_notebook(
        store, resolve_notebook("recalibrate"), params, trigger="demo", actor="demo", timeout_s=300
    )
    run = res.run
    if not res.ok:
        out.print(f"  recalibration run {run.id} {run.status}: {run.error_message}")
        return run.outputs.get("html")
    m = run.metrics
    out.print(
        f"  recalibration run {run.id} ({run.duration_s:.1f} s): version {m.get('version')} "
        f"{m.get('status')} - {m.get('reason')}"
    )
    report = run.outputs.get("html")
    out.print(f"  report: {report}")
    return report


def run_demo(store: Store, out: Console, data_dir: Path | None = None, days: int = 7) -> None:
    """Create (or top up) the demo datasets and print what is stored and where to go next."""
    end = pd.Timestamp.now(tz="UTC").floor("D")
    existing = {r.spec.id for r in store.list_datasets()}
    for line in LINES:
        if line.spec.id not in existing:
            store.create_dataset(line.spec, actor="demo")
        frames = [day_frame(line, end - pd.Timedelta(days=d)) for d in range(days, 0, -1)]
        rep = store.write(
            line.spec.id, pd.concat(frames), actor="demo", source=f"generator:{line.kind}"
        )
        state = "unchanged" if rep.unchanged else f"commit {rep.commit}"
        out.print(
            f"[bold]{line.spec.id}[/] ({line.spec.partner}): {rep.values_written:,} values written, "
            f"{len(rep.channels)} channels, {rep.gaps} gaps - {state}",
            markup=True,
        )
        for spec in FORMULAS.get(line.spec.id, ()):
            derived.save_formula(store, line.spec.id, spec, actor="demo")
        alerts = AlertService(store)
        for rule in RULES.get(line.spec.id, ()):
            alerts.add_rule(line.spec.id, rule, actor="demo")
        episodes = alerts.backfill(line.spec.id).episodes
        live = alerts.run(line.spec.id)
        counts = ", ".join(
            f"{r.name} {sum(e.rule == r.name for e in episodes)}"
            for r in RULES.get(line.spec.id, ())
        )
        out.print(
            f"  alert episodes over the data: {counts}; {len(live)} new live events "
            f"(stream0d alerts events {line.spec.id})"
        )
    report = recalibration_demo(store, out)
    real = find_data_dir(data_dir)
    nab_id = "nab-machine-temp"
    if real is None:
        out.print(
            "[yellow]../shared/data not found: skipping the real NAB recording[/]", markup=True
        )
    else:
        path = real / "nab" / "machine_temperature_system_failure.csv"
        if nab_id not in existing:
            store.create_dataset(
                DatasetSpec(
                    id=nab_id,
                    interval="5min",
                    tz="UTC",
                    partner="lab",
                    title="NAB machine temperature (real recording)",
                    description="Numenta Anomaly Benchmark: internal component temperature of a large "
                    "industrial machine; units not published.",
                ),
                actor="demo",
            )
        opts = IngestOptions(units={"value": "1"})
        try:
            store.ingest(nab_id, path, opts, actor="demo")
        except IngestError as exc:
            first = str(exc).splitlines()[0]
            out.print(
                f"[bold]{nab_id}[/]: default policy refused the file, as it should:\n  {escape(first)}",
                markup=True,
            )
        rep = store.ingest(
            nab_id, path, opts.model_copy(update={"duplicates": "last"}), actor="demo"
        )
        state = "unchanged" if rep.unchanged else f"commit {rep.commit}"
        out.print(
            f"[bold]{nab_id}[/] with --duplicates last: {rep.rows_read:,} rows, "
            f"{rep.duplicates_resolved} duplicates resolved, {rep.gaps} gaps"
            + (f" (longest {rep.longest_gap})" if rep.longest_gap else "")
            + f" - {state}",
            markup=True,
        )
    out.print()
    out.print("[bold]Stored now[/] (home: " + str(store.settings.home.resolve()) + ")", markup=True)
    for rec in store.list_datasets():
        s = store.summary(rec.spec.id)
        span = (
            f"{s['start']:%Y-%m-%d %H:%M} .. {s['end']:%Y-%m-%d %H:%M} UTC"
            if s["start"] is not None
            else "empty"
        )
        out.print(
            f"  {rec.spec.id:<20} {rec.spec.partner:<6} {rec.spec.interval:>5}  "
            f"{len(s['channels'])} channels  {span}  {s['commits']} commits"
        )
    first = LINES[1].spec.id
    out.print()
    out.print("[bold]Where to look next[/]", markup=True)
    for cmd in (
        f"stream0d dataset show {first}",
        f"stream0d read {first} --channels zone3_temp,melt_pressure --every 1h --how mean",
        f"stream0d formula list {first}",
        f"stream0d alerts list {first}",
        f"stream0d alerts backfill {first}",
        f"stream0d read {first} --channels zone_spread --every 1h",
        f"stream0d history {first}",
        f"stream0d export {first} {first}.parquet --every 1min",
        f"stream0d recal versions {OVEN.id} zone",
        "stream0d recal runs",
        "stream0d recal schedule list",
        "stream0d --help   (every command has --help)",
    ):
        out.print(f"  .venv/bin/{cmd}")
    if report:
        out.print(f"  open the recalibration report: {report}")
