"""Property tests: formula results equal independent pandas computations on random data with
gaps, and evaluating a sub-range with the declared margin equals a slice of the full result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream0d_nb.formulas import compile_formula

S = 10**9
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def series(draw: st.DrawFn, min_size: int = 1, max_size: int = 240) -> tuple[np.ndarray, int, int]:
    """(values with NaN gaps, interval ns, first grid index)."""
    n = draw(st.integers(min_size, max_size))
    vals = draw(
        st.lists(
            st.one_of(st.integers(-800, 800).map(lambda v: v / 8), st.just(np.nan)),
            min_size=n,
            max_size=n,
        )
    )
    a = np.array(vals, dtype=np.float64)
    if draw(st.booleans()) and n > 10:  # a longer gap
        i = draw(st.integers(0, n - 5))
        a[i : i + draw(st.integers(2, 12))] = np.nan
    g = draw(st.sampled_from([1, 10, 60])) * S
    first = draw(st.integers(1_700_000_000, 1_700_100_000)) * S // g
    return a, g, first


def as_input(a: np.ndarray, g: int, first: int) -> xr.DataArray:
    times = ((first + np.arange(a.size)) * g).astype("datetime64[ns]")
    return xr.DataArray(a, dims=("time",), coords={"time": times})


def as_pandas(a: np.ndarray, g: int, first: int) -> pd.Series:
    return pd.Series(a, index=pd.to_datetime((first + np.arange(a.size)) * g, unit="ns"))


def run(text: str, a: np.ndarray, g: int, first: int, units: str = "kW") -> xr.DataArray:
    c = compile_formula(text, {"x": units}, g)
    return c.evaluate({"x": as_input(a, g, first)}, first * g, (first + a.size) * g)


def close(got: np.ndarray, want: np.ndarray, atol: float = 1e-7) -> None:
    np.testing.assert_allclose(got, np.asarray(want, dtype=np.float64), rtol=1e-9, atol=atol)


@pytest.mark.parametrize("how", ["mean", "sum", "min", "max", "std"])
@SETTINGS
@given(data=series(), w=st.integers(1, 40))
def test_rolling_matches_pandas(how: str, data: tuple[np.ndarray, int, int], w: int) -> None:
    a, g, first = data
    got = run(f'rolling_{how}(x, "{w * g // S}s")', a, g, first)
    want = getattr(as_pandas(a, g, first).rolling(w, min_periods=1), how)()
    close(got.values, want.values, atol=1e-5)  # bottleneck's running sums vs pandas


@pytest.mark.parametrize("how", ["mean", "sum", "min", "max", "count", "first", "last", "twmean"])
@SETTINGS
@given(data=series(), k=st.integers(1, 20))
def test_resample_matches_pandas(how: str, data: tuple[np.ndarray, int, int], k: int) -> None:
    a, g, first = data
    step = k * g
    c = compile_formula(f'resample(x, "{step // S}s", "{how}")', {"x": "kW"}, g)
    start = (first * g // step) * step
    end = -(-(first + a.size) * g // step) * step
    got = c.evaluate({"x": as_input(a, g, first)}, start, end)
    s = as_pandas(a, g, first)
    r = s.resample(pd.Timedelta(step, "ns"), origin="epoch")
    if how == "sum":
        want = r.sum(min_count=1)
    elif how == "twmean":  # held values run to the bin end, also past the data (a gap)
        full = s.reindex(pd.to_datetime(np.arange(start, end, g), unit="ns"))
        bins = full.index.as_unit("ns").asi8 // step
        want = full.groupby(bins).ffill().groupby(bins).mean()
    else:
        want = getattr(r, how)()
    assert got.sizes["time"] == want.size
    assert c.units == ("1" if how == "count" else "kW")
    close(got.values, want.values)


@SETTINGS
@given(data=series(min_size=2))
def test_diff_rate_shift_cumsum_match_pandas(data: tuple[np.ndarray, int, int]) -> None:
    a, g, first = data
    s = as_pandas(a, g, first)
    close(run("diff(x)", a, g, first).values, s.diff().values)
    close(run("rate(x)", a, g, first).values, (s.diff() / (g / S)).values)
    close(run(f'shift(x, "{3 * g // S}s")', a, g, first).values, s.shift(3).values)
    close(run(f'shift(x, "-{2 * g // S}s")', a, g, first).values, s.shift(-2).values)
    close(run("cumsum(x)", a, g, first).values, s.cumsum().values)
    steps = ((s + s.shift(1)) / 2 * (g / S)).fillna(0).cumsum()
    close(run("integral(x)", a, g, first).values, steps.where(s.notna()).values, atol=1e-6)


@SETTINGS
@given(data=series(), limit=st.integers(0, 6))
def test_fill_and_interpolate_match_pandas(data: tuple[np.ndarray, int, int], limit: int) -> None:
    a, g, first = data
    s = as_pandas(a, g, first)
    lim = f"{limit * g // S}s" if limit else "1ns"
    close(
        run(f'fill(x, "ffill", limit="{lim}")', a, g, first).values,
        s.ffill(limit=limit or None).values if limit else a,
    )
    close(
        run(f'fill(x, "bfill", limit="{lim}")', a, g, first).values,
        s.bfill(limit=limit or None).values if limit else a,
    )
    close(run("fill(x, 2.5)", a, g, first).values, s.fillna(2.5).values)
    interp = s.interpolate(limit_area="inside")
    runs = s.isna().ne(s.isna().shift()).cumsum()
    gap_len = s.isna().groupby(runs).transform("sum")
    want = interp.where(s.notna() | (gap_len <= limit))
    close(run(f'interpolate(x, limit="{lim}")', a, g, first).values, want.values)


@SETTINGS
@given(data=series(), b=series())
def test_arithmetic_with_units_matches_pandas(
    data: tuple[np.ndarray, int, int], b: tuple[np.ndarray, int, int]
) -> None:
    a, g, first = data
    bv = np.resize(b[0], a.size)
    c = compile_formula("({x} * 2 + {y} - 3) / 2 > 1 kW and {y} < 900 W", {"x": "kW", "y": "W"}, g)
    c2 = compile_formula('to({x} * 2 + {y}, "W") / 1000 - 2 [kW]', {"x": "kW", "y": "W"}, g)
    inputs = {"x": as_input(a, g, first), "y": as_input(bv, g, first)}
    got = c.evaluate(inputs, first * g, (first + a.size) * g)
    x, y = pd.Series(a), pd.Series(bv)
    lhs = ((x * 2 + y / 1000 - 3) / 2 > 1).where(x.notna() & y.notna())
    rhs = (y < 900).where(y.notna())
    want = np.where((lhs == 0) | (rhs == 0), 0.0, np.where(lhs.isna() | rhs.isna(), np.nan, 1.0))
    close(got.values, want)
    assert c.units == "1"
    got2 = c2.evaluate(inputs, first * g, (first + a.size) * g)
    close(got2.values, ((x * 2000 + y) / 1000 - 2000).values)  # 2 kW in W
    assert c2.units == got2.attrs["units"] == "W"


SUBRANGE = [
    'rolling_mean(x, "7s")',
    'rolling_max(x, "30s") - rolling_min(x, "30s")',
    'rolling_std(x, "13s") + rolling_sum(y, "5s")',
    'resample(x, "60s", "mean")',
    'resample(rolling_mean(x, "20s"), "30s", "twmean")',
    'rolling_mean(resample(x, "30s", "max"), "90s")',
    'resample(x, "120s", "count") * resample(y, "120s", "last")',
    "diff(x) * rate(y)",
    'shift(x, "20s") - shift(y, "-30s")',
    'fill(x, "ffill", limit="40s") + fill(y, "bfill", limit="20s")',
    'interpolate(x, limit="30s")',
    'cumsum(x, reset="120s") * integral(y, reset="60s")',
    'pct_good(x, "30s") + zscore(y, "60s")',
    'mad(x, "40s")',
    'if(hour() > 12, rolling_mean(shift(x, "10s"), "20s"), diff(y))',
    'resample(shift(diff(x), "-60s"), "60s", "sum")',
]


@pytest.mark.parametrize("text", SUBRANGE)
@SETTINGS
@given(data=series(min_size=30, max_size=300), cut=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_subrange_with_margin_equals_slice_of_full(
    text: str, data: tuple[np.ndarray, int, int], cut: tuple[float, float]
) -> None:
    a, g0, first = data
    g = 10 * S
    first = first * g0 // g  # same epoch time on the 10 s grid
    b = np.roll(a, 7) * 0.5
    c = compile_formula(text, {"x": "kW", "y": "kW"}, g, tz="Europe/Madrid")
    assert not c.range_dependent
    t0, t1 = first * g, (first + a.size) * g
    full = c.evaluate({"x": as_input(a, g, first), "y": as_input(b, g, first)}, t0, t1)
    lo, hi = sorted(cut)
    s = t0 + int(lo * (t1 - t0)) // S * S
    e = t0 + int(hi * (t1 - t0)) // S * S
    mb, ma = c.margin_ns
    i0 = max(0, -(-(s - mb - t0) // g))
    i1 = min(a.size, -(-(e + ma - t0) // g))
    sub_in = {
        "x": as_input(a[i0:i1], g, first + i0),
        "y": as_input(b[i0:i1], g, first + i0),
    }
    sub = c.evaluate(sub_in, s, e)
    want = full.sel(time=slice(np.datetime64(s, "ns"), np.datetime64(e - 1, "ns")))
    assert sub.sizes == want.sizes
    np.testing.assert_array_equal(sub["time"].values, want["time"].values)
    np.testing.assert_allclose(sub.values, want.values, rtol=1e-9, atol=1e-9)


def test_range_dependent_is_declared() -> None:
    assert compile_formula("cumsum(x)", {"x": "kW"}, S).range_dependent
    assert compile_formula("integral(x) * 2", {"x": "kW"}, S).range_dependent
    assert not compile_formula('cumsum(x, reset="1d")', {"x": "kW"}, S).range_dependent
