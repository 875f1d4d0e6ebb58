"""Where alerts are sent: notification sinks (hub admins) and a dataset's routes (owners).

Sinks are shared by every dataset, so the API lets only hub admins acting with an
admin-level credential limited to nothing list, save or remove them; a dataset's routes
(which sinks its alerts go to, by severity and labels) are its owners'. The screen shows
each part to whom the API allows it and a sentence saying why to anyone else. Sink
inputs are built from each kind's settings model; secrets are typed, sent once and never
shown back (the API answers them masked), and settings naming files on the platform's
machine are left to an operator's command line, as the API requires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import param
from pydantic import BaseModel

from stream0d_nb.alerts.routing import Route
from stream0d_nb.alerts.sinks import SINK_KINDS
from stream0d_nb.records import AlertRoutes, RouteRecord, SinkRecord, WhoAmI
from stream0d_nb.widgets.model_form import INPUT_WIDTH, FieldInput, field_inputs, unwrap
from stream0d_nb.widgets.state import Status

ADMIN_SCOPE = "custom:stream0d:admin"
SINK_LABELS = {
    "timeout": "Timeout per network operation (s)",
    "url": "URL",
    "secret": "Signing secret",
    "headers": "Extra headers (Name=value lines)",
    "password": "Password",
    "sender": "From address",
    "to": "To addresses (comma separated)",
    "allow_insecure_auth": "Allow a password without TLS (test servers only)",
    "verify_tls": "Verify the server's TLS certificate",
    "use_env_proxy": "Use the proxy of the environment",
}
ROUTE_LABELS = {
    "match_severity": "Severities (any of; none chosen: every one)",
    "min_severity": "This severity or worse",
    "match_labels": "Labels equal to (key=value lines)",
    "match_labels_regex": "Labels matching (key=regex lines)",
    "sinks": "Send to sinks (comma separated names)",
    "continue_": "Continue to later routes",
}


def server_files(model: type[BaseModel]) -> set[str]:
    """Settings naming files on the platform's machine (an operator's, through the CLI)."""
    return {n for n, f in model.model_fields.items() if unwrap(f.annotation)[0] is Path}


def sink_refusal(me: WhoAmI) -> str | None:
    """Why ``me`` may not manage sinks (None: they may), as the API decides it."""
    if not me.user:
        return "The API did not say who you are (see the error above), so sinks are not shown."
    if not me.is_admin:
        return (
            "Notification sinks are shared by every dataset, so only hub admins add or remove "
            f"them; {me.user} is not a hub admin. Ask one for a sink your routes can name."
        )
    t = me.token
    if not any(s.split("!")[0] == ADMIN_SCOPE for s in me.scopes) or (
        t is not None and (t.level != "admin" or t.partner is not None or t.datasets is not None)
    ):
        return (
            "Notification sinks are managed with an admin-level credential limited to no "
            "partner or dataset; this screen's token is narrower. Use an unrestricted one."
        )
    return None


def routes_refusal(dataset: str | None, role: str | None, me: WhoAmI) -> str | None:
    """Why ``me`` may not set the routes of ``dataset`` (None: they may)."""
    if dataset is None:
        return "Choose a dataset to see where its alerts are sent."
    if me.is_admin or role == "owner":
        return None
    return (
        f"Where the alerts of {dataset} are sent (its routes) is set by its owners; your role "
        f"on it is {role or 'none'}. Ask an owner to change it."
    )


def _sink_table(sinks: list[SinkRecord]) -> pd.DataFrame:
    rows = [
        {
            "name": s.name,
            "kind": s.kind + (" (built in)" if s.built_in else ""),
            "settings": ", ".join(f"{k}={v}" for k, v in sorted(s.settings.items())),
        }
        for s in sinks
    ]
    return pd.DataFrame(rows, columns=["name", "kind", "settings"])


def route_text(route: RouteRecord) -> str:
    """A route in words: its conditions and where it sends."""
    when = []
    if route.match_severity:
        when.append("severity in " + ", ".join(route.match_severity))
    if route.min_severity:
        when.append(f"{route.min_severity} or worse")
    when += [f"{k} = {v}" for k, v in route.match_labels.items()]
    when += [f"{k} ~ {v}" for k, v in route.match_labels_regex.items()]
    sinks = ", ".join(route.sinks) or "nowhere (dropped)"
    more = "; then later routes" if route.continue_ else ""
    return f"{' and '.join(when) or 'every alert'} -> {sinks}{more}"


class Notifications(pn.viewable.Viewer):
    """Sinks (hub admins) and the chosen dataset's routes (its owners)."""

    sink_name = param.String(default="", label="Sink name")
    sink_kind: param.Selector[Any] = param.Selector(
        default="webhook", objects=list(SINK_KINDS), label="Sink kind"
    )
    sink: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="Saved sinks"
    )
    route: param.Selector[Any] = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=True, label="Route to remove"
    )
    default_sinks = param.String(
        default="in-app", label="When no route matches, send to (comma separated sinks)"
    )

    def __init__(self, client: Any, status: Status, me: WhoAmI, **params: Any) -> None:
        super().__init__(**params)
        self.client, self.status, self.me = client, status, me
        self.dataset: str | None = None
        self.role: str | None = None
        self.sinks: list[SinkRecord] = []
        self.routes = AlertRoutes()
        self.sink_inputs: dict[str, dict[str, FieldInput]] = {
            kind: field_inputs(
                cls.config_model,
                labels=SINK_LABELS,
                skip={"name", "kind", *server_files(cls.config_model)},
            )
            for kind, cls in SINK_KINDS.items()
        }
        self.route_inputs = field_inputs(Route, labels=ROUTE_LABELS)
        self.sink_table = pn.pane.DataFrame(
            _sink_table([]), index=False, sizing_mode="stretch_width"
        )
        self.route_list = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.sink_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.route_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.sink_part = pn.Column(visible=False, sizing_mode="stretch_width")
        self.route_part = pn.Column(visible=False, sizing_mode="stretch_width")
        refusal = sink_refusal(me)
        self.sink_note.object = refusal or ""
        self.sink_note.visible = refusal is not None
        self.may_manage_sinks = refusal is None
        self._layout: pn.viewable.Viewable | None = None
        if self.may_manage_sinks:
            self.load_sinks()

    # ------------------------------------------------------------------ sinks

    def load_sinks(self) -> None:
        """List the sinks (secrets masked by the API)."""
        with self.status.task("Listing notification sinks"):
            self.sinks = self.client.sinks()
            self.sink_table.object = _sink_table(self.sinks)
            names = [s.name for s in self.sinks if not s.built_in]
            self.param.sink.objects = ["", *names]
            if self.sink not in names:
                self.sink = ""
            self.status.done(f"{len(self.sinks)} notification sink(s).")

    def open_sink(self) -> None:
        """Show a saved sink's settings in the form (secrets stay empty: retype them)."""
        found = [s for s in self.sinks if s.name == self.sink]
        if not found:
            return
        s = found[0]
        self.sink_kind, self.sink_name = s.kind, s.name
        for name, field in self.sink_inputs[s.kind].items():
            field.set(s.settings.get(name, s.settings.get("from") if name == "sender" else None))
        self.status.done(f"Opened sink {s.name!r}: type its secrets again before saving.")

    def save_sink(self) -> None:
        """Add or replace the sink the form says; its secret inputs are emptied after."""
        with self.status.task(f"Saving sink {self.sink_name.strip()!r}"):
            name = self.sink_name.strip()
            if not name:
                raise ValueError("give the sink a name first (Sink name)")
            fields = self.sink_inputs[self.sink_kind]
            settings = {k: v for k, f in fields.items() if (v := f.get()) is not None}
            try:
                saved = self.client.save_sink(name, self.sink_kind, **settings)
            finally:
                for f in fields.values():
                    if f.shape in ("secret", "secret_mapping"):
                        f.set(None)
            self.load_sinks()
            self.sink = saved.name
            self.status.done(f"Saved sink {saved.name!r} ({saved.kind}); secrets are kept sealed.")

    def delete_sink(self) -> None:
        """Remove the chosen sink (the API refuses while routes name it)."""
        if not self.sink:
            return
        name = self.sink
        with self.status.task(f"Deleting sink {name!r}"):
            self.client.delete_sink(name)
            self.load_sinks()
            self.status.done(f"Deleted sink {name!r}.")

    # ------------------------------------------------------------------ routes

    def set_dataset(self, dataset: str | None, role: str | None) -> None:
        """Follow the editor's dataset: its routes if the user may set them."""
        self.dataset, self.role = dataset, role
        refusal = routes_refusal(dataset, role, self.me)
        self.route_note.object = refusal or ""
        self.route_note.visible = refusal is not None
        self.route_part.visible = refusal is None
        self.routes = AlertRoutes()
        self._show_routes()
        if refusal is None:
            self.load_routes()

    def load_routes(self) -> None:
        """Read the dataset's routing table."""
        if self.dataset is None:
            return
        with self.status.task(f"Reading the alert routes of {self.dataset}"):
            self.routes = self.client.alert_routes(self.dataset)
            self._show_routes()
            self.status.done(f"{self.dataset}: {len(self.routes.routes)} alert route(s).")

    def _show_routes(self) -> None:
        lines = [f"{i}. {route_text(r)}" for i, r in enumerate(self.routes.routes, 1)]
        default = ", ".join(self.routes.default_sinks) or "nowhere"
        self.route_list.object = "\n".join(
            [*(lines or ["No route yet."]), "", f"When no route matches: {default}."]
        )
        self.param.route.objects = list(range(1, len(self.routes.routes) + 1))
        self.route = self.param.route.objects[-1] if self.routes.routes else None
        self.default_sinks = ", ".join(self.routes.default_sinks)

    def add_route(self) -> None:
        """Append the route the form says (saved with Save routes)."""
        with self.status.task("Adding a route"):
            data = {k: v for k, f in self.route_inputs.items() if (v := f.get()) is not None}
            route = RouteRecord.model_validate(
                Route.model_validate(data).model_dump(mode="json", by_alias=True)
            )
            self.routes = AlertRoutes(
                routes=[*self.routes.routes, route], default_sinks=self._defaults()
            )
            self._show_routes()
            self.status.done(f"Route {len(self.routes.routes)} added: Save routes to keep it.")

    def remove_route(self) -> None:
        """Drop the chosen route (saved with Save routes)."""
        if not self.route:
            return
        kept = [r for i, r in enumerate(self.routes.routes, 1) if i != self.route]
        gone = self.route
        self.routes = AlertRoutes(routes=kept, default_sinks=self._defaults())
        self._show_routes()
        self.status.done(f"Route {gone} removed: Save routes to keep the change.")

    def _defaults(self) -> list[str]:
        return [s.strip() for s in self.default_sinks.split(",") if s.strip()]

    def save_routes(self) -> None:
        """Replace the dataset's routing table with the one shown."""
        if self.dataset is None:
            return
        with self.status.task(f"Saving the alert routes of {self.dataset}"):
            table = AlertRoutes(routes=self.routes.routes, default_sinks=self._defaults())
            self.routes = self.client.set_alert_routes(self.dataset, table)
            self._show_routes()
            self.status.done(f"Saved {len(self.routes.routes)} alert route(s) of {self.dataset}.")

    # ------------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def _button(self, label: str, action: Any, **kw: Any) -> pn.widgets.Button:
        b = pn.widgets.Button(label=label, width=140, **kw)
        b.on_click(lambda _: action())
        return b

    def _build(self) -> pn.viewable.Viewable:
        w = pn.widgets
        kinds = {
            kind: pn.Column(
                *[f.widget for f in fields.values()],
                visible=self.param.sink_kind.rx() == kind,
            )
            for kind, fields in self.sink_inputs.items()
        }
        self.sink_part.objects = [
            pn.pane.Markdown("### Notification sinks (hub admins)", margin=(0, 10)),
            self.sink_table,
            pn.Row(
                w.Select.from_param(self.param.sink, width=INPUT_WIDTH),
                self._button("Open sink", self.open_sink),
                self._button("Delete sink", self.delete_sink, color="danger"),
            ),
            w.TextInput.from_param(self.param.sink_name, width=INPUT_WIDTH, placeholder="ops-hook"),
            w.Select.from_param(self.param.sink_kind, width=INPUT_WIDTH),
            pn.pane.Markdown(
                "Secrets (passwords, signing secrets, headers) are sent once and never shown "
                "back: type them again when you save a sink again.",
                width=INPUT_WIDTH,
            ),
            *kinds.values(),
            self._button("Save sink", self.save_sink, color="primary"),
        ]
        self.sink_part.visible = self.may_manage_sinks
        self.route_part.objects = [
            pn.pane.Markdown("### Routes of this dataset (owners)", margin=(0, 10)),
            self.route_list,
            pn.Row(
                w.Select.from_param(self.param.route, width=INPUT_WIDTH),
                self._button("Remove route", self.remove_route),
            ),
            *[f.widget for f in self.route_inputs.values()],
            self._button("Add route", self.add_route),
            w.TextInput.from_param(self.param.default_sinks, width=INPUT_WIDTH),
            self._button("Save routes", self.save_routes, color="primary"),
        ]
        return pn.Column(
            self.sink_note, self.sink_part, self.route_note, self.route_part, name="Notifications"
        )
