"""Pydantic models shared by every layer: datasets, channels, ingest options and reports.

No I/O here. Durations are pandas-style strings (``1s``, ``5min``, ``1h``) validated into
nanoseconds so that grids are exact integer arithmetic.
"""

from __future__ import annotations

import codecs
import re
from datetime import datetime
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stream0d_nb.safetext import Line, Text, check_text

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
CHANNEL_NAME_MAX = 128
RESERVED_CHANNEL_NAMES = frozenset({"time", "zarr.json"})
"""Names a channel cannot have: the time axis, and the Zarr v3 metadata document."""
TIME_FORMAT_MAX = 200
"""Longest ``time_format`` accepted (real strptime formats are under 40 characters)."""


DURATION_PART = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?) ?(ns|us|ms|s|min|h|d|D|w)")
UNIT_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "min": 60 * 10**9, "h": 3600 * 10**9}
UNIT_NS |= {"d": 86_400 * 10**9, "D": 86_400 * 10**9, "w": 7 * 86_400 * 10**9}


def parse_duration(text: str) -> int | None:
    """Nanoseconds of ``"5min"``, ``"1h30min"``, ``"-2s"``, ``"1.5 h"`` (None if not one).

    Our own small parser (not pandas.Timedelta, whose unit letters change between versions).
    """
    t = text.strip()
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("-").strip()
    if not t or len(t) > 60:
        return None
    pos, total = 0, Fraction(0)
    while pos < len(t):
        m = DURATION_PART.match(t, pos)
        if not m:
            return None
        total += Fraction(m.group(1)) * UNIT_NS[m.group(2)]
        pos = m.end()
        while pos < len(t) and t[pos] == " ":
            pos += 1
    if total.denominator != 1:
        return None
    return sign * int(total)


def parse_duration_ns(text: str, *, what: str = "duration") -> int:
    """Parse a duration such as ``5min`` or ``1h`` into whole nanoseconds (> 0)."""
    ns = parse_duration(text) if isinstance(text, str) else None
    if ns is None:
        raise ValueError(f"{what} {text!r} is not a duration (try '1s', '5min', '1h', '1d')")
    if ns <= 0:
        raise ValueError(f"{what} {text!r} must be positive")
    return ns


def format_duration(ns: int) -> str:
    """The shortest pandas-style text for ``ns`` nanoseconds (``300000000000`` -> ``5min``)."""
    for unit, size in (
        ("D", 86_400 * 10**9),
        ("h", 3600 * 10**9),
        ("min", 60 * 10**9),
        ("s", 10**9),
        ("ms", 10**6),
        ("us", 10**3),
    ):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def check_slug(value: str, what: str, max_len: int = 63) -> str:
    """``value`` if it is a lowercase slug (ids and names used in URLs and paths)."""
    if not SLUG_RE.match(value) or len(value) > max_len:
        raise ValueError(
            f"{what} {value!r} must be a lowercase slug: letters, digits, '-' or '_', "
            f"starting with a letter, at most {max_len} characters"
        )
    return value


def check_channel_name(name: str) -> str:
    """``name`` if it can be a channel (a Zarr node name in Icechunk and in Zarr exports).

    The one rule for channel and formula names: 1-128 characters, no '/' or '\\' (Zarr
    reads a backslash as a path separator, so ``c\\..\\x`` would climb the hierarchy), no
    leading '.' (which also rules out '.' and '..') or '__' (reserved by Zarr), no leading
    or trailing spaces, none of the characters ``check_text`` refuses, and not ``time`` or
    ``zarr.json``.
    """
    why = None
    if not 1 <= len(name) <= CHANNEL_NAME_MAX:
        why = f"must have 1 to {CHANNEL_NAME_MAX} characters"
    elif "/" in name or "\\" in name:
        why = "must not contain '/' or '\\' (Zarr path separators)"
    elif name.startswith((".", "__")):
        why = "must not start with '.' or '__' (reserved by Zarr)"
    elif name.strip() != name:
        why = "must not start or end with spaces"
    elif name in RESERVED_CHANNEL_NAMES or name.lower() == "zarr.json":
        why = f"is reserved ({', '.join(sorted(RESERVED_CHANNEL_NAMES))})"
    else:
        try:
            check_text(name)
        except ValueError as exc:
            why = str(exc)
    if why is not None:
        raise ValueError(f"channel name {name!r} {why}")
    return name


def check_text_encoding(name: str) -> str:
    """``name`` if Python knows it as a text encoding (not ``zlib_codec`` or ``base64``)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        raise ValueError(
            f"encoding {name!r} is unknown (try 'utf-8', 'cp1252' or 'latin-1')"
        ) from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(
            f"encoding {name!r} is not a text encoding (try 'utf-8', 'cp1252' or 'latin-1')"
        )
    return name


def check_timezone(tz: str) -> str:
    """Return ``tz`` if it names an IANA time zone (or UTC)."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Madrid')"
        ) from exc
    return tz


class ChannelSpec(BaseModel):
    """A sensor channel: a float64 variable along time with CF-style metadata."""

    model_config = ConfigDict(extra="forbid")

    name: str
    units: Line = Field("", description="Units understood by pint ('degC', 'bar', '1' for none).")
    long_name: Line = ""
    description: Text = ""
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return check_channel_name(v)

    @field_validator("tags")
    @classmethod
    def _tags_ok(cls, v: list[str]) -> list[str]:
        for i, tag in enumerate(v):
            check_text(tag, f"tag {i}")
        return v

    def cf_attrs(self) -> dict[str, object]:
        """Attributes stored on the Zarr array (CF conventions plus ours)."""
        return {
            "units": self.units,
            "long_name": self.long_name or self.name,
            "description": self.description,
            "tags": list(self.tags),
        }


class FormulaSpec(BaseModel):
    """A derived channel: a formula over channels, evaluated on read (or materialised)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    formula: str = Field(..., description="Text in the formula language (docs/formulas.md).")
    units: Line = Field("", description="Units of the result, found when the formula is checked.")
    description: Text = ""
    materialize: bool = Field(False, description="Also store the values (re-computed on ingest).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return check_channel_name(v)


Compression = Literal["lz4", "zstd"]
"""How chunks are compressed (fixed when the dataset is created, see docs/storage.md):
``lz4`` is Blosc LZ4 with byte shuffle (fast to write and to read); ``zstd`` is Zstandard
level 1 (smaller when values repeat, about 10x the CPU to compress and 5x to decompress)."""


class DatasetSpec(BaseModel):
    """One production line, plant or building: a regular time grid of channels."""

    model_config = ConfigDict(extra="forbid")

    id: str
    interval: str = Field(..., description="Sampling interval, e.g. '1s', '5min', '1h'.")
    title: Line = ""
    partner: Line = ""
    description: Text = ""
    tz: str = "UTC"
    compression: Compression = Field(
        "lz4", description="Chunk compression, fixed at creation: 'lz4' (fast) or 'zstd'."
    )
    channels: list[ChannelSpec] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        return check_slug(v, "dataset id")

    @field_validator("interval")
    @classmethod
    def _interval_ok(cls, v: str) -> str:
        return format_duration(parse_duration_ns(v, what="interval"))

    @field_validator("tz")
    @classmethod
    def _tz_ok(cls, v: str) -> str:
        return check_timezone(v)

    @property
    def interval_ns(self) -> int:
        """The sampling interval in nanoseconds."""
        return parse_duration_ns(self.interval)


DuplicatePolicy = Literal["error", "first", "last", "mean"]
OffGridPolicy = Literal["error", "nearest", "mean"]
BadValuePolicy = Literal["error", "missing"]
AmbiguousPolicy = Literal["error", "earliest", "latest", "infer"]
NonexistentPolicy = Literal["error", "shift_forward", "shift_backward", "drop"]
ExistingPolicy = Literal["overwrite", "keep", "error"]
FileFormat = Literal["auto", "csv", "excel", "parquet", "json"]
DateOrder = Literal["auto", "day_first", "month_first"]
TextColumnPolicy = Literal["error", "skip"]


class IngestOptions(BaseModel):
    """How to read a file and what to do with each kind of ambiguity.

    Every policy defaults to the safe choice: an error naming file, line, column and value.
    """

    model_config = ConfigDict(extra="forbid")

    format: FileFormat = "auto"
    # -- text layout (CSV/TSV) --
    delimiter: str | None = Field(None, description="Field separator; detected when None.")
    decimal: Literal[".", ","] | None = Field(None, description="Decimal mark; detected when None.")
    encoding: str | None = Field(None, description="Text encoding; detected (BOM, utf-8, cp1252).")
    skip_rows: int | None = Field(None, ge=0, description="Lines before the header; detected.")
    units_row: bool | None = Field(None, description="A second header row holds units; detected.")
    sheet: str | int | None = Field(None, description="Excel sheet name or index (default first).")
    # -- time --
    time_column: str | None = Field(None, description="Time column; detected when unambiguous.")
    date_column: str | None = Field(
        None, description="Separate date column; time_column then holds the time of day."
    )
    time_format: str | None = Field(
        None,
        max_length=TIME_FORMAT_MAX,
        description=f"strptime format of the time text (at most {TIME_FORMAT_MAX} characters).",
    )
    epoch_unit: Literal["s", "ms", "us", "ns"] | None = Field(
        None, description="Numeric times are epoch counts in this unit."
    )
    tz: str | None = Field(None, description="Zone of naive times (default: the dataset's).")
    utc_offset: str | None = Field(None, description="Fixed offset of naive times, e.g. '+02:00'.")
    date_order: DateOrder = Field(
        "auto",
        description="Dates such as 03/07/2024: day_first, month_first, or auto (decided from "
        "a header hint such as 'MM/DD/YYYY' or from every date of the file).",
    )
    ambiguous: AmbiguousPolicy = "error"
    nonexistent: NonexistentPolicy = "error"
    # -- values --
    missing_values: list[str] = Field(default_factory=list, description="Sentinels, e.g. '-9999'.")
    columns: list[str] | None = Field(None, description="Only these value columns.")
    skip_columns: list[str] = Field(default_factory=list)
    text_columns: TextColumnPolicy = Field(
        "error",
        description="Value columns holding text (flags, codes, names): an error, or skip "
        "them all (listed in the report's skipped_columns).",
    )
    rename: dict[str, str] = Field(default_factory=dict, description="Column -> channel name.")
    units: dict[str, str] = Field(default_factory=dict, description="Channel -> units.")
    allow_missing_units: bool = False
    bad_values: BadValuePolicy = "error"
    # -- grid and merge --
    duplicates: DuplicatePolicy = "error"
    off_grid: OffGridPolicy = "error"
    off_grid_tolerance: str | None = Field(
        None, description="Distance to the grid accepted under off_grid='error' (default 0)."
    )
    on_existing: ExistingPolicy = "overwrite"
    new_channels: bool = Field(True, description="Create channels the dataset does not have yet.")

    @field_validator("tz")
    @classmethod
    def _tz_ok(cls, v: str | None) -> str | None:
        return None if v is None else check_timezone(v)

    @field_validator("encoding")
    @classmethod
    def _encoding_ok(cls, v: str | None) -> str | None:
        return None if v is None else check_text_encoding(v)

    @field_validator("rename")
    @classmethod
    def _rename_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for new in v.values():
            check_channel_name(new)
        return v

    @field_validator("units")
    @classmethod
    def _units_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for channel, units in v.items():
            check_text(units, f"units of {channel!r}")
        return v

    @field_validator("utc_offset")
    @classmethod
    def _offset_ok(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not re.fullmatch(r"[+-](?:[01]\d|2[0-3]):?[0-5]\d", v):
            raise ValueError(f"utc_offset {v!r} must look like '+02:00' or '-0530'")
        return v

    @field_validator("off_grid_tolerance")
    @classmethod
    def _tol_ok(cls, v: str | None) -> str | None:
        if v is not None:
            ns = parse_duration(v)
            if ns is None or ns < 0:
                raise ValueError(
                    f"off_grid_tolerance {v!r} must be a duration such as '100ms' or '0s'"
                )
        return v

    @model_validator(mode="after")
    def _exclusive(self) -> IngestOptions:
        if self.tz and self.utc_offset:
            raise ValueError("give either tz or utc_offset, not both")
        if self.date_column and not self.time_column:
            raise ValueError("date_column needs time_column (the time of day)")
        return self

    def utc_offset_minutes(self) -> int | None:
        """The fixed offset in minutes east of UTC, if one was given."""
        if self.utc_offset is None:
            return None
        sign = -1 if self.utc_offset[0] == "-" else 1
        digits = self.utc_offset[1:].replace(":", "")
        return sign * (int(digits[:2]) * 60 + int(digits[2:]))


class SentinelHint(BaseModel):
    """A value that probably means "missing": repeated, far outside a column's other values.

    Only reported; ingest stores it as a number unless it is passed in ``missing_values``.
    """

    column: str
    """The column's header in the file."""
    value: str
    """The value as ``missing_values`` takes it (``'-9999'``)."""
    count: int
    first_line: int | None = None
    range_of_others: tuple[float, float] | None = None
    """Smallest and largest of the column's other values (None: no other values)."""

    def describe(self) -> str:
        """``column 'X': -9999 appears 120 times, far outside ...: probably a missing value``."""
        others = (
            f" ({self.range_of_others[0]:g} .. {self.range_of_others[1]:g})"
            if self.range_of_others is not None
            else ""
        )
        times = "once" if self.count == 1 else f"{self.count:,} times"
        return (
            f"column {self.column!r}: {self.value} appears {times}, far outside the other "
            f"values{others}: probably a missing value"
        )

    def warning(self) -> str:
        """The report's warning for this hint, naming the option that accepts it."""
        return (
            f"{self.describe()}; ingest with missing_values=[{self.value!r}] to treat it as missing"
        )


class IngestReport(BaseModel):
    """What an ingest did; printed by the CLI and returned by the API."""

    dataset: str
    source: str
    checksum: str = ""
    format: str = ""
    detected: dict[str, object] = Field(default_factory=dict)
    channels: list[str] = Field(default_factory=list)
    new_channels: list[str] = Field(default_factory=list)
    skipped_columns: list[str] = Field(default_factory=list)
    """Columns not read: named in skip_columns, or holding text under text_columns='skip'."""
    sentinels: list[SentinelHint] = Field(default_factory=list)
    """Probable missing-value sentinels (not applied; also said in ``warnings``)."""
    rows_read: int = 0
    rows_skipped: int = 0
    values_read: int = 0
    values_written: int = 0
    values_new: int = 0
    values_changed: int = 0
    values_unchanged: int = 0
    values_kept: int = 0
    values_snapped: int = 0
    duplicates_dropped: int = 0
    duplicates_resolved: int = 0
    bad_cells_missing: int = 0
    rows_dropped_time: int = 0
    gaps: int = 0
    longest_gap: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    commit: str | None = None
    unchanged: bool = False
    warnings: list[str] = Field(default_factory=list)
    seconds: float = 0.0


class PreviewColumn(BaseModel):
    """One column of a previewed file: its kind and units as ingest would read them."""

    name: str
    """Channel name (time columns: their header)."""
    header: str
    kind: Literal["time", "number", "text", "empty"]
    units: str | None = None
    units_known: bool | None = None
    """Whether the project's units (pint) know ``units``; None without units."""
    note: str | None = None
    """Why the column is not read (``'skipped: text (text_columns=skip)'``), else None."""


class PreviewLocation(BaseModel):
    """Where a problem sits in the file (an ``IngestError`` location)."""

    file: str
    line: int | None = None
    column: str | None = None
    value: str | None = None


class PreviewProblem(BaseModel):
    """A problem ingest would stop at, where it is, and option sets that would fix it."""

    message: str
    locations: list[PreviewLocation] = Field(default_factory=list)
    fixes: list[dict[str, object]] = Field(default_factory=list)
    """Alternative option sets, each enough on its own (e.g. ``{"duplicates": "last"}``)."""
    applied: dict[str, object] | None = None
    """The fix the preview applied to read on (None: reading stopped here)."""


class PreviewRow(BaseModel):
    """One row as ingest parsed it: UTC time and float values (None for missing)."""

    line: int
    time: str
    values: dict[str, float | None]


class PreviewSummary(BaseModel):
    """What the rows read so far say about the file next to the dataset's grid."""

    rows_read: int = 0
    rows_skipped: int = 0
    start: str | None = None
    end: str | None = None
    interval_guess: str | None = None
    """Median step between consecutive times."""
    dataset_interval: str | None = None
    interval_matches: bool | None = None
    off_grid_rows: int = 0
    """Rows whose time is not on the dataset's grid."""


class IngestPreview(BaseModel):
    """What ingesting a file would do, without storing anything (``ingest/preview``)."""

    file: str
    format: str = ""
    truncated: bool = False
    """The upload was cut (a file's first megabytes); the cut last line was dropped."""
    complete: bool = True
    """Reading reached the end of what was sent (False: a problem without fix stopped it)."""
    detected: dict[str, object] = Field(default_factory=dict)
    options: dict[str, object] = Field(default_factory=dict)
    """Options given plus the fixes applied: what to pass to ingest as previewed."""
    columns: list[PreviewColumn] = Field(default_factory=list)
    rows: list[PreviewRow] = Field(default_factory=list)
    problems: list[PreviewProblem] = Field(default_factory=list)
    sentinels: list[SentinelHint] = Field(default_factory=list)
    """Probable missing-value sentinels in what was read (accept: ``missing_values``)."""
    summary: PreviewSummary = Field(default_factory=PreviewSummary)


class CommitInfo(BaseModel):
    """One entry of a dataset's history."""

    id: str
    parent: str | None
    written_at: datetime
    message: str
    metadata: dict[str, object] = Field(default_factory=dict)


class AppendReport(BaseModel):
    """What one append did (``POST .../append``, ``Store.append``): the rows are durable in
    the dataset's append buffer, visible to every read, and folded into a commit later."""

    dataset: str
    rows: int = 0
    """Rows received (after de-duplicating equal rows within the append)."""
    values: int = 0
    """Values received (missing ones not counted: a missing value never erases)."""
    values_new: int = 0
    """Values buffered: new, or different from what was buffered (last write wins)."""
    values_unchanged: int = 0
    """Values equal to what was buffered already (a re-sent row changes nothing)."""
    values_snapped: int = 0
    """Values whose time was moved to the grid (``off_grid='nearest'`` or tolerance)."""
    channels: list[str] = Field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    """Last time appended (inclusive), as ``IngestReport.end``."""
    sequence: int | None = None
    """Buffer sequence number of the newest segment this append added (None: nothing new)."""
    seconds: float = 0.0
