"""Refused characters, JSON depth and spreadsheet cells, and the models that use them.

The models are where the CLI, the API and Python meet, so each rule is pinned here on the
model with its exact message; tests/test_api_input_limits.py pins the same over HTTP.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.safetext import check_text, json_depth, spreadsheet_safe, unsafe_character
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec, IngestOptions

RULE = {"name": "cold", "kind": "threshold", "channels": ["temp"], "op": "<", "value": 0}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("ab\x00c", (2, "U+0000", "NUL")),
        ("a\x1bb", (1, "U+001B", "control character")),
        ("a\x7f", (1, "U+007F", "control character")),
        ("\x85x", (0, "U+0085", "C1 control character")),
        ("abcd\u202eevil", (4, "U+202E", "bidi override")),
        ("a\u202ab", (1, "U+202A", "bidi override")),
        ("a\u2066b", (1, "U+2066", "bidi isolate")),
        ("a\u2069b", (1, "U+2069", "bidi isolate")),
        ("a\u200bb", (1, "U+200B", "zero-width character")),
        ("a\u200fb", (1, "U+200F", "zero-width character")),
        ("a\u2060b", (1, "U+2060", "zero-width character")),
        ("\ufeffa", (0, "U+FEFF", "zero-width character")),
        ("a\u2028b", (1, "U+2028", "line separator")),
        ("a\nb", (1, "U+000A", "control character")),
        ("a\tb", (1, "U+0009", "control character")),
        ("a\rb", (1, "U+000D", "control character")),
    ],
)
def test_each_refused_character_is_named_with_its_position(
    text: str, found: tuple[int, str, str]
) -> None:
    assert unsafe_character(text) == found
    pos, code, kind = found
    with pytest.raises(ValueError) as exc:
        check_text(text, "title")
    assert str(exc.value) == f"title: contains {code} ({kind}) at position {pos}"


@pytest.mark.parametrize(
    "text", ["", "Presse 3 – Halle B", "Temperatur (°C)", "µm/s²", "温度", "ملف", "a b", "x..y"]
)
def test_ordinary_text_in_any_script_passes(text: str) -> None:
    assert unsafe_character(text) is None and check_text(text, "title") == text


def test_multiline_text_keeps_newlines_and_tabs_and_turns_crlf_into_lf() -> None:
    assert (
        check_text("line 1\r\nline 2\n\tindented", multiline=True) == "line 1\nline 2\n\tindented"
    )
    with pytest.raises(ValueError) as exc:
        check_text("a\rb", multiline=True)  # a lone CR rewrites terminal lines
    assert str(exc.value) == "contains U+000D (control character) at position 1"
    with pytest.raises(ValueError) as exc:
        check_text("a\n\u202e", multiline=True)
    assert str(exc.value) == "contains U+202E (bidi override) at position 2"


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("", 0),
        ("1", 0),
        ("[]", 1),
        ('[{"a": [1, 2]}]', 3),
        ('{"a": "[[[[[[", "b": "\\"[[["}', 1),
        ("[" * 200_000 + "]" * 200_000, 200_000),
        ('{"a":' * 1000 + "1" + "}" * 1000, 1000),
    ],
)
def test_json_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth
    assert json_depth(text.encode()) == depth


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+cmd", "'+1+cmd"),
        ("-temp", "'-temp"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("temp", "temp"),
        ("p_in [bar]", "p_in [bar]"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_spreadsheet_safe_quotes_only_formula_starts(text: str, safe: str) -> None:
    assert spreadsheet_safe(text) == safe


# ----------------------------------------------------------------------------- the models


def _message(exc: pytest.ExceptionInfo[pydantic.ValidationError]) -> str:
    """The first error as the API and the CLI show it: ``loc: msg``."""
    e = exc.value.errors()[0]
    return ".".join(str(p) for p in e["loc"]) + ": " + e["msg"]


DATASET: dict[str, Any] = {"id": "fersa-press", "interval": "1s"}


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (
            DatasetSpec,
            {**DATASET, "title": "Line\u202eevil"},
            "title: contains U+202E (bidi override) at position 4",
        ),
        (
            DatasetSpec,
            {**DATASET, "title": "Line\nTwo"},
            "title: contains U+000A (control character) at position 4",
        ),
        (
            DatasetSpec,
            {**DATASET, "description": "ok\n\x00"},
            "description: contains U+0000 (NUL) at position 3",
        ),
        (
            DatasetSpec,
            {**DATASET, "partner": "fersa\u200b"},
            "partner: contains U+200B (zero-width character) at position 5",
        ),
        (
            ChannelSpec,
            {"name": "temp", "units": "deg\x85C"},
            "units: contains U+0085 (C1 control character) at position 3",
        ),
        (
            ChannelSpec,
            {"name": "temp", "long_name": "\u2066x"},
            "long_name: contains U+2066 (bidi isolate) at position 0",
        ),
        (
            ChannelSpec,
            {"name": "temp", "tags": ["ok", "a\ufeff"]},
            "tags: tag 1: contains U+FEFF (zero-width character) at position 1",
        ),
        (
            FormulaSpec,
            {"name": "dp", "formula": "p_in * 2", "units": "b\u202ear"},
            "units: contains U+202E (bidi override) at position 1",
        ),
        (
            AlertRule,
            {**RULE, "labels": {"team": "ops\u202e"}},
            "labels: label 'team': contains U+202E (bidi override) at position 3",
        ),
        (
            AlertRule,
            {**RULE, "labels": {"te\x00am": "ops"}},
            "labels: label name: contains U+0000 (NUL) at position 2",
        ),
        (
            AlertRule,
            {**RULE, "runbook": "https://wiki/\u200bops"},
            "runbook: contains U+200B (zero-width character) at position 13",
        ),
        (
            AlertRule,
            {**RULE, "description": "cold\x1b[2J"},
            "description: contains U+001B (control character) at position 4",
        ),
    ],
)
def test_models_refuse_unsafe_text_naming_field_and_character(
    model: type[pydantic.BaseModel], data: dict[str, Any], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as exc:
        model.model_validate(data)
    assert _message(exc) == message


def test_models_accept_multiline_descriptions_and_ordinary_text() -> None:
    ds = DatasetSpec.model_validate(
        {**DATASET, "title": "Presse 3 – Halle B", "description": "Line 1\r\nLine 2\tend"}
    )
    assert ds.description == "Line 1\nLine 2\tend"
    ch = ChannelSpec(name="Temperatur Öl", units="degC", long_name="Öl (°C)", description="a\nb")
    assert ch.description == "a\nb"
    rule = AlertRule.model_validate(
        {
            **RULE,
            "labels": {"team": "Ops – Nord"},
            "runbook": "https://wiki/x",
            "description": "a\nb",
        }
    )
    assert rule.labels == {"team": "Ops – Nord"} and rule.description == "a\nb"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("c\\..\\..\\x", "must not contain '/' or '\\' (Zarr path separators)"),
        ("a\\b", "must not contain '/' or '\\' (Zarr path separators)"),
        ("a/../b", "must not contain '/' or '\\' (Zarr path separators)"),
        ("..", "must not start with '.' or '__' (reserved by Zarr)"),
        (".hidden", "must not start with '.' or '__' (reserved by Zarr)"),
        ("__x", "must not start with '.' or '__' (reserved by Zarr)"),
        ("zarr.json", "is reserved (time, zarr.json)"),
        ("ZARR.JSON", "is reserved (time, zarr.json)"),
        ("time", "is reserved (time, zarr.json)"),
        (" temp", "must not start or end with spaces"),
        ("", "must have 1 to 128 characters"),
        ("x" * 129, "must have 1 to 128 characters"),
        ("te\u202emp", "contains U+202E (bidi override) at position 2"),
        ("te\tmp", "contains U+0009 (control character) at position 2"),
    ],
)
def test_channel_names_zarr_cannot_hold_are_refused_by_name(name: str, why: str) -> None:
    for model, extra in ((ChannelSpec, {}), (FormulaSpec, {"formula": "p_in"})):
        with pytest.raises(pydantic.ValidationError) as exc:
            model.model_validate({"name": name, **extra})
        assert _message(exc) == f"name: Value error, channel name {name!r} {why}"
    with pytest.raises(pydantic.ValidationError) as exc:
        IngestOptions(rename={"col": name})
    assert _message(exc) == f"rename: Value error, channel name {name!r} {why}"


@pytest.mark.parametrize(
    "name", ["x..y", "c.", "a:b", "Time", "p_in [bar]", "µ-temp (°C)", "x" * 128]
)
def test_channel_names_zarr_holds_still_pass(name: str) -> None:
    assert ChannelSpec(name=name).name == name


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("zlib_codec", "encoding 'zlib_codec' is not a text encoding"),
        ("base64", "encoding 'base64' is not a text encoding"),
        ("rot13", "encoding 'rot13' is not a text encoding"),
        ("no-such-codec", "encoding 'no-such-codec' is unknown"),
        ("utf\x00-8", "encoding 'utf\\x00-8' is unknown"),
    ],
)
def test_ingest_encoding_must_be_a_text_encoding(encoding: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as exc:
        IngestOptions(encoding=encoding)
    assert _message(exc) == (
        f"encoding: Value error, {message} (try 'utf-8', 'cp1252' or 'latin-1')"
    )


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "cp1252", "latin-1", "utf-16"])
def test_ingest_text_encodings_pass(encoding: str) -> None:
    assert IngestOptions(encoding=encoding).encoding == encoding


def test_ingest_time_format_is_bounded() -> None:
    assert IngestOptions(time_format="%d.%m.%Y %H:%M:%S").time_format == "%d.%m.%Y %H:%M:%S"
    assert IngestOptions(time_format="%Y" * 100).time_format == "%Y" * 100  # 200: the limit
    with pytest.raises(pydantic.ValidationError) as exc:
        IngestOptions(time_format="%Y" * 5000)
    assert _message(exc) == "time_format: String should have at most 200 characters"


def test_ingest_units_are_checked_text() -> None:
    with pytest.raises(pydantic.ValidationError) as exc:
        IngestOptions(units={"temp": "deg\u202eC"})
    assert _message(exc) == "units: units of 'temp': contains U+202E (bidi override) at position 3"
