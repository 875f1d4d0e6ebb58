"""Recalibration on a store: models of datasets, versions with an activation rule, predictions.

``Recalibration(store)`` ties the pure parts (``models``, ``calibrate``, ``drift``) to the
platform. It reads the training and hold-out windows through ``derived.read`` (so inputs
may be derived channels), calibrates, and records a **version** in the registry with its
parameters, metrics on both windows, the windows, the Icechunk snapshot id of the data it
read and who/what triggered it.

**Activation rule** (per model, configurable): a candidate becomes active only if, on the
candidate's hold-out window, it beats the active version evaluated on that same window by
the configured ``margin`` (relative, 0.05 = 5 % better) on the configured ``metric``
(``cv_rmse`` by default; ``rmse``, ``mae``, ``abs_nmbe`` lower is better, ``r2`` higher
is better); optionally it must also meet the ASHRAE thresholds (``require_acceptance``).
The first version activates when it is valid (finite metric; acceptance if required).
Rejected candidates are recorded with their metrics and the reason.

**Predictions and residuals read like channels**: when a version becomes active, its
predictions and residuals (measured minus predicted) are materialised as two channels of
the dataset, ``<model>.predicted`` and ``<model>.residual`` (tagged ``model``), over all
data; ``after_write`` (a store write hook) recomputes them for the written range plus
the model's warm-up. Plots, formulas, exports and alert rules (kind ``model_residual``)
read them like any channel; ``predictions()`` computes them on the fly instead (any
range, any ``as_of``) without storing anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from stream0d_nb import derived
from stream0d_nb.db.recal_tables import ModelRecord, RecalRegistry, VersionRecord
from stream0d_nb.errors import ValidationError
from stream0d_nb.recalibration.calibration import (
    CalibrationResult,
    Loss,
    Metrics,
    Thresholds,
    Window,
    calibrate,
    metrics,
)
from stream0d_nb.recalibration.drift import DriftReport, detect_drift
from stream0d_nb.recalibration.models import Model, build_model
from stream0d_nb.specs import IngestOptions, IngestReport, check_slug
from stream0d_nb.store import Store
from stream0d_nb.store.grid import to_ns
from stream0d_nb.units import parse_units, ureg

MODEL_TAG = "model"
SOURCE_PREFIX = "model:"
MetricName = Literal["cv_rmse", "rmse", "mae", "abs_nmbe", "r2"]


def channel_names(model: str) -> tuple[str, str]:
    """The channels holding a model's predictions and residuals."""
    return f"{model}.predicted", f"{model}.residual"


@dataclass(frozen=True)
class Activation:
    """When a candidate version replaces the active one (see the module docstring)."""

    metric: MetricName = "cv_rmse"
    margin: float = 0.0
    require_acceptance: bool = False

    def __post_init__(self) -> None:
        if self.metric not in ("cv_rmse", "rmse", "mae", "abs_nmbe", "r2"):
            raise ValidationError(
                f"activation metric {self.metric!r} is not one of cv_rmse, rmse, mae, abs_nmbe, r2"
            )
        if not 0 <= self.margin < 1:
            raise ValidationError(f"activation margin {self.margin} must be in [0, 1)")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Activation:
        """From the JSON stored with a model."""
        return cls(**dict(d or {}))

    def value(self, m: Mapping[str, Any]) -> float:
        """The compared metric of a metrics dict (abs of NMBE for ``abs_nmbe``)."""
        if self.metric == "abs_nmbe":
            return abs(float(m["nmbe"]))
        return float(m[self.metric])

    def decide(
        self, candidate: Mapping[str, Any], active: Mapping[str, Any] | None, accepted: bool
    ) -> tuple[bool, str]:
        """(activate?, reason) from hold-out metrics of the candidate and the active version."""
        c = self.value(candidate)
        if not math.isfinite(c):
            return False, f"candidate {self.metric} on the hold-out window is undefined"
        if self.require_acceptance and not accepted:
            return False, "candidate does not meet the acceptance thresholds"
        if active is None:
            return True, f"first version ({self.metric} {c:.4g} on hold-out)"
        a = self.value(active)
        if not math.isfinite(a):
            return True, f"active version's {self.metric} on the hold-out window is undefined"
        if self.metric == "r2":
            better, need = c > a + self.margin * abs(a), a + self.margin * abs(a)
        else:
            better, need = c < a * (1 - self.margin), a * (1 - self.margin)
        word = "beats" if better else "does not beat"
        return better, (
            f"candidate {self.metric} {c:.4g} {word} the active version's {a:.4g} "
            f"(needed {'>' if self.metric == 'r2' else '<'} {need:.4g}, margin {self.margin:g})"
        )


@dataclass
class Outcome:
    """What one recalibration did: the recorded version, the fit, and the comparison."""

    version: VersionRecord
    result: CalibrationResult
    active_before: VersionRecord | None
    active_holdout: Metrics | None
    snapshot: str

    @property
    def activated(self) -> bool:
        """Whether the candidate became the active version."""
        return self.version.status == "active"

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (what the runner stores as a run's metrics)."""
        return {
            "model": self.version.model,
            "dataset": self.version.dataset,
            "version": self.version.version,
            "version_id": self.version.id,
            "status": self.version.status,
            "reason": self.version.reason,
            "snapshot": self.snapshot,
            "candidate": self.result.summary(),
            "active_before": None
            if self.active_before is None
            else {
                "version": self.active_before.version,
                "params": self.active_before.params,
                "holdout": None if self.active_holdout is None else self.active_holdout.as_dict(),
            },
        }


@dataclass(frozen=True)
class DriftSpan:
    """What a drift check reads: the active version, the residuals' range ``[start, end)``
    (UTC ns), and the channels read from ``read_start`` on (the model's warm-up)."""

    version: VersionRecord
    start: int
    end: int
    read_start: int
    channels: list[str]


def _residual_units(units: str) -> str:
    """Units of a difference of ``units`` (``delta_degC`` for an offset unit)."""
    if not units:
        return ""
    try:
        q = ureg.Quantity(1.0, parse_units(units))
    except ValidationError:
        return units
    return f"delta_{units}" if not q._is_multiplicative else units


def _ts(x: object) -> pd.Timestamp:
    t = pd.Timestamp(x)  # type: ignore[arg-type]
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _dt(t: pd.Timestamp) -> datetime:
    return _ts(t).to_pydatetime()


class Recalibration:
    """Models, versions and predictions of a store's datasets."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = RecalRegistry(store.registry)

    # ---- models ----------------------------------------------------------------------
    def define_model(
        self,
        dataset_id: str,
        name: str,
        model: Model,
        activation: Activation | None = None,
        actor: str | None = None,
    ) -> ModelRecord:
        """Register (or update) a model of a dataset; its inputs and output must resolve."""
        try:
            check_slug(name, "model name")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        self._refs(dataset_id, model)
        return self.table.save_model(
            dataset_id,
            name,
            model.kind,
            model.spec(),
            asdict(activation or Activation()),
            self.store.actor(actor),
        )

    def model(self, dataset_id: str, name: str) -> Model:
        """The model object of a registered model."""
        return build_model(self.table.model(dataset_id, name).spec)

    def activation(self, dataset_id: str, name: str) -> Activation:
        """The activation rule of a registered model."""
        return Activation.from_dict(self.table.model(dataset_id, name).activation)

    def _refs(self, dataset_id: str, model: Model, as_of: object = None) -> list[str]:
        """Stored or derived channels the model reads (formula inputs resolved)."""
        ctx = derived.DerivedContext(self.store, dataset_id, as_of)  # type: ignore[arg-type]
        known = set(ctx.raw_units) | set(ctx.formulas)
        out: list[str] = []
        for name in [*model.inputs, model.output]:
            if name in known:
                refs = [name]
            else:
                try:
                    refs = sorted(ctx._compile_text(name).refs)
                except Exception as exc:
                    raise ValidationError(
                        f"model input {name!r} is neither a channel of {dataset_id!r} nor a "
                        f"formula over its channels: {exc}"
                    ) from None
            out += [r for r in refs if r not in out]
        return out

    def read(
        self,
        dataset_id: str,
        model: Model,
        start: object | None = None,
        end: object | None = None,
        every: str | None = None,
        as_of: object = None,
    ) -> xr.Dataset:
        """The model's channels over ``[start, end)`` (``attrs['snapshot']`` says which data)."""
        names = self._refs(dataset_id, model, as_of)
        ds = derived.read(self.store, dataset_id, names, start, end, every, "mean", as_of)  # type: ignore[arg-type]
        ds.attrs.setdefault(
            "snapshot",
            self.store.data(dataset_id).snapshot(as_of).id,  # type: ignore[arg-type]
        )
        return ds

    # ---- recalibration ------------------------------------------------------------------
    def recalibrate(
        self,
        dataset_id: str,
        name: str,
        train: Window,
        holdout: Window,
        *,
        every: str | None = None,
        as_of: object = None,
        loss: Loss = "soft_l1",
        f_scale: float = 1.0,
        thresholds: Thresholds | None = None,
        trigger: str = "manual",
        actor: str | None = None,
        run_id: int | None = None,
        materialize: bool = True,
    ) -> Outcome:
        """Calibrate a candidate, compare it with the active version, record the decision.

        Data is read at ``as_of`` (default: the head) and aggregated to ``every`` if given
        (a large fit on 1 s data usually runs on 1 min means). When the candidate is
        activated, its predictions and residuals are materialised (``materialize``).
        """
        model = self.model(dataset_id, name)
        rule = self.activation(dataset_id, name)
        t0, t1 = _ts(train[0]), _ts(train[1])
        h0, h1 = _ts(holdout[0]), _ts(holdout[1])
        data = self.read(dataset_id, model, t0, h1, every, as_of)
        snapshot = str(data.attrs["snapshot"])
        naive = [t.tz_convert(None) for t in (t0, t1, h0, h1)]  # xarray times are naive UTC
        result = calibrate(
            model,
            data,
            (naive[0], naive[1]),
            (naive[2], naive[3]),
            loss=loss,
            f_scale=f_scale,
            thresholds=thresholds or Thresholds(),
        )
        active = self.table.active_version(dataset_id, name)
        active_hold: Metrics | None = None
        if active is not None:
            frame = model.frame(data)
            idx = pd.DatetimeIndex(frame.index)
            hold = frame[(idx >= naive[2]) & (idx < naive[3])]
            try:
                pred = model.simulate(hold, model.check_params(active.params))
                active_hold = metrics(hold[model.output], pred)
            except ValidationError:
                active_hold = None
        cand = result.holdout.as_dict()
        activate, reason = rule.decide(
            cand, None if active_hold is None else active_hold.as_dict(), result.accepted
        )
        if active is not None and active_hold is None:
            activate, reason = activate, reason + " (the active version could not be evaluated)"
        version = self.table.record_version(
            dataset_id,
            name,
            params=result.params,
            metrics={
                "train": result.train.as_dict(),
                "holdout": cand,
                "active_holdout": None if active_hold is None else active_hold.as_dict(),
                "accepted": result.accepted,
                "thresholds": asdict(thresholds or Thresholds()),
                "method": result.method,
                "optimizer": result.optimizer,
                "every": every,
                "activation": asdict(rule),
            },
            train_window=(_dt(t0), _dt(t1)),
            holdout_window=(_dt(h0), _dt(h1)),
            snapshot=snapshot,
            trigger=trigger,
            activate=activate,
            reason=reason,
            actor=self.store.actor(actor),
            run_id=run_id,
            expected_active=None if active is None else active.id,
        )
        outcome = Outcome(version, result, active, active_hold, snapshot)
        if outcome.activated and materialize:
            self.materialize(dataset_id, name, actor=actor)
        return outcome

    # ---- predictions and residuals --------------------------------------------------------
    def _warmup_ns(self, model: Model, params: Mapping[str, float], interval_ns: int) -> int:
        """How much earlier than a range its simulation must start to be settled there."""
        if "tau" in params:
            return int((5 * float(params["tau"]) + float(params.get("delay", 0.0))) * 1e9)
        lags = getattr(model, "lags", None)
        return max(lags) * interval_ns if lags else 0

    def predictions(
        self,
        dataset_id: str,
        name: str,
        start: object | None = None,
        end: object | None = None,
        as_of: object = None,
        version: VersionRecord | None = None,
    ) -> xr.Dataset:
        """``<model>.predicted`` and ``<model>.residual`` of the active (or given) version.

        Computed on the fly on the dataset's grid over ``[start, end)``; the simulation
        starts a warm-up earlier (5 time constants for a thermal model, the largest lag for
        a regression) from the measured state there.
        """
        ver = version or self.table.active_version(dataset_id, name)
        if ver is None:
            raise ValidationError(
                f"model {name!r} of {dataset_id!r} has no active version yet: recalibrate it"
            )
        model = self.model(dataset_id, name)
        snap = self.store.data(dataset_id).snapshot(as_of)  # type: ignore[arg-type]
        step = snap.grid.interval_ns
        if snap.start is None or snap.stop is None:
            raise ValidationError(f"dataset {dataset_id!r} has no data")
        lo = snap.start * step if start is None else to_ns(start)
        hi = snap.stop * step if end is None else to_ns(end)
        warm = self._warmup_ns(model, ver.params, step)
        read_lo = max(lo - warm, snap.start * step) // step * step
        data = self.read(
            dataset_id, model, np.datetime64(read_lo, "ns"), np.datetime64(hi, "ns"), None, snap.id
        )
        frame = model.frame(data)
        pred = model.simulate(frame, model.check_params(ver.params))
        resid = frame[model.output] - pred if model.output in frame else pred * np.nan
        keep = np.asarray(pd.DatetimeIndex(frame.index).asi8 >= lo)
        p_name, r_name = channel_names(name)
        units = str(data[model.output].attrs.get("units", "")) if model.output in data else ""
        times = np.asarray(frame.index[keep], dtype="datetime64[ns]")
        ds = xr.Dataset(
            {
                p_name: ("time", pred.to_numpy()[keep], {"units": units}),
                r_name: ("time", resid.to_numpy()[keep], {"units": _residual_units(units)}),
            },
            coords={"time": times},
        )
        ds.attrs.update(
            {
                "dataset": dataset_id,
                "snapshot": snap.id,
                "model": name,
                "version": ver.version,
            }
        )
        return ds

    def materialize(
        self,
        dataset_id: str,
        name: str,
        start: object | None = None,
        end: object | None = None,
        actor: str | None = None,
    ) -> IngestReport:
        """Store the active version's predictions and residuals as channels (one commit)."""
        ds = self.predictions(dataset_id, name, start, end)
        ver = int(ds.attrs["version"])
        for var in ds.data_vars.values():
            var.attrs["tags"] = [MODEL_TAG]
        report = self.store.write(
            dataset_id,
            ds,
            actor=actor or "recalibration",
            source=f"{SOURCE_PREFIX}{name}:v{ver}",
            options=IngestOptions(new_channels=True, on_existing="overwrite"),
        )
        self._tag(dataset_id, name, ver)
        return report

    def _tag(self, dataset_id: str, name: str, version: int) -> None:
        """Describe the model channels (tags, description) in the registry."""
        from stream0d_nb.specs import ChannelSpec

        current = {c.name: c for c in self.store.registry.list_channels(dataset_id)}
        specs = []
        for ch, what in zip(
            channel_names(name), ("prediction", "residual (measured - predicted)"), strict=True
        ):
            c = current.get(ch)
            if c is None:
                continue
            desc = f"model {name} {what}, active version {version}"
            if c.description != desc or MODEL_TAG not in c.tags:
                specs.append(
                    ChannelSpec(
                        name=ch,
                        units=c.units,
                        long_name=c.long_name,
                        description=desc,
                        tags=sorted({*c.tags, MODEL_TAG}),
                    )
                )
        if specs:
            self.store.registry.upsert_channels(dataset_id, specs, "recalibration")

    def after_write(
        self,
        store: Store,
        dataset_id: str,
        report: IngestReport,
        models: list[ModelRecord] | None = None,
    ) -> None:
        """Store write hook: refresh predictions/residuals of active models the write touched.

        ``models``: the dataset's models when the caller has just read them."""
        if report.source.startswith(SOURCE_PREFIX) or report.start is None or report.end is None:
            return
        written = set(report.channels) | set(report.new_channels)
        for rec in self.table.models(dataset_id) if models is None else models:
            model = build_model(rec.spec)
            if not written & set(self._refs(dataset_id, model)):
                continue
            if self.table.active_version(dataset_id, rec.name) is None:
                continue
            step = store.data(dataset_id).snapshot().grid.interval_ns
            self.materialize(
                dataset_id,
                rec.name,
                np.datetime64(to_ns(report.start), "ns"),
                np.datetime64(to_ns(report.end) + step, "ns"),
            )

    # ---- drift -------------------------------------------------------------------------
    def drift_span(
        self, dataset_id: str, name: str, start: object | None = None, end: object | None = None
    ) -> DriftSpan:
        """What ``check_drift`` with these bounds reads (to bound a request before reading):
        from the end of the active version's hold-out window (default) to the data's end."""
        ver = self.table.active_version(dataset_id, name)
        if ver is None:
            raise ValidationError(f"model {name!r} of {dataset_id!r} has no active version yet")
        model = self.model(dataset_id, name)
        snap = self.store.data(dataset_id).snapshot()
        step = snap.grid.interval_ns
        if snap.start is None or snap.stop is None:
            raise ValidationError(f"dataset {dataset_id!r} has no data")
        lo = to_ns(start if start is not None else ver.holdout_window[1])
        hi = snap.stop * step if end is None else to_ns(end)
        read_lo = max(lo - self._warmup_ns(model, ver.params, step), snap.start * step)
        return DriftSpan(ver, lo, hi, read_lo // step * step, self._refs(dataset_id, model))

    def check_drift(
        self,
        dataset_id: str,
        name: str,
        start: object | None = None,
        end: object | None = None,
        *,
        window: int | str = "1h",
        cv_threshold: float = 30.0,
        delta: float = 0.5,
        threshold: float = 50.0,
    ) -> DriftReport:
        """Drift of the active version's residuals since its hold-out window ended (default).

        Rolling CV(RMSE) over ``window`` above ``cv_threshold`` percent, and Page–Hinkley
        with tolerance ``delta`` and alarm level ``threshold`` (output units) on the
        residual mean (reference 0: a calibrated model has unbiased residuals).
        """
        ver = self.table.active_version(dataset_id, name)
        if ver is None:
            raise ValidationError(f"model {name!r} of {dataset_id!r} has no active version yet")
        lo = start if start is not None else ver.holdout_window[1]
        ds = self.predictions(dataset_id, name, lo, end, version=ver)
        p_name, r_name = channel_names(name)
        resid = ds[r_name].to_series()
        measured = ds[p_name].to_series() + resid
        return detect_drift(resid, measured, window, cv_threshold, delta, threshold)
