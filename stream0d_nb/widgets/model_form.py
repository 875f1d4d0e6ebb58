"""Inputs built from a pydantic model's fields, so that a form never silently lacks one.

``field_inputs(Model)`` gives one labelled input per field, chosen by the field's type
(a choice for a ``Literal``, a number box for a float, a password box for a secret, a
multi-select for a list of choices or of the screen's names, a text for other lists, "key=value" lines for a mapping, a checkbox for a
flag); a field whose type has no input is an error when the form is built, not a gap
in it. Each ``FieldInput`` reads its value back as the model wants it (empty: None).
"""

from __future__ import annotations

import re
import types
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import panel as pn
from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from stream0d_nb.widgets.state import NUMBER_INPUT_CSS

EMPTY_CHOICE = "(none)"
INPUT_WIDTH = 260


def unwrap(annotation: Any) -> tuple[Any, bool]:
    """``(type, optional)`` of an annotation: ``X | None`` -> ``(X, True)``, Annotated removed."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"no input for a union of {args!r}")
        annotation = args[0]
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, optional


def shape_of(annotation: Any, multiline: bool = False, pick: bool = False) -> str:
    """The kind of input a field type takes (``TypeError`` when none fits)."""
    t, _ = unwrap(annotation)
    origin, args = get_origin(t), get_args(t)
    if origin is Literal:
        return "choice"
    simple = {bool: "flag", int: "integer", float: "number", SecretStr: "secret"}
    if t in simple:
        return simple[t]
    if t is str:
        return "multiline" if multiline else "text"
    if origin is list and args == (str,):
        return "pick" if pick else "list"
    if origin is list and get_origin(args[0]) is Literal:
        return "choices"
    if origin is dict and args == (str, str):
        return "mapping"
    if origin is dict and args == (str, SecretStr):
        return "secret_mapping"
    raise TypeError(f"no input for a field of type {annotation!r}")


def _lines(text: str, label: str) -> dict[str, str]:
    """``key=value`` lines (blank lines skipped) as a dict; a line without ``=`` is an error."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{label}: line {n} ({line.strip()!r}) is not key=value")
        out[key.strip()] = value.strip()
    return out


@dataclass
class FieldInput:
    """One field's input: reads and writes the value as the model holds it."""

    name: str
    shape: str
    widget: Any
    optional: bool

    def get(self) -> Any:
        """The value for the model (None: the field is left out)."""
        v = self.widget.value
        if self.shape == "choice":
            return None if v in ("", None) else v
        if self.shape in ("number", "integer", "flag"):
            return v
        if self.shape == "text":
            return v.strip() or None
        if self.shape in ("multiline", "secret"):
            return v.rstrip() or None
        if self.shape in ("pick", "choices"):
            return list(v) or None
        if self.shape == "list":
            return [s.strip() for s in re.split(r"[,\n]", v) if s.strip()] or None
        return _lines(v, self.widget.label) or None  # mapping, secret_mapping

    def set(self, value: Any) -> None:
        """Show ``value`` (secrets are never shown back: their input is emptied)."""
        w = self.widget
        if self.shape in ("secret", "secret_mapping"):
            w.value = ""
        elif self.shape == "choice":
            w.value = "" if value is None else value
        elif self.shape in ("number", "integer"):
            w.value = value
        elif self.shape == "flag":
            w.value = bool(value)
        elif self.shape in ("pick", "choices"):
            w.value = list(value or [])
        elif self.shape == "list":
            w.value = ", ".join(value or [])
        elif self.shape == "mapping":
            w.value = "\n".join(f"{k}={v}" for k, v in (value or {}).items())
        else:
            w.value = "" if value is None else str(value)


def _default(info: Any, defaults: Mapping[str, Any], name: str) -> Any:
    if name in defaults:
        return defaults[name]
    if info.default is PydanticUndefined or info.default_factory is not None:
        return None
    return info.default


def _widget(shape: str, label: str, help_: str | None, default: Any, optional: bool, t: Any) -> Any:
    w = pn.widgets
    common: dict[str, Any] = {"label": label, "width": INPUT_WIDTH}
    if help_:
        common["description"] = help_
    if shape == "choice":
        values = list(get_args(t))
        options = {str(v): v for v in values}
        if optional and default is None:
            options = {EMPTY_CHOICE: "", **options}
        value = "" if default is None else default
        return w.Select(options=options, value=value, **common)
    if shape == "number":
        return w.FloatInput(value=default, stylesheets=NUMBER_INPUT_CSS, **common)
    if shape == "integer":
        return w.IntInput(value=default, stylesheets=NUMBER_INPUT_CSS, **common)
    if shape == "flag":
        common.pop("description", None)  # (a checkbox has no tooltip in panel 1.10)
        return w.Toggle(value=bool(default), **common)
    if shape == "secret":
        return w.PasswordInput(value="", **common)
    if shape == "pick":
        return w.MultiSelect(options=[], value=[], size=6, **common)
    if shape == "choices":
        values = [str(v) for v in get_args(get_args(t)[0])]
        return w.MultiSelect(options=values, value=list(default or []), size=len(values), **common)
    if shape in ("mapping", "secret_mapping", "multiline"):
        return w.TextAreaInput(value="" if default is None else str(default), height=80, **common)
    if shape == "list":
        return w.TextInput(value=", ".join(default or []), **common)
    return w.TextInput(value="" if default is None else str(default), **common)


def field_inputs(
    model: type[BaseModel],
    *,
    labels: Mapping[str, str] = {},
    defaults: Mapping[str, Any] = {},
    skip: Collection[str] = (),
    multiline: Collection[str] = (),
    pick: Collection[str] = (),
) -> dict[str, FieldInput]:
    """One labelled input per field of ``model`` (but ``skip``), in the model's order.

    ``labels`` name fields in words (otherwise the field's name, spelled out);
    ``defaults`` replace the model's; ``multiline`` fields take a text area; ``pick``
    list fields are a multi-select whose options the screen fills in.
    """
    out: dict[str, FieldInput] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        shape = shape_of(info.annotation, name in multiline, name in pick)
        t, optional = unwrap(info.annotation)
        label = labels.get(name) or name.rstrip("_").replace("_", " ").capitalize()
        if shape in ("mapping", "secret_mapping") and "=" not in label:
            label += " (key=value, one per line)"
        default = _default(info, defaults, name)
        widget = _widget(shape, label, info.description, default, optional, t)
        out[name] = FieldInput(name, shape, widget, optional)
    return out
