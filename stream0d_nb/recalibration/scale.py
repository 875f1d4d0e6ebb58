"""Fits that outgrow one process: Dask over the same data (DESIGN §3 Scale).

Two patterns, both with ordinary Dask (a ``distributed.Client`` if one is active, else
Dask's threads; dask-gateway on Kubernetes later, nothing home-made):

- ``ridge_fit_dask``: the regression model on data larger than memory. The data is a
  dask-backed ``xarray.Dataset`` (``xr.open_zarr(..., chunks=...)`` or
  ``ds.chunk({"time": ...})``); the sufficient statistics of the ridge fit (counts,
  sums, ``XᵀX``, ``Xᵀy`` of the complete rows) are reduced chunk by chunk on the
  workers and only a ``p × p`` matrix comes back. The result equals
  ``LinearRegressionModel.fit`` on the same rows (same standardisation, same alpha).
- ``calibrate_many``: independent calibrations (several windows, several models or
  several start points of a physics model) as one task each on the cluster.

Lags cross chunk boundaries, so ``ridge_fit_dask`` builds lagged columns with
``dask.array`` ``map_overlap``-free shifting (a concatenation of a NaN head), which
Dask handles across chunks itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.recalibration.calibration import CalibrationResult
from stream0d_nb.recalibration.models import LinearRegressionModel, _lag_name


def _shift(col: Any, lag: int) -> Any:
    import dask.array as da

    if lag == 0:
        return col
    head = da.full((lag,), np.nan, dtype="float64", chunks=(lag,))
    return da.concatenate([head, col[:-lag]]).rechunk(col.chunks)


def ridge_fit_dask(model: LinearRegressionModel, data: xr.Dataset) -> dict[str, float]:
    """The ridge fit of ``model`` from a dask-backed dataset (see the module docstring)."""
    import dask
    import dask.array as da

    missing = [n for n in [*model.inputs, model.output] if n not in data.data_vars]
    if missing:
        raise ValidationError(
            f"the data has no channel(s) {missing} (formula inputs: evaluate first)"
        )
    cols = []
    for name, lag in model.features:
        arr = data[name].data
        col = arr if isinstance(arr, da.Array) else da.from_array(np.asarray(arr), chunks=-1)
        cols.append(_shift(col.astype("float64"), lag))
    yarr = data[model.output].data
    y = (
        yarr
        if isinstance(yarr, da.Array)
        else da.from_array(np.asarray(yarr), chunks=cols[0].chunks)
    )
    y = y.astype("float64").rechunk(cols[0].chunks)
    x = da.stack(cols, axis=1)
    ok = da.isfinite(x).all(axis=1) & da.isfinite(y)
    xo = da.where(ok[:, None], x, 0.0)
    yo = da.where(ok, y, 0.0)
    n, sx, sy, xtx, xty = dask.compute(ok.sum(), xo.sum(axis=0), yo.sum(), xo.T @ xo, xo.T @ yo)
    n = int(n)
    p = x.shape[1]
    if n < p + 2:
        raise ValidationError(f"too few complete rows to fit ({n})")
    mean = sx / n
    cov = xtx / n - np.outer(mean, mean)  # population covariance, as numpy's std(ddof=0)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    std = np.where(std > 0, std, 1.0)
    ymean = sy / n
    # Ridge on standardised, centred columns: (Zc'Zc + alpha I) w = Zc'yc
    zz = (xtx - n * np.outer(mean, mean)) / np.outer(std, std)
    zy = (xty - n * mean * ymean) / std
    w = np.linalg.solve(zz + model.alpha * np.eye(p), zy)
    coef = w / std
    out = {"intercept": float(ymean - coef @ mean)}
    out |= {_lag_name(nm, k): float(c) for (nm, k), c in zip(model.features, coef, strict=True)}
    return out


def calibrate_many(
    fn: Callable[..., CalibrationResult], jobs: Sequence[dict[str, Any]]
) -> list[CalibrationResult]:
    """Run ``fn(**job)`` for each job as Dask tasks (the active client, else threads)."""
    import dask

    tasks = [dask.delayed(fn)(**job) for job in jobs]
    return list(dask.compute(*tasks))
