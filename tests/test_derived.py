"""Derived channels through the store and the CLI: saved, checked, read like channels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream0d_nb import derived
from stream0d_nb.errors import ChannelNotFoundError, ConfirmationRequiredError, ValidationError
from stream0d_nb.formulas import FormulaError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec, IngestOptions
from stream0d_nb.store import Store
from tests.conftest import CliRun

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture
def store(tmp_path: Path):
    st = Store(Settings(home=tmp_path / "home"))
    st.create_dataset(
        DatasetSpec(
            id="press",
            interval="1s",
            channels=[
                ChannelSpec(name="p_in", units="bar"),
                ChannelSpec(name="p out", units="kPa"),
                ChannelSpec(name="temp", units="degC"),
            ],
        )
    )
    n = 3 * 3600
    rng = np.random.default_rng(7)
    idx = pd.date_range("2024-05-01", periods=n, freq="1s", tz="UTC").as_unit("ns")
    df = pd.DataFrame(
        {
            "p_in": 5 + rng.normal(0, 0.1, n),
            "p out": 300 + rng.normal(0, 5, n),
            "temp": 60 + rng.normal(0, 1, n),
        },
        index=idx,
    )
    df.iloc[1000:1300, 0] = np.nan  # a gap
    st.write("press", df)
    st.frame = df  # type: ignore[attr-defined]
    yield st
    st.close()


def test_save_checks_and_units(store: Store) -> None:
    saved = derived.save_formula(store, "press", FormulaSpec(name="dp", formula="p_in - {p out}"))
    assert saved.units == "bar"
    with pytest.raises(FormulaError, match="did you mean 'p_in'"):
        derived.save_formula(store, "press", FormulaSpec(name="x", formula="p_inn * 2"))
    with pytest.raises(FormulaError, match="bar"):
        derived.save_formula(store, "press", FormulaSpec(name="x", formula="p_in + temp"))
    with pytest.raises(ValidationError, match="stored channel"):
        derived.save_formula(store, "press", FormulaSpec(name="temp", formula="p_in"))
    derived.save_formula(store, "press", FormulaSpec(name="a", formula="dp * 2"))
    with pytest.raises(ValidationError, match="cycle: dp -> a -> dp"):
        derived.save_formula(store, "press", FormulaSpec(name="dp", formula="a + p_in"))
    assert [f.formula for f in derived.list_formulas(store, "press")] == [
        "p_in - {p out}",
        "dp * 2",
    ]
    with pytest.raises(ValidationError, match="used by 'a'"):
        derived.delete_formula(store, "press", "dp", confirm="dp")
    with pytest.raises(ConfirmationRequiredError):
        derived.delete_formula(store, "press", "a", confirm=None)
    derived.delete_formula(store, "press", "a", confirm="a")
    derived.delete_formula(store, "press", "dp", confirm="dp")
    assert derived.list_formulas(store, "press") == []
    assert [e.action for e in store.registry.audit_log("press")][:2] == ["formula.delete"] * 2


def test_read_derived_like_raw_and_subrange_equals_full(store: Store) -> None:
    df = store.frame  # type: ignore[attr-defined]
    derived.save_formula(store, "press", FormulaSpec(name="dp", formula="p_in - {p out}"))
    derived.save_formula(
        store, "press", FormulaSpec(name="smooth", formula='rolling_mean(dp, "10min")')
    )
    full = derived.read(store, "press", ["p_in", "dp", "smooth"])
    want_dp = df["p_in"] - df["p out"] / 100
    np.testing.assert_allclose(full.dp.values, want_dp.values, rtol=1e-12)
    want_smooth = want_dp.rolling("10min", min_periods=1).mean()
    np.testing.assert_allclose(full.smooth.values, want_smooth.values, rtol=1e-9)
    assert (
        full.smooth.attrs["units"] == "bar"
        and full.smooth.attrs["formula"] == 'rolling_mean(dp, "10min")'
    )
    part = derived.read(store, "press", ["smooth"], "2024-05-01 01:00", "2024-05-01 01:30")
    # equal up to the last bits: running-sum window kernels depend on where they start
    np.testing.assert_allclose(
        part.smooth.values,
        full.smooth.sel(time=slice("2024-05-01 01:00", "2024-05-01 01:29:59")).values,
        rtol=1e-13,
    )
    agg = derived.read(store, "press", ["p_in", "dp"], every="15min", how="max")
    np.testing.assert_allclose(agg.dp.values, want_dp.resample("15min").max().values, rtol=1e-12)


def test_resampled_formula_on_its_own_grid(store: Store) -> None:
    df = store.frame  # type: ignore[attr-defined]
    derived.save_formula(
        store, "press", FormulaSpec(name="p_1min", formula='resample(p_in, "1min", "mean")')
    )
    got = derived.read(store, "press", ["p_1min"])
    assert got.attrs["interval"] == "1min"
    np.testing.assert_allclose(
        got.p_1min.values, df.p_in.resample("1min").mean().values, rtol=1e-12
    )
    with pytest.raises(ValidationError, match="different grids"):
        derived.read(store, "press", ["p_in", "p_1min"])
    both = derived.read(store, "press", ["p_in", "p_1min"], every="1h")
    np.testing.assert_allclose(
        both.p_1min.values, df.p_in.resample("1min").mean().resample("1h").mean().values, rtol=1e-12
    )
    with pytest.raises(ChannelNotFoundError, match="did you mean 'p_1min'"):
        derived.read(store, "press", ["p_1mn"])


def test_as_of_evaluates_on_the_past_data(store: Store) -> None:
    derived.save_formula(store, "press", FormulaSpec(name="double", formula="p_in * 2"))
    before = store.data("press").head()
    df = store.frame.iloc[:10] * 0 + 1  # type: ignore[attr-defined]
    store.write("press", df)
    now = derived.read(store, "press", ["double"], end="2024-05-01 00:00:10")
    past = derived.read(store, "press", ["double"], end="2024-05-01 00:00:10", as_of=before)
    assert now.double.values.tolist() == [2.0] * 10
    np.testing.assert_allclose(past.double.values, store.frame.p_in.iloc[:10].values * 2)  # type: ignore[attr-defined]


def test_cli_formula_commands(store: Store, cli: CliRun) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        return cli(*args, home=store.settings.home)

    code, out, _ = run(
        "formula", "add", "press", "ratio", "{p out} / p_in", "--description", "pressure ratio"
    )
    assert code == 0 and "saved derived channel ratio" in out and "[kPa/bar]" in out
    code, _, err = run("formula", "add", "press", "ratio", "p_in")
    assert code == 1 and "--replace" in err
    code, _, err = run("formula", "add", "press", "bad", "p_in +* 2")
    assert code == 1 and "^" in err and "Traceback" not in err
    code, out, _ = run("formula", "list", "press")
    assert "ratio" in out and "pressure ratio" in out
    code, out, _ = run("formula", "show", "press", "ratio")
    assert "inputs p out, p_in" in out
    code, out, _ = run(
        "read",
        "press",
        "--channels",
        "ratio,p_in",
        "--end",
        "2024-05-01T00:00:02",
        "--format",
        "json",
    )
    recs = json.loads(out)
    assert len(recs) == 2 and recs[0]["ratio"] == pytest.approx(
        recs[0]["p_in"] ** -1 * store.frame["p out"].iloc[0]
    )  # type: ignore[attr-defined]
    code, out, _ = run(
        "formula",
        "eval",
        "press",
        'rolling_max(temp, "1h") - 60 degC',
        "--end",
        "2024-05-01T00:00:03",
    )
    assert code == 0 and out.splitlines()[0] == "time,value" and len(out.splitlines()) == 4
    code, _, err = run("formula", "delete", "press", "ratio")
    assert code == 1 and "confirm" in err
    code, out, _ = run("formula", "delete", "press", "ratio", "--confirm", "ratio")
    assert code == 0
    code, out, err = run("formula", "add", "press", "p2", "p_in * 2", "--materialize")
    assert code == 0, err
    assert store.history("press")[0].metadata["action"] == "materialize"
    assert code == 0


@pytest.mark.skipif(not (DATA / "skab").is_dir(), reason=f"real recordings not found at {DATA}")
def test_skab_vibration_ratio_and_one_minute_resample(tmp_path: Path) -> None:
    st = Store(Settings(home=tmp_path))
    try:
        st.create_dataset(DatasetSpec(id="pump", interval="1s"))
        st.ingest(
            "pump", DATA / "skab" / "anomaly-free.csv", IngestOptions(allow_missing_units=True)
        )
        derived.save_formula(
            st,
            "pump",
            FormulaSpec(name="vib_ratio", formula="{Accelerometer1RMS} / {Accelerometer2RMS}"),
        )
        derived.save_formula(
            st,
            "pump",
            FormulaSpec(
                name="flow_1min", formula='resample({Volume Flow RateRMS}, "1min", "mean")'
            ),
        )
        raw = pd.read_csv(
            DATA / "skab" / "anomaly-free.csv",
            sep=";",
            parse_dates=["datetime"],
            index_col="datetime",
        )
        raw = raw[~raw.index.duplicated()]
        got = derived.read(st, "pump", ["vib_ratio"]).vib_ratio.to_series().dropna()
        want = (raw.Accelerometer1RMS / raw.Accelerometer2RMS).dropna()
        pd.testing.assert_series_equal(
            got,
            want,
            check_names=False,
            check_freq=False,
            check_index_type=False,
            check_exact=False,
            rtol=1e-12,
        )
        flow = derived.read(st, "pump", ["flow_1min"]).flow_1min.to_series()
        want_flow = raw["Volume Flow RateRMS"].resample("1min").mean()
        pd.testing.assert_series_equal(
            flow.loc[want_flow.index[1] : want_flow.index[-2]],
            want_flow.iloc[1:-1],
            check_names=False,
            check_freq=False,
            check_index_type=False,
            check_exact=False,
            rtol=1e-12,
        )
    finally:
        st.close()


def test_materialised_channel_follows_writes_and_stays_correct_without_the_hook(
    store: Store,
) -> None:
    df = store.frame  # type: ignore[attr-defined]
    spec = FormulaSpec(name="smooth", formula='rolling_mean(p_in, "5min")', materialize=True)
    derived.save_formula(store, "press", spec)
    ctx = derived.DerivedContext(store, "press")
    assert "smooth" in ctx.materialized and "smooth" not in ctx.raw_units
    assert derived.is_fresh(ctx, "smooth")
    stored_vals = store.read("press", ["smooth"]).smooth
    assert stored_vals.attrs["tags"] == ["derived"] and stored_vals.attrs["units"] == "bar"
    want = df.p_in.rolling("5min", min_periods=1).mean()
    np.testing.assert_allclose(stored_vals.values, want.values, rtol=1e-12)
    # a late correction with the hook installed: recomputed over the affected range only
    store.add_write_hook(derived.materialize_after_write)
    fix = df.iloc[[7200]][["p_in"]] + 100
    store.write("press", fix)
    ctx = derived.DerivedContext(store, "press")
    assert derived.is_fresh(ctx, "smooth")
    assert store.history("press")[0].metadata["action"] == "materialize"
    got = derived.read(store, "press", ["smooth"]).smooth.values
    df2 = df.copy()
    df2.iloc[7200, 0] += 100
    np.testing.assert_allclose(
        got, df2.p_in.rolling("5min", min_periods=1).mean().values, rtol=1e-12
    )
    # without the hook the stored values go stale: reads notice and compute instead
    other = Store(store.settings)
    try:
        other.write("press", df.iloc[[7300]][["p_in"]] - 50)
        ctx = derived.DerivedContext(other, "press")
        assert not derived.is_fresh(ctx, "smooth")
        df2.iloc[7300, 0] -= 50
        np.testing.assert_allclose(
            derived.read(other, "press", ["smooth"]).smooth.values,
            df2.p_in.rolling("5min", min_periods=1).mean().values,
            rtol=1e-12,
        )
    finally:
        other.close()
    # a new formula (new units) replaces the stored values; deleting removes them
    derived.save_formula(
        store, "press", spec.model_copy(update={"formula": 'to(rolling_mean(p_in, "5min"), "kPa")'})
    )
    assert store.read("press", ["smooth"]).smooth.attrs["units"] == "kPa"
    derived.delete_formula(store, "press", "smooth", confirm="smooth")
    assert "smooth" not in [c.name for c in store.channels("press")]
