"""The alert rule form: one labelled input per field of ``AlertRule``, those of the kind.

Inputs come from the model (``model_form.field_inputs``), so a new rule option appears
here with its type's input and the model's description as help, instead of being missed.
Which fields show follows the model's own table (``rules.KIND_FIELDS``): a threshold
shows a value, or a low and a high for a range; a rate its limit, unit and direction;
every kind the common options (for, clear condition, severity, labels, runbook...).
Hidden fields are not sent, so what was typed for another kind never leaks into a rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import panel as pn
import param

from stream0d_nb.alerts.rules import ALL_CHANNELS, KIND_FIELDS, KIND_ONLY, AlertRule
from stream0d_nb.widgets.model_form import INPUT_WIDTH, FieldInput, field_inputs

KIND_LABELS = {
    "threshold": "Threshold or range",
    "rate_of_change": "Rate of change",
    "no_data": "No data",
    "flatline": "Flatline (stuck value)",
    "spike": "Spike",
    "missing_share": "Missing share",
    "formula": "Formula (a boolean condition)",
    "model_residual": "Model residual (recalibration)",
}
LABELS = {
    "name": "Rule name",
    "kind": "Kind of rule",
    "channels": "Channels watched (* = every channel)",
    "formula": "Watched value (formula)",
    "op": "Fires when the value is",
    "value": "Threshold",
    "low": "Range low end",
    "high": "Range high end",
    "units": "Units of the threshold (empty: the channel's)",
    "limit": "Rate limit (value units per s or min)",
    "per": "Rate per",
    "direction": "Direction",
    "window": "Window (e.g. 30s, 10min, 1h)",
    "tolerance": "Tolerance (largest max - min still flat)",
    "method": "Spike score",
    "k": "Score above which a sample is a spike",
    "min_good": "Fire below this share of samples present (%)",
    "model": "Recalibration model",
    "cv_rmse": "Fire when CV(RMSE) is above (%)",
    "bias": "Fire when |mean residual| is above",
    "for_duration": "Fire after the condition holds for (e.g. 0s, 5min)",
    "clear_below": "Clear only when the value is below (hysteresis)",
    "clear_above": "Clear only when the value is above (hysteresis)",
    "clear_formula": "Clear when this formula is true",
    "severity": "Severity",
    "labels": "Labels (key=value, one per line)",
    "description": "Description",
    "runbook": "Runbook link",
    "evaluation_interval": "Live evaluation every",
    "enabled": "Enabled",
}
FORMULA_LABEL = "Condition (a boolean formula)"
WATCH = {"Channels": "channels", "A formula": "formula"}
COMMON = set(AlertRule.model_fields) - KIND_ONLY - {"channels", "formula"}
"""Fields every kind has (name, kind, for, clear condition, severity, labels...)."""
NO_VALUE_KINDS = ("no_data", "formula")
"""Kinds with no watched value, so no clear_below/clear_above."""


class RuleForm(pn.viewable.Viewer):
    """Every option of an alert rule, labelled; shows the fields of the chosen kind."""

    watching: param.Selector[Any] = param.Selector(
        default="channels", objects=list(WATCH.values()), label="Watch"
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.inputs: dict[str, FieldInput] = field_inputs(
            AlertRule,
            labels=LABELS,
            defaults={
                "kind": "threshold",
                "op": ">",
                "per": "s",
                "direction": "both",
                "method": "zscore",
            },
            multiline={"formula", "clear_formula", "description"},
            pick={"channels"},
        )
        kind = self.inputs["kind"].widget
        kind.options = {KIND_LABELS.get(k, k): k for k in KIND_FIELDS}
        # a native select: keyboard and screen readers work
        self.watch_input = pn.widgets.Select.from_param(
            self.param.watching, options=WATCH, label="Watch", width=INPUT_WIDTH
        )
        for name in ("kind", "op"):
            self.inputs[name].widget.param.watch(lambda _: self._show(), "value")
        self.param.watch(lambda _: self._show(), "watching")
        self._show()

    # ------------------------------------------------------------------ what shows

    @property
    def kind(self) -> str:
        return str(self.inputs["kind"].widget.value)

    def shown(self) -> list[str]:
        """The fields the chosen kind (and threshold operator, and watch) uses."""
        kind = self.kind
        required, optional = KIND_FIELDS[kind]
        allowed = required | optional
        op = self.inputs["op"].widget.value
        out = []
        for name in self.inputs:
            if name in COMMON:
                ok = not (
                    name in ("clear_below", "clear_above")
                    and (kind in NO_VALUE_KINDS or (kind == "threshold" and op == "inside"))
                )
            elif name == "channels":
                ok = "channels" in allowed and self.watching == "channels"
            elif name == "formula":
                ok = kind == "formula" or ("formula" in allowed and self.watching == "formula")
            elif kind == "threshold" and name in ("value", "low", "high"):
                ok = (name == "value") != (op in ("outside", "inside"))
            else:
                ok = name in allowed
            if ok:
                out.append(name)
        return out

    def _show(self) -> None:
        shown = set(self.shown())
        for name, field in self.inputs.items():
            field.widget.visible = name in shown
        _, optional = KIND_FIELDS[self.kind]
        choose = {"channels", "formula"} <= optional
        self.watch_input.visible = choose
        self.inputs["formula"].widget.label = (
            FORMULA_LABEL if self.kind == "formula" else LABELS["formula"]
        )

    def set_channels(self, names: Sequence[str]) -> None:
        """Offer the dataset's channels (and * for every one)."""
        w = self.inputs["channels"].widget
        w.options = {f"{ALL_CHANNELS} (every channel)": ALL_CHANNELS, **{n: n for n in names}}
        w.value = [c for c in w.value if c in w.options.values()]

    # ------------------------------------------------------------------ values

    def values(self) -> dict[str, Any]:
        """The shown fields that hold a value, as the model takes them."""
        out = {}
        for name in self.shown():
            value = self.inputs[name].get()
            if value is not None:
                out[name] = value
        return out

    def rule(self, name: str | None = None) -> AlertRule:
        """The rule the form says (``name`` replaces an empty one: previews need one);
        a pydantic ``ValidationError`` (a ``ValueError``) says what is wrong."""
        data = self.values()
        if name and not data.get("name"):
            data["name"] = name
        return AlertRule.model_validate(data)

    def load(self, rule: AlertRule) -> None:
        """Show a saved rule: its kind first (which decides what shows), then its values."""
        self.inputs["kind"].set(rule.kind)
        self.watching = "formula" if rule.formula and rule.kind != "formula" else "channels"
        for name, field in self.inputs.items():
            if name != "kind":
                field.set(getattr(rule, name))
        self._show()

    def referenced_channels(self, rule: AlertRule, available: Sequence[str]) -> list[str]:
        """The channels a rule's formula names (to plot them beside its episodes)."""
        text = " ".join(t for t in (rule.formula, rule.clear_formula) if t)
        found = []
        for n in available:
            pattern = r"\{" + re.escape(n) + r"\}|(?<![\w.])" + re.escape(n) + r"(?![\w.])"
            if re.search(pattern, text):
                found.append(n)
        return found

    # ------------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        widgets = [f.widget for f in self.inputs.values()]
        kind_at = list(self.inputs).index("kind") + 1
        return pn.Column(
            *widgets[:kind_at],
            self.watch_input,
            *widgets[kind_at:],
            width=INPUT_WIDTH + 30,
        )
