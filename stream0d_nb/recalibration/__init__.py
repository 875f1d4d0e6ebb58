"""Recalibration (issue #6): process models, calibration with hold-out validation, drift.

The pure parts, exported here, take pandas/xarray data and never open a store:
``models`` (interface, registry, ridge and thermal models), ``calibrate`` (least_squares,
ASHRAE metrics), ``drift`` (rolling CV(RMSE), Page–Hinkley, CUSUM), ``scale`` (Dask).
On top of them, importing the store (docs/recalibration.md):

- ``service``: ``Recalibration(store)``: models of datasets, versions with the activation
  rule, predictions/residuals as channels, drift checks;
- ``runner``: Papermill runs of ``recalibration_runs/`` notebooks, recorded with outputs;
- ``scheduler``: cron schedules from the registry (``stream0d recal scheduler``);
- ``notebook``: the helpers the notebooks call; ``cli``: ``stream0d recal``.
"""

from stream0d_nb.recalibration.calibrate import (
    CalibrationResult,
    Metrics,
    Thresholds,
    calibrate,
    metrics,
    residuals,
)
from stream0d_nb.recalibration.drift import (
    DriftReport,
    cusum,
    detect_drift,
    first_exceedance,
    page_hinkley,
    page_hinkley_statistic,
    rolling_cvrmse,
)
from stream0d_nb.recalibration.models import (
    FirstOrderThermalModel,
    LinearRegressionModel,
    Model,
    Parameter,
    build_model,
    model_class,
    model_names,
    register_model,
    unregister_model,
)

__all__ = [
    "CalibrationResult",
    "DriftReport",
    "FirstOrderThermalModel",
    "LinearRegressionModel",
    "Metrics",
    "Model",
    "Parameter",
    "Thresholds",
    "build_model",
    "calibrate",
    "cusum",
    "detect_drift",
    "first_exceedance",
    "metrics",
    "model_class",
    "model_names",
    "page_hinkley",
    "page_hinkley_statistic",
    "register_model",
    "residuals",
    "rolling_cvrmse",
    "unregister_model",
]
