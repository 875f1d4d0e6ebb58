"""Drift detection on model residuals (measured minus predicted).

Two complementary checks: a rolling CV(RMSE) above a threshold (the fit has become poor,
whatever the cause) and a sequential test on the residual mean, Page–Hinkley or a
two-sided tabular CUSUM (a bias has appeared, found quickly even when small). NaN
residuals (gaps) are skipped by every test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stream0d_nb.errors import ValidationError
from stream0d_nb.specs import parse_duration_ns


def _finite(residuals: pd.Series) -> pd.Series:
    if not isinstance(residuals, pd.Series):
        raise ValidationError("residuals must be a pandas Series on a time index")
    return residuals.astype("float64").dropna()


def rolling_cvrmse(
    residuals: pd.Series,
    measured: pd.Series,
    window: int | str,
    min_periods: int | None = None,
) -> pd.Series:
    """CV(RMSE) in percent over a trailing window: ``100 * sqrt(mean(r^2)) / mean(y)``.

    ``window`` is a number of samples or a duration (``"1h"``); a rolling window uses
    ``n`` (not ``n - p``) degrees of freedom. Values are NaN until ``min_periods`` pairs.
    """
    r, y = residuals.astype("float64").align(measured.astype("float64"), join="inner")
    both = r.notna() & y.notna()
    r, y = r.where(both), y.where(both)
    roll_w: int | pd.Timedelta
    if isinstance(window, str):
        try:
            roll_w = pd.Timedelta(parse_duration_ns(window, what="window"), unit="ns")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    elif isinstance(window, int) and window > 0:
        roll_w = window
    else:
        raise ValidationError(f"window must be a positive sample count or a duration: {window!r}")
    mp = 1 if min_periods is None else min_periods
    mse = (r * r).rolling(roll_w, min_periods=mp).mean()
    level = y.rolling(roll_w, min_periods=mp).mean()
    return (100.0 * np.sqrt(mse) / level).rename("cv_rmse")


def first_exceedance(series: pd.Series, threshold: float) -> pd.Timestamp | None:
    """The first time ``series`` is above ``threshold`` (None if never)."""
    above = series.index[series.to_numpy(dtype="float64") > threshold]
    return pd.Timestamp(above[0]) if len(above) else None


def page_hinkley_statistic(
    residuals: pd.Series, delta: float, reference: float | None = None
) -> pd.DataFrame:
    """Page–Hinkley statistics ``up`` (mean increase) and ``down`` (decrease) per sample.

    ``up_T = m_T - min(m_t)`` with ``m_T = sum(x_t - mean_t - delta)``; ``down`` mirrors
    it. ``mean_t`` is the running mean, or the fixed ``reference`` (e.g. 0 for the
    residuals of a freshly calibrated model, which reacts faster).
    """
    x = _finite(residuals)
    v = x.to_numpy()
    if reference is None:
        mean = np.cumsum(v) / np.arange(1, v.size + 1)
    else:
        mean = np.full(v.size, float(reference))
    inc = np.cumsum(v - mean - delta)
    dec = np.cumsum(v - mean + delta)
    up = inc - np.minimum.accumulate(np.minimum(inc, 0.0))
    down = np.maximum.accumulate(np.maximum(dec, 0.0)) - dec
    return pd.DataFrame({"up": up, "down": down}, index=x.index)


def page_hinkley(
    residuals: pd.Series,
    delta: float,
    threshold: float,
    reference: float | None = None,
) -> pd.Timestamp | None:
    """First time the Page–Hinkley test alarms, in either direction (None if never).

    ``delta`` is the tolerated change of the mean (output units), ``threshold`` (lambda)
    the alarm level: larger means fewer false alarms and a longer detection delay.
    """
    if delta < 0 or threshold <= 0:
        raise ValidationError("delta must be >= 0 and threshold > 0")
    stat = page_hinkley_statistic(residuals, delta, reference)
    return first_exceedance(stat.max(axis=1), threshold)


def cusum(
    residuals: pd.Series,
    k: float,
    h: float,
    target: float = 0.0,
) -> pd.Timestamp | None:
    """First alarm of a two-sided tabular CUSUM on the residual mean (None if never).

    ``S+ = max(0, S+ + x - target - k)``, ``S- = max(0, S- - x + target - k)``; alarm when
    either exceeds ``h``. Usual choice: ``k`` half the shift to detect, ``h`` 4-5 sigma.
    """
    if k < 0 or h <= 0:
        raise ValidationError("k must be >= 0 and h > 0")
    x = _finite(residuals)
    hi = lo = 0.0
    for t, v in zip(x.index, x.to_numpy(), strict=True):
        hi = max(0.0, hi + v - target - k)
        lo = max(0.0, lo - v + target - k)
        if hi > h or lo > h:
            return pd.Timestamp(t)
    return None


@dataclass(frozen=True)
class DriftReport:
    """When each check first alarmed (None = no alarm) and whether any did."""

    cv_rmse_alarm: pd.Timestamp | None
    sequential_alarm: pd.Timestamp | None

    @property
    def drifted(self) -> bool:
        """At least one check alarmed."""
        return self.cv_rmse_alarm is not None or self.sequential_alarm is not None

    @property
    def first_alarm(self) -> pd.Timestamp | None:
        """The earlier of the two alarms."""
        times = [t for t in (self.cv_rmse_alarm, self.sequential_alarm) if t is not None]
        return min(times) if times else None


def detect_drift(
    residuals: pd.Series,
    measured: pd.Series,
    window: int | str,
    cv_threshold: float,
    delta: float,
    threshold: float,
    reference: float | None = 0.0,
) -> DriftReport:
    """Both checks at once: rolling CV(RMSE) over ``window`` and Page–Hinkley."""
    cv = rolling_cvrmse(residuals, measured, window)
    if isinstance(window, int):
        cv = cv.iloc[window - 1 :]  # only full windows
    elif len(cv):
        cv = cv[cv.index >= cv.index[0] + pd.Timedelta(parse_duration_ns(window), unit="ns")]
    return DriftReport(
        cv_rmse_alarm=first_exceedance(cv, cv_threshold),
        sequential_alarm=page_hinkley(residuals, delta, threshold, reference),
    )
