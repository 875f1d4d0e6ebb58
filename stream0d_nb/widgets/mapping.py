"""The mapping of a file onto a dataset, as the setup screen edits it: one param per
``IngestOptions`` field it shows (same names, same values), and the fixes of the preview
applied to it.

``IngestMapping.options()`` is exactly what ingest receives. Fields that newer platforms
have (``date_order``, ``text_columns``) are offered only when ``IngestOptions`` knows them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, get_args
from zoneinfo import available_timezones

import param

from stream0d_nb.specs import (
    BadValuePolicy,
    DuplicatePolicy,
    IngestOptions,
    OffGridPolicy,
)

ZONES = sorted(available_timezones())
DATE_ORDERS = ("auto", "day_first", "month_first")
TEXT_POLICIES = ("error", "skip")
OPTIONAL = ("date_order", "text_columns")
"""Options the screen offers when this platform's ``IngestOptions`` has them."""


def supports(field: str) -> bool:
    """Whether ``IngestOptions`` has ``field`` (newer ingest options)."""
    return field in IngestOptions.model_fields


def sentinel_text(value: object) -> str:
    """A sentinel value as ``missing_values`` holds it: ``-9999`` (not ``-9999.0``)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


class IngestMapping(param.Parameterized):
    """How the columns of a file map onto the dataset: the ingest options, one per param."""

    time_column: param.Selector[Any] = param.Selector(
        default="", objects=[""], label="Time column (empty: detected)"
    )
    date_column: param.Selector[Any] = param.Selector(
        default="", objects=[""], label="Date column (the time column then holds the time of day)"
    )
    time_format = param.String(default="", label="Time format (strptime, empty: detected)")
    date_order: param.Selector[Any] = param.Selector(
        default="auto", objects=list(DATE_ORDERS), label="Date order"
    )
    tz: param.Selector[Any] = param.Selector(
        default="", objects=["", *ZONES], label="Time zone of the file's times"
    )
    utc_offset = param.String(default="", label="Or a fixed UTC offset (e.g. +02:00)")
    skip_columns = param.ListSelector(default=[], objects=[], label="Columns to skip")
    text_columns: param.Selector[Any] = param.Selector(
        default="error", objects=list(TEXT_POLICIES), label="Text columns"
    )
    units = param.Dict(default={}, doc="Channel -> units (IngestOptions.units).")
    rename = param.Dict(default={}, doc="Column -> channel name (IngestOptions.rename).")
    allow_missing_units = param.Boolean(default=False, label="Allow channels without units")
    missing_values = param.List(default=[], item_type=str, label="Missing-value markers")
    duplicates: param.Selector[Any] = param.Selector(
        default="error", objects=list(get_args(DuplicatePolicy)), label="Duplicate times"
    )
    off_grid: param.Selector[Any] = param.Selector(
        default="error", objects=list(get_args(OffGridPolicy)), label="Times off the grid"
    )
    off_grid_tolerance = param.String(default="", label="Off-grid tolerance (e.g. 100ms)")
    bad_values: param.Selector[Any] = param.Selector(
        default="error", objects=list(get_args(BadValuePolicy)), label="Unreadable values"
    )
    other = param.Dict(default={}, doc="Further options set by fixes (delimiter, skip_rows...).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.headers: list[str] = []
        """Every column seen in the current file (skipped ones stay listed)."""
        self.base: dict[str, str] = {}
        """Column -> the channel name the file gives it (before renames)."""

    # ------------------------------------------------------------------ what ingest gets

    def options(self) -> IngestOptions:
        """The ``IngestOptions`` these params say (ValueError or pydantic's when invalid)."""
        raw: dict[str, Any] = dict(self.other)
        for name in ("time_column", "date_column", "time_format", "tz", "utc_offset"):
            if getattr(self, name):
                raw[name] = getattr(self, name)
        if self.off_grid_tolerance.strip():
            raw["off_grid_tolerance"] = self.off_grid_tolerance.strip()
        for name in ("duplicates", "off_grid", "bad_values"):
            raw[name] = getattr(self, name)
        for name, default in (("date_order", "auto"), ("text_columns", "error")):
            value = getattr(self, name)
            if supports(name):
                raw[name] = value
            elif value != default:
                raise ValueError(
                    f"this platform's ingest has no option {name!r} yet "
                    f"(IngestOptions.{name}); leave it at {default!r}"
                )
        raw["skip_columns"] = list(self.skip_columns)
        raw["missing_values"] = list(self.missing_values)
        raw["units"] = {k: v.strip() for k, v in self.units.items() if v.strip()}
        raw["rename"] = {k: v.strip() for k, v in self.rename.items() if v.strip() and v != k}
        raw["allow_missing_units"] = self.allow_missing_units
        return IngestOptions.model_validate(raw)

    def changed(self) -> dict[str, Any]:
        """The options that differ from ingest's defaults (what the code shows)."""
        return self.options().model_dump(mode="json", exclude_defaults=True)

    # ------------------------------------------------------------------ columns of the file

    def set_columns(self, columns: Iterable[tuple[str, str, str, bool]]) -> None:
        """Take the ``(header, channel, kind, read)`` columns of a preview (``read``: not
        left out by ingest): the pickers list them all."""
        for header, channel, kind, read in columns:
            if header not in self.headers:
                self.headers.append(header)
            if kind != "time" and (header not in self.base or (read and header not in self.rename)):
                self.base[header] = channel
        self._list_columns()

    def forget_columns(self) -> None:
        """A new file: its columns replace the old ones (the chosen options stay)."""
        self.headers, self.base = [], {}
        self._list_columns()

    def _list_columns(self) -> None:
        listed = list(self.headers)
        for name in ("time_column", "date_column"):
            value = getattr(self, name)
            self.param[name].objects = [
                "",
                *listed,
                *([value] if value not in ["", *listed] else []),
            ]
        extra = [c for c in self.skip_columns if c not in listed]
        self.param.skip_columns.objects = listed + extra

    def channel(self, header: str) -> str:
        """The channel a value column becomes (its rename, else the file's name for it)."""
        return self.rename.get(header) or self.base.get(header, header)

    def value_headers(self) -> list[str]:
        """The columns that become channels (not the time and date columns, not skipped)."""
        left_out = {self.time_column, self.date_column, *self.skip_columns} - {""}
        return [h for h in self.headers if h not in left_out and h in self.base]

    def set_units(self, header: str, units: str) -> None:
        """Units of the channel of column ``header`` (empty: the file's, if any)."""
        self.units = {**self.units, self.channel(header): units.strip()}

    def set_rename(self, header: str, name: str) -> None:
        """Column ``header`` becomes channel ``name`` (empty: its own name); its units follow."""
        old = self.channel(header)
        rename = {k: v for k, v in self.rename.items() if k != header}
        if name.strip() and name.strip() != self.base.get(header, header):
            rename[header] = name.strip()
        new = rename.get(header) or self.base.get(header, header)
        units = dict(self.units)
        if old != new and old in units:
            units[new] = units.pop(old)
        self.param.update(rename=rename, units=units)

    # ------------------------------------------------------------------ fixes

    def apply(self, fix: Mapping[str, Any]) -> None:
        """Apply one fix of the preview (``{"units": {"x": "1"}}``, ``{"duplicates": "last"}``):
        dicts merge, lists extend, other params take the value, the rest go to ``other``."""
        changes: dict[str, Any] = {}
        other = dict(self.other)
        for key, value in fix.items():
            if key in ("units", "rename") and isinstance(value, Mapping):
                changes[key] = {**getattr(self, key), **{str(k): str(v) for k, v in value.items()}}
            elif key in ("skip_columns", "missing_values") and isinstance(value, list):
                now = list(getattr(self, key))
                changes[key] = now + [str(v) for v in value if str(v) not in now]
            elif key in self.param and key not in ("name", "other"):
                changes[key] = "" if value is None else value
            else:
                other[key] = value
        if "skip_columns" in changes:
            known = list(self.param.skip_columns.objects or [])
            self.param.skip_columns.objects = known + [
                c for c in changes["skip_columns"] if c not in known
            ]
        for name in ("time_column", "date_column"):
            if name in changes and changes[name] not in self.param[name].objects:
                self.param[name].objects = [*self.param[name].objects, changes[name]]
        if other != self.other:
            changes["other"] = other
        self.param.update(**changes)

    def add_missing_value(self, value: object) -> None:
        """Treat ``value`` as missing (a sentinel such as -9999 the user accepted)."""
        text = sentinel_text(value)
        if text not in self.missing_values:
            self.missing_values = [*self.missing_values, text]

    def reset(self) -> None:
        """Every option back to ingest's defaults."""
        defaults = {
            name: p.default for name, p in self.param.objects("existing").items() if name != "name"
        }
        self.param.update(**defaults)
