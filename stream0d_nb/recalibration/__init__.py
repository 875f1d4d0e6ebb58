"""Recalibration (issue #6): process models, calibration with hold-out validation, drift.

Everything here takes pandas/xarray data and never opens a store: the caller reads the
training and live windows and records the outcome.
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
