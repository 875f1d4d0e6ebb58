"""Alert rule specs: validation per kind, the formulas they compile to, checks on save."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError as PydanticError

from stream0d_nb.alerts import AlertRule
from stream0d_nb.errors import ValidationError
from stream0d_nb.formulas import FormulaError

M = 60 * 10**9
UNITS = {"T": "degC", "P": "kW", "Flow Rate": "m**3/h"}


def rule(**kw: Any) -> AlertRule:
    kw.setdefault("name", "r")
    return AlertRule.model_validate(kw)


@pytest.mark.parametrize(
    ("kw", "formula"),
    [
        ({"kind": "threshold", "op": ">", "value": 80}, "{T} > 80.0"),
        ({"kind": "threshold", "op": "<=", "value": -5}, "{T} <= -5.0"),
        ({"kind": "threshold", "op": "outside", "low": 1, "high": 2}, "{T} < 1.0 or {T} > 2.0"),
        ({"kind": "threshold", "op": "inside", "low": 1, "high": 2}, "between({T}, 1.0, 2.0)"),
        ({"kind": "rate_of_change", "limit": 0.5}, "abs(rate({T})) > 0.5"),
        (
            {"kind": "rate_of_change", "limit": 3, "per": "min", "direction": "up"},
            "rate({T}) * 60 s / 1 min > 3.0",
        ),
        (
            {"kind": "rate_of_change", "limit": 3, "window": "5min", "direction": "down"},
            '({T} - shift({T}, "5min")) / 300.0 s < -3.0',
        ),
        ({"kind": "no_data", "window": "10min"}, 'pct_good({T}, "10min") == 0'),
        (
            {"kind": "flatline", "window": "1h", "tolerance": 0.1},
            'where(rolling_max({T}, "1h") - rolling_min({T}, "1h"), '
            'rolling_sum(not isnan({T}), "1h") >= 2) <= 0.1',
        ),
        (
            {"kind": "spike", "window": "1h", "k": 4},
            'abs(where(zscore({T}, "1h"), rolling_max({T}, "1h") > rolling_min({T}, "1h"))) > 4.0',
        ),
        (
            {"kind": "missing_share", "window": "1h", "min_good": 80},
            'pct_good({T}, "1h") < 80.0',
        ),
    ],
)
def test_condition_formulas_compile(kw: dict[str, Any], formula: str) -> None:
    r = rule(channels="T", **kw)
    assert r.condition_formula("T") == formula
    r.validate_against(UNITS, M)
    assert r.model_validate(r.model_dump()) == r  # round trip through JSON-able dicts


def test_formula_kind_and_formula_target() -> None:
    r = rule(kind="formula", formula="{P} > 2 kW and {T} < 30")
    assert r.condition_formula() == "{P} > 2 kW and {T} < 30"
    assert r.series_names(UNITS) == [""]
    r.validate_against(UNITS, M)
    t = rule(kind="threshold", formula="{P} / {Flow Rate}", op=">", value=1)
    assert t.condition_formula() == "({P} / {Flow Rate}) > 1.0"


def test_channels_string_and_all() -> None:
    assert rule(kind="no_data", channels="T", window="1h").channels == ["T"]
    r = rule(kind="no_data", channels="*", window="1h")
    assert r.series_names(UNITS) == ["Flow Rate", "P", "T"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": "threshold", "channels": "T"}, "needs 'op'"),
        ({"kind": "threshold", "channels": "T", "op": ">"}, "needs value"),
        ({"kind": "threshold", "channels": "T", "op": "outside", "value": 1}, "needs low and high"),
        ({"kind": "threshold", "channels": "T", "op": "inside", "low": 3, "high": 1}, "above high"),
        ({"kind": "threshold", "op": ">", "value": 1}, "either channels or formula"),
        ({"kind": "threshold", "channels": "T", "formula": "{P}", "op": ">", "value": 1}, "either"),
        ({"kind": "no_data", "channels": "T"}, "needs 'window'"),
        ({"kind": "no_data", "channels": "T", "window": "1h", "k": 3}, "'k' does not apply"),
        ({"kind": "spike", "channels": "T", "window": "1h"}, "needs 'k'"),
        ({"kind": "spike", "channels": "T", "window": "1h", "k": -1}, "greater than 0"),
        ({"kind": "missing_share", "channels": "T", "window": "1h", "min_good": 120}, "100"),
        ({"kind": "formula"}, "needs 'formula'"),
        ({"kind": "bogus", "channels": "T"}, "kind"),
        ({"kind": "no_data", "channels": "T", "window": "soon"}, "not a duration"),
        ({"kind": "no_data", "channels": "T", "window": "1h", "for_duration": "-1min"}, "for"),
        ({"kind": "no_data", "channels": "T", "window": "1h", "severity": "fatal"}, "severity"),
        ({"kind": "no_data", "channels": "T", "window": "1h", "colour": "red"}, "colour"),
        ({"kind": "no_data", "channels": "T", "window": "1h", "name": "Bad Name"}, "slug"),
        ({"kind": "no_data", "channels": "T", "window": "1h", "name": "events"}, "reserved"),
        ({"kind": "no_data", "channels": "T", "window": "1h", "name": "deliveries"}, "reserved"),
        ({"kind": "threshold", "channels": "T", "op": ">", "value": float("inf")}, "finite"),
    ],
)
def test_invalid_rules(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(PydanticError, match=message):
        rule(**kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"op": ">", "value": 10, "clear_above": 12}, "clears below"),
        ({"op": ">", "value": 10, "clear_below": 12}, "clears below"),
        ({"op": "<", "value": 10, "clear_below": 5}, "clears above"),
        ({"op": "inside", "low": 1, "high": 2, "clear_below": 0}, "clear_formula"),
        ({"op": ">", "value": 10, "clear_below": 5, "clear_formula": "{T} < 1"}, "not both"),
    ],
)
def test_invalid_hysteresis(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(PydanticError, match=message):
        rule(kind="threshold", channels="T", **kw)


def test_clear_formula_needs_one_series() -> None:
    with pytest.raises(PydanticError, match="single series"):
        rule(kind="no_data", channels=["T", "P"], window="1h", clear_formula="{T} > 1")
    with pytest.raises(PydanticError, match="no value"):
        rule(kind="no_data", channels="T", window="1h", clear_below=1)


def test_clear_texts() -> None:
    r = rule(kind="threshold", channels="T", op=">", value=80, clear_below=75)
    assert r.clear_formula_text("T") == "{T} < 75.0"
    band = rule(kind="threshold", channels="T", op="outside", low=0, high=10, clear_above=1,
                clear_below=9)  # fmt: skip
    assert band.clear_formula_text("T") == "{T} < 9.0 and {T} > 1.0"
    spike = rule(kind="spike", channels="T", window="1h", k=5, clear_below=2)
    assert spike.clear_formula_text("T").startswith("abs(where(zscore")
    assert rule(kind="threshold", channels="T", op=">", value=1).clear_formula_text("T") is None


def test_common_options_and_defaults() -> None:
    r = rule(
        kind="threshold", channels="T", op=">", value=1, severity="critical",
        labels={"line": "3"}, description="d", runbook="https://wiki/run", enabled=False,
        evaluation_interval="30s", **{"for": "90s"},
    )  # fmt: skip
    assert (r.for_duration, r.for_ns(), r.evaluation_interval) == ("90s", 90 * 10**9, "30s")
    assert (r.severity, r.labels, r.enabled) == ("critical", {"line": "3"}, False)
    d = rule(kind="rate_of_change", channels="T", limit=1)
    assert (d.per, d.direction, d.severity, d.for_duration) == ("s", "both", "warning", "0s")
    assert rule(kind="spike", channels="T", window="1h", k=3).method == "zscore"


def test_validate_against_reports_channels_and_units() -> None:
    with pytest.raises(FormulaError, match="did you mean 'T'"):
        rule(kind="threshold", channels="Tt", op=">", value=1).validate_against(UNITS, M)
    with pytest.raises(ValidationError, match=r"cannot convert|cannot compare|degC"):
        rule(kind="threshold", channels="T", op=">", value=1, units="kW").validate_against(UNITS, M)
    with pytest.raises(FormulaError, match="syntax"):
        rule(kind="formula", formula="{T} >").validate_against(UNITS, M)
    with pytest.raises(FormulaError, match="different time grids"):
        rule(kind="threshold", formula='resample({T}, "1h")', op=">", value=1,
             clear_formula="{T} < 0").validate_against(UNITS, M)  # fmt: skip
    # units given on the values convert
    rule(kind="threshold", channels="T", op=">", value=100, units="degF").validate_against(UNITS, M)
