"""Records of alerts: events, silences, notification sinks (secrets masked), a dataset's
routes, notification deliveries, and what a rule would have done over a window (a preview
of an unsaved rule, a backfill of saved ones)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stream0d_nb.records.base import DATASET_ID, Number, Record, UtcTime


class EventRecord(Record):
    """An alert event as read back: a rule's state change on a series."""

    id: int
    dataset: str = Field(validation_alias=DATASET_ID)
    rule: str
    series: str
    at: datetime
    from_state: str
    to_state: str
    severity: str
    value: float | None
    detail: dict[str, Any]


class Silence(BaseModel):
    """A mute window: one-off (start, end) or weekly (days 0=Monday, from/to local times)."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = None
    end: datetime | None = None
    days: list[int] | None = None
    from_time: str | None = None
    to_time: str | None = None
    tz: str = "UTC"
    comment: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        one_off = self.start is not None and self.end is not None
        weekly = self.days is not None and self.from_time is not None and self.to_time is not None
        if one_off == weekly:
            raise ValueError("a silence is either start+end, or days+from_time+to_time")
        if weekly and not all(0 <= d <= 6 for d in self.days or []):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return self

    def covers(self, at: datetime) -> bool:
        """Whether notifications at ``at`` are muted."""
        if self.start is not None and self.end is not None:
            s = self.start if self.start.tzinfo else self.start.replace(tzinfo=UTC)
            e = self.end if self.end.tzinfo else self.end.replace(tzinfo=UTC)
            return s <= at < e
        local = at.astimezone(ZoneInfo(self.tz))
        hhmm = local.strftime("%H:%M")
        lo, hi = self.from_time or "00:00", self.to_time or "24:00"
        if lo <= hi:  # same day window
            return local.weekday() in (self.days or []) and lo <= hhmm < hi
        # over midnight: the part after midnight belongs to the previous day's window
        if hhmm >= lo:
            return local.weekday() in (self.days or [])
        return hhmm < hi and (local.weekday() - 1) % 7 in (self.days or [])


class SilenceRecord(Silence):
    """A saved silence: its id, the rule it mutes (None: all rules) and its window."""

    model_config = ConfigDict(from_attributes=True, frozen=True, extra="ignore")

    id: int
    rule: str | None = None


class SinkRecord(Record):
    """A notification sink as the API shows it: name, kind and that kind's settings
    (``settings``), every secret masked (``**********``); built-in sinks have none."""

    model_config = ConfigDict(extra="allow")

    name: str
    kind: str
    built_in: bool = False

    @property
    def settings(self) -> dict[str, Any]:
        """The kind's settings (url, host, timeout...), secrets masked."""
        return dict(self.model_extra or {})


class RouteRecord(Record):
    """One route of a dataset's alerts: conditions (all must hold) and the sinks they go
    to (docs/alerts.md); ``continue`` keeps matching later routes."""

    model_config = ConfigDict(populate_by_name=True)

    match_severity: list[str] | None = None
    min_severity: str | None = None
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_labels_regex: dict[str, str] = Field(default_factory=dict)
    sinks: list[str] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")


class AlertRoutes(Record):
    """A dataset's routing table: routes in order, and the sinks used when none matches."""

    routes: list[RouteRecord] = Field(default_factory=list)
    default_sinks: list[str] = Field(default_factory=list)


class AlertDelivery(Record):
    """A notification sent (or not) to a sink, newest first: ``key`` names the event
    (dataset/rule/series/episode start/state), ``error`` why it failed (secrets and the
    platform's file paths masked), ``attempts`` how many tries it took."""

    key: str
    sink: str
    dataset: str | None = Field(validation_alias=DATASET_ID)
    ok: bool
    attempts: int
    error: str | None
    at: datetime


class AlertEpisode(Record):
    """An episode of a previewed rule on one series (``end`` None: still open)."""

    series: str
    start: UtcTime
    end: UtcTime | None
    severity: str
    peak_value: Number
    peak_time: UtcTime
    labels: dict[str, str] = Field(default_factory=dict)


class AlertTransition(Record):
    """A state change of a previewed rule on one series, with the watched value."""

    series: str
    at: UtcTime
    from_state: str
    to_state: str
    severity: str
    value: Number


class AlertPreview(Record):
    """What a rule would have done over ``[start, end)``, nothing stored or sent: an
    unsaved one (a preview), or each saved one of a backfill."""

    rule: str
    start: UtcTime | None = Field(description="Start of the window run (None: no data).")
    end: UtcTime | None
    episodes: list[AlertEpisode]
    transitions: list[AlertTransition]
