"""Process models for recalibration: the interface, a registry, a ridge model, a thermal model.

A model names its inputs (channels, or formulas evaluated with ``ds.s0d.formula``), its
output channel and its parameters (bounds and units), and predicts the output from data.
It never opens a store: callers pass a ``pandas.DataFrame`` (time index) or an
``xarray.Dataset`` (``time`` dimension).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import lfilter
from sklearn.linear_model import Ridge

from stream0d_nb.errors import ValidationError

Data = pd.DataFrame | xr.Dataset


@dataclass(frozen=True)
class Parameter:
    """One model parameter: initial value, bounds (inclusive) and units."""

    name: str
    initial: float
    lower: float = -math.inf
    upper: float = math.inf
    units: str = "1"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.lower <= self.initial <= self.upper:
            raise ValidationError(
                f"parameter {self.name!r}: initial {self.initial} is outside "
                f"[{self.lower}, {self.upper}]"
            )


_REGISTRY: dict[str, type[Model]] = {}


def register_model[M: type[Model]](name: str) -> Callable[[M], M]:
    """Class decorator: make a model class known under ``name`` (partners add their own)."""

    def deco(cls: M) -> M:
        if not isinstance(cls, type) or not issubclass(cls, Model):
            raise ValidationError(f"{cls!r} is not a Model subclass")
        old = _REGISTRY.get(name)
        if old is not None and old is not cls:
            raise ValidationError(f"a model named {name!r} is registered already ({old!r})")
        _REGISTRY[name] = cls
        cls.kind = name
        return cls

    return deco


def model_class(name: str) -> type[Model]:
    """The model class registered under ``name`` (ValidationError naming the known ones)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValidationError(f"no model named {name!r} (known: {known})") from None


def unregister_model(name: str) -> None:
    """Forget the model class registered under ``name`` (tests, plugin reloads)."""
    _REGISTRY.pop(name, None)


def model_names() -> list[str]:
    """Names of the registered model classes, sorted."""
    return sorted(_REGISTRY)


def build_model(spec: Mapping[str, Any]) -> Model:
    """Rebuild a model from :meth:`Model.spec` (``{"model": name, "inputs", "output", ...}``)."""
    options = dict(spec)
    name = options.pop("model", None)
    if not isinstance(name, str):
        raise ValidationError("a model spec needs a 'model' name")
    return model_class(name)(**options)


def _channel(data: Data, name: str, index: pd.DatetimeIndex | None) -> pd.Series:
    """A channel, or a formula over the channels, as a float Series on the data's time index."""
    if isinstance(data, pd.DataFrame):
        if name in data.columns:
            return data[name].astype("float64")
        ds = xr.Dataset({str(c): ("time", data[c].to_numpy()) for c in data.columns})
        ds = ds.assign_coords(time=np.asarray(data.index, dtype="datetime64[ns]"))
    else:
        if name in data.data_vars:
            return data[name].to_series().astype("float64")
        ds = data
    from stream0d_nb.formulas import FormulaError

    try:
        values = ds.s0d.formula(name).to_series().astype("float64")
    except FormulaError as exc:
        raise ValidationError(f"input {name!r} is neither a channel nor a formula: {exc}") from None
    return values.reindex(index) if index is not None else values


class Model(ABC):
    """A model of one output channel from input channels or formulas.

    Subclasses define ``parameters`` and ``simulate(frame, params)``; data-driven models
    may also override ``fit`` (calibration then uses it instead of ``least_squares``).
    """

    kind: ClassVar[str] = ""

    def __init__(self, inputs: Sequence[str], output: str) -> None:
        if isinstance(inputs, str) or not inputs:
            raise ValidationError("inputs must be a non-empty list of channel names or formulas")
        self.inputs = [str(i) for i in inputs]
        self.output = str(output)

    @property
    @abstractmethod
    def parameters(self) -> tuple[Parameter, ...]:
        """The parameters, in the order of the optimiser's vector."""

    @abstractmethod
    def simulate(self, frame: pd.DataFrame, params: Mapping[str, float]) -> pd.Series:
        """Predict from a frame whose columns are the inputs (and the output when known)."""

    def fit(self, frame: pd.DataFrame) -> dict[str, float] | None:
        """Closed-form or library fit on a training frame; None means "use least_squares"."""
        return None

    def spec(self) -> dict[str, Any]:
        """What :func:`build_model` needs to rebuild this model (JSON-friendly)."""
        return {"model": self.kind, "inputs": list(self.inputs), "output": self.output}

    def initial_params(self) -> dict[str, float]:
        """Each parameter's initial value."""
        return {p.name: p.initial for p in self.parameters}

    def frame(self, data: Data, *, with_output: bool = True) -> pd.DataFrame:
        """Inputs (and the output if present) as float columns on a sorted time index."""
        if isinstance(data, xr.Dataset):
            if "time" not in data.dims:
                raise ValidationError("the dataset has no 'time' dimension")
            index = pd.DatetimeIndex(data["time"].values, name="time")
        elif isinstance(data, pd.DataFrame):
            if not isinstance(data.index, pd.DatetimeIndex):
                raise ValidationError("the DataFrame needs a DatetimeIndex")
            index = data.index
        else:
            raise ValidationError(f"data must be a DataFrame or Dataset, not {type(data).__name__}")
        cols = {name: _channel(data, name, index).to_numpy() for name in self.inputs}
        has_out = (
            self.output in data.columns
            if isinstance(data, pd.DataFrame)
            else self.output in data.data_vars
        )
        if with_output and has_out:
            cols[self.output] = _channel(data, self.output, index).to_numpy()
        out = pd.DataFrame(cols, index=pd.DatetimeIndex(index, name="time"))
        if not out.index.is_monotonic_increasing:
            out = out.sort_index()
        return out

    def check_params(self, params: Mapping[str, float]) -> dict[str, float]:
        """All parameters present, finite and within bounds (ValidationError otherwise)."""
        out: dict[str, float] = {}
        for p in self.parameters:
            if p.name not in params:
                raise ValidationError(f"missing parameter {p.name!r}")
            v = float(params[p.name])
            if math.isnan(v) or not p.lower <= v <= p.upper:
                raise ValidationError(f"parameter {p.name!r}={v} outside [{p.lower}, {p.upper}]")
            out[p.name] = v
        return out

    def predict(self, data: Data, params: Mapping[str, float]) -> pd.Series:
        """The predicted output on the data's time index (named after the output)."""
        frame = self.frame(data)
        pred = self.simulate(frame, self.check_params(params))
        return pred.rename(self.output)


def _lag_name(name: str, lag: int) -> str:
    return name if lag == 0 else f"{name}@lag{lag}"


@register_model("linear")
class LinearRegressionModel(Model):
    """Ridge regression of the output on inputs and their lags (lags in samples).

    Coefficients are reported in raw units (the ridge runs on standardised inputs so
    ``alpha`` means the same for every channel).
    """

    def __init__(
        self,
        inputs: Sequence[str],
        output: str,
        lags: Sequence[int] = (0,),
        alpha: float = 1.0,
        units: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(inputs, output)
        if not lags or any(not isinstance(k, int) or k < 0 for k in lags):
            raise ValidationError(f"lags must be non-negative sample counts, not {lags!r}")
        if not alpha >= 0:
            raise ValidationError(f"alpha must be >= 0, not {alpha!r}")
        self.lags = sorted(set(lags))
        self.alpha = float(alpha)
        self.units = dict(units or {})

    def spec(self) -> dict[str, Any]:
        """Model spec including lags, alpha and units."""
        return super().spec() | {"lags": self.lags, "alpha": self.alpha, "units": self.units}

    @property
    def features(self) -> list[tuple[str, int]]:
        """(input, lag) pairs in coefficient order."""
        return [(name, lag) for name in self.inputs for lag in self.lags]

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """Intercept then one coefficient per (input, lag)."""
        out_u = self.units.get(self.output, "1")
        params = [Parameter("intercept", 0.0, units=out_u, description="constant term")]
        for name, lag in self.features:
            in_u = self.units.get(name, "1")
            params.append(
                Parameter(_lag_name(name, lag), 0.0, units=f"({out_u})/({in_u})", description="")
            )
        return tuple(params)

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature matrix (NaN where a lag reaches before the first row)."""
        cols = [frame[name].shift(lag).to_numpy(dtype="float64") for name, lag in self.features]
        return np.column_stack(cols)

    def simulate(self, frame: pd.DataFrame, params: Mapping[str, float]) -> pd.Series:
        """Intercept plus coefficients times lagged inputs."""
        coef = np.array([params[_lag_name(n, k)] for n, k in self.features])
        return pd.Series(params["intercept"] + self.design(frame) @ coef, index=frame.index)

    def fit(self, frame: pd.DataFrame) -> dict[str, float]:
        """scikit-learn Ridge on rows where every feature and the output are finite."""
        if self.output not in frame:
            raise ValidationError(f"the training data has no output channel {self.output!r}")
        x = self.design(frame)
        y = frame[self.output].to_numpy(dtype="float64")
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if ok.sum() < x.shape[1] + 2:
            raise ValidationError(f"too few complete rows to fit ({int(ok.sum())})")
        x, y = x[ok], y[ok]
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        ridge = Ridge(alpha=self.alpha).fit((x - mean) / std, y)
        coef = ridge.coef_ / std
        out = {"intercept": float(ridge.intercept_ - coef @ mean)}
        out |= {_lag_name(n, k): float(c) for (n, k), c in zip(self.features, coef, strict=True)}
        return out


@register_model("first_order_thermal")
class FirstOrderThermalModel(Model):
    """A heated zone as a first-order lag with dead time (a barrel zone, an oven).

    ``tau * dT/dt = gain * u(t - delay) - (T - T_amb) - loss``: inputs are the heating
    input ``u`` and optionally the ambient temperature (else the constant ``ambient``).
    At steady state ``T = T_amb + gain * u - loss``, so every parameter is identifiable.
    The simulation is exact for inputs held between samples (``lfilter`` on a regular
    grid) and starts from the first measured output (else from steady state).
    """

    def __init__(
        self,
        inputs: Sequence[str],
        output: str,
        ambient: float = 20.0,
        initial: Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        units: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(inputs, output)
        if len(self.inputs) > 2:
            raise ValidationError("inputs are [heating] or [heating, ambient temperature]")
        self.ambient = float(ambient)
        self.initial = dict(initial or {})
        self.bounds = {k: (float(lo), float(hi)) for k, (lo, hi) in (bounds or {}).items()}
        self.units = dict(units or {})
        unknown = (set(self.initial) | set(self.bounds)) - {p.name for p in self._defaults()}
        if unknown:
            raise ValidationError(f"unknown parameters {sorted(unknown)}")
        self._params = tuple(self._with_overrides(p) for p in self._defaults())

    def _defaults(self) -> tuple[Parameter, ...]:
        t_u = self.units.get(self.output, "K")
        u_u = self.units.get(self.inputs[0], "1")
        return (
            Parameter("gain", 1.0, 0.0, 1e6, f"({t_u})/({u_u})", "steady rise per unit input"),
            Parameter("tau", 600.0, 1e-3, 1e7, "s", "time constant"),
            Parameter("delay", 0.0, 0.0, 3600.0, "s", "dead time of the heating input"),
            Parameter("loss", 0.0, -1e4, 1e4, t_u, "constant heat loss as a temperature drop"),
        )

    def _with_overrides(self, p: Parameter) -> Parameter:
        lo, hi = self.bounds.get(p.name, (p.lower, p.upper))
        init = self.initial.get(p.name, min(max(p.initial, lo), hi))
        return Parameter(p.name, float(init), lo, hi, p.units, p.description)

    def spec(self) -> dict[str, Any]:
        """Model spec including ambient, initial values, bounds and units."""
        return super().spec() | {
            "ambient": self.ambient,
            "initial": self.initial,
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "units": self.units,
        }

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """gain, tau (s), delay (s), loss."""
        return self._params

    def simulate(self, frame: pd.DataFrame, params: Mapping[str, float]) -> pd.Series:
        """Discrete simulation of the zone temperature from the inputs."""
        n = len(frame)
        if n == 0:
            return pd.Series([], index=frame.index, dtype="float64")
        t = (frame.index - frame.index[0]).total_seconds().to_numpy(dtype="float64")
        u = frame[self.inputs[0]].ffill().bfill().to_numpy(dtype="float64")
        if len(self.inputs) == 2:
            amb = frame[self.inputs[1]].ffill().bfill().to_numpy(dtype="float64")
        else:
            amb = np.full(n, self.ambient)
        if not (np.isfinite(u).all() and np.isfinite(amb).all()):
            raise ValidationError("the inputs have no finite values to simulate from")
        gain, tau, delay, loss = (params[k] for k in ("gain", "tau", "delay", "loss"))
        forcing = gain * np.interp(t - delay, t, u) + amb - loss
        start = forcing[0]
        if self.output in frame:
            measured = frame[self.output].to_numpy(dtype="float64")
            finite = np.flatnonzero(np.isfinite(measured))
            if finite.size and finite[0] == 0:
                start = measured[0]
        y = np.empty(n)
        y[0] = start
        if n > 1:
            h = np.diff(t)
            if np.all(h == h[0]):
                a = math.exp(-h[0] / tau)
                y[1:] = lfilter([1.0 - a], [1.0, -a], forcing[:-1], zi=[a * start])[0]
            else:
                decay = np.exp(-h / tau)
                for k in range(n - 1):
                    y[k + 1] = decay[k] * y[k] + (1.0 - decay[k]) * forcing[k]
        return pd.Series(y, index=frame.index)
