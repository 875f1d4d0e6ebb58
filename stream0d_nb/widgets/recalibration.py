"""Recalibration: a dataset's models and versions, its notebook runs with their reports,
starting a run with parameters, and schedules.

A run executes on the platform (the API's run threads), never in this kernel: starting
one returns at once and the screen follows its status in the background (``Follower``),
updating the runs table until it ends, then shows its report. Viewers see everything;
starting runs and changing schedules need the editor role (the API answers 403 otherwise,
shown in the banner).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

import panel as pn
import param

from stream0d_nb.access import Role
from stream0d_nb.records import DatasetInfo, ModelInfo, RunInfo, ScheduleInfo, VersionRecord
from stream0d_nb.widgets.recal_views import (
    FINAL,
    duration_text,
    failing_cell_text,
    models_html,
    recal_code,
    report_frame,
    run_detail_html,
    runs_html,
    schedules_html,
    versions_html,
)
from stream0d_nb.widgets.run_follower import Follower
from stream0d_nb.widgets.state import NUMBER_INPUT_CSS, Status, prepare_notebook

RECALIBRATE = "recalibrate"
DEFAULTS = {"train": "2d", "holdout": "1d", "cv_rmse_threshold": 30.0, "nmbe_threshold": 10.0}
CATCH_UP = {
    "once: one run for the latest missed slot": "once",
    "skip: only a slot due now": "skip",
    "all: every missed slot, oldest first": "all",
}


def _can_edit(info: DatasetInfo) -> bool:
    """Editors and owners start runs and change schedules (``role`` None: a hub admin)."""
    return info.role is None or info.role >= Role.EDITOR


class Recalibration(pn.viewable.Viewer):
    """Models, versions, runs (start, follow, report) and schedules of a dataset."""

    dataset: param.Selector[Any] = param.Selector(
        default=None, objects=[], check_on_set=True, label="Dataset"
    )
    model: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="Model"
    )
    run: param.Selector[Any] = param.Selector(
        default=None, objects=[None], check_on_set=True, label="Run shown"
    )
    notebook = param.String(default=RECALIBRATE, label="Notebook (in recalibration_runs/)")
    train = param.String(default="2d", label="Training window (before the hold-out)")
    holdout = param.String(default="1d", label="Hold-out window (ending at the end)")
    end = param.String(default="", label="End (ISO time, UTC; empty: end of the data)")
    every = param.String(default="", label="Aggregate to (e.g. 1min; empty: as stored)")
    cv_rmse_threshold = param.Number(
        default=30.0, bounds=(0, None), inclusive_bounds=(False, True), label="CV(RMSE) limit (%)"
    )
    nmbe_threshold = param.Number(
        default=10.0, bounds=(0, None), inclusive_bounds=(False, True), label="|NMBE| limit (%)"
    )
    extra = param.String(default="", label="Other parameters (JSON object)")
    timeout_s = param.Integer(default=600, bounds=(10, 600), label="Time limit (s)")
    schedule: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="Schedule"
    )
    schedule_name = param.String(default="", label="New schedule's name")
    cron = param.String(default="0 3 * * *", label="Cron (UTC)")
    catch_up: param.Selector[Any] = param.Selector(
        default="once", objects=CATCH_UP, label="After missed slots"
    )
    pending_delete = param.String(default="", doc="The schedule waiting for confirmation.")
    show_code = param.Boolean(default=False, label="Show code")
    can_edit = param.Boolean(default=False, doc="Whether the caller may start runs.")

    def __init__(self, client: Any = None, poll_s: float = 1.0, **params: Any) -> None:
        prepare_notebook()
        if client is None:
            from stream0d_nb.client import Client

            client = Client.from_env()
        self.client = client
        self.status = Status()
        self.infos: dict[str, DatasetInfo] = {}
        self.models: list[ModelInfo] = []
        self.versions: list[VersionRecord] = []
        self.runs: list[RunInfo] = []
        self.schedules: list[ScheduleInfo] = []
        self.following: set[int] = set()
        self.calls: list[str] = []
        self.report_html = ""
        self._followed_dataset: str | None = None
        self.follower: Follower[list[RunInfo]] = Follower(
            self._fetch_runs, self._runs_arrived, self._follow_failed, poll_s
        )
        html = {"sizing_mode": "stretch_width", "disable_math": True}
        self.models_pane = pn.pane.HTML("", **html)
        self.versions_pane = pn.pane.HTML("", **html)
        self.runs_pane = pn.pane.HTML("", **html)
        self.run_pane = pn.pane.HTML("", **html)
        self.report_pane = pn.pane.HTML("", **html)
        self.schedules_pane = pn.pane.HTML("", **html)
        self.viewer_note = pn.pane.HTML("", visible=False, **html)
        self.code = pn.pane.Markdown("", visible=False, sizing_mode="stretch_width")
        super().__init__(**params)
        self._layout: pn.viewable.Viewable | None = None
        self.refresh()

    # ------------------------------------------------------------------ data of the screen

    def refresh(self) -> None:
        """List the datasets the user may see (and keep the chosen one if still there)."""
        with self.status.task("Listing your datasets"):
            self.infos = {d.id: d for d in self.client.datasets()}
            ids = sorted(self.infos)
            self.param.dataset.objects = ids
            if self.dataset not in ids:
                self.dataset = ids[0] if ids else None
            else:
                self._dataset_changed()
            if not ids:
                self.status.done("You see no dataset yet: ask a dataset owner for a grant.")

    @param.depends("dataset", watch=True)
    def _dataset_changed(self) -> None:
        """Load the dataset's models, runs and schedules; say what the role allows."""
        self.follower.stop()
        self.following.clear()
        self.models, self.versions, self.runs, self.schedules = [], [], [], []
        self.param.model.objects, self.model = [""], ""
        self.param.run.objects, self.run = [None], None
        self.param.schedule.objects, self.schedule = [""], ""
        self.pending_delete, self.report_html = "", ""
        info = self.infos.get(self.dataset) if self.dataset else None
        self.can_edit = info is not None and _can_edit(info)
        self.viewer_note.visible = info is not None and not self.can_edit
        if info is not None and not self.can_edit:
            self.viewer_note.object = (
                f'<p role="note">You are <b>{info.role}</b> of <b>{info.id}</b>: you see its '
                "models, runs, reports and schedules; starting runs and changing schedules "
                "need the editor role.</p>"
            )
        self._render()
        if self.dataset is None:
            return
        with self.status.task(f"Opening the recalibration of {self.dataset}"):
            self._load_models()
            self._load_runs()
            self._load_schedules()
            self.status.done(self._summary())

    def _load_models(self) -> None:
        assert self.dataset is not None
        self.models = self.client.models(self.dataset)
        names = [m.name for m in self.models]
        self.param.model.objects = ["", *names]
        if self.model not in names:
            self.model = names[0] if names else ""
        else:
            self._model_changed()
        self._render()

    @param.depends("model", watch=True)
    def _model_changed(self) -> None:
        self.versions = []
        if self.dataset is not None and self.model:
            with self.status.task(f"Reading the versions of {self.model}"):
                self.versions = self.client.model_versions(self.dataset, self.model)
        self._render()

    def _load_runs(self, runs: list[RunInfo] | None = None) -> None:
        assert self.dataset is not None
        self.runs = self.client.recal_runs(self.dataset) if runs is None else runs
        labels = {f"run {r.id} ({r.status}, {r.notebook})": r.id for r in self.runs}
        keep = self.run
        self.param.run.objects = {"": None, **labels}
        if keep is not None and keep in labels.values():
            self._show_run(keep, fetch_report=False)
        elif keep is not None:
            self.run = None
        self._render()

    def _load_schedules(self) -> None:
        assert self.dataset is not None
        self.schedules = self.client.recal_schedules(self.dataset)
        labels = {f"{s.name} ({'on' if s.enabled else 'paused'})": s.name for s in self.schedules}
        self.param.schedule.objects = {"": "", **labels}
        if self.schedule not in labels.values():
            self.schedule = ""
        self._render()

    def _summary(self) -> str:
        active = sum(1 for m in self.models if m.active is not None)
        return (
            f"{self.dataset}: {len(self.models)} model(s), {active} with an active version; "
            f"{len(self.runs)} run(s); {len(self.schedules)} schedule(s)."
        )

    @param.depends("run", watch=True)
    def _run_changed(self) -> None:
        if self.run is None:
            self.run_pane.object, self.report_html = "", ""
            self._render()
            return
        with self.status.task(f"Opening run {self.run}"):
            self._show_run(self.run)

    def _show_run(self, run_id: int, fetch_report: bool = True) -> None:
        """The run's details (and failing cell), and its report in the sandboxed frame."""
        assert self.dataset is not None
        run = next((r for r in self.runs if r.id == run_id), None)
        if run is None:
            run = self.client.recal_run(self.dataset, run_id)
        notebook = None
        if failing_cell_text(run) and "notebook" in run.files:
            notebook = json.loads(self.client.recal_run_file(self.dataset, run.id, "notebook"))
        self.run_pane.object = run_detail_html(run, notebook)
        if fetch_report:
            self.report_html = ""
            if "report" in run.files:
                report = self.client.recal_run_file(self.dataset, run.id, "report")
                self.report_html = report_frame(report, f"Report of run {run.id} ({run.notebook})")
        self._render()

    # ------------------------------------------------------------------ runs

    def run_parameters(self) -> dict[str, Any]:
        """The notebook's parameters from the form (``dataset`` is the screen's)."""
        params: dict[str, Any] = {}
        if self.notebook.strip().removesuffix(".ipynb") == RECALIBRATE:
            if self.model:
                params["model"] = self.model
            for name in ("train", "holdout", "end", "every"):
                value = str(getattr(self, name)).strip()
                if value and value != DEFAULTS.get(name):
                    params[name] = value
            for name in ("cv_rmse_threshold", "nmbe_threshold"):
                if float(getattr(self, name)) != DEFAULTS[name]:
                    params[name] = float(getattr(self, name))
        if self.extra.strip():
            try:
                extra = json.loads(self.extra)
            except ValueError as exc:
                raise ValueError(f"Other parameters: not JSON ({exc})") from None
            if not isinstance(extra, dict):
                raise ValueError('Other parameters: give a JSON object, e.g. {"as_of": "..."}')
            params.update(extra)
        return params

    def _form(self) -> dict[str, Any]:
        return {
            "parameters": self.run_parameters(),
            "notebook": self.notebook.strip() or RECALIBRATE,
            "timeout_s": self.timeout_s,
        }

    def start_run(self) -> None:
        """Start the notebook with the form's parameters; follow it in the background."""
        if self.dataset is None:
            return
        with self.status.task(f"Starting {self.notebook or RECALIBRATE} on {self.dataset}"):
            form = self._form()
            run = self.client.start_recal_run(self.dataset, **form)
            self.calls.append(
                f"client.start_recal_run({self.dataset!r}, {form['parameters']!r}, "
                f"notebook={form['notebook']!r}, timeout_s={form['timeout_s']!r})"
            )
            self._started(run)

    def run_schedule_now(self) -> None:
        """Run the chosen schedule now with its own notebook and parameters."""
        if self.dataset is None:
            return
        with self.status.task(f"Running schedule {self.schedule or '?'} now"):
            if not self.schedule:
                raise ValueError("choose a schedule first (Schedule)")
            run = self.client.run_recal_schedule(self.dataset, self.schedule)
            self.calls.append(f"client.run_recal_schedule({self.dataset!r}, {self.schedule!r})")
            self._started(run)

    def _started(self, run: RunInfo) -> None:
        assert self.dataset is not None
        self._load_runs()
        self.run = run.id
        self.following.add(run.id)
        self._followed_dataset = self.dataset
        self.follower.start()
        self.status.done(
            f"Run {run.id} is {run.status}: it runs on the platform; this table follows it."
        )

    def _fetch_runs(self) -> list[RunInfo]:
        """The dataset's runs, and any run followed that is not among the newest."""
        ds = self._followed_dataset
        if ds is None:
            return []
        runs = self.client.recal_runs(ds)
        seen = {r.id for r in runs}
        extra = [self.client.recal_run(ds, i) for i in sorted(self.following - seen)]
        return sorted([*runs, *extra], key=lambda r: r.id, reverse=True)

    def _runs_arrived(self, runs: list[RunInfo]) -> bool:
        """Update the table; announce followed runs that ended. Go on while some run."""
        if self._followed_dataset != self.dataset:
            return False
        self._load_runs(runs)
        ended = [r for r in runs if r.id in self.following and r.status in FINAL]
        for r in ended:
            self.following.discard(r.id)
        if ended:
            self._ended(ended[0])
        going = [r for r in runs if r.id in self.following]
        if going and not ended and self.status.state == "ready":  # never over an error
            self.status.message = (
                "; ".join(
                    f"Run {r.id} is {r.status}" + (f" ({d})" if (d := duration_text(r)) else "")
                    for r in going
                )
                + ": it runs on the platform; the table follows it."
            )
        return bool(self.following)

    def _ended(self, run: RunInfo) -> None:
        """A followed run ended: show it with its report, and the versions it made."""
        with self.status.task(f"Opening run {run.id}"):
            self._load_models()
            if self.run != run.id:
                self.run = run.id  # shown by _run_changed
            else:
                self._show_run(run.id)
        if run.status == "succeeded":
            self.status.done(f"Run {run.id} succeeded in {run.duration_s or 0:.1f} s.")
        else:
            self.status.error = f"Run {run.id} {run.status} at {failing_cell_text(run)}."
            self.status.state = "error"
            self.status.message = f"Run {run.id} {run.status} (see the message above)."

    def _follow_failed(self, exc: BaseException) -> None:
        self.status.error = f"Following the runs failed: {exc}"
        self.status.state, self.status.message = "error", "Runs are no longer followed."

    # ------------------------------------------------------------------ schedules

    def _chosen(self) -> ScheduleInfo:
        found = next((s for s in self.schedules if s.name == self.schedule), None)
        if found is None:
            raise ValueError("choose a schedule first (Schedule)")
        return found

    def add_schedule(self) -> None:
        """Schedule the notebook with the form's parameters, cron and catch-up policy."""
        if self.dataset is None:
            return
        name = self.schedule_name.strip()
        if name and not name.startswith(f"{self.dataset}-"):
            name = f"{self.dataset}-{name}"  # schedules live in the dataset's namespace
        with self.status.task(f"Adding schedule {name or '?'}"):
            if not name:
                raise ValueError("give the schedule a name first (New schedule's name)")
            form = self._form()
            fields = {
                "notebook": form["notebook"],
                "catch_up": self.catch_up,
                "timeout_s": form["timeout_s"],
            }
            made = self.client.add_recal_schedule(
                self.dataset, name, self.cron.strip(), form["parameters"], **fields
            )
            self.calls.append(
                f"client.add_recal_schedule({self.dataset!r}, {name!r}, {self.cron.strip()!r}, "
                f"{form['parameters']!r}, "
                + ", ".join(f"{k}={v!r}" for k, v in fields.items())
                + ")"
            )
            self._load_schedules()
            self.schedule, self.schedule_name = made.name, ""
            self.status.done(
                f"Added schedule {made.name}: next slot {made.next_slot:%Y-%m-%d %H:%M} UTC."
            )

    def toggle_schedule(self) -> None:
        """Pause the chosen schedule, or resume it."""
        self._change("Pausing or resuming", lambda s: {"enabled": not s.enabled})

    def update_schedule(self) -> None:
        """Give the chosen schedule the form's cron, notebook, parameters and limits."""

        def changes(_: ScheduleInfo) -> dict[str, Any]:
            form = self._form()
            return {
                "cron": self.cron.strip(),
                "notebook": form["notebook"],
                "parameters": form["parameters"],
                "catch_up": self.catch_up,
                "timeout_s": form["timeout_s"],
            }

        self._change("Changing", changes)

    def _change(self, verb: str, changes: Any) -> None:
        if self.dataset is None:
            return
        with self.status.task(f"{verb} schedule {self.schedule or '?'}"):
            current = self._chosen()
            body = changes(current)
            new = self.client.update_recal_schedule(self.dataset, current.name, **body)
            args = ", ".join(f"{k}={v!r}" for k, v in body.items())
            self.calls.append(
                f"client.update_recal_schedule({self.dataset!r}, {current.name!r}, {args})"
            )
            self._load_schedules()
            self.schedule = new.name
            state = "on" if new.enabled else "paused"
            self.status.done(f"Schedule {new.name} is {state}, cron {new.cron} (UTC).")

    def ask_delete_schedule(self) -> None:
        """First step of deleting a schedule: wait for the confirmation."""
        with self.status.task("Deleting a schedule"):
            self.pending_delete = self._chosen().name
            self.status.done(
                f"Delete schedule {self.pending_delete}? Its runs stay. Confirm or cancel below."
            )

    def cancel_delete_schedule(self) -> None:
        """Keep the schedule."""
        self.pending_delete = ""
        self.status.done("Nothing deleted.")

    def confirm_delete_schedule(self) -> None:
        """Second step: delete the schedule waiting for confirmation."""
        if self.dataset is None or not self.pending_delete:
            return
        name = self.pending_delete
        with self.status.task(f"Deleting schedule {name}"):
            self.client.delete_recal_schedule(self.dataset, name)
            self.calls.append(f"client.delete_recal_schedule({self.dataset!r}, {name!r})")
            self.pending_delete = ""
            self._load_schedules()
            self.status.done(f"Deleted schedule {name}; its runs stay.")

    # ------------------------------------------------------------------ rendering

    def _render(self) -> None:
        ds = self.dataset or ""
        self.models_pane.object = models_html(self.models, ds)
        self.versions_pane.object = versions_html(self.versions, self.model) if self.model else ""
        self.runs_pane.object = runs_html(self.runs, ds)
        self.schedules_pane.object = schedules_html(self.schedules, ds)
        self.report_pane.object = self.report_html
        self.report_pane.visible = bool(self.report_html)
        if self.run is None:
            self.run_pane.object = ""
        self.run_pane.visible = bool(self.run_pane.object)
        self._update_code()

    def code_text(self) -> str:
        """The client calls that show what the screen shows, then those it made."""
        try:
            form = self._form()
        except ValueError:
            form = {"parameters": {}, "notebook": self.notebook, "timeout_s": self.timeout_s}
        return recal_code(self.dataset, self.model, self.run, form, self.calls)

    def _update_code(self) -> None:
        self.code.object = f"```python\n{self.code_text()}```"

    @param.depends("show_code", watch=True)
    def _toggle_code(self) -> None:
        self._update_code()
        self.code.visible = self.show_code

    # ------------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def _build(self) -> pn.viewable.Viewable:
        w = pn.widgets
        edit = self.param.can_edit.rx()

        def button(label: str, action: Any, **kw: Any) -> pn.widgets.Button:
            b = w.Button(label=label, width=kw.pop("width", 130), **kw)
            b.on_click(lambda _: action())
            return b

        def field(p: Any, widget: Any = w.TextInput, **kw: Any) -> Any:
            return widget.from_param(p, width=260, **kw)

        form = pn.Column(
            pn.pane.Markdown("### Start a run", margin=(0, 10)),
            field(self.param.notebook),
            field(self.param.train, placeholder="e.g. 2d"),
            field(self.param.holdout, placeholder="e.g. 1d"),
            field(self.param.end, placeholder="e.g. 2026-11-18"),
            field(self.param.every, placeholder="e.g. 1min"),
            field(self.param.cv_rmse_threshold, w.FloatInput, stylesheets=NUMBER_INPUT_CSS),
            field(self.param.nmbe_threshold, w.FloatInput, stylesheets=NUMBER_INPUT_CSS),
            field(self.param.extra, w.TextAreaInput, height=70, placeholder='{"as_of": "..."}'),
            field(self.param.timeout_s, w.IntInput, stylesheets=NUMBER_INPUT_CSS),
            button("Start run", self.start_run, color="primary"),
            visible=edit,
        )
        pending = self.param.pending_delete.rx()
        schedules = pn.Column(
            pn.pane.Markdown("### Schedules", margin=(0, 10)),
            field(self.param.schedule, w.Select),
            pn.Row(
                button("Run now", self.run_schedule_now),
                button("Pause / resume", self.toggle_schedule),
            ),
            pn.Row(
                button("Apply the form", self.update_schedule),
                button("Delete…", self.ask_delete_schedule, color="danger"),
            ),
            pn.Column(
                pn.pane.HTML(
                    pending.rx.pipe(
                        lambda n: (
                            f'<p role="alert">Delete schedule <b>{escape(n)}</b>?</p>' if n else ""
                        )
                    ),
                    width=260,
                ),
                pn.Row(
                    button("Yes, delete", self.confirm_delete_schedule, color="danger"),
                    button("Cancel", self.cancel_delete_schedule),
                ),
                visible=pending.rx.bool(),
            ),
            field(self.param.schedule_name, placeholder="e.g. nightly"),
            field(self.param.cron),
            field(self.param.catch_up, w.Select),
            button("Add schedule", self.add_schedule),
            visible=edit,
        )
        controls = pn.Column(
            pn.pane.Markdown("### Dataset and model", margin=(0, 10)),
            field(self.param.dataset, w.Select),
            field(self.param.model, w.Select),
            field(self.param.run, w.Select),
            button("Refresh", self.refresh),
            form,
            schedules,
            pn.pane.Markdown("### Take it away", margin=(0, 10)),
            w.Toggle.from_param(self.param.show_code, width=130),
            width=290,
        )
        main = pn.Column(
            self.status.panel(),
            self.viewer_note,
            self.models_pane,
            self.versions_pane,
            self.runs_pane,
            self.schedules_pane,
            self.run_pane,
            self.report_pane,
            self.code,
            sizing_mode="stretch_width",
        )
        busy = self.status.param.busy.rx()
        self.models_pane.loading = self.runs_pane.loading = busy
        return pn.Row(controls, main, sizing_mode="stretch_width", name="Recalibration")
