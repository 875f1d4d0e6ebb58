"""Benchmark of the alert engine: 1,000 rules over 100 channels x 1 day of 1 Hz.

Mix of kinds (threshold, rate of change, no data, flatline, spike z-score, missing share,
formula), evaluated over the whole day (cold: formulas compiled; warm: cached), then
live: the day up to its last minute with state, and the last minute alone (with the
rules' look-back), which is what runs after a 1-minute ingest. Goal: day <= 2 s.

    .venv/bin/python bench/bench_alerts.py [--channels 100] [--rules 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xarray as xr

from stream0d_nb.alerts import AlertRule, Transition, evaluate_rules, lookback_ns
from stream0d_nb.alerts.engine import _compile

S = 10**9
DAY = 86_400 * S
T0 = 1_700_006_400 * S  # a UTC midnight


def make_data(channels: int, lookback: int) -> xr.Dataset:
    """Random walks with gaps and stuck stretches, from ``T0 - lookback`` to the day end."""
    rng = np.random.default_rng(0)
    n = (DAY + lookback) // S
    times = (T0 - lookback + np.arange(n, dtype=np.int64) * S).astype("datetime64[ns]")
    out = {}
    for i in range(channels):
        v = 50 + np.cumsum(rng.normal(0, 0.05, n))
        v[rng.integers(0, n, 20)] += rng.normal(0, 5, 20)  # spikes
        for g in rng.integers(0, n - 900, 3):
            v[g : g + rng.integers(10, 900)] = np.nan  # gaps
        s = int(rng.integers(0, n - 600))
        v[s : s + 400] = v[s]  # stuck
        out[f"c{i:03d}"] = xr.DataArray(v, dims="time", attrs={"units": "degC"})
    return xr.Dataset(out, coords={"time": times})


def make_rules(channels: int, count: int) -> list[AlertRule]:
    """``count`` rules cycling over kinds and channels."""
    kinds = [
        {"kind": "threshold", "op": ">", "value": 55.0, "for_duration": "30s", "clear_below": 54},
        {"kind": "threshold", "op": "outside", "low": 40.0, "high": 60.0},
        {"kind": "rate_of_change", "limit": 1.0},
        {"kind": "no_data", "window": "5min"},
        {"kind": "flatline", "window": "2min"},
        {"kind": "spike", "window": "10min", "k": 6.0, "for_duration": "0s"},
        {"kind": "missing_share", "window": "10min", "min_good": 90.0},
        {"kind": "threshold", "op": "<", "value": 45.0, "for_duration": "1min"},
        {"kind": "rate_of_change", "limit": 20.0, "per": "min", "window": "1min"},
        {"kind": "formula"},
    ]
    rules = []
    for j in range(count):
        c = f"c{j % channels:03d}"
        spec = dict(kinds[(j // channels) % len(kinds)])
        if spec["kind"] == "formula":
            spec["formula"] = f'{{{c}}} > 52 and rolling_mean({{{c}}}, "1min") > 51'
        else:
            spec["channels"] = [c]
        rules.append(AlertRule.model_validate({"name": f"r{j}", **spec}))
    return rules


def timed(fn: object, repeat: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=100)
    p.add_argument("--rules", type=int, default=1000)
    a = p.parse_args()
    rules = make_rules(a.channels, a.rules)
    units = {f"c{i:03d}": "degC" for i in range(a.channels)}
    lb = max(lookback_ns(r, units, S) for r in rules)
    ds = make_data(a.channels, lb)
    end, minute = T0 + DAY, 60 * S
    _compile.cache_clear()
    t = time.perf_counter()
    full = evaluate_rules(rules, ds, T0, end, S)
    cold = time.perf_counter() - t
    warm, full = timed(lambda: evaluate_rules(rules, ds, T0, end, S))
    prior = evaluate_rules(rules, ds, T0, end - minute, S)
    i0 = int((end - minute - lb - (T0 - lb)) // S)
    tail = ds.isel(time=slice(i0, None))  # the new minute plus the look-back
    inc, last = timed(
        lambda: evaluate_rules(rules, tail, end - minute, end, S, state=prior.state), 5
    )

    def key(ts: list[Transition]) -> list[tuple[str, str, int, str, str]]:
        return sorted((t.rule, t.series, t.at, t.from_state, t.to_state) for t in ts)

    assert key(last.transitions) == key([t for t in full.transitions if t.at >= end - minute])  # type: ignore[attr-defined]
    n_samples = a.channels * DAY // S
    rows = [
        ("full day, cold (compile + evaluate)", cold),
        ("full day, warm (formulas cached)", warm),
        ("last minute with state (after a 1-min ingest)", inc),
    ]
    print(f"{a.rules} rules over {a.channels} channels x 1 day at 1 Hz ({n_samples:,} samples);")
    print(
        f"look-back {lb // S} s; {len(full.episodes):,} episodes, {len(full.transitions):,} transitions"
    )  # type: ignore[attr-defined]
    print(f"| {'evaluation':46} | {'seconds':>8} | {'per rule':>9} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 11}|")
    for name, sec in rows:
        print(f"| {name:46} | {sec:8.3f} | {sec / a.rules * 1e3:6.3f} ms |")
    print(f"1 minute vs 1 day: {inc / warm:.3f} of the time (data ratio {minute / DAY:.4f}; "
          f"the minute reads {lb // S + 60} s of data per channel). Goal day <= 2 s: "
          f"{'met' if warm <= 2 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
