"""What overview screens show: saved plot views and dataset summaries (models only, no I/O).

A **saved view** is a dataset's named plot: channels, a time range, a plot kind and its
options. Range ends are absolute ISO times (naive = UTC) or relative to the moment the
view is opened (``now``, ``now-8h``, ``now+15min``); ``resolve_range`` turns them into UTC
times and is shared by the server (which checks a view when it is saved) and the client
(which resolves it when it is shown), so both read the same range.

A **dataset summary** (``GET /datasets/{id}/summary``) is each stored channel's last
value, its age and the share of good values over a recent window, plus the last commit;
its records live with the others in ``stream0d_nb.records`` (re-exported here).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stream0d_nb.records.datasets import ChannelSummary, CommitSummary, DatasetSummary
from stream0d_nb.safetext import Text, check_text
from stream0d_nb.specs import check_channel_name, parse_duration

__all__ = [
    "MAX_VIEW_CHANNELS",
    "MAX_VIEW_OPTIONS_BYTES",
    "PLOT_KINDS",
    "ChannelSummary",
    "CommitSummary",
    "DatasetSummary",
    "PlotKind",
    "ViewSpec",
    "check_time_expr",
    "resolve_range",
    "resolve_time",
]

PlotKind = Literal["line", "scatter", "carpet", "hist", "box"]
PLOT_KINDS: tuple[str, ...] = ("line", "scatter", "carpet", "hist", "box")
MAX_VIEW_CHANNELS = 64
"""Channels one view may name (a plot of more is unreadable anyway)."""
MAX_VIEW_OPTIONS_BYTES = 4096
"""Size of a view's ``options`` as compact JSON (plot settings, not data)."""
TIME_EXPR_MAX = 64
_RELATIVE = re.compile(r"^now\s*(?:([+-])\s*(\S.*))?$")


# ----------------------------------------------------------------------------- time ranges


def check_time_expr(text: str) -> str:
    """``text`` in canonical form if it is ``now``, ``now±<duration>`` or an ISO time.

    Relative ends come back without spaces (``now-8h``); absolute ones as ISO UTC
    (naive times are UTC, as everywhere in the API). ValueError says what is accepted.
    """
    t = text.strip()
    if not t or len(t) > TIME_EXPR_MAX:
        raise ValueError(f"{text!r} must have 1 to {TIME_EXPR_MAX} characters")
    m = _RELATIVE.match(t)
    if m:
        if m.group(1) is None:
            return "now"
        ns = parse_duration(m.group(2))
        if ns is None or ns < 0 or m.group(2).strip().startswith("-"):
            raise ValueError(
                f"{text!r}: {m.group(2)!r} is not a duration (use e.g. now-8h, now-30min, now-7d)"
            )
        return f"now{m.group(1)}{m.group(2).replace(' ', '')}"
    try:  # digits first: pandas would also take 'today' (frozen at save time)
        ts = pd.Timestamp(t) if t[0].isdigit() else None
    except (ValueError, TypeError, OverflowError):
        ts = None
    if ts is None or pd.isna(ts):
        raise ValueError(
            f"{text!r} is neither a time (ISO 8601, e.g. 2024-05-01T08:00Z) nor relative "
            "to now (now, now-8h, now-30min)"
        )
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return str(ts.isoformat())


def resolve_time(text: str, now: datetime | pd.Timestamp) -> pd.Timestamp:
    """The UTC time of one range end (``now-8h`` is 8 hours before ``now``)."""
    canon = check_time_expr(text)
    now_ts = pd.Timestamp(now)
    now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
    if canon == "now":
        return now_ts
    if canon.startswith("now"):
        ns = parse_duration(canon[4:])
        assert ns is not None  # checked by check_time_expr
        return now_ts + pd.Timedelta(ns if canon[3] == "+" else -ns, unit="ns")
    return pd.Timestamp(canon)


def resolve_range(
    start: str, end: str, now: datetime | pd.Timestamp | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end)`` as UTC times at ``now`` (default: the current time); start < end."""
    at = pd.Timestamp.now(tz="UTC") if now is None else now
    t0, t1 = resolve_time(start, at), resolve_time(end, at)
    if t0 >= t1:
        raise ValueError(
            f"the range {start!r} .. {end!r} is empty: start must be before end "
            f"(at {pd.Timestamp(at).isoformat()} it is {t0.isoformat()} .. {t1.isoformat()})"
        )
    return t0, t1


# ----------------------------------------------------------------------------- saved views


def _check_option_text(value: Any, path: str) -> None:
    """Every key and string in ``options`` is safe text (they end up as plot labels)."""
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(str(k), path)
            _check_option_text(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_option_text(v, f"{path}[{i}]")


class ViewSpec(BaseModel):
    """A saved plot of a dataset: channels, a range (absolute or relative), a kind, options."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="Unique per dataset; the rules of channel names.")
    channels: list[str] = Field(
        ..., min_length=1, max_length=MAX_VIEW_CHANNELS, description="Stored or derived."
    )
    start: str = Field("now-1d", description="ISO time or relative: now, now-8h, now-30min.")
    end: str = Field("now", description="ISO time or relative (see start).")
    kind: PlotKind = "line"
    options: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Plot options as a JSON object of at most {MAX_VIEW_OPTIONS_BYTES} bytes.",
    )
    description: Text = ""

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return check_channel_name(v)

    @field_validator("channels")
    @classmethod
    def _channels_ok(cls, v: list[str]) -> list[str]:
        for c in v:
            check_channel_name(c)
        dupes = sorted({c for c in v if v.count(c) > 1})
        if dupes:
            raise ValueError(f"channels named more than once: {', '.join(dupes)}")
        return v

    @field_validator("start", "end")
    @classmethod
    def _time_ok(cls, v: str) -> str:
        return check_time_expr(v)

    @field_validator("options")
    @classmethod
    def _options_ok(cls, v: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_VIEW_OPTIONS_BYTES:
            raise ValueError(
                f"options take {size:,} bytes as JSON; at most {MAX_VIEW_OPTIONS_BYTES:,} "
                "are accepted (plot settings, not data)"
            )
        _check_option_text(v, "options")
        return v

    def resolve(
        self, now: datetime | pd.Timestamp | None = None
    ) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The view's range as UTC times at ``now`` (default: the current time); the
        server checks it is not empty when the view is saved (ValueError if it is now)."""
        return resolve_range(self.start, self.end, now)
