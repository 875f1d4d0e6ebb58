"""Alert episodes on time series: spans shaded by severity, each with a text label.

Episodes come from stored alert events (``client.alert_events``: a transition to
``firing`` opens one, the next transition out of ``firing`` closes it) or from a rule
preview (``client.preview_alert_rule``, which answers episodes directly). The label
repeats rule and severity in words, so the colour is never the only cue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import holoviews as hv
import pandas as pd

from stream0d_nb.plots.times import TimeLike, local, utc
from stream0d_nb.records import AlertPreview, EventRecord

if TYPE_CHECKING:
    from stream0d_nb.client import Client

# colour-blind-safe (Okabe-Ito) hues, strongest for the most severe
SEVERITY_COLORS: dict[str, str] = {
    "critical": "#D55E00",
    "major": "#E69F00",
    "minor": "#F0E442",
    "warning": "#CC79A7",
    "info": "#56B4E9",
}
SPAN_ALPHA = 0.25
MAX_EVENTS = 10_000


@dataclass(frozen=True)
class Episode:
    """One alert episode of a rule on a series, in UTC; ``end`` None: still firing."""

    rule: str
    series: str
    start: pd.Timestamp
    end: pd.Timestamp | None
    severity: str

    @property
    def label(self) -> str:
        """What the plot writes on the span: rule, severity (and series when it has one)."""
        where = f" on {self.series}" if self.series and self.series != self.rule else ""
        return f"{self.rule}{where} ({self.severity})"


def episodes_from_events(events: Iterable[EventRecord | Mapping[str, Any]]) -> list[Episode]:
    """Episodes from alert events (records or dicts, any order): firing to the next
    change per rule and series; one already firing when the events begin starts at the
    first of them."""
    rows = sorted(map(EventRecord.model_validate, events), key=lambda e: (utc(e.at), e.id))
    open_: dict[tuple[str, str], tuple[pd.Timestamp, str]] = {}
    out: list[Episode] = []
    first = utc(rows[0].at) if rows else None
    for e in rows:
        key = (e.rule, e.series)
        at = utc(e.at)
        if e.to_state == "firing":
            open_.setdefault(key, (at, e.severity))
        elif e.from_state == "firing":
            start, sev = open_.pop(key, (first, e.severity))
            assert start is not None
            out.append(Episode(key[0], key[1], start, at, sev))
    out += [Episode(k[0], k[1], s, None, sev) for k, (s, sev) in open_.items()]
    return sorted(out, key=lambda ep: ep.start)


def episodes_from_preview(preview: AlertPreview | Mapping[str, Any]) -> list[Episode]:
    """Episodes of a rule preview (``client.preview_alert_rule``: a record or a dict)."""
    p = AlertPreview.model_validate(preview)
    return [
        Episode(p.rule, e.series, utc(e.start), None if e.end is None else utc(e.end), e.severity)
        for e in p.episodes
    ]


def alert_episodes(
    client: Client,
    dataset: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    rule: str | None = None,
) -> list[Episode]:
    """The stored alert episodes of a dataset overlapping ``[start, end)``: all event pages
    up to ``end`` (an episode may have begun before ``start``), ``MAX_EVENTS`` at most."""
    events: list[Any] = []
    cursor: str | None = None
    while len(events) < MAX_EVENTS:
        page = client.alert_events(dataset, rule=rule, until=end, limit=1000, cursor=cursor)
        events += page
        cursor = page.next_cursor
        if cursor is None:
            break
    found = episodes_from_events(events)
    if start is None:
        return found
    t0 = utc(start)
    return [e for e in found if e.end is None or e.end > t0]


def episode_elements(
    episodes: Sequence[Episode],
    tz: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    time: hv.Dimension,
    y: hv.Dimension,
    y_at: float,
) -> tuple[hv.VSpans, hv.Labels]:
    """Spans coloured by severity and their labels at height ``y_at`` of axis ``y``, for
    the episodes overlapping ``[start, end)`` (cut to it; wall clock of ``tz``). Empty
    elements when none does, so a live plot keeps the same layers."""
    rows = []
    for e in episodes:
        a = max(e.start, start)
        b = end if e.end is None else min(e.end, end)
        if a >= b:
            continue
        color = SEVERITY_COLORS.get(e.severity, "#999999")
        rows.append((local(a, tz), local(b, tz), e.label, e.severity, color))
    # (a label of its own: HoloViews keys a span's columns by label and would drop it)
    until = hv.Dimension(f"{time.name}_until", label="until")
    frame = pd.DataFrame(rows, columns=[time.name, until.name, "episode", "severity", "color"])
    for col in (time.name, until.name):
        frame[col] = pd.to_datetime(frame[col])
    spans = hv.VSpans(frame, [time, until], ["episode", "severity", "color"]).opts(
        color="color", alpha=SPAN_ALPHA, line_width=0
    )
    labels = pd.DataFrame(
        {time.name: frame[time.name], y.name: [y_at] * len(frame), "text": frame["episode"]}
    )
    text = hv.Labels(labels, [time, y], ["text"]).opts(
        text_align="left", text_baseline="top", text_font_size="9pt", text_color="black"
    )
    return spans, text
