"""Alert events (firing, resolved... with filters) and silences of one dataset.

Events come newest first from ``client.alert_events`` (severity, rule and state are the
API's filters; the channel is filtered here, page by page, since the API has no series
filter) and show in the dataset's time zone. Silences mute notifications of a rule or of
every rule, once (until a time) or weekly; they never stop evaluation, so events are
still stored while one holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import panel as pn
import param

from stream0d_nb.alerts.machine import STATES
from stream0d_nb.alerts.sinks import SEVERITIES
from stream0d_nb.records import EventRecord, SilenceRecord
from stream0d_nb.widgets.model_form import INPUT_WIDTH
from stream0d_nb.widgets.state import NUMBER_INPUT_CSS, Status

ANY = ""
MAX_PAGES = 20
"""Pages of events read at most for one listing (the channel filter reads on)."""
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EVENT_COLUMNS = ["time", "rule", "channel", "from", "to", "severity", "value", "description"]


def to_local(t: Any, tz: str) -> datetime:
    """A UTC time as the naive wall clock of ``tz`` (what pickers and tables show)."""
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return ts.tz_convert(tz).tz_localize(None).to_pydatetime()


def to_utc(t: Any, tz: str) -> pd.Timestamp:
    """A picker's naive wall-clock time in ``tz`` as UTC (the later of a repeated hour)."""
    ts = pd.Timestamp(t)
    local = ts.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return (local if not pd.isna(local) else ts.tz_localize(tz, ambiguous=True)).tz_convert("UTC")


def _choices(names: Sequence[str], current: str) -> tuple[list[str], str]:
    objects = [ANY, *names]
    return objects, current if current in objects else ANY


def event_frame(events: Sequence[EventRecord], tz: str) -> pd.DataFrame:
    """Events as rows of the table, times in ``tz``."""
    rows = [
        {
            "time": to_local(e.at, tz),
            "rule": e.rule,
            "channel": e.series or "(formula)",
            "from": e.from_state,
            "to": e.to_state,
            "severity": e.severity,
            "value": e.value,
            "description": str(e.detail.get("description", "")),
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


class AlertEvents(pn.viewable.Viewer):
    """The dataset's alert events, newest first, filtered by severity, rule, channel, state."""

    severity: param.Selector[Any] = param.Selector(
        default=ANY, objects=[ANY, *SEVERITIES], label="Severity (empty: any)"
    )
    rule: param.Selector[Any] = param.Selector(
        default=ANY, objects=[ANY], check_on_set=True, label="Rule (empty: any)"
    )
    channel: param.Selector[Any] = param.Selector(
        default=ANY, objects=[ANY], check_on_set=True, label="Channel (empty: any)"
    )
    state: param.Selector[Any] = param.Selector(
        default=ANY, objects=[ANY, *STATES], label="New state (empty: any)"
    )
    limit = param.Integer(default=100, bounds=(1, 10_000), label="Show at most (events)")

    def __init__(self, client: Any, status: Status, **params: Any) -> None:
        super().__init__(**params)
        self.client, self.status = client, status
        self.dataset: str | None = None
        self.tz = "UTC"
        self.events: list[EventRecord] = []
        self.table = pn.pane.DataFrame(
            event_frame([], "UTC"), index=False, sizing_mode="stretch_width", max_rows=500
        )
        self.summary = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._layout: pn.viewable.Viewable | None = None

    def set_dataset(
        self, dataset: str | None, tz: str, rules: Sequence[str], channels: Sequence[str]
    ) -> None:
        """Follow the editor's dataset (its rules and channels for the filters)."""
        self.dataset, self.tz = dataset, tz
        self.param.rule.objects, self.rule = _choices(rules, self.rule)
        self.param.channel.objects, self.channel = _choices(channels, self.channel)
        self.events = []
        self._show()

    def filters(self) -> dict[str, Any]:
        """The API's filters as the screen sets them (empty ones left out)."""
        wanted = {"rule": self.rule, "state": self.state, "severity": self.severity}
        return {k: v for k, v in wanted.items() if v != ANY}

    def load(self) -> None:
        """Read the events the filters select (newest first, ``limit`` at most)."""
        if self.dataset is None:
            return
        with self.status.task(f"Reading the alert events of {self.dataset}"):
            found: list[EventRecord] = []
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page = self.client.alert_events(
                    self.dataset, limit=self.limit, cursor=cursor, **self.filters()
                )
                found += [e for e in page if self.channel in (ANY, e.series)]
                cursor = page.next_cursor
                if cursor is None or len(found) >= self.limit:
                    break
            self.events = found[: self.limit]
            self._show()
            self.status.done(self.summary.object)

    def _show(self) -> None:
        self.table.object = event_frame(self.events, self.tz)
        counts = pd.Series([e.to_state for e in self.events]).value_counts()
        parts = ", ".join(f"{n} {s}" for s, n in counts.items())
        what = ", ".join(f"{k} {v}" for k, v in self.filters().items())
        if self.channel != ANY:
            what = ", ".join(filter(None, [what, f"channel {self.channel}"]))
        self.summary.object = (
            f"{len(self.events)} event(s) of {self.dataset}"
            + (f" ({parts})" if parts else "")
            + (f"; filters: {what}" if what else "")
            + f"; times in {self.tz}."
        )

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            w = pn.widgets
            refresh = w.Button(label="Show events", color="primary", width=140)
            refresh.on_click(lambda _: self.load())
            filters = pn.Row(
                w.Select.from_param(self.param.severity, width=170),
                w.Select.from_param(self.param.rule, width=170),
                w.Select.from_param(self.param.channel, width=200),
                w.Select.from_param(self.param.state, width=170),
                w.IntInput.from_param(self.param.limit, width=140, stylesheets=NUMBER_INPUT_CSS),
                refresh,
            )
            self._layout = pn.Column(filters, self.summary, self.table, name="Events")
        return self._layout


class Silences(pn.viewable.Viewer):
    """Mute a rule's (or every rule's) notifications, once or weekly; list and end them."""

    rule: param.Selector[Any] = param.Selector(
        default=ANY, objects=[ANY], check_on_set=True, label="Rule to mute (empty: every rule)"
    )
    weekly = param.Boolean(default=False, label="Weekly (otherwise once, until a time)")
    start = param.Date(default=None, label="From (dataset's local time; empty: now)")
    end = param.Date(default=None, label="Until (dataset's local time)")
    days = param.ListSelector(default=[], objects=list(WEEKDAYS), label="Days (weekly)")
    from_time = param.String(default="22:00", label="Daily from (HH:MM, weekly)")
    to_time = param.String(default="06:00", label="Daily to (HH:MM, weekly)")
    comment = param.String(default="", label="Comment (why)")
    silence: param.Selector[Any] = param.Selector(
        default=None,
        objects=[],
        allow_None=True,
        check_on_set=True,
        label="Silence to end (its number)",
    )

    def __init__(self, client: Any, status: Status, **params: Any) -> None:
        super().__init__(**params)
        self.client, self.status = client, status
        self.dataset: str | None = None
        self.tz = "UTC"
        self.silences: list[SilenceRecord] = []
        self.table = pn.pane.DataFrame(self._frame(), index=False, sizing_mode="stretch_width")
        self._layout: pn.viewable.Viewable | None = None

    def set_dataset(self, dataset: str | None, tz: str, rules: Sequence[str]) -> None:
        """Follow the editor's dataset, and list its silences."""
        self.dataset, self.tz = dataset, tz
        self.param.rule.objects, self.rule = _choices(rules, self.rule)
        self.silences = []
        self._show()
        if dataset is not None:
            self.load()

    def load(self) -> None:
        """List the dataset's silences."""
        if self.dataset is None:
            return
        with self.status.task(f"Listing the silences of {self.dataset}"):
            self.silences = self.client.silences(self.dataset)
            self._show()
            self.status.done(f"{self.dataset}: {len(self.silences)} silence(s).")

    def _window(self, s: SilenceRecord) -> str:
        if s.start is not None and s.end is not None:
            return (
                f"{to_local(s.start, self.tz):%Y-%m-%d %H:%M} to "
                f"{to_local(s.end, self.tz):%Y-%m-%d %H:%M} ({self.tz})"
            )
        days = ", ".join(WEEKDAYS[d] for d in s.days or [])
        return f"every {days}, {s.from_time} to {s.to_time} ({s.tz})"

    def _frame(self) -> pd.DataFrame:
        rows = [
            {"number": s.id, "rule": s.rule or "(every rule)", "when": self._window(s),
             "comment": s.comment}
            for s in self.silences
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["number", "rule", "when", "comment"])

    def _show(self) -> None:
        self.table.object = self._frame()
        ids = [s.id for s in self.silences]
        self.param.silence.objects = ids
        if self.silence not in ids:
            self.silence = ids[0] if ids else None

    def add(self) -> None:
        """Add the silence the form says."""
        if self.dataset is None:
            return
        what = self.rule or "every rule"
        with self.status.task(f"Muting {what} of {self.dataset}"):
            kw: dict[str, Any] = {"rule": self.rule or None, "comment": self.comment.strip()}
            if self.weekly:
                if not self.days:
                    raise ValueError("choose the days of the weekly silence")
                kw |= {
                    "days": [WEEKDAYS.index(d) for d in self.days],
                    "from_time": self.from_time.strip(),
                    "to_time": self.to_time.strip(),
                    "tz": self.tz,
                }
            else:
                if self.end is None:
                    raise ValueError("choose until when to mute (Until)")
                start = (
                    pd.Timestamp.now(tz="UTC")
                    if self.start is None
                    else to_utc(self.start, self.tz)
                )
                kw |= {"start": start, "end": to_utc(self.end, self.tz)}
            saved = self.client.silence(self.dataset, **kw)
            self.load()
            self.silence = saved.id
            self.status.done(f"Silence {saved.id} mutes {what}: {self._window(saved)}.")

    def end_silence(self) -> None:
        """End the chosen silence."""
        if self.dataset is None or not self.silence:
            return
        sid = self.silence
        with self.status.task(f"Ending silence {sid}"):
            self.client.end_silence(self.dataset, sid)
            self.load()
            self.status.done(f"Ended silence {sid} of {self.dataset}.")

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            w = pn.widgets
            add = w.Button(label="Add silence", color="primary", width=140)
            add.on_click(lambda _: self.add())
            stop = w.Button(label="End silence", color="danger", width=140)
            stop.on_click(lambda _: self.end_silence())
            weekly = self.param.weekly.rx()
            once = weekly.rx.not_()
            form = pn.Column(
                w.Select.from_param(self.param.rule, width=INPUT_WIDTH),
                w.Toggle.from_param(self.param.weekly, width=INPUT_WIDTH),
                w.DatetimePicker.from_param(self.param.start, width=INPUT_WIDTH, visible=once),
                w.DatetimePicker.from_param(self.param.end, width=INPUT_WIDTH, visible=once),
                w.MultiSelect.from_param(
                    self.param.days, size=7, width=INPUT_WIDTH, visible=weekly
                ),
                w.TextInput.from_param(self.param.from_time, width=INPUT_WIDTH, visible=weekly),
                w.TextInput.from_param(self.param.to_time, width=INPUT_WIDTH, visible=weekly),
                w.TextInput.from_param(self.param.comment, width=INPUT_WIDTH),
                add,
            )
            listing = pn.Column(
                self.table,
                pn.Row(w.Select.from_param(self.param.silence, width=INPUT_WIDTH), stop),
                sizing_mode="stretch_width",
            )
            note = pn.pane.Markdown(
                "A silence mutes notifications, not evaluation: events are still stored.",
                sizing_mode="stretch_width",
            )
            self._layout = pn.Column(note, pn.Row(form, listing), name="Silences")
        return self._layout
