"""What the recalibration notebooks call: open the store, pick windows, tables, plain plots.

Notebooks in ``recalibration_runs/`` stay a few lines each; everything worth testing is
here. Plots are self-contained SVG (no JavaScript, no CDN, no plotting library), so the
HTML report renders offline and stays small.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stream0d_nb.errors import ValidationError
from stream0d_nb.recalibration.service import Outcome, Recalibration, channel_names
from stream0d_nb.specs import parse_duration_ns
from stream0d_nb.store import Store

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def open_store() -> Store:
    """The store named by the environment (the runner passes ``STREAM0D_*`` to the kernel)."""
    from stream0d_nb.platform import open_platform

    return open_platform()


def windows(
    store: Store,
    dataset: str,
    train: str,
    holdout: str,
    end: str = "",
    as_of: str = "",
) -> tuple[tuple[pd.Timestamp, pd.Timestamp], tuple[pd.Timestamp, pd.Timestamp]]:
    """Training and hold-out windows ending at ``end`` (default: the end of stored data).

    ``train`` and ``holdout`` are durations (``"2d"``): hold-out = [end - holdout, end),
    train = the ``train`` before it.
    """
    snap = store.data(dataset).snapshot(as_of or None)
    if snap.stop is None:
        raise ValidationError(f"dataset {dataset!r} has no data")
    step = snap.grid.interval_ns
    stop = pd.Timestamp(snap.stop * step, unit="ns", tz="UTC")
    t_end = pd.Timestamp(end) if end else stop
    t_end = t_end.tz_localize("UTC") if t_end.tzinfo is None else t_end.tz_convert("UTC")
    try:
        h = pd.Timedelta(parse_duration_ns(holdout, what="holdout"), unit="ns")
        t = pd.Timedelta(parse_duration_ns(train, what="train"), unit="ns")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return (t_end - h - t, t_end - h), (t_end - h, t_end)


def metrics_table(outcome: Outcome) -> pd.DataFrame:
    """Hold-out (and training) metrics of the active version before and of the candidate."""
    rows: dict[str, dict[str, Any]] = {}
    if outcome.active_holdout is not None and outcome.active_before is not None:
        rows[f"v{outcome.active_before.version} (active before), hold-out"] = (
            outcome.active_holdout.as_dict()
        )
    rows[f"v{outcome.version.version} (candidate), train"] = outcome.result.train.as_dict()
    rows[f"v{outcome.version.version} (candidate), hold-out"] = outcome.result.holdout.as_dict()
    df = pd.DataFrame(rows).T[["n", "cv_rmse", "nmbe", "rmse", "mae", "r2"]]
    return df.astype({"n": int}).round(4)


def params_table(outcome: Outcome) -> pd.DataFrame:
    """Parameters before (active) and after (candidate), with the decision."""
    cand = outcome.result.params
    before = outcome.active_before.params if outcome.active_before is not None else {}
    return pd.DataFrame(
        {
            "active before": {k: before.get(k, np.nan) for k in cand},
            "candidate": cand,
        }
    ).round(6)


def svg_lines(
    series: Sequence[pd.Series],
    title: str = "",
    width: int = 860,
    height: int = 240,
    max_points: int = 1500,
    spans: Sequence[tuple[pd.Timestamp, pd.Timestamp, str]] = (),
) -> str:
    """A plain SVG line chart of time series (decimated to ``max_points``), with a legend."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 24, 28
    clean = [s.dropna() for s in series]
    clean = [s for s in clean if len(s)]
    if not clean:
        return f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='40'><text x='8' y='24'>{html.escape(title)}: no data</text></svg>"

    def ns(idx: pd.Index) -> np.ndarray:
        return np.asarray(pd.DatetimeIndex(idx).asi8, dtype=np.float64)

    x0 = min(ns(s.index)[0] for s in clean)
    x1 = max(ns(s.index)[-1] for s in clean)
    y0 = min(float(s.min()) for s in clean)
    y1 = max(float(s.max()) for s in clean)
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    if x1 == x0:
        x1 = x0 + 1
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def px(x: np.ndarray) -> np.ndarray:
        return pad_l + (x - x0) / (x1 - x0) * w

    def py(y: np.ndarray) -> np.ndarray:
        return pad_t + (1 - (y - y0) / (y1 - y0)) * h

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "font-family='sans-serif' font-size='11'>",
        f"<text x='{pad_l}' y='14' font-size='13'>{html.escape(title)}</text>",
        f"<rect x='{pad_l}' y='{pad_t}' width='{w}' height='{h}' fill='none' stroke='#999'/>",
    ]
    for a, b, label in spans:
        xa = float(px(np.array([pd.Timestamp(a).value], dtype=np.float64))[0])
        xb = float(px(np.array([pd.Timestamp(b).value], dtype=np.float64))[0])
        xa, xb = max(xa, pad_l), min(xb, pad_l + w)
        if xb > xa:
            parts.append(
                f"<rect x='{xa:.1f}' y='{pad_t}' width='{xb - xa:.1f}' height='{h}' "
                "fill='#eee'/>"
                f"<text x='{xa + 3:.1f}' y='{pad_t + 12}' fill='#666'>{html.escape(label)}</text>"
            )
    for k, s in enumerate(clean):
        step = max(1, len(s) // max_points)
        sub = s.iloc[::step]
        xs, ys = px(ns(sub.index)), py(sub.to_numpy(dtype=np.float64))
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        color = COLORS[k % len(COLORS)]
        parts.append(f"<polyline fill='none' stroke='{color}' stroke-width='1' points='{pts}'/>")
        parts.append(
            f"<text x='{pad_l + 8 + 160 * k}' y='{height - 8}' fill='{color}'>"
            f"{html.escape(str(s.name))}</text>"
        )
    for v in (y0, y1):
        parts.append(f"<text x='4' y='{float(py(np.array([v]))[0]) + 4:.1f}'>{v:.4g}</text>")
    t_lo, t_hi = pd.Timestamp(int(x0), tz="UTC"), pd.Timestamp(int(x1), tz="UTC")
    parts.append(f"<text x='{pad_l}' y='{height - 16}' fill='#666'>{t_lo:%Y-%m-%d %H:%M}</text>")
    parts.append(
        f"<text x='{pad_l + w}' y='{height - 16}' fill='#666' text-anchor='end'>"
        f"{t_hi:%Y-%m-%d %H:%M} UTC</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def fit_plots(
    rc: Recalibration, dataset: str, model: str, outcome: Outcome, every: str = ""
) -> tuple[str, str]:
    """SVG plots of measured vs predicted and of the residuals over both windows.

    Uses the version now active (the candidate if it was activated, else the one before).
    """
    ver = rc.table.active_version(dataset, model) or outcome.version
    t0 = outcome.result.train_window[0]
    t1 = outcome.result.holdout_window[1]
    ds = rc.predictions(dataset, model, t0, t1, version=ver)
    p_name, r_name = channel_names(model)
    pred = ds[p_name].to_series()
    resid = ds[r_name].to_series()
    measured = (pred + resid).rename("measured")
    if every:
        rule = pd.Timedelta(parse_duration_ns(every), unit="ns")
        pred, resid, measured = (s.resample(rule).mean() for s in (pred, resid, measured))
    spans = [
        (outcome.result.train_window[0], outcome.result.train_window[1], "train"),
        (outcome.result.holdout_window[0], outcome.result.holdout_window[1], "hold-out"),
    ]
    fit = svg_lines(
        [measured, pred.rename(f"predicted (v{ver.version})")],
        f"{model}: measured and predicted",
        spans=spans,
    )
    res = svg_lines(
        [resid.rename(f"residual (v{ver.version})")], f"{model}: residuals", spans=spans
    )
    return fit, res
