"""Recalibration (issue #6): process models, calibration with hold-out validation, drift.

The pure parts, exported here, take pandas/xarray data and never open a store:
``models`` (interface, registry, ridge and thermal models), ``calibration`` (``calibrate``:
least_squares, ASHRAE metrics; not named like the function it exports, which a lazily
exported name would lose to the submodule once that is imported), ``drift`` (rolling CV(RMSE), Page–Hinkley, CUSUM), ``scale`` (Dask).
On top of them, importing the store (docs/recalibration.md):

- ``service``: ``Recalibration(store)``: models of datasets, versions with the activation
  rule, predictions/residuals as channels, drift checks;
- ``runner``: Papermill runs of ``recalibration_runs/`` notebooks, recorded with outputs;
- ``scheduler``: cron schedules from the registry (``stream0d recal scheduler``);
- ``notebook``: the helpers the notebooks call (the ``stream0d recal`` commands live in
  ``stream0d_nb.cli.recalibration``).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream0d_nb.recalibration.calibration import (
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

# name -> submodule: imported on first use, so that importing a submodule (the CLI,
# the runner) does not load scipy and scikit-learn (~1.4 s) with the models.
_LAZY = {
    "CalibrationResult": "calibration",
    "DriftReport": "drift",
    "FirstOrderThermalModel": "models",
    "LinearRegressionModel": "models",
    "Metrics": "calibration",
    "Model": "models",
    "Parameter": "models",
    "Thresholds": "calibration",
    "build_model": "models",
    "calibrate": "calibration",
    "cusum": "drift",
    "detect_drift": "drift",
    "first_exceedance": "drift",
    "metrics": "calibration",
    "model_class": "models",
    "model_names": "models",
    "page_hinkley": "drift",
    "page_hinkley_statistic": "drift",
    "register_model": "models",
    "residuals": "calibration",
    "rolling_cvrmse": "drift",
    "unregister_model": "models",
}


def __getattr__(name: str) -> Any:
    """Load the submodule that defines ``name`` on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
