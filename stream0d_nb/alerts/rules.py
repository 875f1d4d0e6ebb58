"""Alert rule specs (pydantic): what a rule watches, when it fires and when it clears.

Every kind compiles to formulas of the formula language (docs/formulas.md), per series
(one per channel, or one for a rule on a formula): ``value_formula`` (the watched value,
whose extreme is an episode's peak), ``condition_formula`` (1 = fire, 0 = not, NaN =
unknown) and ``clear_formula_text`` (1 = the episode ends; None = "condition is 0").

Kind ``model_residual`` watches the residual channel of a recalibration model
(``<model>.residual``, measured minus predicted, materialised by
``stream0d_nb.recalibration``): it fires when the rolling CV(RMSE) over ``window``
(``100 * sqrt(mean(r²)) / mean(measured)``, measured = ``<model>.predicted`` + residual)
is above ``cv_rmse`` percent, or when the rolling mean of the residual is beyond
``bias`` (output units) either way. ``units`` converts the mean level before dividing
(``"K"`` for a temperature in degC: CV(RMSE) needs a ratio scale).

Hysteresis: ``clear_below``/``clear_above`` end an episode only when the watched value
(its absolute value for two-sided rate/spike rules) is below/above them (both given: both
must hold, e.g. back well inside an ``outside`` range); ``clear_formula`` is any boolean
formula instead. Without them an episode ends when the condition is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from stream0d_nb.formulas import Compiled, FormulaError, compile_formula
from stream0d_nb.safetext import Line, Text, check_text
from stream0d_nb.specs import check_slug, format_duration, parse_duration, parse_duration_ns

Kind = Literal[
    "threshold",
    "rate_of_change",
    "no_data",
    "flatline",
    "spike",
    "missing_share",
    "formula",
    "model_residual",
]
Severity = Literal["critical", "major", "minor", "warning", "info"]
ThresholdOp = Literal[">", "<", ">=", "<=", "outside", "inside"]
PeakMode = Literal["max", "min", "absmax", "outside", "first", "none"]
ALL_CHANNELS = "*"
FORMULA_SERIES = ""  # the series name of a rule on a formula (channel names are never empty)

# Fields each kind needs (required) and accepts (optional), besides the common options.
KIND_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "threshold": ({"op"}, {"value", "low", "high", "units", "channels", "formula"}),
    "rate_of_change": ({"limit"}, {"per", "direction", "window", "channels", "formula"}),
    "no_data": ({"window"}, {"channels", "formula"}),
    "flatline": ({"window"}, {"tolerance", "channels", "formula"}),
    "spike": ({"window", "k"}, {"method", "direction", "channels", "formula"}),
    "missing_share": ({"window", "min_good"}, {"channels", "formula"}),
    "formula": ({"formula"}, set()),
    "model_residual": ({"model", "window"}, {"cv_rmse", "bias", "units"}),
}
KIND_ONLY = {
    "op", "value", "low", "high", "units", "limit", "per", "direction", "window",
    "tolerance", "method", "k", "min_good", "model", "cv_rmse", "bias",
}  # fmt: skip
DEFAULTS = {"per": "s", "direction": "both", "method": "zscore", "tolerance": 0.0}


def num(x: float) -> str:
    """A float as formula text (``repr`` keeps every digit; never inf/NaN here)."""
    return repr(float(x))


class Test:
    """A numpy predicate on the watched value equal to the condition formula (fast path)."""

    def __init__(self, op: str, a: float, b: float = math.nan, absolute: bool = False) -> None:
        self.op, self.a, self.b, self.absolute = op, a, b, absolute


RESERVED_RULE_NAMES = frozenset(
    {"backfill", "deliveries", "events", "preview", "routes", "silences"}
)
"""Names the API's ``/datasets/{id}/alerts/<name>`` paths use for other things."""


class AlertRule(BaseModel):
    """One alert rule of a dataset; ``kind`` decides which of the kind fields apply.

    Durations are strings (``"5min"``); ``for_duration`` (alias ``for``) is how long the
    condition must hold on the grid before the rule fires.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(..., description="Slug, unique per dataset.")
    kind: Kind
    channels: list[str] = Field(
        default_factory=list, description="Channels watched, one series each; ['*'] = all."
    )
    formula: str | None = Field(
        None, description="Watched value as a formula (kind formula: the boolean condition)."
    )
    # threshold
    op: ThresholdOp | None = None
    value: float | None = Field(None, description="Threshold for > < >= <=.")
    low: float | None = Field(None, description="Range low end for outside/inside (inclusive).")
    high: float | None = Field(None, description="Range high end for outside/inside (inclusive).")
    units: Line | None = Field(None, description="Units of value/low/high (default: the value's).")
    # rate_of_change
    limit: float | None = Field(None, description="Rate limit in value units per `per`.")
    per: Literal["s", "min"] | None = None
    direction: Literal["both", "up", "down"] | None = None
    # windows and the rest
    window: str | None = Field(None, description="Window or silence duration of the kind.")
    tolerance: float | None = Field(None, ge=0, description="Flatline: max - min allowed.")
    method: Literal["zscore", "mad"] | None = None
    k: float | None = Field(None, gt=0, description="Spike: score above which a sample is one.")
    min_good: float | None = Field(
        None, gt=0, le=100, description="Missing share: fire when pct_good < this percent."
    )
    # model_residual
    model: str | None = Field(None, description="Model residual: the recalibration model.")
    cv_rmse: float | None = Field(
        None, gt=0, description="Model residual: fire when rolling CV(RMSE) % is above this."
    )
    bias: float | None = Field(
        None, gt=0, description="Model residual: fire when |rolling mean residual| is above."
    )
    # common options
    for_duration: str = Field(
        "0s",
        validation_alias=AliasChoices("for_duration", "for"),
        description="How long the condition must hold before firing.",
    )
    clear_below: float | None = Field(None, description="Hysteresis: clear when value below.")
    clear_above: float | None = Field(None, description="Hysteresis: clear when value above.")
    clear_formula: str | None = Field(None, description="Clear when this formula is true.")
    severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    description: Text = ""
    runbook: Line = ""
    evaluation_interval: str = Field("1min", description="How often live evaluation runs.")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if v in RESERVED_RULE_NAMES:
            raise ValueError(
                f"rule name {v!r} is reserved (the API's alerts/{v} means something else); "
                "choose another name"
            )
        return check_slug(v, "rule name", 128)

    @field_validator("channels", mode="before")
    @classmethod
    def _one_channel(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("labels")
    @classmethod
    def _labels_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            check_text(key, "label name")
            check_text(value, f"label {key!r}")
        return v

    @field_validator("model")
    @classmethod
    def _model_ok(cls, v: str | None) -> str | None:
        return None if v is None else check_slug(v, "model name")

    @field_validator("for_duration")
    @classmethod
    def _for_ok(cls, v: str) -> str:
        ns = parse_duration(v) if isinstance(v, str) else None
        if ns is None or ns < 0:
            raise ValueError(f"for_duration {v!r} must be a duration such as '0s' or '5min'")
        return format_duration(ns) if ns else "0s"

    @field_validator("window", "evaluation_interval")
    @classmethod
    def _duration_ok(cls, v: str | None) -> str | None:
        return None if v is None else format_duration(parse_duration_ns(v))

    @field_validator("value", "low", "high", "limit", "clear_below", "clear_above", "tolerance")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _kind_fields(self) -> AlertRule:
        required, optional = KIND_FIELDS[self.kind]
        given = {
            f for f in KIND_ONLY | {"channels", "formula"} if getattr(self, f) not in (None, [])
        }
        for f in sorted(required - given):
            raise ValueError(f"a {self.kind} rule needs {f!r}")
        for f in sorted(given - required - optional):
            raise ValueError(f"{f!r} does not apply to a {self.kind} rule")
        for f, default in DEFAULTS.items():
            if f in optional and getattr(self, f) is None:
                setattr(self, f, default)
        if self.kind == "model_residual" and self.cv_rmse is None and self.bias is None:
            raise ValueError("a model_residual rule needs 'cv_rmse' and/or 'bias'")
        if self.kind not in ("formula", "model_residual") and bool(self.channels) == bool(
            self.formula
        ):
            raise ValueError("give either channels or formula (the watched value), not both")
        self._check_threshold()
        self._check_clear()
        return self

    def _check_threshold(self) -> None:
        if self.kind != "threshold":
            return
        ranged = self.op in ("outside", "inside")
        if ranged and (self.low is None or self.high is None or self.value is not None):
            raise ValueError(f"op {self.op!r} needs low and high (and no value)")
        if not ranged and (self.value is None or self.low is not None or self.high is not None):
            raise ValueError(f"op {self.op!r} needs value (and no low/high)")
        if ranged and self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")

    def _check_clear(self) -> None:
        bounds = self.clear_below is not None or self.clear_above is not None
        if bounds and self.clear_formula:
            raise ValueError("give clear_below/clear_above or clear_formula, not both")
        if bounds and self.kind in ("no_data", "formula"):
            raise ValueError(f"a {self.kind} rule has no value for clear_below/clear_above")
        if bounds and self.kind == "threshold" and self.op == "inside":
            raise ValueError("an 'inside' rule clears with clear_formula, not clear_below/above")
        if self.clear_formula and (ALL_CHANNELS in self.channels or len(self.channels) > 1):
            raise ValueError("clear_formula needs a rule with a single series (one channel)")
        lo, hi, v = self.clear_below, self.clear_above, self.value
        if self.kind != "threshold" or v is None:
            return
        if self.op in (">", ">=") and (hi is not None or (lo is not None and lo > v)):
            raise ValueError("a '>' rule clears below its value: clear_below <= value")
        if self.op in ("<", "<=") and (lo is not None or (hi is not None and hi < v)):
            raise ValueError("a '<' rule clears above its value: clear_above >= value")

    # -- series and formulas ------------------------------------------------------------
    def series_names(self, available: Mapping[str, object] | None) -> list[str]:
        """The series of this rule: its channels ('*' = every available one) or ''."""
        if self.kind == "model_residual":
            return [f"{self.model}.residual"]
        if not self.channels:
            return [FORMULA_SERIES]
        if ALL_CHANNELS in self.channels:
            return sorted(available) if available is not None else [ALL_CHANNELS]
        return list(dict.fromkeys(self.channels))

    def watched(self, series: str) -> str:
        """The formula text of the watched quantity of a series."""
        if series == FORMULA_SERIES:
            return f"({self.formula})"
        return "{" + series + "}"

    def for_ns(self) -> int:
        """``for_duration`` in ns."""
        return parse_duration(self.for_duration) or 0

    def value_formula(self, series: str = FORMULA_SERIES) -> str | None:
        """The watched value (peaks and hysteresis use it); None for no_data and formula."""
        x, w = self.watched(series), f'"{self.window}"'
        if self.kind in ("threshold", "flatline"):
            return x
        if self.kind == "model_residual":
            return self._cv_formula(series) if self.cv_rmse is not None else self._bias_formula(x)
        if self.kind == "rate_of_change":
            if self.window is None:
                return f"rate({x})" if self.per == "s" else f"rate({x}) * 60 s / 1 min"
            secs = (parse_duration(self.window) or 0) / 1e9
            span = f"{num(secs)} s" if self.per == "s" else f"{num(secs / 60)} min"
            return f"({x} - shift({x}, {w})) / {span}"
        # a flat window has no score (NaN): zscore() of one is +-inf from rounding residue
        varies = f"rolling_max({x}, {w}) > rolling_min({x}, {w})"
        if self.kind == "spike" and self.method == "zscore":
            return f"where(zscore({x}, {w}), {varies})"
        if self.kind == "spike":
            return f"where(({x} - rolling_mean({x}, {w})) / (1.4826 * mad({x}, {w})), {varies})"
        if self.kind == "missing_share":
            return f"pct_good({x}, {w})"
        return None

    def _bias_formula(self, x: str) -> str:
        return f'rolling_mean({x}, "{self.window}")'

    def _cv_formula(self, series: str) -> str:
        """Rolling CV(RMSE) in percent of a model's residual series."""
        r, w = "{" + series + "}", f'"{self.window}"'
        p = "{" + series.removesuffix(".residual") + ".predicted}"
        level = f"rolling_mean({p} + {r}, {w})"
        if self.units:
            level = f'to({level}, "{self.units}")'
        return f"100 * sqrt(rolling_mean({r} * {r}, {w})) / {level}"

    def fast_value_formula(self, series: str = FORMULA_SERIES) -> tuple[str | None, bool]:
        """What the engine evaluates for the value: (text, infinities mean unknown).

        The z-score of a flat window is 0/0 (NaN or +-inf from rounding) and no other
        window gives an infinite one, so ``zscore`` with infinities set to NaN equals the
        guarded ``value_formula`` without its rolling max/min.
        """
        if self.kind == "spike" and self.method == "zscore":
            return f'zscore({self.watched(series)}, "{self.window}")', True
        return self.value_formula(series), False

    def test(self) -> Test | None:
        """The condition as a predicate on the value (None: evaluate the condition formula)."""
        if self.kind == "threshold" and self.units is None:
            if self.op in ("outside", "inside"):
                assert self.low is not None and self.high is not None
                return Test(self.op, self.low, self.high)
            assert self.op is not None and self.value is not None
            return Test(self.op, self.value)
        if self.kind in ("rate_of_change", "spike"):
            lim = self.limit if self.kind == "rate_of_change" else self.k
            assert lim is not None
            if self.direction == "both":
                return Test(">", lim, absolute=True)
            return Test(">", lim) if self.direction == "up" else Test("<", -lim)
        if self.kind == "missing_share":
            assert self.min_good is not None
            return Test("<", self.min_good)
        return None

    def condition_formula(self, series: str = FORMULA_SERIES) -> str:
        """The boolean formula of the condition for one series (1 = fire, NaN = unknown)."""
        x, w = self.watched(series), f'"{self.window}"'
        u = f" [{self.units}]" if self.units else ""
        if self.kind == "formula":
            assert self.formula is not None
            return self.formula
        if self.kind == "no_data":
            return f"pct_good({x}, {w}) == 0"
        if self.kind == "model_residual":
            parts = []
            if self.cv_rmse is not None:
                parts.append(f"{self._cv_formula(series)} > {num(self.cv_rmse)}")
            if self.bias is not None:
                parts.append(f"abs({self._bias_formula(x)}) > {num(self.bias)}")
            return " or ".join(parts)
        if self.kind == "flatline":
            span = f"rolling_max({x}, {w}) - rolling_min({x}, {w})"
            enough = f"rolling_sum(not isnan({x}), {w}) >= 2"
            return f"where({span}, {enough}) <= {num(self.tolerance or 0.0)}"
        v = self.value_formula(series)
        if self.kind == "threshold" and self.op == "outside":
            return f"{v} < {num(self.low or 0)}{u} or {v} > {num(self.high or 0)}{u}"
        if self.kind == "threshold" and self.op == "inside":
            return f"between({v}, {num(self.low or 0)}{u}, {num(self.high or 0)}{u})"
        if self.kind == "threshold":
            return f"{v} {self.op} {num(self.value or 0)}{u}"
        t = self.test()
        assert t is not None
        if t.absolute:
            return f"abs({v}) {t.op} {num(t.a)}"
        return f"{v} {t.op} {num(t.a)}"

    def clear_formula_text(self, series: str = FORMULA_SERIES) -> str | None:
        """The clear (hysteresis) condition for one series; None: clear when condition is 0."""
        if self.clear_formula:
            return self.clear_formula
        v = self.value_formula(series)
        if v is None or (self.clear_below is None and self.clear_above is None):
            return None
        if self.kind in ("rate_of_change", "spike") and self.direction == "both":
            v = f"abs({v})"
        u = f" [{self.units}]" if self.units and self.kind == "threshold" else ""
        parts = []
        if self.clear_below is not None:
            parts.append(f"{v} < {num(self.clear_below)}{u}")
        if self.clear_above is not None:
            parts.append(f"{v} > {num(self.clear_above)}{u}")
        return " and ".join(parts)

    def peak_mode(self) -> PeakMode:
        """How an episode's peak is chosen from the value."""
        if self.kind == "threshold":
            return {">": "max", ">=": "max", "<": "min", "<=": "min"}.get(
                self.op or "", "outside" if self.op == "outside" else "first"
            )  # type: ignore[return-value]
        if self.kind in ("rate_of_change", "spike"):
            return {"both": "absmax", "up": "max", "down": "min"}[self.direction or "both"]  # type: ignore[return-value]
        if self.kind == "missing_share":
            return "min"
        if self.kind == "model_residual":
            return "max" if self.cv_rmse is not None else "absmax"
        if self.kind == "flatline":
            return "first"
        return "none"

    # -- checks on save ---------------------------------------------------------------
    def compile(
        self, channels_units: Mapping[str, str], interval_ns: int, tz: str = "UTC"
    ) -> dict[str, tuple[Compiled, Compiled | None, Compiled | None]]:
        """Series -> compiled (condition, value, clear) formulas; raises FormulaError."""
        out = {}
        for s in self.series_names(channels_units):
            cond = compile_formula(self.condition_formula(s), channels_units, interval_ns, tz)
            vt, ct = self.value_formula(s), self.clear_formula_text(s)
            value = compile_formula(vt, channels_units, interval_ns, tz) if vt else None
            clear = compile_formula(ct, channels_units, interval_ns, tz) if ct else None
            grids = {c.interval_ns for c in (cond, value, clear) if c is not None}
            if len(grids) > 1:
                raise FormulaError(
                    f"rule {self.name!r}: condition, value and clear formulas are on "
                    "different time grids"
                )
            out[s] = (cond, value, clear)
        return out

    def validate_against(
        self, channels_units: Mapping[str, str], interval_ns: int, tz: str = "UTC"
    ) -> None:
        """Check the rule compiles on a dataset (channels exist, units agree): on save."""
        self.compile(channels_units, interval_ns, tz)
