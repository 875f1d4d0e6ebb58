"""Backfill of default rules on real NAB data: episode precision and window recall
against the labelled windows, and a no-data rule on the ambient temperature gaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stream0d_nb.alerts import AlertRule, evaluate_rules
from stream0d_nb.alerts.scoring import nab_scores
from stream0d_nb.specs import parse_duration_ns

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
pytestmark = pytest.mark.skipif(
    not (NAB / "combined_windows.json").exists(), reason=f"NAB data folder {NAB} is absent"
)
H = 3600 * 10**9


def load(name: str, interval: str) -> tuple[xr.DataArray, int]:
    """A NAB CSV on its grid (duplicated timestamps: the last wins, as ``--duplicates last``)."""
    df = pd.read_csv(NAB / name)
    t = pd.to_datetime(df["timestamp"]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    s = pd.Series(df["value"].to_numpy(dtype=float), index=t)
    s = s[~s.index.duplicated(keep="last")]
    g = parse_duration_ns(interval)
    assert (s.index.to_numpy() % g == 0).all()
    i = s.index.to_numpy() // g
    v = np.full(int(i.max() - i.min() + 1), np.nan)
    v[i - i.min()] = s.to_numpy()
    times = ((np.arange(v.size) + i.min()) * g).astype("datetime64[ns]")
    return xr.DataArray(v, dims="time", coords={"time": times}, attrs={"units": "degF"}), g


def windows(name: str) -> list[tuple[int, int]]:
    data = json.loads((NAB / "combined_windows.json").read_text())
    return [
        (pd.Timestamp(a).value, pd.Timestamp(b).value) for a, b in data[f"realKnownCause/{name}"]
    ]


def span(da: xr.DataArray, g: int) -> tuple[int, int]:
    t = da["time"].values.astype("datetime64[ns]").astype(np.int64)
    return int(t[0]), int(t[-1]) + g


DEFAULT_RULES = [
    # a sudden excursion against the last day: robust enough for a slow machine
    AlertRule(name="spike", kind="spike", channels="T", window="1d", k=6, for_duration="10min"),
    # the machine running cold for half an hour; clears once back above 60 degF
    AlertRule(
        name="cold",
        kind="threshold",
        channels="T",
        op="<",
        value=50,
        for_duration="30min",
        clear_above=60,
    ),
    # a fast drift: more than 1.5 degF per minute over 15 minutes
    AlertRule(
        name="drift", kind="rate_of_change", channels="T", limit=1.5, per="min", window="15min"
    ),
]


def test_machine_temperature_backfill_scores() -> None:
    name = "machine_temperature_system_failure.csv"
    t, g = load(name, "5min")
    assert int((~np.isnan(t.values)).sum()) == 22_695 - 12  # the repeated hour: 12 rows
    start, end = span(t, g)
    res = evaluate_rules(DEFAULT_RULES, {"T": t}, start, end, g)
    per_rule = {}
    for r in DEFAULT_RULES:
        eps = [e for e in res.episodes if e.rule == r.name]
        per_rule[r.name] = nab_scores(eps, windows(name), end)
    total = nab_scores(res.episodes, windows(name), end)
    for k, s in [*per_rule.items(), ("all", total)]:
        print(f"NAB {name} {k:6}: {s.episodes} episodes, precision {s.precision:.2f}, "
              f"recall {s.recall:.2f} ({s.detected}/{s.windows} windows)")  # fmt: skip
    # floors: the four windows are the system failure and its precursors; the cold
    # threshold and the spike rule each catch two of them, together three, and most
    # episodes fall in windows (measured: 11 episodes, precision 0.73, recall 0.75)
    assert total.recall >= 0.75
    assert total.precision >= 0.7
    assert per_rule["spike"].precision == 1.0 and per_rule["drift"].precision >= 0.7


def test_ambient_temperature_no_data_episodes_are_the_gaps() -> None:
    name = "ambient_temperature_system_failure.csv"
    t, g = load(name, "1h")
    assert g == H
    start, end = span(t, g)
    rule = AlertRule(name="silent", kind="no_data", channels="T", window="6h", severity="major")
    res = evaluate_rules([rule], {"T": t}, start, end, g)
    # expected from the raw timestamps: a gap between samples a and b longer than 6 h
    # fires at a + 6 h and ends at b
    raw = pd.to_datetime(pd.read_csv(NAB / name)["timestamp"]).to_numpy()
    ts = raw.astype("datetime64[ns]").astype(np.int64)
    steps = np.diff(ts)
    assert int((steps > H).sum()) == 10 and steps.max() > 7 * 24 * H
    long = np.flatnonzero(steps > 6 * H)
    expected = [(int(ts[i]) + 6 * H, int(ts[i + 1])) for i in long]
    got = [(e.start, e.end) for e in res.episodes]
    assert got == expected
    assert all(e.severity == "major" for e in res.episodes)
    print(f"NAB {name}: {len(got)} no-data episodes (gaps > 6 h), longest "
          f"{max(b - a for a, b in expected) / H:.0f} h after the 6 h wait")  # fmt: skip
    # all ten gaps with a 1-hour deadman (a gap of two samples is > 1 h of silence)
    short = AlertRule(name="silent1h", kind="no_data", channels="T", window="1h")
    assert len(evaluate_rules([short], {"T": t}, start, end, g).episodes) == 10
