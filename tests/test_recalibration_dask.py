"""Part of a fit on a Dask cluster: the ridge model's sufficient statistics reduced chunk by
chunk on a ``distributed.LocalCluster`` (one in-process worker, one thread) equal the
in-memory fit; independent calibrations run as tasks on the same cluster."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stream0d_nb.recalibration import FirstOrderThermalModel, LinearRegressionModel, calibrate
from stream0d_nb.recalibration.scale import calibrate_many, ridge_fit_dask

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    cluster = distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _data(n: int = 20_000) -> xr.Dataset:
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 2, n), rng.normal(0, 1, n)
    y = 1.5 + 0.8 * a + 0.3 * np.r_[np.nan, np.nan, b[:-2]] - 0.2 * b + rng.normal(0, 0.1, n)
    a[rng.random(n) < 0.01] = np.nan  # gaps, as in real data
    t = pd.date_range("2024-01-01", periods=n, freq="1s").values
    return xr.Dataset({"a": ("time", a), "b": ("time", b), "y": ("time", y)}, coords={"time": t})


def test_ridge_statistics_on_a_local_cluster_equal_the_in_memory_fit(client: object) -> None:
    model = LinearRegressionModel(["a", "b"], "y", lags=[0, 2], alpha=0.5)
    ds = _data()
    lazy = ds.chunk({"time": 3_000})  # 7 chunks; lags cross their boundaries
    got = ridge_fit_dask(model, lazy)
    want = model.fit(model.frame(ds))
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-9), k
    assert got["a"] == pytest.approx(0.8, abs=0.01) and got["b@lag2"] == pytest.approx(
        0.3, abs=0.01
    )


def test_independent_calibrations_as_tasks(client: object) -> None:
    rng = np.random.default_rng(0)
    n = 4_000
    idx = pd.date_range("2024-01-01", periods=n, freq="10s")
    u = np.repeat(rng.uniform(0, 100, n // 100), 100)
    model = FirstOrderThermalModel(["u"], "y")
    frame = pd.DataFrame({"u": u}, index=idx)
    truth = {"gain": 0.8, "tau": 600.0, "delay": 30.0, "loss": 2.0}
    frame["y"] = model.predict(frame, truth).to_numpy() + rng.normal(0, 0.2, n)
    mid, end = idx[n // 2], idx[-1] + pd.Timedelta("10s")
    jobs = [
        {
            "model": model,
            "data": frame,
            "train": (idx[0], mid),
            "holdout": (mid, end),
            "initial": x0,
        }
        for x0 in ({"gain": 0.2, "tau": 100.0}, {"gain": 2.0, "tau": 3000.0})
    ]
    results = calibrate_many(calibrate, jobs)
    assert len(results) == 2
    for r in results:
        assert r.params["gain"] == pytest.approx(0.8, rel=0.02)
        assert r.params["tau"] == pytest.approx(600.0, rel=0.05)
