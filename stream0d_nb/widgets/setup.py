"""Dataset setup: create a dataset, add a file to it (dropped in the browser or from the
home folder), see ingest's preview, fix the mapping, ingest with progress, see the report
and the dataset's history.

State lives in params (of the screen, and of ``IngestMapping`` for the ingest options),
driven without a browser in tests; the layout is built once. Everything goes through the
client with the identity of the person using the screen: it lists the partners they may
create datasets for and the datasets they may add data to, and the API decides. The
ingest runs in a worker thread (``setup_worker``) so the notebook stays usable meanwhile.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any, get_args

import pandas as pd
import panel as pn
import param

from stream0d_nb.access import DatasetRef, Identity, Role, TokenRestriction, check_create
from stream0d_nb.records import DatasetInfo, WhoAmI
from stream0d_nb.specs import (
    CommitInfo,
    Compression,
    DatasetSpec,
    IngestOptions,
    IngestPreview,
    IngestReport,
)
from stream0d_nb.widgets import setup_views as views
from stream0d_nb.widgets.files import (
    ACCEPTED,
    ACCEPTED_TEXT,
    MAX_UPLOAD_BYTES,
    check_name,
    check_size,
    data_files,
    home_file,
    size_text,
)
from stream0d_nb.widgets.mapping import ZONES, IngestMapping, sentinel_text, supports
from stream0d_nb.widgets.setup_code import setup_code
from stream0d_nb.widgets.setup_worker import Background
from stream0d_nb.widgets.state import EXPECTED, Status, prepare_notebook

SOURCES = {"A file in my home folder": "home", "A file dropped here": "drop"}
"""Home first: JupyterLab's upload works offline; the dropper's assets come from a CDN
in a notebook on the hub (Panel 1.10), so on an offline hub it cannot upload."""
PHASES = ("idle", "uploading", "storing", "done", "failed")
HISTORY = 20
MAPPING_PARAMS = [n for n in IngestMapping.param if n != "name"]
CHUNK_SIZE = 4_000_000
"""Bytes per websocket message of the file dropper (Tornado drops messages over 10 MiB)."""


def creatable_partners(who: WhoAmI) -> list[str]:
    """The partners ``who`` may create datasets for, as the API decides it (membership or
    hub admin, and write access through their scopes and token); "" is no partner."""
    token = (
        None
        if who.token is None
        else TokenRestriction(
            who.token.level,
            who.token.partner,
            None if who.token.datasets is None else frozenset(who.token.datasets),
            who.token.id,
        )
    )
    me = Identity(who.user, frozenset(who.groups), who.is_admin, frozenset(who.scopes), token)
    out = []
    for partner in [*who.groups, *([""] if who.is_admin else [])]:
        try:
            check_create(me, DatasetRef(f"{partner}-new" if partner else "new", partner))
        except PermissionError:
            continue
        out.append(partner)
    return out


def writable(info: DatasetInfo) -> bool:
    """Whether the caller may add data to a listed dataset (editor or owner; None: admin)."""
    return info.role is None or info.role in (Role.EDITOR, Role.OWNER)


class DatasetSetup(pn.viewable.Viewer):
    """Create datasets and add files to them: preview, mapping, ingest, report, history."""

    dataset: param.Selector[Any] = param.Selector(
        default=None, objects=[], check_on_set=True, label="Dataset to add data to"
    )
    new_partner: param.Selector[Any] = param.Selector(
        default="", objects=[""], label="Partner owning the new dataset"
    )
    new_id = param.String(default="", label="Id of the new dataset")
    new_interval = param.String(default="1s", label="Sampling interval (e.g. 1s, 5min, 1h)")
    new_tz: param.Selector[Any] = param.Selector(
        default="UTC", objects=ZONES, label="Time zone of the new dataset"
    )
    new_title = param.String(default="", label="Title of the new dataset")
    new_compression: param.Selector[Any] = param.Selector(
        default="lz4", objects=list(get_args(Compression)), label="Compression (fixed later)"
    )
    source: param.Selector[Any] = param.Selector(
        default="home", objects=list(SOURCES.values()), label="Data from"
    )
    home_dir = param.String(default="", precedence=-1, doc="Home folder ('': the kernel's).")
    home_file: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="File in your home folder"
    )
    live_preview = param.Boolean(default=True, label="Update the preview as I edit the mapping")
    preview_rows: param.Selector[Any] = param.Selector(
        default=20, objects=[3, 5, 10, 20, 50, 100, 200], label="Rows shown in the preview"
    )
    preview = param.ClassSelector(class_=IngestPreview, default=None, allow_None=True)
    report = param.ClassSelector(class_=IngestReport, default=None, allow_None=True)
    history = param.List(default=[], item_type=CommitInfo)
    phase: param.Selector[Any] = param.Selector(default="idle", objects=list(PHASES))
    sent = param.Integer(default=0, doc="Bytes of the file uploaded so far.")
    total = param.Integer(default=0, doc="Bytes of the file being uploaded.")
    show_code = param.Boolean(default=False, label="Show code")

    def __init__(self, client: Any = None, **params: Any) -> None:
        prepare_notebook()
        if client is None:
            from stream0d_nb.client import Client

            client = Client.from_env()
        self.client = client
        self.status = Status()
        self.mapping = IngestMapping()
        self.worker = Background("the ingest")
        self.upload: tuple[str, bytes] | None = None
        """The dropped file: its name and bytes."""
        self.created: DatasetSpec | None = None
        self.info: dict[str, DatasetInfo] = {}
        self.partners: list[str] = []
        self._percent = -1
        self._history_of: str | None = None
        self.dropper = pn.widgets.FileDropper(
            label=f"Drop a file here (at most {size_text(MAX_UPLOAD_BYTES)})",
            accepted_filetypes=list(ACCEPTED),
            max_file_size=f"{MAX_UPLOAD_BYTES // 2**20}MB",
            chunk_size=CHUNK_SIZE,
            multiple=False,
            sizing_mode="stretch_width",
        )
        self._panes()
        super().__init__(**params)
        self._layout: pn.viewable.Viewable | None = None
        self._channel_headers: list[str] = []
        self.dropper.param.watch(self._dropped, "value")
        self.mapping.param.watch(self._mapping_changed, MAPPING_PARAMS)
        self.mapping.param.watch(self._sync_channel_inputs, ["units", "rename"])
        self._identity()
        self.refresh()
        self.rescan_home()

    # ------------------------------------------------------------------ who and what

    def _identity(self) -> None:
        """The partners the user may create datasets for."""
        with self.status.task("Reading who you are"):
            self.partners = creatable_partners(self.client.whoami())
            self.param.new_partner.objects = self.partners or [""]
            self.new_partner = self.partners[0] if self.partners else ""

    def refresh(self) -> None:
        """List the datasets the user may add data to (keeping the chosen one)."""
        with self.status.task("Listing the datasets you may add data to"):
            self.info = {d.id: d for d in self.client.datasets() if writable(d)}
            ids = sorted(self.info)
            self.param.dataset.objects = ids
            if self.dataset not in ids:
                self.dataset = ids[0] if ids else None
            if not ids:
                self.status.done(
                    "You may add data to no dataset yet: create one, or ask a dataset's owner "
                    "to make you its editor."
                )

    def home(self) -> Path:
        """The folder whose files may be ingested: the kernel user's home."""
        return Path(self.home_dir).expanduser() if self.home_dir else Path.home()

    def rescan_home(self) -> None:
        """List the data files of the home folder (keeping the chosen one)."""
        with self.status.task("Listing the data files of your home folder"):
            files = data_files(self.home())
            self.param.home_file.objects = ["", *files]
            if self.home_file not in files:
                self.home_file = ""

    # ------------------------------------------------------------------ create

    def create_dataset(self) -> None:
        """Create the dataset the "new" fields describe, then choose it."""
        ident = self.new_id.strip()
        with self.status.task(f"Creating dataset {ident!r}"):
            if not ident:
                raise ValueError("give the new dataset an id first")
            spec = DatasetSpec(
                id=ident,
                interval=self.new_interval.strip(),
                tz=self.new_tz,
                partner=self.new_partner,
                title=self.new_title.strip(),
                compression=self.new_compression,
            )
            info = self.client.create_dataset(spec)
            self.created = spec
            self.refresh()
            self.dataset = info.id
            self.param.update(new_id="", new_title="")
            self.status.done(
                f"Created {info.id} ({info.interval} grid, {info.tz}, partner "
                f"{info.partner or 'none'}). Now add a file to it."
            )

    # ------------------------------------------------------------------ the file

    def _dropped(self, event: param.parameterized.Event) -> None:
        """The browser finished uploading a file into the dropper (name -> bytes or text);
        the screen keeps its bytes and empties the dropper's copy (one copy in memory)."""
        if not event.new:
            return
        name, data = list(event.new.items())[-1]
        self.upload = None
        with self.status.task(f"Reading the dropped file {name}"):
            check_name(name)
            # the dropper hands text/* files over decoded as UTF-8: the same bytes again
            body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            check_size(name, len(body))
            self.upload = (name, body)
        self.dropper.param.update(value={}, mime_type={})
        if self.source == "drop":
            self._file_changed()
        else:
            self.source = "drop"

    @param.depends("source", "home_file", watch=True)
    def _file_changed(self) -> None:
        """Another file: its columns replace the last one's (the options chosen stay)."""
        self.mapping.forget_columns()
        self._file_info.object = self._file_text()
        self.run_preview()

    def _file_text(self) -> str:
        if self.source == "drop":
            if self.upload is None:
                return "No file dropped yet."
            return f"Dropped file: **{self.upload[0]}** ({size_text(len(self.upload[1]))})."
        if not self.home_file:
            return "No file of your home folder chosen yet."
        try:
            size = size_text((self.home() / self.home_file).stat().st_size)
        except OSError:
            size = "unreadable"
        return f"Home file: **{self.home_file}** ({size})."

    def _source(self) -> tuple[Path | bytes, str, int]:
        """The chosen file: its path or bytes, its name and size (ValueError if none)."""
        if self.source == "drop":
            if self.upload is None:
                raise ValueError("drop a file first (or choose one of your home folder)")
            name, body = self.upload
            return body, name, len(body)
        if not self.home_file:
            raise ValueError("choose a file of your home folder first")
        path = home_file(self.home(), self.home_file)
        return path, path.name, path.stat().st_size

    def has_file(self) -> bool:
        """Whether a file is chosen."""
        return self.upload is not None if self.source == "drop" else bool(self.home_file)

    def file_label(self) -> str:
        """The chosen file as the code shows it (a path for home files)."""
        if self.source == "home" and self.home_file:
            return str(self.home() / self.home_file)
        return self.upload[0] if self.upload else ""

    # ------------------------------------------------------------------ preview

    @param.depends("dataset", watch=True)
    def _dataset_changed(self) -> None:
        self.report = None
        self._load_history()
        self.run_preview()

    @param.depends("preview_rows", watch=True)
    def _rows_changed(self) -> None:
        self.run_preview()

    def _mapping_changed(self, *events: param.parameterized.Event) -> None:
        if self.live_preview:
            self.run_preview()

    def options(self) -> IngestOptions:
        """The ingest options of the mapping."""
        return self.mapping.options()

    def run_preview(self) -> None:
        """Ask the API what ingesting the file with the mapping would do (nothing stored)."""
        if self.dataset is None or not self.has_file():
            self.preview = None
            return
        ok = False
        with self.status.task("Previewing the file"):
            data, name, size = self._source()
            check_size(name, size)
            found = self.client.preview_ingest(
                self.dataset, data, name=name, options=self.options(), rows=self.preview_rows
            )
            self.mapping.set_columns(
                (c.header, c.name, c.kind, not getattr(c, "note", None)) for c in found.columns
            )
            self.preview = found
            ok = True
            self.status.done(self._preview_message(name, found))
        if not ok:
            self.preview = None

    def _preview_message(self, name: str, p: IngestPreview) -> str:
        n = len(p.problems)
        head = f"Preview of {name} into {self.dataset}: {p.summary.rows_read:,} row(s) read"
        if n:
            return f"{head}; {n} problem(s) to fix before ingest (see the preview)."
        return f"{head}; no problem found: ready to ingest."

    def apply_fix(self, problem: int, fix: int = 0) -> None:
        """Apply fix number ``fix`` of problem number ``problem`` to the mapping."""
        with self.status.task("Applying the fix"):
            if self.preview is None:
                raise ValueError("preview a file first")
            chosen = self.preview.problems[problem].fixes[fix]
            self.mapping.apply(chosen)

    def sentinels(self) -> list[Any]:
        """Probable missing-value sentinels of the preview (``IngestPreview.sentinels``)."""
        return list(getattr(self.preview, "sentinels", None) or [])

    def accept_sentinel(self, index: int) -> None:
        """Treat the hinted sentinel number ``index`` as a missing value."""
        with self.status.task("Accepting the missing-value marker"):
            self.mapping.add_missing_value(self.sentinels()[index].value)

    def reset_mapping(self) -> None:
        """Every ingest option back to its default."""
        self.mapping.reset()

    # ------------------------------------------------------------------ ingest

    def ingest(self) -> bool:
        """Start ingesting the file in a worker thread; False if it could not start (the
        banner says why). Progress, then the report and history, arrive as it runs."""
        job: tuple[str, Path | bytes, str, int, IngestOptions] | None = None
        with self.status.task("Checking the ingest"):
            if self.worker.running:
                raise ValueError("an ingest is running: wait for its report")
            if self.dataset is None:
                raise ValueError("choose or create a dataset first")
            data, name, size = self._source()
            check_size(name, size)
            job = (self.dataset, data, name, size, self.options())
        if job is None or self.status.state == "error":
            return False
        ds, data, name, size, opts = job
        self._percent = -1
        self.param.update(phase="uploading", sent=0, total=size, report=None)
        self.status.param.update(
            busy=True, state="busy", message=f"Uploading {name} ({size_text(size)}) to {ds}..."
        )
        self.worker.start(partial(self._ingest_job, ds, data, name, opts))
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running ingest (at most ``timeout`` s); True once none runs."""
        return self.worker.wait(timeout)

    def _ingest_job(self, ds: str, data: Path | bytes, name: str, opts: IngestOptions) -> None:
        """The worker: upload with progress, then the report and the history."""
        try:
            report = self.client.ingest(ds, data, opts, name=name, progress=self._progress)
            commits = self.client.history(ds, limit=HISTORY)
        except BaseException as exc:
            self.worker.ui(partial(self._ingest_failed, ds, name, exc))
            if not isinstance(exc, EXPECTED):
                raise
        else:
            self.worker.ui(partial(self._ingest_done, ds, name, report, commits))

    def _progress(self, sent: int, total: int) -> None:
        """Bytes sent (from the worker): shown at each whole percent."""
        percent = 100 if total <= 0 else sent * 100 // total
        if percent != self._percent:
            self._percent = percent
            phase = "storing" if sent >= total else "uploading"
            self.worker.ui(partial(self._show_progress, sent, total, phase))

    def _show_progress(self, sent: int, total: int, phase: str) -> None:
        self.param.update(sent=sent, total=total, phase=phase)
        if phase == "storing":
            message = "Storing: the API is checking and writing the data..."
        else:
            message = f"Uploading: {size_text(sent)} of {size_text(total)}..."
        self.status.param.update(state="busy", message=message)

    def _ingest_done(
        self, ds: str, name: str, report: IngestReport, commits: list[CommitInfo]
    ) -> None:
        self.param.update(report=report, history=commits, phase="done")
        self._history_of = ds
        self._show_history()
        self.status.busy = False
        what = (
            "nothing changed (stored already)"
            if report.unchanged
            else f"{report.values_written:,} values ({report.values_new:,} new, "
            f"{report.values_changed:,} changed), commit {report.commit}"
        )
        self.status.done(f"Ingested {name} into {ds}: {what}.")

    def _ingest_failed(self, ds: str, name: str, exc: BaseException) -> None:
        self.phase = "failed"
        self.status.busy = False
        label = f"Ingesting {name} into {ds}"
        if isinstance(exc, EXPECTED):
            with self.status.task(label):
                raise exc
        else:
            self.status.param.update(
                state="error",
                message=f"{label} failed (see the message above).",
                error=f"{label} failed: {type(exc).__name__}: {exc} (a bug: please report it)",
            )

    def _load_history(self) -> None:
        self.history, self._history_of = [], self.dataset
        if self.dataset is None:
            self._show_history()
            return
        with self.status.task(f"Reading the history of {self.dataset}"):
            self.history = self.client.history(self.dataset, limit=HISTORY)
        self._show_history()

    # ------------------------------------------------------------------ what is shown

    def _panes(self) -> None:
        """The panes the screen updates (made once; the layout places them)."""
        md = partial(pn.pane.Markdown, sizing_mode="stretch_width")
        table = partial(pn.pane.HTML, "", sizing_mode="stretch_width")
        self.frames: dict[str, pd.DataFrame | None] = {"columns": None, "rows": None}
        """What the tables show (columns, first rows, history), for tests and code."""
        self._detected = md("")
        self._file_info = md("No file dropped yet.")
        self._summary = md("Drop a file or choose one of your home folder to see its preview.")
        self._problems = pn.Column(sizing_mode="stretch_width", max_height=480, scroll=True)
        self._columns = table()
        self._rows = table()
        self._channel_rows = pn.Column(sizing_mode="stretch_width")
        self._other = md("")
        self._bar = pn.indicators.Progress(
            label="Ingest progress", value=0, max=100, visible=False, sizing_mode="stretch_width"
        )
        self._bar_text = md("")
        self._report = md("")
        self._history_title = md("### History")
        self._history = table()
        self._code = md("", visible=False)

    @param.depends("preview", watch=True)
    def _show_preview(self) -> None:
        p = self.preview
        tz = self.info[self.dataset].tz if self.dataset in self.info else None
        self._detected.object = "" if p is None else views.detected_text(p)
        self._summary.object = (
            "Drop a file or choose one of your home folder to see its preview."
            if p is None
            else views.summary_text(p)
        )
        self._table("columns", None if p is None else views.columns_frame(p))
        self._table("rows", None if p is None or not p.rows else views.rows_frame(p, tz))
        self._show_problems()
        self._build_channel_rows()
        self._update_code()

    def _table(self, which: str, frame: pd.DataFrame | None) -> None:
        captions = {
            "columns": "Columns of the file",
            "rows": "First rows as ingest reads them",
            "history": f"Commits of {self._history_of}",
        }
        self.frames[which] = frame
        pane = {"columns": self._columns, "rows": self._rows, "history": self._history}[which]
        pane.object = views.frame_html(frame, captions[which])

    def _show_problems(self) -> None:
        items: list[Any] = []
        p = self.preview
        problems = p.problems if p is not None else []
        fixed_by: dict[str, list[int]] = {}  # a fix offered by several problems: one button
        for i, problem in enumerate(problems):
            for fix in problem.fixes:
                fixed_by.setdefault(json.dumps(fix, sort_keys=True), []).append(i)
        for i, problem in enumerate(problems):
            items.append(pn.pane.Markdown(views.problem_text(i + 1, problem), margin=(5, 10)))
            buttons = []
            for j, fix in enumerate(problem.fixes):
                which = fixed_by[json.dumps(fix, sort_keys=True)]
                if which[0] != i:
                    continue
                what = f"problem {i + 1}" if len(which) == 1 else f"{len(which)} problems"
                b = pn.widgets.Button(
                    label=f"Fix {what}: {views.fix_text(fix)}",
                    description="Apply this to the mapping (the preview updates)",
                )
                b.on_click(partial(self._clicked_fix, i, j))
                buttons.append(b)
            if buttons:
                items.append(pn.FlexBox(*buttons))
        for k, hint in enumerate(self.sentinels()):
            items.append(pn.pane.Markdown(views.sentinel_text(hint), margin=(5, 10)))
            accepted = sentinel_text(hint.value) in self.mapping.missing_values
            b = pn.widgets.Button(
                label=f"Treat {hint.value} in {hint.column} as missing",
                disabled=accepted,
                description="Adds it to the missing-value markers",
            )
            b.on_click(partial(self._clicked_sentinel, k))
            items.append(b)
        if p is not None and not items:
            items.append(pn.pane.Markdown("No problem found: the file can be ingested as shown."))
        self._problems.objects = items

    def _clicked_fix(self, problem: int, fix: int, _: object) -> None:
        self.apply_fix(problem, fix)

    def _clicked_sentinel(self, index: int, _: object) -> None:
        self.accept_sentinel(index)

    def _build_channel_rows(self) -> None:
        """One row per value column: its channel name and units (rebuilt for new columns)."""
        headers = self.mapping.value_headers()
        if headers == self._channel_headers:
            return
        self._channel_headers = headers
        units = {c.header: c.units or "" for c in (self.preview.columns if self.preview else [])}
        rows: list[Any] = []
        self._name_inputs: dict[str, pn.widgets.TextInput] = {}
        self._unit_inputs: dict[str, pn.widgets.TextInput] = {}
        for h in headers:
            name = pn.widgets.TextInput(
                label=f"Channel name of column {h!r}",
                value=self.mapping.rename.get(h, ""),
                placeholder=self.mapping.base.get(h, h),
                width=300,
            )
            unit = pn.widgets.TextInput(
                label=f"Units of {h!r}",
                value=self.mapping.units.get(self.mapping.channel(h), ""),
                placeholder=units.get(h) or "e.g. bar, degC, 1",
                width=240,
            )
            name.param.watch(lambda e, h=h: self._typed_name(h, e.new), "value")
            unit.param.watch(lambda e, h=h: self._typed_units(h, e.new), "value")
            self._name_inputs[h], self._unit_inputs[h] = name, unit
            rows.append(pn.Row(name, unit))
        self._channel_rows.objects = rows

    def _typed_name(self, header: str, text: str) -> None:
        if self.mapping.rename.get(header, "") != text.strip():
            self.mapping.set_rename(header, text)

    def _typed_units(self, header: str, text: str) -> None:
        if self.mapping.units.get(self.mapping.channel(header), "") != text.strip():
            self.mapping.set_units(header, text)

    def _sync_channel_inputs(self, *events: param.parameterized.Event) -> None:
        """Fixes and code change units and renames: the inputs show them."""
        for h, box in getattr(self, "_unit_inputs", {}).items():
            box.value = self.mapping.units.get(self.mapping.channel(h), "")
            self._name_inputs[h].value = self.mapping.rename.get(h, "")

    @param.depends("phase", "sent", "total", watch=True)
    def _show_phase(self) -> None:
        bar, text = self._bar, ""
        bar.visible = self.phase != "idle"
        if self.phase == "uploading":
            bar.value = 0 if self.total <= 0 else min(self.sent * 100 // self.total, 99)
            text = f"Uploading: {size_text(self.sent)} of {size_text(self.total)}"
        elif self.phase == "storing":
            bar.value = -1  # indeterminate: the API reports when it is done
            text = f"Uploaded {size_text(self.total)}; storing: the API is writing the data..."
        elif self.phase == "done":
            bar.value, text = 100, "Done: see the report below."
        elif self.phase == "failed":
            bar.value, text = 0, "Failed: see the message above; nothing was stored."
        self._bar_text.object = text

    @param.depends("report", watch=True)
    def _show_report(self) -> None:
        self._report.object = "" if self.report is None else views.report_text(self.report)
        self._update_code()

    def _show_history(self) -> None:
        ds = self._history_of
        tz = self.info[ds].tz if ds in self.info else "UTC"
        self._history_title.object = f"### History of {ds}" if ds else "### History"
        self._table("history", views.history_frame(self.history, tz) if self.history else None)

    def _update_code(self) -> None:
        if self.dataset is None or not self.has_file():
            self._code.object = ""
            return
        try:
            changed = self.mapping.changed()
        except ValueError:
            return
        created = self.created if self.created and self.created.id == self.dataset else None
        text = setup_code(self.dataset, self.file_label(), changed, created)
        self._code.object = f"```python\n{text}```"

    @param.depends("show_code", watch=True)
    def _toggle_code(self) -> None:
        self._code.visible = self.show_code
        self._update_code()

    # ------------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def _build(self) -> pn.viewable.Viewable:
        w, m = pn.widgets, self.mapping.param
        width = 300

        def button(label: str, action: Any, **kw: Any) -> pn.widgets.Button:
            b = w.Button(label=label, width=kw.pop("width", 150), **kw)
            b.on_click(lambda _: action())
            return b

        create = pn.Card(
            w.Select.from_param(self.param.new_partner, width=width),
            w.TextInput.from_param(self.param.new_id, width=width, placeholder="fersa-press-2"),
            w.TextInput.from_param(self.param.new_interval, width=width),
            w.Select.from_param(self.param.new_tz, width=width),
            w.TextInput.from_param(self.param.new_title, width=width),
            w.Select.from_param(self.param.new_compression, width=width),
            button("Create dataset", self.create_dataset, color="primary"),
            title="Create a dataset",
            collapsed=bool(self.info),
            width=width + 20,
        )
        source = w.RadioBoxGroup.from_param(self.param.source, options=SOURCES)
        home = pn.Column(
            w.Select.from_param(self.param.home_file, width=width, size=8),
            button("Rescan my home", self.rescan_home),
            visible=self.param.source.rx() == "home",
        )
        dropper = pn.Column(self.dropper, visible=self.param.source.rx() == "drop")
        data = pn.Column(
            pn.pane.Markdown("### 1. Dataset", margin=(0, 10)),
            w.Select.from_param(self.param.dataset, width=width),
            create,
            pn.pane.Markdown("### 2. File", margin=(0, 10)),
            source,
            dropper,
            home,
            self._file_info,
            pn.pane.Markdown(
                f"Accepted: {ACCEPTED_TEXT}, at most {size_text(MAX_UPLOAD_BYTES)} per file. "
                "Large files: put them in your home folder (JupyterLab's file browser) and "
                "choose them here.",
                margin=(0, 10),
            ),
            width=width + 30,
        )
        missing = w.TextInput(
            label="Missing-value markers (comma-separated, e.g. -9999, NA)", width=width
        )

        def typed_missing(e: param.parameterized.Event) -> None:
            values = [v.strip() for v in e.new.split(",") if v.strip()]
            if values != self.mapping.missing_values:
                self.mapping.missing_values = values

        def shown_missing(e: param.parameterized.Event) -> None:
            missing.value = ", ".join(e.new)

        missing.param.watch(typed_missing, "value")
        self.mapping.param.watch(shown_missing, "missing_values")
        optional = {f: supports(f) for f in ("date_order", "text_columns")}
        mapping = pn.Column(
            pn.pane.Markdown("### 3. Mapping", margin=(0, 10)),
            w.Select.from_param(m.time_column, width=width),
            w.Select.from_param(m.date_column, width=width),
            w.TextInput.from_param(m.time_format, width=width, placeholder="%d.%m.%Y %H:%M"),
            w.Select.from_param(m.date_order, width=width, visible=optional["date_order"]),
            w.Select.from_param(
                m.tz, width=width, options={"(the dataset's)": "", **{z: z for z in ZONES}}
            ),
            w.TextInput.from_param(m.utc_offset, width=width),
            w.MultiSelect.from_param(m.skip_columns, width=width, size=6),
            w.Select.from_param(
                m.text_columns,
                width=width,
                options={"Stop at a text column": "error", "Skip text columns": "skip"},
                visible=optional["text_columns"],
            ),
            w.Toggle.from_param(m.allow_missing_units, width=width),
            missing,
            w.Select.from_param(m.duplicates, width=width),
            w.Select.from_param(m.off_grid, width=width),
            w.TextInput.from_param(m.off_grid_tolerance, width=width),
            w.Select.from_param(m.bad_values, width=width),
            self._other,
            pn.Row(
                button("Clear other options", lambda: setattr(self.mapping, "other", {})),
                button("Reset the mapping", self.reset_mapping),
            ),
            w.Toggle.from_param(self.param.live_preview, width=width),
            w.Select.from_param(self.param.preview_rows, width=width),
            button("Preview", self.run_preview),
            width=width + 30,
        )

        def shown_other(*_: Any) -> None:
            other = self.mapping.other
            self._other.object = (
                "Other options: " + ", ".join(f"{k} = {v!r}" for k, v in other.items())
                if other
                else ""
            )

        self.mapping.param.watch(shown_other, "other")
        self._ingest_button = button("Ingest", self.ingest, color="primary")

        def running(*_: Any) -> None:
            self._ingest_button.disabled = self.phase in ("uploading", "storing")

        self.param.watch(running, "phase")
        main = pn.Column(
            self.status.panel(),
            pn.pane.Markdown("### Preview", margin=(0, 10)),
            self._summary,
            self._problems,
            pn.pane.Markdown("#### Detected", margin=(0, 10)),
            self._detected,
            pn.pane.Markdown("#### Columns", margin=(0, 10)),
            self._columns,
            pn.pane.Markdown("#### Channel names and units", margin=(0, 10)),
            self._channel_rows,
            pn.pane.Markdown("#### First rows", margin=(0, 10)),
            self._rows,
            pn.pane.Markdown("### 4. Ingest", margin=(0, 10)),
            pn.Row(self._ingest_button, w.Toggle.from_param(self.param.show_code, width=120)),
            self._bar,
            self._bar_text,
            self._code,
            self._report,
            self._history_title,
            self._history,
            sizing_mode="stretch_width",
        )
        self._show_history()
        return pn.Row(data, mapping, main, sizing_mode="stretch_width", name="Datasets")
