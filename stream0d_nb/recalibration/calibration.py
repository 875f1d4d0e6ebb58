"""Calibration on a training window, validation on a later hold-out window, fit metrics.

Metrics follow ASHRAE Guideline 14: CV(RMSE) and NMBE in percent of the measured mean,
with ``n - p`` degrees of freedom (``p = 1`` by default, the Guideline's convention for
calibrated simulation); residuals are measured minus predicted. Defaults are the hourly
acceptance limits (CV(RMSE) <= 30 %, |NMBE| <= 10 %); monthly data would use 15 % / 5 %.
CV(RMSE) and NMBE divide by the mean, so they only make sense on ratio scales (K, not
a Celsius signal near 0 °C, nor a pressure around 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from stream0d_nb.errors import ValidationError
from stream0d_nb.recalibration.models import Data, Model

Loss = Literal["linear", "soft_l1", "huber", "cauchy", "arctan"]
Window = tuple[Any, Any]


@dataclass(frozen=True)
class Thresholds:
    """Acceptance limits in percent (ASHRAE Guideline 14, hourly data, by default)."""

    cv_rmse: float = 30.0
    nmbe: float = 10.0


@dataclass(frozen=True)
class Metrics:
    """Goodness of fit of predictions against measurements (percentages for CV and NMBE)."""

    n: int
    rmse: float
    cv_rmse: float
    nmbe: float
    r2: float
    mae: float

    def meets(self, limits: Thresholds = Thresholds()) -> bool:
        """CV(RMSE) and |NMBE| within the limits (False when undefined)."""
        return bool(self.cv_rmse <= limits.cv_rmse and abs(self.nmbe) <= limits.nmbe)

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for JSON and tables)."""
        return asdict(self)


def metrics(measured: Any, predicted: Any, p: int = 1) -> Metrics:
    """Metrics on the pairs where both values are finite (Series are aligned on their index).

    ``CV(RMSE) = 100 * sqrt(sum(r^2) / (n - p)) / mean(y)``,
    ``NMBE = 100 * sum(r) / ((n - p) * mean(y))`` with ``r = y - y_hat``.
    """
    if isinstance(measured, pd.Series) and isinstance(predicted, pd.Series):
        measured, predicted = measured.align(predicted, join="inner")
    y = np.asarray(measured, dtype="float64")
    yh = np.asarray(predicted, dtype="float64")
    if y.shape != yh.shape:
        raise ValidationError(f"measured {y.shape} and predicted {yh.shape} differ in shape")
    ok = np.isfinite(y) & np.isfinite(yh)
    y, yh = y[ok], yh[ok]
    n = int(y.size)
    nan = math.nan
    if n == 0:
        return Metrics(0, nan, nan, nan, nan, nan)
    r = y - yh
    dof = n - p
    mean = float(y.mean())
    sse = float(np.sum(r * r))
    rmse_dof = math.sqrt(sse / dof) if dof > 0 else nan
    cv = 100.0 * rmse_dof / mean if dof > 0 and mean != 0 else nan
    nmbe = 100.0 * float(r.sum()) / (dof * mean) if dof > 0 and mean != 0 else nan
    sst = float(np.sum((y - mean) ** 2))
    r2 = 1.0 - sse / sst if sst > 0 else nan
    return Metrics(n, math.sqrt(sse / n), cv, nmbe, r2, float(np.mean(np.abs(r))))


@dataclass
class CalibrationResult:
    """Fitted parameters, metrics on both windows, acceptance and residuals."""

    model: str
    params: dict[str, float]
    train: Metrics
    holdout: Metrics
    thresholds: Thresholds
    residuals_train: pd.Series
    residuals_holdout: pd.Series
    train_window: tuple[pd.Timestamp, pd.Timestamp]
    holdout_window: tuple[pd.Timestamp, pd.Timestamp]
    method: str
    optimizer: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """Both the training fit and the hold-out validation meet the thresholds."""
        return self.train.meets(self.thresholds) and self.holdout.meets(self.thresholds)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no residual series)."""
        return {
            "model": self.model,
            "params": self.params,
            "train": self.train.as_dict(),
            "holdout": self.holdout.as_dict(),
            "accepted": self.accepted,
            "thresholds": asdict(self.thresholds),
            "train_window": [t.isoformat() for t in self.train_window],
            "holdout_window": [t.isoformat() for t in self.holdout_window],
            "method": self.method,
            "optimizer": self.optimizer,
        }


def _window(w: Window, what: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    try:
        start, end = (pd.Timestamp(w[0]), pd.Timestamp(w[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ValidationError(f"{what} window {w!r} is not (start, end): {exc}") from None
    if not start < end:
        raise ValidationError(f"{what} window must have start < end, not {start} .. {end}")
    return start, end


def _slice(frame: pd.DataFrame, w: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    idx = pd.DatetimeIndex(frame.index)
    start, end = w
    if idx.tz is not None and start.tz is None:
        start, end = start.tz_localize(idx.tz), end.tz_localize(idx.tz)
    return frame[(idx >= start) & (idx < end)]


def _interior(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Nudge x0 off the bounds (least_squares' trf method works from the interior)."""
    span = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(np.abs(x), 1.0))
    eps = 1e-6 * span
    return np.clip(x, lo + eps, hi - eps)


def calibrate(
    model: Model,
    data: Data,
    train: Window,
    holdout: Window,
    loss: Loss = "soft_l1",
    f_scale: float = 1.0,
    initial: Mapping[str, float] | None = None,
    thresholds: Thresholds = Thresholds(),
    p: int = 1,
    max_nfev: int | None = None,
) -> CalibrationResult:
    """Fit on ``train`` = [start, end), validate on the later ``holdout`` = [start, end).

    Models with their own ``fit`` (the ridge model) use it; others are fitted with
    ``scipy.optimize.least_squares`` within the parameter bounds and a robust ``loss``
    (``f_scale`` is the residual size, in output units, beyond which it down-weights).
    Each window is predicted on its own (a physics model starts from that window's first
    measurement), so hold-out metrics judge the model, not the carried-over state.
    """
    w_train, w_hold = _window(train, "train"), _window(holdout, "holdout")
    if w_hold[0] < w_train[1]:
        raise ValidationError("the hold-out window must start after the training window ends")
    frame = model.frame(data)
    if model.output not in frame:
        raise ValidationError(f"the data has no output channel {model.output!r}")
    f_train, f_hold = _slice(frame, w_train), _slice(frame, w_hold)
    for f, what in ((f_train, "train"), (f_hold, "holdout")):
        if f[model.output].notna().sum() < 3:
            raise ValidationError(f"the {what} window has fewer than 3 measured values")
    y_train = f_train[model.output].to_numpy(dtype="float64")
    fitted = model.fit(f_train)
    optimizer: dict[str, Any] = {}
    if fitted is not None:
        params = model.check_params(fitted)
        method = f"{type(model).__name__}.fit"
    else:
        names = [q.name for q in model.parameters]
        lo = np.array([q.lower for q in model.parameters], dtype="float64")
        hi = np.array([q.upper for q in model.parameters], dtype="float64")
        start = model.initial_params() | dict(initial or {})
        x0 = _interior(np.array([float(start[k]) for k in names]), lo, hi)
        ok = np.isfinite(y_train)

        def residuals(x: np.ndarray) -> np.ndarray:
            pred = model.simulate(f_train, dict(zip(names, x, strict=True))).to_numpy()
            r = pred[ok] - y_train[ok]
            return np.where(np.isfinite(r), r, 1e6)

        sol = least_squares(
            residuals,
            x0,
            bounds=(lo, hi),
            loss=loss,
            f_scale=f_scale,
            x_scale="jac",
            max_nfev=max_nfev,
        )
        params = dict(zip(names, (float(v) for v in sol.x), strict=True))
        method = f"least_squares(loss={loss}, f_scale={f_scale})"
        optimizer = {
            "success": bool(sol.success),
            "status": int(sol.status),
            "message": str(sol.message),
            "nfev": int(sol.nfev),
            "cost": float(sol.cost),
        }
    pred_train = model.simulate(f_train, params)
    pred_hold = model.simulate(f_hold, params)
    return CalibrationResult(
        model=model.kind,
        params=params,
        train=metrics(f_train[model.output], pred_train, p),
        holdout=metrics(f_hold[model.output], pred_hold, p),
        thresholds=thresholds,
        residuals_train=(f_train[model.output] - pred_train).rename("residual"),
        residuals_holdout=(f_hold[model.output] - pred_hold).rename("residual"),
        train_window=w_train,
        holdout_window=w_hold,
        method=method,
        optimizer=optimizer,
    )


def residuals(model: Model, data: Data, params: Mapping[str, float]) -> pd.Series:
    """Measured minus predicted on the data (the input of drift detection)."""
    frame = model.frame(data)
    if model.output not in frame:
        raise ValidationError(f"the data has no output channel {model.output!r}")
    pred = model.simulate(frame, model.check_params(params))
    return (frame[model.output] - pred).rename("residual")
