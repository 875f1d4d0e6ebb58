"""The Explorer: pick a dataset, channels, a time range and a plot kind; see, save, take away.

State lives in params (driven without a browser in tests, by widgets in JupyterLab and
Voila); the layout is built once. Everything goes through the client with the identity
of the person using the screen: the datasets listed are the ones they may read, and an
API error stays in a banner, with its message, until the next action succeeds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import panel as pn
import param

from stream0d_nb.plots import KINDS, plot
from stream0d_nb.plots.kinds import CHANNELS_NEEDED
from stream0d_nb.plots.source import DatasetFacts
from stream0d_nb.tables import to_pandas
from stream0d_nb.views import ViewSpec
from stream0d_nb.widgets.code import explorer_code
from stream0d_nb.widgets.state import Status, prepare_notebook
from stream0d_nb.widgets.timerange import PRESETS, preset_range

KIND_LABELS = {
    "line": "Time series",
    "lanes": "Time series, one lane per unit",
    "scatter": "Scatter (x, y)",
    "carpet": "Carpet (hour x day)",
    "hist": "Histogram",
    "box": "Box",
    "prediction": "Measured vs predicted",
}
SAVABLE_KINDS = ("line", "scatter", "carpet", "hist", "box")
PLOT_WIDTH = 900


def _local_naive(t: pd.Timestamp, tz: str) -> datetime:
    """A UTC time as the wall clock of ``tz`` (what the range pickers show)."""
    return t.tz_convert(tz).tz_localize(None).to_pydatetime()


def _utc(t: datetime, tz: str) -> pd.Timestamp:
    """A picker's wall-clock time in ``tz`` as UTC."""
    ts = pd.Timestamp(t)
    local = ts.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return (local if not pd.isna(local) else ts.tz_localize(tz, ambiguous=True)).tz_convert("UTC")


class Explorer(pn.viewable.Viewer):
    """Plots of the datasets the user may read: pickers, presets, views, code, downloads."""

    dataset: param.Selector[Any] = param.Selector(
        default=None, objects=[], check_on_set=True, label="Dataset"
    )
    channels = param.ListSelector(default=[], objects=[], label="Channels")
    preset: param.Selector[Any] = param.Selector(
        default="Last 24 h", objects=list(PRESETS), label="Time range"
    )
    custom_range = param.DateRange(default=None, label="Custom range")
    kind: param.Selector[Any] = param.Selector(
        default="line", objects=list(KINDS), label="Plot kind"
    )
    view: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="Saved views"
    )
    view_name = param.String(default="", label="Name of the view to save")
    show_code = param.Boolean(default=False, label="Show code")
    reads = param.Integer(default=0, doc="Plot-sized reads made (zoom and pan add some).")

    def __init__(self, client: Any = None, **params: Any) -> None:
        prepare_notebook()
        if client is None:
            from stream0d_nb.client import Client

            client = Client.from_env()
        self.client = client
        self.status = Status()
        self.info: DatasetFacts | None = None
        self.window: tuple[pd.Timestamp, pd.Timestamp] | None = None
        self.figure = pn.pane.HoloViews(
            None, sizing_mode="stretch_width", min_height=420, linked_axes=False
        )
        self.code = pn.pane.Markdown("", visible=False, sizing_mode="stretch_width")
        super().__init__(**params)
        self._layout: pn.viewable.Viewable | None = None
        self.refresh()

    # ------------------------------------------------------------------ data of the screen

    def refresh(self) -> None:
        """List the datasets the user may read (and keep the chosen one if still there)."""
        with self.status.task("Listing your datasets"):
            ids = sorted(d.id for d in self.client.datasets())
            self.param.dataset.objects = ids
            if self.dataset not in ids:
                self.dataset = ids[0] if ids else None
            if not ids:
                self.status.done("You may read no dataset yet: ask a dataset owner for a grant.")

    @param.depends("dataset", watch=True)
    def _dataset_changed(self) -> None:
        """Load the dataset's channels (stored and derived), extent and saved views."""
        self.info, self.window = None, None
        self.param.channels.objects, self.channels = [], []
        self.param.view.objects, self.view = [""], ""
        if self.dataset is None:
            return
        with self.status.task(f"Opening {self.dataset}"):
            self.info = DatasetFacts.fetch(self.client, self.dataset)
            listed = self.client.channels(self.dataset)
            stored = [c.name for c in listed.stored]
            derived = [f.name for f in listed.derived]
            self.param.channels.objects = stored + derived
            self.channels = stored[: min(3, len(stored))]
            self._load_views()
            self.status.done(self._extent_text())

    @param.depends("kind", watch=True)
    def _kind_changed(self) -> None:
        """Keep as many channels as the kind draws (scatter: x and y; carpet: one)."""
        need = CHANNELS_NEEDED.get(self.kind)
        if need is not None and len(self.channels) > need:
            self.channels = list(self.channels[:need])
            self.status.done(
                f"{KIND_LABELS[self.kind]} uses {need} channel(s): kept {', '.join(self.channels)}."
            )

    def _load_views(self) -> None:
        assert self.dataset is not None
        names = [v.name for v in self.client.views(self.dataset)]
        self.param.view.objects = ["", *names]
        if self.view not in names:
            self.view = ""

    def _extent_text(self) -> str:
        info = self.info
        if info is None or info.start is None or info.end is None:
            return f"{self.dataset} holds no data yet."
        age = pd.Timestamp.now(tz="UTC") - info.end
        return (
            f"{self.dataset}: data from {_local_naive(info.start, info.tz):%Y-%m-%d %H:%M} to "
            f"{_local_naive(info.end, info.tz):%Y-%m-%d %H:%M} ({info.tz}); newest data "
            f"{_age(age)} old. Time ranges end at the newest data."
        )

    def time_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The UTC range the pickers say: a preset, or the custom range in the zone."""
        if self.info is None:
            raise ValueError("choose a dataset first")
        if self.preset != "Custom":
            return preset_range(self.preset, self.info.start, self.info.end, self.info.tz)
        if self.custom_range is None:
            raise ValueError("choose the start and end of the custom range")
        start, end = (
            _utc(pd.Timestamp(t).to_pydatetime(), self.info.tz) for t in self.custom_range
        )
        if start >= end:
            raise ValueError("the custom range is empty: its start must be before its end")
        return start, end

    # ------------------------------------------------------------------ actions

    def plot(self) -> None:
        """Draw the chosen kind of the chosen channels over the chosen range."""
        if self.dataset is None:
            return
        with self.status.task(f"Plotting {len(self.channels)} channel(s) of {self.dataset}"):
            # the extent now (a live line grew since it was opened); the plot reuses it
            self.info = DatasetFacts.fetch(self.client, self.dataset)
            start, end = self.time_range()
            self.window = (start, end)
            obj = plot(
                self.client,
                self.dataset,
                self.kind,
                list(self.channels),
                start,
                end,
                read=self._counted_read,
                facts=self.info,
                **self._size(),
            )
            self.figure.object = obj
            self._update_code()
            self.status.done(self._shown_text())

    def _size(self) -> dict[str, Any]:
        """The plot's width (histograms and boxes size themselves)."""
        return {} if self.kind in ("hist", "box") else {"width": PLOT_WIDTH}

    def _counted_read(self, *args: Any, **kw: Any) -> Any:
        """``client.read`` for live plots, counting reads and noting the window shown."""
        ds = self.client.read(*args, **kw)
        self.reads += 1
        self.window = (pd.Timestamp(kw["start"]), pd.Timestamp(kw["end"]))
        if self.status.state == "ready":
            self.status.done(self._shown_text())
        return ds

    def _shown_text(self) -> str:
        assert self.info is not None and self.window is not None
        t0, t1 = (_local_naive(t, self.info.tz) for t in self.window)
        return (
            f"Showing {KIND_LABELS[self.kind].lower()} of {', '.join(self.channels)} from "
            f"{t0:%Y-%m-%d %H:%M:%S} to {t1:%Y-%m-%d %H:%M:%S} ({self.info.tz}); "
            f"{self.reads} plot-sized read(s) so far."
        )

    def save_view(self) -> None:
        """Save what is shown as a view of the dataset (replacing one of that name)."""
        if self.dataset is None:
            return
        with self.status.task(f"Saving view {self.view_name!r}"):
            if not self.view_name.strip():
                raise ValueError("give the view a name first (Name of the view to save)")
            if self.kind not in SAVABLE_KINDS:
                raise ValueError(
                    f"a {KIND_LABELS[self.kind].lower()} plot cannot be saved as a view; "
                    f"views hold {', '.join(SAVABLE_KINDS)}"
                )
            start, end = self.window or self.time_range()
            spec = ViewSpec(
                name=self.view_name.strip(),
                channels=list(self.channels),
                start=start.isoformat(),
                end=end.isoformat(),
                kind=self.kind,
                options={"preset": self.preset},
            )
            saved = self.client.save_view(self.dataset, spec)
            self._load_views()
            self.view = saved.name
            self.status.done(f"Saved view {saved.name!r} of {self.dataset}.")

    def open_view(self) -> None:
        """Show the chosen saved view (its channels, range and kind)."""
        if self.dataset is None or not self.view:
            return
        with self.status.task(f"Opening view {self.view!r}"):
            spec = self.client.view(self.dataset, self.view)
            assert self.info is not None
            start, end = spec.resolve()
            self.channels = [c for c in spec.channels if c in self.param.channels.objects]
            self.kind = spec.kind
            self.custom_range = (_local_naive(start, self.info.tz), _local_naive(end, self.info.tz))
            self.preset = "Custom"
            self.view_name = spec.name
        self.plot()

    def delete_view(self) -> None:
        """Delete the chosen saved view."""
        if self.dataset is None or not self.view:
            return
        name = self.view
        with self.status.task(f"Deleting view {name!r}"):
            self.client.delete_view(self.dataset, name)
            self._load_views()
            self.status.done(f"Deleted view {name!r} of {self.dataset}.")

    def window_frame(self) -> pd.DataFrame:
        """The samples of the channels over the window shown, in the dataset's zone."""
        if self.dataset is None or self.info is None:
            raise ValueError("choose a dataset first")
        start, end = self.window or self.time_range()
        ds = self.client.read(self.dataset, list(self.channels), start=start, end=end)
        return to_pandas(ds, self.info.tz)

    def csv_bytes(self) -> io.BytesIO:
        """The window shown as CSV (for the download button)."""
        return self._download(lambda df, buf: df.to_csv(buf, index_label="time"))

    def parquet_bytes(self) -> io.BytesIO:
        """The window shown as Parquet (for the download button)."""
        return self._download(lambda df, buf: df.to_parquet(buf))

    def _download(self, write: Callable[[pd.DataFrame, io.BytesIO], Any]) -> io.BytesIO:
        buf = io.BytesIO()
        with self.status.task("Preparing the download"):
            write(self.window_frame(), buf)
            self.status.done(f"Downloaded {buf.tell():,} bytes of {self.dataset}.")
        buf.seek(0)
        return buf

    def _update_code(self) -> None:
        if self.info is None or self.window is None or self.dataset is None:
            self.code.object = ""
            return
        text = explorer_code(self.dataset, self.channels, self.kind, *self.window, tz=self.info.tz)
        self.code.object = f"```python\n{text}```"

    @param.depends("show_code", watch=True)
    def _toggle_code(self) -> None:
        self.code.visible = self.show_code

    # ------------------------------------------------------------------ layout

    def _file_name(self, ext: str) -> str:
        return f"{self.dataset or 'data'}.{ext}"

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def _build(self) -> pn.viewable.Viewable:
        w = pn.widgets
        dataset = w.Select.from_param(self.param.dataset, width=260)
        # native controls: keyboard use and screen readers work (MultiChoice's do not)
        channels = w.MultiSelect.from_param(self.param.channels, width=260, size=8)
        preset = w.Select.from_param(self.param.preset, width=260)
        custom = w.DatetimeRangePicker.from_param(
            self.param.custom_range,
            label="Custom range (dataset's local time)",
            width=260,
            visible=self.param.preset.rx() == "Custom",
        )
        kind = w.Select.from_param(self.param.kind, width=260)
        kind.options = {KIND_LABELS[k]: k for k in KINDS}
        draw = w.Button(label="Plot", color="primary", width=120)
        draw.on_click(lambda _: self.plot())
        views = w.Select.from_param(self.param.view, width=260)
        open_view = w.Button(label="Open view", width=120)
        open_view.on_click(lambda _: self.open_view())
        delete_view = w.Button(label="Delete view", color="danger", width=120)
        delete_view.on_click(lambda _: self.delete_view())
        name = w.TextInput.from_param(
            self.param.view_name, width=260, placeholder="e.g. night shift"
        )
        save = w.Button(label="Save view", width=120)
        save.on_click(lambda _: self.save_view())
        code = w.Toggle.from_param(self.param.show_code, width=120)
        csv = w.FileDownload(
            callback=self.csv_bytes, filename="window.csv", label="Download CSV", width=125
        )
        parquet = w.FileDownload(
            callback=self.parquet_bytes,
            filename="window.parquet",
            label="Download Parquet",
            width=125,
        )

        def names(_: Any) -> None:
            csv.filename, parquet.filename = self._file_name("csv"), self._file_name("parquet")

        self.param.watch(names, "dataset")
        names(None)
        controls = pn.Column(
            pn.pane.Markdown("### Data", margin=(0, 10)),
            dataset,
            channels,
            preset,
            custom,
            kind,
            draw,
            pn.pane.Markdown("### Saved views", margin=(0, 10)),
            views,
            pn.Row(open_view, delete_view),
            name,
            save,
            pn.pane.Markdown("### Take it away", margin=(0, 10)),
            code,
            pn.Row(csv, parquet),
            width=290,
        )
        main = pn.Column(self.status.panel(), self.figure, self.code, sizing_mode="stretch_width")
        self.figure.loading = self.status.param.busy.rx()
        return pn.Row(controls, main, sizing_mode="stretch_width", name="Explore")


def _age(delta: pd.Timedelta) -> str:
    """``3 h 20 min``, ``2 days``: a readable age."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"
