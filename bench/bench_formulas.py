"""Benchmark: formulas vs hand-written pandas/numpy on a month of 1 Hz x 20 channels.

Two workloads, each checked for equal results and timed (median of ``--repeat`` runs):

* ``per channel``: for each of the 20 channels,
  ``resample(rolling_mean({c} * 2 + 1, "1h") - {c}, "15min", "mean")``;
* ``sum of all``: one formula, ``resample(rolling_mean({c00} + ... + {c19}, "1h"), "15min")``.

Baselines: pandas (DataFrame rolling/resample over all columns at once) and numpy with
bottleneck (the kernels a careful person would write). The ratio is formula time over the
faster baseline; the goal is <= 1.5x. Run: ``.venv/bin/python bench/bench_formulas.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import bottleneck as bn
import numpy as np
import pandas as pd
import xarray as xr

from stream0d_nb.formulas import compile_formula

S = 10**9
N = 30 * 86_400
CH = [f"c{i:02d}" for i in range(20)]


WARMUP = 3600  # samples of the 1 h window margin


def make_data() -> pd.DataFrame:
    """A month of 1 Hz, 20 channels, 1% missing values and one hour-long gap per channel."""
    rng = np.random.default_rng(0)
    values = rng.normal(50, 10, size=(N, len(CH)))
    values[rng.random(values.shape) < 0.01] = np.nan
    for j in range(len(CH)):
        i = rng.integers(0, N - 3600)
        values[i : i + 3600, j] = np.nan
    start = pd.Timestamp("2024-01-01")
    return pd.DataFrame(values, index=pd.date_range(start, periods=N, freq="1s"), columns=CH)


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    df = make_data()
    t0 = int(df.index[0].value)
    t1 = t0 + N * S
    times = df.index.values.astype("M8[ns]")
    inputs = {c: xr.DataArray(df[c].to_numpy(), dims=("time",), coords={"time": times}) for c in CH}
    arr = df.to_numpy()
    units = dict.fromkeys(CH, "kW")

    per = {
        c: compile_formula(
            f'resample(rolling_mean({{{c}}} * 2 + 1, "1h") - {{{c}}}, "15min", "mean")', units, S
        )
        for c in CH
    }
    total = compile_formula(
        "resample(rolling_mean(" + " + ".join(f"{{{c}}}" for c in CH) + ', "1h"), "15min")',
        units,
        S,
    )

    # As on every read path, the formulas get their margin of input before the range
    # evaluated (the first hour, which the baselines compute too, is left out of the match).
    ts = t0 + WARMUP * S

    def f_per() -> np.ndarray:
        return np.stack([per[c].evaluate({c: inputs[c]}, ts, t1).values for c in CH], axis=1)

    def pd_per() -> np.ndarray:
        r = (df * 2 + 1).rolling(3600, min_periods=1).mean() - df
        return r.resample("15min").mean().to_numpy()

    def np_per() -> np.ndarray:
        r = bn.move_mean(arr * 2 + 1, 3600, min_count=1, axis=0) - arr
        return bn.nanmean(r.reshape(-1, 900, len(CH)), axis=1)

    def f_total() -> np.ndarray:
        return total.evaluate(inputs, ts, t1).values

    def pd_total() -> np.ndarray:
        s = df[CH[0]].copy()
        for c in CH[1:]:
            s = s + df[c]
        return s.rolling(3600, min_periods=1).mean().resample("15min").mean().to_numpy()

    def np_total() -> np.ndarray:
        s = arr[:, 0].copy()
        for j in range(1, len(CH)):
            s += arr[:, j]
        r = bn.move_mean(s, 3600, min_count=1)
        return bn.nanmean(r.reshape(-1, 900), axis=1)

    rows = []
    ok = True
    for name, f, p, n in (
        ("per channel", f_per, pd_per, np_per),
        ("sum of all", f_total, pd_total, np_total),
    ):
        tf, rf = median_time(f, args.repeat)
        tp, rp = median_time(p, args.repeat)
        tn, rn = median_time(n, args.repeat)
        skip = WARMUP // 900  # the 15-minute bins of the warm-up hour
        match = bool(
            np.allclose(rf, rp[skip:], rtol=1e-9, atol=1e-9, equal_nan=True)
            and np.allclose(rf, rn[skip:], rtol=1e-9, atol=1e-9, equal_nan=True)
        )
        ok &= match
        ratio = tf / min(tp, tn)
        rows.append((name, tf, tp, tn, ratio, match))

    print(f"month of 1 Hz x {len(CH)} channels ({N:,} rows), median of {args.repeat} runs")
    print(f"{'workload':<12} {'formula s':>10} {'pandas s':>9} {'numpy s':>8} {'ratio':>6}  match")
    for name, tf, tp, tn, ratio, match in rows:
        goal = "ok" if ratio <= 1.5 else "OVER 1.5x"
        print(f"{name:<12} {tf:>10.3f} {tp:>9.3f} {tn:>8.3f} {ratio:>5.2f}x  {match} ({goal})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
