"""The formula editor: write a formula, see it over a short window while typing, save it.

A code editor for the formula (the compiler's caret becomes an error mark at its line
and column), the derived channel's name, description and units, the dataset's channels
to insert, a live preview plot of the unsaved formula (debounced, one request in flight,
run off the kernel's event loop), and the dataset's formulas to open or delete (with a
confirmation step). Everything goes through the client with the identity of the person
using the screen; saving needs the editor role, which the screen says in words.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import panel as pn
import param
import xarray as xr

from stream0d_nb.access import Role
from stream0d_nb.plots import DatasetFacts, timeseries
from stream0d_nb.specs import FormulaSpec
from stream0d_nb.widgets.formula_code import formula_code
from stream0d_nb.widgets.formula_layout import formula_layout
from stream0d_nb.widgets.formula_preview import (
    PreviewRequest,
    error_marks,
    evaluate,
    preview_every,
)
from stream0d_nb.widgets.state import Status, prepare_notebook
from stream0d_nb.widgets.throttle import Throttle
from stream0d_nb.widgets.timerange import preset_range

WINDOWS = ("Last hour", "Last 8 h", "Last 24 h", "Current shift", "Custom")
"""Preview ranges: short ones, ending at the newest data (or a custom range)."""
PREVIEW_WIDTH = 900
PREVIEW_POINTS = PREVIEW_WIDTH
"""Values asked per preview: about one per pixel of the plot."""
NONE = "(none chosen)"
"""How the list of formulas shows its empty choice."""
DEBOUNCE_S = 0.7
"""Quiet time after the last key press before a preview is asked for."""

Outcome = xr.Dataset | Exception
Runner = Callable[[Callable[[], Outcome], Callable[[Outcome], None]], None]
"""Runs ``work`` and hands its result (or exception) to ``then``."""


def run_off_loop(work: Callable[[], Outcome], then: Callable[[Outcome], None]) -> None:
    """Run ``work`` in a thread when an event loop runs (a kernel, a server), so the
    screen stays responsive, and call ``then`` back on the loop; without one, inline."""

    def outcome() -> Outcome:
        try:
            return work()
        except Exception as exc:  # handed to ``then``, which reports it
            return exc

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        then(outcome())
        return
    future = loop.run_in_executor(None, outcome)
    future.add_done_callback(lambda f: then(f.result()))


def _local_naive(t: pd.Timestamp, tz: str) -> datetime:
    """A UTC time as the wall clock of ``tz`` (what the range picker shows)."""
    return t.tz_convert(tz).tz_localize(None).to_pydatetime()


def _utc(t: Any, tz: str) -> pd.Timestamp:
    """A picker's wall-clock time in ``tz`` as UTC."""
    ts = pd.Timestamp(t)
    local = ts.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return (local if not pd.isna(local) else ts.tz_localize(tz, ambiguous=True)).tz_convert("UTC")


class FormulaEditor(pn.viewable.Viewer):
    """Derived channels of the datasets the user may read: write, preview, save, delete."""

    dataset: param.Selector[Any] = param.Selector(
        default=None, objects=[], check_on_set=True, label="Dataset"
    )
    formula = param.String(default="", label="Formula")
    channel_name = param.String(default="", label="Name of the derived channel")
    description = param.String(default="", label="Description")
    materialize = param.Boolean(default=False, label="Also store the values (materialise)")
    units = param.String(default="", label="Units of the result (found by the compiler)")
    insert: param.Selector[Any] = param.Selector(
        default=None, objects=[], label="Channels (stored and derived)"
    )
    saved: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="Formulas of this dataset"
    )
    window: param.Selector[Any] = param.Selector(
        default="Last hour", objects=list(WINDOWS), label="Preview range"
    )
    custom_range = param.DateRange(default=None, label="Custom range")
    can_edit = param.Boolean(default=False, doc="Whether the user may save formulas here.")
    access_note = param.String(default="", doc="What the user may do here, in words.")
    confirming = param.String(default="", doc="The formula waiting for delete confirmation.")
    show_code = param.Boolean(default=False, label="Show code")
    plain_text = param.Boolean(
        default=False,
        label="Plain text box instead of the code editor (Tab moves on instead of indenting)",
    )
    previewing = param.Boolean(default=False, doc="A preview request is in flight.")

    def __init__(self, client: Any = None, **params: Any) -> None:
        prepare_notebook()
        if client is None:
            from stream0d_nb.client import Client

            client = Client.from_env()
        self.client = client
        self.status = Status()
        self.facts: DatasetFacts | None = None
        self.roles: dict[str, Role | None] = {}
        self.throttle: Throttle[str] = Throttle(DEBOUNCE_S)
        self.clock: Callable[[], float] = time.monotonic
        self.runner: Runner = run_off_loop
        self.preview: xr.Dataset | None = None
        self.shown: PreviewRequest | None = None
        self._generation = 0
        self._typing_in: Any = None  # the text widget of the key press being handled
        self._timer: asyncio.TimerHandle | None = None
        self.editor = pn.widgets.CodeEditor(
            label="Formula",
            value="",
            language="text",
            height=140,
            sizing_mode="stretch_width",
            soft_tabs=True,
            indent=2,
        )
        self.plain = pn.widgets.TextAreaInput(
            label="Formula (plain text box)",
            height=140,
            sizing_mode="stretch_width",
            visible=False,
        )
        self.problem = pn.pane.HTML("", sizing_mode="stretch_width", visible=False)
        self.figure = pn.pane.HoloViews(None, sizing_mode="stretch_width", min_height=320)
        self.table = pn.pane.DataFrame(
            pd.DataFrame(), index=False, escape=True, sizing_mode="stretch_width"
        )
        self.code = pn.pane.Markdown("", visible=False, sizing_mode="stretch_width")
        super().__init__(**params)
        self.editor.param.watch(self._typed, "value_input")
        self.plain.param.watch(self._typed, "value_input")
        self._layout: pn.viewable.Viewable | None = None
        self.refresh()

    # ------------------------------------------------------------------ the dataset

    def refresh(self) -> None:
        """List the datasets the user may read (keeping the chosen one if still there)."""
        with self.status.task("Listing your datasets"):
            infos = self.client.datasets()
            self.roles = {d.id: d.role for d in infos}
            ids = sorted(self.roles)
            self.param.dataset.objects = ids
            if self.dataset not in ids:
                self.dataset = ids[0] if ids else None
            if not ids:
                self.status.done("You may read no dataset yet: ask a dataset owner for a grant.")

    @param.depends("dataset", watch=True)
    def _dataset_changed(self) -> None:
        """Load the dataset's extent, channels and formulas; say what the user may do."""
        self._generation += 1
        self.throttle.cancel()
        self.facts, self.confirming = None, ""
        self.insert = None
        self.param.insert.objects = []  # (after: None joined the objects)
        self.param.saved.objects, self.saved = {NONE: ""}, ""
        self.table.object = pd.DataFrame()
        self._clear_preview()
        self._update_access()
        if self.dataset is None:
            return
        with self.status.task(f"Opening {self.dataset}"):
            self.facts = DatasetFacts.fetch(self.client, self.dataset)
            if self.facts.end is not None:
                start, end = preset_range("Last hour", self.facts.start, self.facts.end, "UTC")
                tz = self.facts.tz
                self.custom_range = (_local_naive(start, tz), _local_naive(end, tz))
            self._load_channels()
            self.status.done(self._opened_text())
        if self.formula.strip():
            self._request_preview(now=True)

    def _update_access(self) -> None:
        role = self.roles.get(self.dataset) if self.dataset is not None else None
        self.can_edit = self.dataset is not None and (role is None or role >= Role.EDITOR)
        if self.dataset is None or self.can_edit:
            self.access_note = ""
        else:
            self.access_note = (
                f"You can read this dataset but not change its formulas (your role: "
                f"{role}). Previews work; saving and deleting need the editor role: ask "
                "the dataset's owner."
            )

    def _load_channels(self) -> None:
        """The channels to insert (with units) and the table of formulas."""
        assert self.dataset is not None
        listed = self.client.channels(self.dataset)
        options = {f"{c.name} [{c.units or '1'}]": c.name for c in listed.stored}
        options.update({f"{f.name} [{f.units or '1'}] (derived)": f.name for f in listed.derived})
        self.param.insert.objects = options
        if self.insert not in options.values():
            self.insert = next(iter(options.values()), None)
        names = [f.name for f in listed.derived]
        self.param.saved.objects = {NONE: "", **{n: n for n in names}}
        if self.saved not in names:
            self.saved = ""
        self.table.object = pd.DataFrame(
            {
                "name": [f.name for f in listed.derived],
                "formula": [f.formula for f in listed.derived],
                "units": [f.units for f in listed.derived],
                "description": [f.description for f in listed.derived],
                "stored": ["yes" if f.materialize else "no" for f in listed.derived],
            }
        )

    def _opened_text(self) -> str:
        n = len(self.param.saved.objects) - 1
        facts = self.facts
        if facts is None or facts.end is None:
            return f"{self.dataset} holds no data yet: previews need data; {n} formula(s)."
        return (
            f"{self.dataset}: {n} formula(s); data up to "
            f"{_local_naive(facts.end, facts.tz):%Y-%m-%d %H:%M} ({facts.tz}). "
            "Type a formula to see it over the preview range."
        )

    def window_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The UTC range the preview shows: a preset ending at the newest data, or custom."""
        if self.facts is None:
            raise ValueError("choose a dataset first")
        if self.window != "Custom":
            return preset_range(self.window, self.facts.start, self.facts.end, self.facts.tz)
        if self.custom_range is None:
            raise ValueError("choose the start and end of the custom range")
        start, end = (_utc(t, self.facts.tz) for t in self.custom_range)
        if start >= end:
            raise ValueError("the custom range is empty: its start must be before its end")
        return start, end

    # ------------------------------------------------------------------ typing and preview

    def _typed(self, event: param.parameterized.Event) -> None:
        """The text at each key press (code editor or plain box) becomes the formula."""
        outer, self._typing_in = self._typing_in, event.obj
        try:
            self.formula = event.new
        finally:
            self._typing_in = outer

    @param.depends("formula", watch=True)
    def _formula_changed(self) -> None:
        # shown in the other text widget, never written back into the one being typed in
        # (that would overwrite keys pressed since); setting one re-enters ``_typed``
        source = self._typing_in
        for box in (self.editor, self.plain):
            if box is not source and box.value != self.formula:
                box.value = self.formula
        self.confirming = ""
        self._request_preview()

    @param.depends("plain_text", watch=True)
    def _toggle_plain(self) -> None:
        self.editor.visible, self.plain.visible = not self.plain_text, self.plain_text

    @param.depends("window", "custom_range", watch=True)
    def _window_changed(self) -> None:
        self._request_preview(now=True)

    def _request_preview(self, now: bool = False) -> None:
        """Ask for a preview of the formula: after the debounce, or ``now``."""
        if not self.formula.strip():
            self.throttle.cancel()
            self._clear_preview()
            return
        t = self.clock()
        self.throttle.submit(self.formula, t - self.throttle.delay if now else t)
        if now:
            self.poll()
        else:
            self._wake(self.throttle.delay)

    def preview_now(self) -> None:
        """Preview the formula now (no debounce; still one request at a time)."""
        self._request_preview(now=True)

    def _wake(self, after: float) -> None:
        """Call ``poll`` in ``after`` s on the running event loop (none: the caller polls)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(after, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.poll()

    def poll(self) -> bool:
        """Start the waiting preview if it is due and none is in flight (True if started)."""
        now = self.clock()
        text = self.throttle.take(now)
        if text is None:
            wait = self.throttle.wait(now)
            if wait is not None:
                self._wake(wait)
            return False
        try:
            req = self._preview_request(text)
        except ValueError as exc:  # no dataset, no data, a bad custom range
            self.throttle.finish()
            with self.status.task("Preview"):
                raise exc
            return False
        self.previewing = True
        self.runner(lambda: evaluate(self.client, req), lambda out: self._previewed(req, out))
        return True

    def _preview_request(self, text: str) -> PreviewRequest:
        if self.dataset is None or self.facts is None:
            raise ValueError("choose a dataset first")
        start, end = self.window_range()
        every = preview_every(start, end, self.facts.interval, PREVIEW_POINTS)
        return PreviewRequest(self.dataset, text, start, end, every, self._generation)

    def _previewed(self, req: PreviewRequest, out: Outcome) -> None:
        """Show a preview's answer (plot, units, error marks) and start any waiting one."""
        self.throttle.finish()
        self.previewing = False
        if req.generation == self._generation:
            self._show(req, out)
        wait = self.throttle.wait(self.clock())
        if wait is not None:
            if wait == 0:
                self.poll()
            else:
                self._wake(wait)

    def _show(self, req: PreviewRequest, out: Outcome) -> None:
        with self.status.task("Preview"):
            if isinstance(out, Exception):
                self._mark(out)
                self.units = ""
                raise out
            self._mark(None)
            self.preview, self.shown = out, req
            self.units = str(out["value"].attrs.get("units", ""))
            self.figure.object = self._plot(req, out)
            self._update_code()
            self.status.done(self._preview_text(req, out))

    def _plot(self, req: PreviewRequest, ds: xr.Dataset) -> Any:
        assert self.facts is not None
        label = self.channel_name.strip() or "value"
        label = "value" if label == "time" else label
        data = ds.rename({"value": label}) if label != "value" else ds
        title = f"{label} [{self.units or '1'}]: preview, not saved"
        return timeseries(
            data,
            [label],
            tz=self.facts.tz,
            start=req.start,
            end=req.end,
            width=PREVIEW_WIDTH,
            height=300,
            title=title,
        )

    def _preview_text(self, req: PreviewRequest, ds: xr.Dataset) -> str:
        assert self.facts is not None
        tz = self.facts.tz
        t0, t1 = (_local_naive(t, tz) for t in (req.start, req.end))
        step = ds.attrs.get("interval") or self.facts.interval
        how = f"means of {step} bins" if req.every else f"samples every {step}"
        valid = int(ds["value"].notnull().sum())
        return (
            f"Preview from {t0:%Y-%m-%d %H:%M} to {t1:%Y-%m-%d %H:%M} ({tz}), {how}: "
            f"{valid} of {ds.sizes['time']} values present; units {self.units or '1'}."
        )

    def _mark(self, exc: Exception | None) -> None:
        """The error's place as an editor annotation and a caret below the editor."""
        marks = error_marks(exc) if exc is not None else []
        self.editor.annotations = marks
        if marks:
            self.problem.object = (
                f'<pre role="alert" style="color:#cf222e;margin:0;white-space:pre-wrap">'
                f"{html.escape(str(exc))}</pre>"
            )
        self.problem.visible = bool(marks)

    def _clear_preview(self) -> None:
        self.preview, self.shown, self.units = None, None, ""
        self.figure.object = None
        self._mark(None)
        self._update_code()

    # ------------------------------------------------------------------ actions

    def insert_channel(self) -> None:
        """Append the chosen channel, in braces, to the formula."""
        if not self.insert:
            return
        text = self.formula
        sep = "" if not text or text[-1] in " (\n" else " "
        self.formula = f"{text}{sep}{{{self.insert}}}"

    def save(self) -> None:
        """Save the formula as the derived channel named (create or replace)."""
        if self.dataset is None:
            return
        name = self.channel_name.strip()
        with self.status.task(f"Saving derived channel {name!r}"):
            if not name:
                raise ValueError("give the derived channel a name first")
            spec = FormulaSpec(
                name=name,
                formula=self.formula,
                description=self.description,
                materialize=self.materialize,
            )
            try:
                saved = self.client.add_formula(self.dataset, spec)
            except Exception as exc:
                self._mark(exc)
                raise
            self._mark(None)
            self.units = saved.units
            self._load_channels()
            self.saved = saved.name
            self.status.done(
                f"Saved {saved.name!r} ({saved.units or '1'}) in {self.dataset}: it reads like "
                "a stored channel (Explorer, client.read)."
            )

    def open_formula(self) -> None:
        """Open the chosen saved formula in the editor (and preview it)."""
        if self.dataset is None or not self.saved:
            return
        with self.status.task(f"Opening formula {self.saved!r}"):
            spec = self.client.formula(self.dataset, self.saved)
            self.channel_name, self.description = spec.name, spec.description
            self.materialize = spec.materialize
            self.formula = spec.formula
            self.status.done(f"Opened {spec.name!r} ({spec.units or '1'}).")
        self.preview_now()

    def new_formula(self) -> None:
        """Empty the editor and the fields (for a new derived channel)."""
        self.channel_name = self.description = ""
        self.materialize, self.saved = False, ""
        self.formula = ""
        self.status.done("New formula: type it, give it a name, save it.")

    def delete_formula(self) -> None:
        """First step of deleting the chosen formula: ask for confirmation."""
        with self.status.task("Deleting a formula"):
            if not self.saved:
                raise ValueError("choose a formula of the list first")
            self.confirming = self.saved
            self.status.done(
                f"Delete derived channel {self.saved!r} of {self.dataset}? Its values will no "
                "longer be readable. Press 'Yes, delete' to confirm or 'Cancel'."
            )

    def confirm_delete(self) -> None:
        """Second step: delete the formula waiting for confirmation."""
        name = self.confirming
        if self.dataset is None or not name:
            return
        with self.status.task(f"Deleting derived channel {name!r}"):
            self.confirming = ""
            self.client.delete_formula(self.dataset, name)
            self._load_channels()
            self.status.done(f"Deleted derived channel {name!r} of {self.dataset}.")

    def cancel_delete(self) -> None:
        """Keep the formula that was waiting for delete confirmation."""
        if self.confirming:
            name, self.confirming = self.confirming, ""
            self.status.done(f"Kept {name!r}.")

    @param.depends("saved", watch=True)
    def _saved_changed(self) -> None:
        if self.confirming and self.confirming != self.saved:
            self.confirming = ""

    def _update_code(self) -> None:
        req = self.shown
        if req is None:
            self.code.object = "Preview a formula to see its code."
            return
        text = formula_code(
            req.dataset,
            req.formula,
            req.start,
            req.end,
            req.every,
            name=self.channel_name.strip(),
            description=self.description,
            materialize=self.materialize,
        )
        self.code.object = f"```python\n{text}```"

    @param.depends("show_code", watch=True)
    def _toggle_code(self) -> None:
        self.code.visible = self.show_code

    # ------------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = formula_layout(self)
        return self._layout
