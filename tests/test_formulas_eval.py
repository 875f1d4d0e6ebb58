"""Evaluation: the accessor, the contract of Compiled, time zones, and the real SKAB file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import stream0d_nb.formulas  # noqa: F401 (registers ds.s0d)
from stream0d_nb.formulas import FormulaError, compile_formula

S = 10**9
SKAB = Path("/work/shared/data/skab/anomaly-free.csv")


def test_compiled_contract() -> None:
    c = compile_formula('resample(rolling_mean({a b}, "1min"), "5min")', {"a b": "bar"}, S)
    assert c.refs == frozenset({"a b"})
    assert c.units == "bar"
    assert c.interval_ns == 300 * S
    assert c.margin_ns == (59 * S, 299 * S)
    assert c.text.startswith("resample")
    da = xr.DataArray(
        np.ones(1200), dims=("time",), coords={"time": (np.arange(1200) * S).astype("M8[ns]")}
    )
    out = c.evaluate({"a b": da}, 0, 900 * S)
    assert out.dtype == np.float64 and out.dims == ("time",)
    assert out["time"].dtype == np.dtype("M8[ns]")
    assert out.values.tolist() == [1.0, 1.0, 1.0]
    assert out.attrs == {"units": "bar", "formula": c.text}


def test_accessor_uses_attrs_interval_and_tz() -> None:
    times = pd.date_range("2024-03-31T00:00", periods=6, freq="1h").values  # DST day in Madrid
    ds = xr.Dataset(
        {"p": ("time", np.arange(6.0), {"units": "kW"})},
        coords={"time": times},
        attrs={"interval": "1h", "tz": "Europe/Madrid"},
    )
    assert ds.s0d.formula("hour()").values.tolist() == [1, 3, 4, 5, 6, 7]
    out = ds.s0d.formula('to({p}, "W") + 1 kW')
    assert out.attrs["units"] == "W"
    assert out.values.tolist() == [1000, 2000, 3000, 4000, 5000, 6000]


def test_accessor_interval_from_time_spacing() -> None:
    times = pd.date_range("2024-01-01", periods=4, freq="10s").values
    ds = xr.Dataset({"v": ("time", [1.0, 2.0, 4.0, 7.0], {"units": "m"})}, coords={"time": times})
    np.testing.assert_allclose(ds.s0d.formula("rate(v)").values[1:], [0.1, 0.2, 0.3])
    assert ds.s0d.formula("rate(v)").attrs["units"] == "m/s"


def test_boolean_results_and_offset_units() -> None:
    c = compile_formula("{T} - 273.15 K", {"T": "degC"}, S)
    assert c.units == "delta_degC"
    with pytest.raises(FormulaError, match="absolute temperature"):
        compile_formula("rolling_sum({T}, '1h')", {"T": "degC"}, S)
    assert compile_formula("rolling_std({T}, '1h')", {"T": "degC"}, S).units == "delta_degC"
    assert compile_formula("rate({T})", {"T": "degC"}, S).units == "delta_degC/s"


def test_inputs_must_be_given_and_on_grid() -> None:
    c = compile_formula("x + 1", {"x": "1"}, S)
    with pytest.raises(FormulaError, match="no input"):
        c.evaluate({}, 0, S)
    da = xr.DataArray([1.0], dims=("time",), coords={"time": np.array([S // 2], "M8[ns]")})
    with pytest.raises(FormulaError, match="not on the grid"):
        c.evaluate({"x": da}, 0, S)


def skab_on_grid() -> xr.Dataset:
    df = pd.read_csv(SKAB, sep=";")
    t = pd.to_datetime(df.pop("datetime")).dt.round("1s")
    df.index = pd.DatetimeIndex(t)
    df = df[~df.index.duplicated()].sort_index()
    grid = pd.date_range(df.index[0], df.index[-1], freq="1s")
    df = df.reindex(grid)
    ds = xr.Dataset(
        {
            c: ("time", df[c].to_numpy(np.float64), {"units": "g" if "Acc" in c else "1"})
            for c in df
        },
        coords={"time": grid.values.astype("M8[ns]")},
        attrs={"interval": "1s"},
    )
    return ds


@pytest.mark.skipif(not SKAB.exists(), reason=f"SKAB data not found at {SKAB}")
def test_skab_vibration_ratio_and_one_minute_resample() -> None:
    ds = skab_on_grid()
    assert ds.sizes["time"] > 9000
    ratio = ds.s0d.formula("{Accelerometer1RMS} / {Accelerometer2RMS}")
    a1 = ds["Accelerometer1RMS"].to_pandas()
    a2 = ds["Accelerometer2RMS"].to_pandas()
    assert ratio.attrs["units"] in ("1", "g/g")
    np.testing.assert_allclose(ratio.values, (a1 / a2).values, rtol=1e-12)
    per_min = ds.s0d.formula('resample({Accelerometer1RMS} / {Accelerometer2RMS}, "1min")')
    want = (a1 / a2).resample("1min").mean()
    got = per_min.to_pandas()
    assert got.index[0] == want.index[0]
    np.testing.assert_allclose(got.values, want.values, rtol=1e-12)
    assert per_min.sizes["time"] == want.size


def test_number_minus_boolean_and_flat_zscore() -> None:
    """Regressions: ``1 - (bool)`` recursed forever; a flat window's z-score was infinite."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    from stream0d_nb.formulas import compile_formula

    assert compile_formula("1 - isnan({T})", {"T": "degC"}, 10**9).units == "1"
    c = compile_formula('zscore({T}, "4min")', {"T": "degC"}, 60 * 10**9)
    t = pd.date_range("2024-01-01", periods=7, freq="1min").as_unit("ns")
    a = xr.DataArray([0.3, 1.7, -2.9, 0.1, 0.1, 0.1, 0.1], coords={"time": t.values}, dims="time")
    z = c.evaluate({"T": a}, int(t[3].value), int(t[-1].value) + 60 * 10**9).values
    assert np.isfinite(z[0]) and np.isnan(z[-1])


def test_flat_windows_matches_moving_max_min() -> None:
    """``kernels.flat_windows`` equals max == min wherever a window has two valid values."""
    import bottleneck as bn

    from stream0d_nb.formulas.kernels import flat_windows

    rng = np.random.default_rng(3)
    for _ in range(2000):
        n = int(rng.integers(1, 80))
        k = int(rng.integers(1, n + 1))
        a = rng.choice([0.0, -0.0, 1.0, 2.0, np.nan, np.inf, -np.inf], n)
        if rng.random() < 0.3:  # mostly distinct values with a stuck stretch
            a = rng.normal(size=n)
            a[n // 3 : n // 2] = a[n // 3]
        want = bn.move_max(a, k, min_count=1)[k - 1 :] == bn.move_min(a, k, min_count=1)[k - 1 :]
        two = bn.move_sum((~np.isnan(a)).astype(float), k, min_count=1)[k - 1 :] >= 2
        np.testing.assert_array_equal(flat_windows(a, k)[two], want[two])


def test_evaluate_values_and_shared_window_cache() -> None:
    """``evaluate_values`` equals ``evaluate``; a cache computes identical windows once."""
    from stream0d_nb.formulas.ops import Cache

    rng = np.random.default_rng(5)
    v = rng.normal(size=500)
    v[rng.integers(0, 500, 40)] = np.nan
    da = xr.DataArray(v, dims=("time",), coords={"time": (np.arange(500) * S).astype("M8[ns]")})
    a = compile_formula('rolling_mean({x}, "1min") > 0.1', {"x": "1"}, S)
    b = compile_formula('zscore({x}, "30s") + rolling_mean({x}, "1min")', {"x": "1"}, S)
    c = compile_formula('cumsum({x}) + rolling_mean(cumsum({x}), "10s")', {"x": "1"}, S)
    inputs = {"x": (v, 0)}
    cache: Cache = {}
    for comp, i0, i1 in [(a, 100, 400), (b, 80, 500), (a, 60, 300), (c, 120, 400)]:
        want = comp.evaluate({"x": da}, i0 * S, i1 * S).values
        np.testing.assert_array_equal(comp.evaluate_values(inputs, i0, i1, cache), want)
        np.testing.assert_array_equal(comp.evaluate_values(inputs, i0, i1), want)
    # one rolling mean shared by a and b, one zscore; cumsum depends on the range: not kept
    assert sorted(k[0][4] for k in cache) == [
        "rolling",
        "zscore",
    ]  # (type, grid, boolean, child, kind...)
    assert cache[next(k for k in cache if k[0][4] == "rolling")][0] == 80  # the widest kept
