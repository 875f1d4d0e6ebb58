"""What the setup screen shows of the API's answers: the ingest preview (detected layout,
columns, first rows, problems and their fixes, probable sentinels), the ingest report and
a dataset's history, as text and tables a person reads.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from stream0d_nb.specs import CommitInfo, IngestPreview, IngestReport, PreviewProblem

_DETECTED = (
    ("format", "format"),
    ("encoding", "encoding"),
    ("delimiter", "delimiter"),
    ("decimal", "decimal mark"),
    ("header_line", "header on line"),
    ("units_row", "units row"),
    ("first_data_line", "first data on line"),
    ("time_column", "time column"),
    ("date_column", "date column"),
    ("time_parsing", "time parsing"),
    ("date_order", "date order"),
    ("naive_times", "naive times"),
)


def detected_text(preview: IngestPreview) -> str:
    """The layout ingest detected, one ``name: value`` per line (Markdown)."""
    found = preview.detected
    lines = [f"- {label}: {found[key]!r}" for key, label in _DETECTED if key in found]
    lines += [
        f"- {key.replace('_', ' ')}: {value!r}"
        for key, value in found.items()
        if key not in dict(_DETECTED) and not isinstance(value, list | dict) and value != 0
    ]
    return "\n".join(lines) or "Nothing detected yet."


def summary_text(preview: IngestPreview) -> str:
    """Rows read, their span and step next to the dataset's grid; cut or stopped uploads."""
    s = preview.summary
    parts = [f"Read {s.rows_read:,} row(s)"]
    if s.rows_skipped:
        parts.append(f"skipped {s.rows_skipped:,}")
    if s.start and s.end:
        parts.append(f"from {s.start} to {s.end} (UTC)")
    if s.interval_guess:
        match = {True: "matches", False: "does not match", None: "next to"}[s.interval_matches]
        parts.append(f"step {s.interval_guess}, which {match} the dataset's {s.dataset_interval}")
    if s.off_grid_rows:
        parts.append(f"{s.off_grid_rows:,} row(s) off the dataset's grid")
    text = ", ".join(parts) + "."
    if preview.truncated:
        text += " Only the file's first megabytes were previewed; ingest reads all of it."
    if not preview.complete:
        text += " Reading stopped at a problem without a fix: correct the file or the mapping."
    return text


def columns_frame(preview: IngestPreview) -> pd.DataFrame:
    """One row per column: header, channel, kind, units, whether pint knows them, and
    why ingest leaves it out (a skipped column)."""
    known = {True: "yes", False: "NO", None: ""}
    names = ["Column", "Channel", "Kind", "Units", "Units known", "Note"]
    rows = []
    for c in preview.columns:
        note = getattr(c, "note", None) or ""
        channel = "(time)" if c.kind == "time" else "" if note else c.name
        units = c.units or ""
        rows.append([c.header, channel, c.kind, units, known[c.units_known], note])
    return pd.DataFrame(rows, columns=names)


def rows_frame(preview: IngestPreview, tz: str | None = None) -> pd.DataFrame:
    """The first rows as ingest parsed them: file line, time (UTC, and in ``tz``), values."""
    records: list[dict[str, Any]] = []
    for r in preview.rows:
        rec: dict[str, Any] = {"Line": r.line, "Time (UTC)": r.time}
        if tz:
            rec[f"Time ({tz})"] = pd.Timestamp(r.time).tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S")
        rec.update(r.values)
        records.append(rec)
    return pd.DataFrame(records)


def place_text(problem: PreviewProblem) -> str:
    """Where a problem is: ``line 3, column 'temp', value 'abc'`` for each place."""
    places = []
    for loc in problem.locations[:5]:
        bits = [f"line {loc.line}"] if loc.line is not None else []
        bits += [f"column {loc.column!r}"] if loc.column is not None else []
        bits += [f"value {loc.value!r}"] if loc.value is not None else []
        places.append(", ".join(bits) or loc.file)
    more = len(problem.locations) - 5
    return "; ".join(places) + (f"; and {more} more" if more > 0 else "")


def problem_text(number: int, problem: PreviewProblem) -> str:
    """A problem as Markdown: what, where, and the fix the preview read on with."""
    text = f"**Problem {number}**: {problem.message}"
    where = place_text(problem)
    if where:
        text += f"  \nWhere: {where}"
    if problem.applied is not None:
        text += f"  \nThe preview read on as if you chose: {fix_text(problem.applied)}"
    return text


def fix_text(fix: Mapping[str, object]) -> str:
    """A fix in the mapping's words: ``units of Current = 1``, ``duplicates = last``."""
    parts = []
    for key, value in fix.items():
        if isinstance(value, Mapping):
            parts += [f"{key} of {k} = {v}" for k, v in value.items()]
        elif isinstance(value, list):
            parts.append(f"{key} + {', '.join(map(str, value))}")
        else:
            parts.append(f"{key} = {value}")
    return "; ".join(parts)


def sentinel_text(hint: Any) -> str:
    """A probable missing-value sentinel the preview found (``SentinelHint``)."""
    line = f" First on line {hint.first_line}." if hint.first_line is not None else ""
    return f"Probable missing-value marker: {hint.describe()}.{line}"


_REPORT_FIELDS = (
    ("rows_read", "rows read"),
    ("rows_skipped", "rows skipped"),
    ("values_read", "values read"),
    ("values_written", "values written"),
    ("values_new", "values new"),
    ("values_changed", "values changed"),
    ("values_unchanged", "values unchanged"),
    ("values_kept", "values kept (on_existing)"),
    ("values_snapped", "values moved onto the grid"),
    ("duplicates_dropped", "duplicate rows dropped"),
    ("duplicates_resolved", "duplicate times resolved"),
    ("bad_cells_missing", "unreadable cells made missing"),
    ("rows_dropped_time", "rows dropped (time)"),
    ("gaps", "gaps"),
)
_REPORT_SHOWN = {k for k, _ in _REPORT_FIELDS} | {
    "dataset",
    "source",
    "checksum",
    "format",
    "detected",
    "channels",
    "new_channels",
    "longest_gap",
    "start",
    "end",
    "commit",
    "unchanged",
    "warnings",
    "seconds",
    "skipped_columns",
    "sentinels",
}


def report_text(report: IngestReport) -> str:
    """The ingest report as Markdown: counts, span, channels, gaps, warnings, the commit,
    and any further fields the platform reports (skipped text columns, sentinels...)."""
    head = f"**{report.source}** into **{report.dataset}**: " + (
        "nothing changed (the data were stored already)."
        if report.unchanged
        else f"stored as commit {report.commit} in {report.seconds:.1f} s."
    )
    lines = [head, ""]
    lines += [f"- {label}: {getattr(report, key):,}" for key, label in _REPORT_FIELDS]
    if report.longest_gap:
        lines.append(f"- longest gap: {report.longest_gap}")
    if report.start and report.end:
        lines.append(f"- from {report.start.isoformat()} to {report.end.isoformat()}")
    lines.append(f"- channels: {', '.join(report.channels) or 'none'}")
    if report.new_channels:
        lines.append(f"- new channels: {', '.join(report.new_channels)}")
    skipped = getattr(report, "skipped_columns", None) or []
    if skipped:
        lines.append(f"- skipped columns: {', '.join(skipped)}")
    for hint in getattr(report, "sentinels", None) or []:
        lines.append(f"- probable missing-value marker: {hint.describe()}")
    for key, value in report.model_dump(mode="json").items():
        if key not in _REPORT_SHOWN and value not in (None, [], {}, "", 0, False):
            lines.append(f"- {key.replace('_', ' ')}: {_plain(value)}")
    lines += [f"- warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _plain(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


def history_frame(commits: Sequence[CommitInfo], tz: str = "UTC") -> pd.DataFrame:
    """The dataset's commits, newest first: when (in ``tz``), message, commit id."""
    return pd.DataFrame(
        [
            {
                f"Written ({tz})": _utc(c.written_at).tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S"),
                "Message": c.message,
                "Commit": c.id,
            }
            for c in commits
        ],
        columns=[f"Written ({tz})", "Message", "Commit"],
    )


def _utc(t: object) -> pd.Timestamp:
    ts = pd.Timestamp(t)  # type: ignore[arg-type]
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts


def frame_html(frame: pd.DataFrame | None, caption: str) -> str:
    """A read-only table as HTML: captioned, headers with scope, in a region that the
    keyboard can focus to scroll it sideways (wide files have many columns)."""
    if frame is None or frame.empty:
        return ""
    esc = html.escape
    head = "".join(f'<th scope="col">{esc(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return (
        f'<div role="region" tabindex="0" aria-label="{esc(caption)}" '
        'style="overflow-x:auto;max-width:100%">'
        '<table style="border-collapse:collapse;font-size:0.9em">'
        f'<caption style="text-align:left;font-weight:600">{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        "<style>th,td{padding:2px 8px;border-bottom:1px solid #d0d7de;text-align:right}"
        "th{background:#f6f8fa}</style>"
    )


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)
