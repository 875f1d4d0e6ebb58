"""What the Recalibration screen shows, as HTML from the client's records: models,
versions with their metrics and decision, runs, one run in detail (its failing cell),
its report in a sandboxed frame, schedules; and the code that does the same.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stream0d_nb.records import ModelInfo, RunInfo, ScheduleInfo, VersionRecord
from stream0d_nb.widgets.htmltable import Coloured, cell_text, html_table

FINAL = ("succeeded", "failed", "timed_out")
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "script-src 'none'; form-action 'none'; base-uri 'none'"
)
"""Also written into the report itself: the frame loads nothing from anywhere."""


def duration_text(run: RunInfo, now: datetime | None = None) -> str:
    """``8.3 s`` at the end; ``12 s so far`` while it runs; nothing while queued."""
    if run.duration_s is not None:
        return f"{run.duration_s:.1f} s"
    if run.status == "running" and run.started_at is not None:
        started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=UTC)
        return f"{((now or datetime.now(UTC)) - started).total_seconds():.0f} s so far"
    return ""


def failing_cell_text(run: RunInfo) -> str:
    """``cell 4: KeyError: 'x'`` for a failed run (the cell of the saved notebook)."""
    if run.status not in ("failed", "timed_out") and not run.error_name:
        return ""
    where = f"cell {run.error_cell}" if run.error_cell is not None else "no cell"
    what = ": ".join(x for x in (run.error_name, run.error_message) if x)
    return f"{where}: {what}" if what else where


def models_html(models: Sequence[ModelInfo], dataset: str) -> str:
    """The dataset's models with their active version's hold-out metrics."""
    rows = []
    for m in models:
        act = m.active
        hold = (act.metrics.get("holdout") or {}) if act else {}
        rows.append(
            [
                m.name,
                m.kind,
                m.spec.get("output", ""),
                ", ".join(map(str, m.spec.get("inputs", []))),
                f"v{act.version}" if act else Coloured("none yet", "#57606a"),
                hold.get("cv_rmse"),
                hold.get("nmbe"),
                act.created_at if act else None,
            ]
        )
    return html_table(
        ["model", "kind", "output", "inputs", "active", "CV(RMSE) %", "NMBE %", "since"],
        rows,
        caption=f"Models of {dataset} (active version's hold-out metrics)",
        empty="no models: define one with the client's save_model or `stream0d recal model add`.",
    )


def versions_html(versions: Sequence[VersionRecord], model: str) -> str:
    """A model's versions, newest first: metrics on both windows and the decision."""
    rows = []
    for v in versions:
        hold = v.metrics.get("holdout") or {}
        train = v.metrics.get("train") or {}
        before = v.metrics.get("active_holdout") or {}
        rows.append(
            [
                f"v{v.version}",
                Coloured(v.status),
                v.reason,
                hold.get("cv_rmse"),
                hold.get("nmbe"),
                hold.get("r2"),
                train.get("cv_rmse"),
                before.get("cv_rmse"),
                f"{cell_text(v.holdout_window[0])} to {cell_text(v.holdout_window[1])}",
                v.run_id,
                v.created_at,
            ]
        )
    return html_table(
        [
            "version",
            "status",
            "why",
            "hold-out CV(RMSE) %",
            "hold-out NMBE %",
            "hold-out R²",
            "train CV(RMSE) %",
            "active's hold-out CV(RMSE) %",
            "hold-out window",
            "run",
            "made",
        ],
        rows,
        caption=f"Versions of {model}, newest first",
        empty="no versions yet: start a run.",
    )


def runs_html(runs: Sequence[RunInfo], dataset: str) -> str:
    """The dataset's runs, newest first: status, duration, failing cell, files."""
    rows = [
        [
            r.id,
            Coloured(r.status),
            r.notebook,
            r.trigger,
            r.queued_at,
            duration_text(r),
            failing_cell_text(r),
            r.model_version_id,
            r.created_by,
            ", ".join(r.files),
        ]
        for r in runs
    ]
    return html_table(
        [
            "run",
            "status",
            "notebook",
            "trigger",
            "queued",
            "duration",
            "failing cell",
            "version id",
            "by",
            "files",
        ],
        rows,
        caption=f"Notebook runs of {dataset}, newest first",
        empty="no runs yet.",
    )


def schedules_html(schedules: Sequence[ScheduleInfo], dataset: str) -> str:
    """The dataset's schedules: on or paused, cron, next slot, parameters."""
    rows = [
        [
            s.name,
            Coloured("enabled" if s.enabled else "paused"),
            s.cron,
            s.next_slot,
            s.notebook,
            s.parameters,
            s.catch_up,
            f"{s.timeout_s:g} s",
            s.running_run,
            s.last_fired_for,
        ]
        for s in schedules
    ]
    return html_table(
        [
            "schedule",
            "state",
            "cron (UTC)",
            "next slot",
            "notebook",
            "parameters",
            "catch-up",
            "time limit",
            "running run",
            "last slot fired",
        ],
        rows,
        caption=f"Schedules of {dataset}",
        empty="no schedules.",
    )


def run_detail_html(run: RunInfo, notebook: Mapping[str, Any] | None = None) -> str:
    """One run: status, duration, parameters, metrics and, when it failed, the failing
    cell's source and error from the saved notebook."""
    colour = Coloured(run.status)
    parts = [
        f"<h4 style='margin:4px 0'>Run {run.id}: {colour.html()}</h4>",
        "<dl style='margin:0;display:grid;grid-template-columns:max-content 1fr;gap:0 12px'>",
    ]
    facts = {
        "notebook": run.notebook,
        "trigger": run.trigger,
        "by": run.created_by,
        "queued": cell_text(run.queued_at),
        "duration": duration_text(run),
        "parameters": cell_text(run.parameters),
        "data snapshot": run.snapshot or "",
        "model version id": cell_text(run.model_version_id),
    }
    for key, value in facts.items():
        if value:
            parts.append(
                f"<dt style='font-weight:600'>{html.escape(key)}</dt>"
                f"<dd style='margin:0'>{html.escape(value)}</dd>"
            )
    parts.append("</dl>")
    failed = failing_cell_text(run)
    if failed:
        parts.append(
            f'<div role="alert" style="color:#cf222e;font-weight:600">Failed at '
            f"{html.escape(failed)}</div>"
        )
        cell = _cell(notebook, run.error_cell)
        if cell is not None:
            parts.append(
                f'<pre aria-label="source of the failing cell" style="background:#f6f8fa;'
                f'padding:6px;overflow:auto;max-height:240px">{html.escape(cell)}</pre>'
            )
    return "".join(parts)


def _cell(notebook: Mapping[str, Any] | None, index: int | None) -> str | None:
    """The source of cell ``index`` of an executed notebook (None if not there)."""
    if notebook is None or index is None:
        return None
    cells = notebook.get("cells") or []
    if not 0 <= index < len(cells):
        return None
    source = cells[index].get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def report_frame(report: bytes, title: str, height: int = 720) -> str:
    """The run's HTML report in a frame that can neither run scripts nor act as the page:
    ``sandbox`` with no allowances (an opaque origin: no cookies, no storage, no access
    to the notebook), and a CSP in the document that loads nothing from anywhere."""
    doc = report.decode("utf-8", errors="replace")
    meta = f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
    head = re.search(r"<head[^>]*>", doc, flags=re.IGNORECASE)
    doc = doc[: head.end()] + meta + doc[head.end() :] if head else meta + doc
    return (
        f'<iframe title="{html.escape(title, quote=True)}" sandbox="" '
        f'referrerpolicy="no-referrer" srcdoc="{html.escape(doc, quote=True)}" '
        f'style="width:100%;height:{height}px;border:1px solid #d0d7de"></iframe>'
    )


def recal_code(
    dataset: str | None,
    model: str | None,
    run_id: int | None,
    form: Mapping[str, Any],
    calls: Sequence[str],
) -> str:
    """Python that shows what the screen shows (then the calls the screen made)."""
    lines = ["from stream0d_nb.client import Client", "", "client = Client.from_env()"]
    if dataset is not None:
        ds = repr(dataset)
        lines += [f"client.models({ds})", f"client.recal_runs({ds})"]
        lines.append(f"client.recal_schedules({ds})")
        if model:
            lines.append(f"client.model_versions({ds}, {model!r})")
        if run_id is not None:
            lines += [
                f"run = client.recal_run({ds}, {run_id})",
                f"report = client.recal_run_file({ds}, {run_id}, 'report')  # HTML bytes",
            ]
        args = ", ".join(f"{k}={v!r}" for k, v in form.items() if k != "parameters")
        lines += [
            "",
            "# a run with the form's parameters, followed until it ends",
            f"# run = client.start_recal_run({ds}, {dict(form['parameters'])!r}, {args})",
            f"# run = client.wait_recal_run({ds}, run.id)",
        ]
    if calls:
        lines += ["", "# what was done on this screen", *calls]
    return "\n".join(lines) + "\n"
