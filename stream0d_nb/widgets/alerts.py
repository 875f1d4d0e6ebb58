"""The alert editor: write a rule, see what it would have done, save it, follow its events.

Pick a dataset (the ones the user may read; the role on it, shown in words, says
whether they may save), fill the rule form (every kind and option of ``AlertRule``),
preview the unsaved rule over a window (``client.preview_alert_rule``: nothing stored or
sent) with its episodes shaded on the channel plot and counted, then save, open or
delete rules. Below: the dataset's events with filters, its silences, and where its
alerts are sent (sinks for hub admins, routes for owners). As the Explorer: every
action through the client with the user's identity, errors in a persistent banner with
the API's message, state as text and colour, a spinner while work runs, "show code".
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param

from stream0d_nb.alerts.rules import ALL_CHANNELS, AlertRule
from stream0d_nb.plots.dynamic import live_timeseries
from stream0d_nb.plots.episodes import Episode, episodes_from_preview
from stream0d_nb.plots.source import DatasetFacts
from stream0d_nb.records import AlertPreview, WhoAmI
from stream0d_nb.widgets.alert_admin import Notifications
from stream0d_nb.widgets.alert_code import alert_code, rule_dict
from stream0d_nb.widgets.alert_events import AlertEvents, Silences, to_local, to_utc
from stream0d_nb.widgets.alert_form import KIND_LABELS, RuleForm
from stream0d_nb.widgets.state import Status, prepare_notebook
from stream0d_nb.widgets.timerange import PRESETS, preset_range

PLOT_WIDTH = 860
PREVIEW_NAME = "new-rule"
"""The name a preview gives a rule not named yet (previews need one; saving does too)."""
MAX_PLOTTED = 4
ROLE_TEXT = {
    "viewer": (
        "You may preview rules and read events and silences; saving or deleting rules and "
        "silences needs the editor or owner role (ask an owner of {ds})."
    ),
    "editor": "You may save and delete rules and silences; where alerts are sent is the owners'.",
    "owner": "You may save rules and silences and choose where its alerts are sent (routes).",
}
EPISODE_COLUMNS = ["channel", "start", "end", "peak", "peak at", "severity"]


class AlertEditor(pn.viewable.Viewer):
    """Alert rules of the datasets the user may read: form, preview, save, events, silences."""

    dataset: param.Selector[Any] = param.Selector(
        default=None, objects=[], check_on_set=True, label="Dataset"
    )
    rule: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="Saved rules"
    )
    preset: param.Selector[Any] = param.Selector(
        default="Last 24 h", objects=list(PRESETS), label="Preview window"
    )
    custom_range = param.DateRange(default=None, label="Custom window")
    plot_channels = param.ListSelector(
        default=[], objects=[], label="Channels to plot (none chosen: the rule's)"
    )
    show_code = param.Boolean(default=False, label="Show code")
    confirming = param.String(default="", doc="The rule waiting for delete confirmation.")

    def __init__(self, client: Any = None, **params: Any) -> None:
        prepare_notebook()
        if client is None:
            from stream0d_nb.client import Client

            client = Client.from_env()
        self.client = client
        self.status = Status()
        self.info: DatasetFacts | None = None
        self.roles: dict[str, str | None] = {}
        self.channel_names: list[str] = []
        self.preview: AlertPreview | None = None
        self.episodes: list[Episode] = []
        self.window: tuple[pd.Timestamp, pd.Timestamp] | None = None
        self.form = RuleForm()
        self.figure = pn.pane.HoloViews(
            None, sizing_mode="stretch_width", min_height=360, linked_axes=False
        )
        self.count = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.episode_table = pn.pane.DataFrame(
            pd.DataFrame(columns=EPISODE_COLUMNS), index=False, sizing_mode="stretch_width"
        )
        self.rules_table = pn.pane.DataFrame(
            pd.DataFrame(), index=False, sizing_mode="stretch_width"
        )
        self.role_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.code = pn.pane.Markdown("", visible=False, sizing_mode="stretch_width")
        super().__init__(**params)
        self.me = self._whoami()
        self.events = AlertEvents(client, self.status)
        self.silences = Silences(client, self.status)
        self.notifications = Notifications(client, self.status, self.me)
        self._layout: pn.viewable.Viewable | None = None
        self.refresh()

    def _whoami(self) -> WhoAmI:
        """Who the API takes the user for (decides what the admin part shows)."""
        with self.status.task("Asking the API who you are"):
            me: WhoAmI = self.client.whoami()
            return me
        return WhoAmI(user="", groups=[], is_admin=False, scopes=[], via="", token=None)

    # ------------------------------------------------------------------ dataset

    def refresh(self) -> None:
        """List the datasets the user may read, with their role on each."""
        with self.status.task("Listing your datasets"):
            listed = self.client.datasets()
            self.roles = {d.id: (None if d.role is None else str(d.role)) for d in listed}
            ids = sorted(self.roles)
            self.param.dataset.objects = ids
            if self.dataset not in ids:
                self.dataset = ids[0] if ids else None
            if not ids:
                self.status.done("You may read no dataset yet: ask a dataset owner for a grant.")

    def role_text(self) -> str:
        """The user's role on the dataset and what it allows, in words."""
        ds = self.dataset
        if ds is None:
            return "No dataset chosen."
        role = self.roles.get(ds)
        if role is None:
            return f"You see **{ds}** as a hub admin: you may do everything here."
        return f"Your role on **{ds}**: **{role}**. " + ROLE_TEXT.get(role, "").format(ds=ds)

    @param.depends("dataset", watch=True)
    def _dataset_changed(self) -> None:
        """Load the dataset's channels, extent and rules; follow it in every part."""
        self.info, self.preview, self.episodes, self.window = None, None, [], None
        self.channel_names = []
        self.param.plot_channels.objects, self.plot_channels = [], []
        self.param.rule.objects, self.rule = [""], ""
        self.rules_table.object = pd.DataFrame()
        self.role_note.object = self.role_text()
        self.figure.object = None
        self._show_preview()
        opened = None
        if self.dataset is not None:
            with self.status.task(f"Opening {self.dataset}"):
                self.info = DatasetFacts.fetch(self.client, self.dataset)
                listed = self.client.channels(self.dataset)
                stored = [c.name for c in listed.stored]
                self.channel_names = stored + [f.name for f in listed.derived]
                self.param.plot_channels.objects = self.channel_names
                self.form.set_channels(self.channel_names)
                self._load_rules()
                opened = self.dataset
        # the other parts follow only a dataset that opened (else the banner says why)
        if opened is None:
            self.form.set_channels([])
        tz = self.info.tz if self.info else "UTC"
        rules = self.param.rule.objects[1:]
        self.events.set_dataset(opened, tz, rules, self.channel_names)
        self.silences.set_dataset(opened, tz, rules)
        self.notifications.set_dataset(opened, self.roles.get(opened or ""))
        if opened is not None and self.status.state == "ready":
            self.status.done(self._opened_text())

    def _opened_text(self) -> str:
        """What the dataset holds for this screen: rules, silences, the data's extent."""
        info = self.info
        n, s = len(self.param.rule.objects) - 1, len(self.silences.silences)
        text = f"{self.dataset}: {n} alert rule(s), {s} silence(s)"
        if info is None or info.start is None or info.end is None:
            return text + "; no data yet, so nothing to preview."
        t0, t1 = to_local(info.start, info.tz), to_local(info.end, info.tz)
        return text + f"; data from {t0:%Y-%m-%d %H:%M} to {t1:%Y-%m-%d %H:%M} ({info.tz})."

    def _load_rules(self) -> None:
        assert self.dataset is not None
        rules = self.client.alert_rules(self.dataset)
        names = [r.name for r in rules]
        self.param.rule.objects = ["", *names]
        if self.rule not in names:
            self.rule = ""
        self.rules_table.object = pd.DataFrame(
            [
                {
                    "name": r.name,
                    "kind": KIND_LABELS.get(r.kind, r.kind),
                    "watches": r.formula or ", ".join(r.channels) or str(r.model),
                    "severity": r.severity,
                    "for": r.for_duration,
                    "enabled": "yes" if r.enabled else "no",
                }
                for r in rules
            ],
            columns=["name", "kind", "watches", "severity", "for", "enabled"],
        )

    def _rules_changed(self) -> None:
        """Rule names in the event and silence filters after a save or delete."""
        tz = self.info.tz if self.info else "UTC"
        rules = self.param.rule.objects[1:]
        self.events.set_dataset(self.dataset, tz, rules, self.channel_names)
        self.silences.param.rule.objects = ["", *rules]

    def time_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The UTC window the pickers say: a preset at the newest data, or the custom one."""
        if self.info is None:
            raise ValueError("choose a dataset first")
        if self.preset != "Custom":
            return preset_range(self.preset, self.info.start, self.info.end, self.info.tz)
        if self.custom_range is None:
            raise ValueError("choose the start and end of the custom window")
        start, end = (to_utc(t, self.info.tz) for t in self.custom_range)
        if start >= end:
            raise ValueError("the custom window is empty: its start must be before its end")
        return start, end

    # ------------------------------------------------------------------ preview

    def channels_to_plot(self, rule: AlertRule) -> list[str]:
        """The chosen channels, else the rule's own (or those its formula names)."""
        if self.plot_channels:
            return list(self.plot_channels)
        if rule.kind == "model_residual":
            own = [f"{rule.model}.residual"]
        elif rule.channels and ALL_CHANNELS not in rule.channels:
            own = list(rule.channels)
        elif rule.formula or rule.clear_formula:
            own = self.form.referenced_channels(rule, self.channel_names)
        else:
            own = self.channel_names
        found = [c for c in own if c in self.channel_names][:MAX_PLOTTED]
        if not found:
            raise ValueError("choose the channels to plot (Channels to plot)")
        return found

    def run_preview(self) -> None:
        """Run the unsaved rule over the window; shade its episodes on the channel plot."""
        if self.dataset is None:
            return
        with self.status.task(f"Previewing the rule on {self.dataset}"):
            rule = self.form.rule(name=PREVIEW_NAME)
            self.info = DatasetFacts.fetch(self.client, self.dataset)
            start, end = self.time_range()
            result = self.client.preview_alert_rule(self.dataset, rule, start, end)
            self.preview, self.window = result, (start, end)
            self.episodes = episodes_from_preview(result)
            channels = self.channels_to_plot(rule)
            self.figure.object = live_timeseries(
                self.client,
                self.dataset,
                channels,
                start,
                end,
                episodes=self.episodes,
                width=PLOT_WIDTH,
                facts=self.info,
                title=f"{rule.name}: {len(self.episodes)} episode(s)",
            )
            self._show_preview()
            self._update_code(rule, channels)
            self.status.done(
                f"Preview of {rule.name!r}: {self.count.object.replace('**', '')} "
                "Nothing was saved."
            )

    def _show_preview(self) -> None:
        p, tz = self.preview, self.info.tz if self.info else "UTC"
        if p is None or self.window is None:
            self.count.object = ""
            self.episode_table.object = pd.DataFrame(columns=EPISODE_COLUMNS)
            return
        t0, t1 = (to_local(t, tz) for t in self.window)
        still = sum(e.end is None for e in p.episodes)
        self.count.object = (
            f"**{len(p.episodes)} episode(s)** from {t0:%Y-%m-%d %H:%M:%S} to "
            f"{t1:%Y-%m-%d %H:%M:%S} ({tz})"
            + (f", {still} still firing at the end." if still else ".")
        )
        self.episode_table.object = pd.DataFrame(
            [
                {
                    "channel": e.series or "(formula)",
                    "start": to_local(e.start, tz),
                    "end": None if e.end is None else to_local(e.end, tz),
                    "peak": e.peak_value,
                    "peak at": to_local(e.peak_time, tz),
                    "severity": e.severity,
                }
                for e in p.episodes
            ],
            columns=EPISODE_COLUMNS,
        )

    def _update_code(self, rule: AlertRule, channels: list[str]) -> None:
        assert self.dataset is not None and self.window is not None
        text = alert_code(
            self.dataset, rule_dict(rule), *self.window, channels, self.events.filters()
        )
        self.code.object = f"```python\n{text}```"

    @param.depends("show_code", watch=True)
    def _toggle_code(self) -> None:
        self.code.visible = self.show_code

    # ------------------------------------------------------------------ rules

    def save_rule(self) -> None:
        """Check and save the rule the form says (editors and owners)."""
        if self.dataset is None:
            return
        with self.status.task(f"Saving the rule on {self.dataset}"):
            rule = self.form.rule()
            saved = self.client.add_alert_rule(self.dataset, rule)
            self._load_rules()
            self.rule = saved.name
            self._rules_changed()
            self.status.done(
                f"Saved rule {saved.name!r} of {self.dataset}: every write of data evaluates "
                "it; its events show under Events."
            )

    def open_rule(self) -> None:
        """Show the chosen saved rule in the form."""
        if self.dataset is None or not self.rule:
            return
        with self.status.task(f"Opening rule {self.rule!r}"):
            self.form.load(self.client.alert_rule(self.dataset, self.rule))
            self.status.done(f"Opened rule {self.rule!r}: change it, preview it, save it.")

    def delete_rule(self) -> None:
        """First step of deleting the chosen saved rule: ask for confirmation."""
        with self.status.task("Deleting a rule"):
            if self.dataset is None or not self.rule:
                raise ValueError("choose a rule of Saved rules first")
            self.confirming = self.rule
            self.status.done(
                f"Delete alert rule {self.rule!r} of {self.dataset}? It stops being evaluated "
                "(its events stay). Press 'Yes, delete' to confirm or 'Cancel'."
            )

    def confirm_delete(self) -> None:
        """Second step: delete the rule waiting for confirmation (its events stay)."""
        name = self.confirming
        if self.dataset is None or not name:
            return
        with self.status.task(f"Deleting rule {name!r}"):
            self.confirming = ""
            self.client.delete_alert_rule(self.dataset, name)
            self._load_rules()
            self._rules_changed()
            self.status.done(f"Deleted rule {name!r} of {self.dataset}; its events stay.")

    def cancel_delete(self) -> None:
        """Keep the rule that was waiting for delete confirmation."""
        if self.confirming:
            name, self.confirming = self.confirming, ""
            self.status.done(f"Kept rule {name!r}.")

    @param.depends("rule", "dataset", watch=True)
    def _forget_confirmation(self) -> None:
        if self.confirming and self.confirming != self.rule:
            self.confirming = ""

    # ------------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def _button(self, label: str, action: Any, **kw: Any) -> pn.widgets.Button:
        b = pn.widgets.Button(label=label, width=125, **kw)
        b.on_click(lambda _: action())
        return b

    def _build(self) -> pn.viewable.Viewable:
        w = pn.widgets
        left = pn.Column(
            pn.pane.Markdown("### Dataset", margin=(0, 10)),
            w.Select.from_param(self.param.dataset, width=260),
            self.role_note,
            pn.pane.Markdown("### Saved rules", margin=(0, 10)),
            w.Select.from_param(self.param.rule, width=260),
            pn.Row(
                self._button("Open rule", self.open_rule),
                self._button("Delete rule", self.delete_rule, color="danger"),
            ),
            pn.Row(
                self._button("Yes, delete", self.confirm_delete, color="danger"),
                self._button("Cancel", self.cancel_delete),
                visible=self.param.confirming.rx().rx.bool(),
            ),
            pn.pane.Markdown("### Rule", margin=(0, 10)),
            self.form,
            pn.Row(
                self._button("Preview", self.run_preview),
                self._button("Save rule", self.save_rule, color="primary"),
            ),
            width=300,
        )
        window = pn.Row(
            w.Select.from_param(self.param.preset, width=200),
            w.DatetimeRangePicker.from_param(
                self.param.custom_range,
                label="Custom window (dataset's local time)",
                width=300,
                visible=self.param.preset.rx() == "Custom",
            ),
            w.MultiSelect.from_param(self.param.plot_channels, size=4, width=260),
            self._button("Preview", self.run_preview),
        )
        self.figure.loading = self.status.param.busy.rx()
        tabs = pn.Tabs(
            ("Rules", pn.Column(self.rules_table, sizing_mode="stretch_width")),
            ("Events", self.events),
            ("Silences", self.silences),
            ("Notifications", self.notifications),
            sizing_mode="stretch_width",
        )
        main = pn.Column(
            self.status.panel(),
            pn.pane.Markdown("### Preview", margin=(0, 10)),
            window,
            self.count,
            self.figure,
            self.episode_table,
            w.Toggle.from_param(self.param.show_code, width=125),
            self.code,
            tabs,
            sizing_mode="stretch_width",
        )
        return pn.Row(left, main, sizing_mode="stretch_width", name="Alerts")
