"""Access: who may do what on a dataset (grants), what was done (the audit log), and the
way to one's API tokens.

Grants and the audit log are the owners' (the API answers 403 to others, and the screen
says so before anyone tries). Tokens stay in the browser: they are made and revoked on
the API's tokens page, never from a kernel, so the screen only links to that page.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import panel as pn
import param

from stream0d_nb.access import Role
from stream0d_nb.records import AuditEntry, DatasetInfo, GrantRecord
from stream0d_nb.widgets.htmltable import html_table
from stream0d_nb.widgets.state import NUMBER_INPUT_CSS, Status, prepare_notebook

KINDS = {"A user": "user", "A partner (all its members)": "group"}
ROLES = {
    "viewer (read data, plots, rules, runs)": "viewer",
    "editor (+ ingest, formulas, alerts, recalibration)": "editor",
    "owner (+ grants, audit log, delete)": "owner",
}


def tokens_page_url(api_url: str, env: Mapping[str, str] | None = None) -> str:
    """Where a browser opens the API's tokens page, seen from this kernel.

    On the hub the client reaches the API on loopback (``STREAM0D_API_URL``), which the
    browser cannot use; the page is behind the hub's proxy: on the service's own origin
    ``<name>--service.<host>`` when each server has its own (``JupyterHub.subdomain_host``:
    the server's public URL is on another host than the hub's), else on the notebook's
    origin (a path). Off the hub the client's URL is the browser's too.
    ``STREAM0D_TOKENS_URL``, when set, wins.
    """
    env = os.environ if env is None else env
    if env.get("STREAM0D_TOKENS_URL"):
        return env["STREAM0D_TOKENS_URL"]
    if not env.get("JUPYTERHUB_API_URL"):  # not a server started by the hub
        return api_url.rstrip("/") + "/tokens"
    path = urlsplit(api_url).path.rstrip("/") + "/tokens"  # /services/stream0d/tokens
    hub = urlsplit(env.get("JUPYTERHUB_HOST", ""))
    if not hub.hostname:
        return path  # the hub's origin is the notebook's: a path is right
    own = urlsplit(env.get("JUPYTERHUB_PUBLIC_URL", ""))
    parts = path.strip("/").split("/")
    if own.hostname and own.hostname != hub.hostname and parts[0] == "services":
        port = f":{hub.port}" if hub.port else ""
        return f"{hub.scheme}://{parts[1]}--service.{hub.hostname}{port}{path}"
    return f"{hub.scheme}://{hub.netloc}{path}"


def _is_owner(info: DatasetInfo) -> bool:
    """Whether the caller manages the dataset's grants (``role`` None: a hub admin)."""
    return info.role is None or info.role == Role.OWNER


def _grant_key(g: GrantRecord) -> str:
    return f"{g.kind.value}:{g.principal}"


class AccessManager(pn.viewable.Viewer):
    """Grants of a dataset (owners add and revoke them), its audit log, the tokens page."""

    dataset: param.Selector[Any] = param.Selector(
        default=None, objects=[], check_on_set=True, label="Dataset"
    )
    grant_kind: param.Selector[Any] = param.Selector(
        default="user", objects=KINDS, label="Grant to"
    )
    principal = param.String(default="", label="User name or partner")
    role: param.Selector[Any] = param.Selector(default="viewer", objects=ROLES, label="Role")
    revoke_choice: param.Selector[Any] = param.Selector(
        default="", objects=[""], check_on_set=True, label="Grant to revoke"
    )
    pending_revoke = param.String(default="", doc="The grant waiting for confirmation.")
    audit_action = param.String(default="", label="Action (exact, e.g. grant.add; empty: all)")
    audit_since = param.Date(default=None, label="Since (UTC; empty: any time)")
    audit_limit = param.Integer(default=100, bounds=(1, 10_000), label="Entries at most")
    show_code = param.Boolean(default=False, label="Show code")
    is_owner = param.Boolean(default=False, doc="Whether the caller owns the dataset.")

    def __init__(self, client: Any = None, tokens_url: str | None = None, **params: Any) -> None:
        prepare_notebook()
        if client is None:
            from stream0d_nb.client import Client

            client = Client.from_env()
        self.client = client
        self.tokens_url = tokens_url or tokens_page_url(client.url)
        self.status = Status()
        self.infos: dict[str, DatasetInfo] = {}
        self.grant_rows: list[GrantRecord] = []
        self.audit_rows: list[AuditEntry] = []
        self.calls: list[str] = []
        self.grants_pane = pn.pane.HTML("", sizing_mode="stretch_width", disable_math=True)
        self.audit_pane = pn.pane.HTML("", sizing_mode="stretch_width", disable_math=True)
        self.owner_note = pn.pane.HTML("", sizing_mode="stretch_width", visible=False)
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
        """Owners see grants and the audit log; others a sentence saying who manages them."""
        self.grant_rows, self.audit_rows, self.pending_revoke = [], [], ""
        self.param.revoke_choice.objects, self.revoke_choice = [""], ""
        info = self.infos.get(self.dataset) if self.dataset else None
        self.is_owner = info is not None and _is_owner(info)
        self.owner_note.visible = info is not None and not self.is_owner
        if info is not None and not self.is_owner:
            self.owner_note.object = (
                f'<p role="note">Only owners of <b>{html.escape(info.id)}</b> manage its grants '
                f"and read its audit log. Your role on it is <b>{info.role}</b>: ask one of "
                "its owners (its partner's administrators) for a change.</p>"
            )
        self._render()
        if self.is_owner or (self.dataset is not None and info is None):
            # not listed (forced): the API decides, and its answer goes to the banner
            with self.status.task(f"Opening the access of {self.dataset}"):
                self._load_grants()
                self._load_audit()
                self.status.done(self._shown_text())
        elif info is not None:
            self.status.done(f"{info.id}: you are {info.role}; grants are the owners'.")

    def _load_grants(self) -> None:
        assert self.dataset is not None
        self.grant_rows = sorted(
            self.client.grants(self.dataset), key=lambda g: (g.kind.value, g.principal)
        )
        choices = {
            f"{g.kind.value} {g.principal} ({g.role.value})": _grant_key(g) for g in self.grant_rows
        }
        self.param.revoke_choice.objects = {"": "", **choices}
        if self.revoke_choice not in self.param.revoke_choice.objects:
            self.revoke_choice = ""
        self._render()

    def _load_audit(self) -> None:
        assert self.dataset is not None
        rows = self.client.audit(
            self.dataset,
            action=self.audit_action.strip() or None,
            since=self._since(),
            limit=self.audit_limit,
        )
        self.audit_rows = sorted(rows, key=lambda e: (e.at, e.id), reverse=True)
        self._render()

    def _since(self) -> pd.Timestamp | None:
        if self.audit_since is None:
            return None
        t = pd.Timestamp(self.audit_since)
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")

    def _shown_text(self) -> str:
        return (
            f"{self.dataset}: {len(self.grant_rows)} grant(s); "
            f"{len(self.audit_rows)} audit entr{'y' if len(self.audit_rows) == 1 else 'ies'} "
            "shown, newest first."
        )

    # ------------------------------------------------------------------ actions

    def add_grant(self) -> None:
        """Give the user or partner the role on the dataset (replaces their role)."""
        if self.dataset is None:
            return
        who = self.principal.strip()
        with self.status.task(f"Granting {self.role} on {self.dataset} to {who or '?'}"):
            if not who:
                raise ValueError("give the user name or the partner first")
            args = (self.dataset, self.grant_kind, who, self.role)
            g = self.client.grant(*args)
            self.calls.append(f"client.grant{args!r}")
            self._load_grants()
            self._load_audit()
            self.principal = ""
            self.status.done(
                f"{g.kind.value} {g.principal} is now {g.role.value} of {self.dataset}. "
                + self._shown_text()
            )

    def ask_revoke(self) -> None:
        """First step of revoking: name the grant and wait for the confirmation."""
        with self.status.task("Revoking a grant"):
            if not self.revoke_choice:
                raise ValueError("choose the grant to revoke first (Grant to revoke)")
            self.pending_revoke = self.revoke_choice
            kind, principal = self.pending_revoke.split(":", 1)
            self.status.done(
                f"Revoke the grant of {kind} {principal} on {self.dataset}? "
                "Confirm or cancel below."
            )

    def cancel_revoke(self) -> None:
        """Keep the grant."""
        self.pending_revoke = ""
        self.status.done("Nothing revoked.")

    def confirm_revoke(self) -> None:
        """Second step: revoke the grant waiting for confirmation."""
        if self.dataset is None or not self.pending_revoke:
            return
        kind, principal = self.pending_revoke.split(":", 1)
        with self.status.task(f"Revoking the grant of {kind} {principal}"):
            args = (self.dataset, kind, principal)
            self.client.revoke_grant(*args)
            self.calls.append(f"client.revoke_grant{args!r}")
            self.pending_revoke = ""
            self._load_grants()
            self._load_audit()
            self.status.done(f"Revoked the grant of {kind} {principal}. " + self._shown_text())

    def load_audit(self) -> None:
        """Read the audit log again with the filters."""
        if self.dataset is None:
            return
        with self.status.task(f"Reading the audit log of {self.dataset}"):
            self._load_audit()
            self.status.done(self._shown_text())

    # ------------------------------------------------------------------ rendering

    def _render(self) -> None:
        ds = self.dataset or ""
        self.grants_pane.object = html_table(
            ["kind", "principal", "role", "granted by", "granted at"],
            (
                [
                    "partner" if g.kind.value == "group" else "user",
                    g.principal,
                    g.role.value,
                    g.granted_by,
                    g.granted_at,
                ]
                for g in self.grant_rows
            ),
            caption=f"Grants of {ds}",
            empty="no grants besides its partner (owner) and hub admins.",
        )
        self.audit_pane.object = html_table(
            ["time (UTC)", "actor", "action", "detail", "via"],
            ([e.at, e.actor, e.action, e.detail, e.via] for e in self.audit_rows),
            caption=f"Audit log of {ds}, newest first",
            empty="no entries for these filters.",
            max_height=420,
        )
        self.grants_pane.visible = self.audit_pane.visible = self.is_owner
        self._update_code()

    def code_text(self) -> str:
        """The client calls that show what the screen shows, then those it made."""
        ds = self.dataset
        lines = [
            "from stream0d_nb.client import Client",
            "",
            "client = Client.from_env()",
            "client.datasets()  # each with your role",
        ]
        if ds is not None and self.is_owner:
            audit = [repr(ds)]
            if self.audit_action.strip():
                audit.append(f"action={self.audit_action.strip()!r}")
            since = self._since()
            if since is not None:
                audit.append(f"since={since.isoformat()!r}")
            audit.append(f"limit={self.audit_limit}")
            lines += [f"client.grants({ds!r})", f"client.audit({', '.join(audit)})"]
        if self.calls:
            lines += ["", "# what was done on this screen", *self.calls]
        lines += ["", f"# API tokens: made and revoked in the browser, at {self.tokens_url}"]
        return "\n".join(lines) + "\n"

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
        owner = self.param.is_owner.rx()
        dataset = w.Select.from_param(self.param.dataset, width=260)
        kind = w.Select.from_param(self.param.grant_kind, width=260)
        who = w.TextInput.from_param(self.param.principal, width=260, placeholder="e.g. ana or zf")
        role = w.Select.from_param(self.param.role, width=260)
        add = w.Button(label="Add grant", color="primary", width=120)
        add.on_click(lambda _: self.add_grant())
        choice = w.Select.from_param(self.param.revoke_choice, width=260)
        revoke = w.Button(label="Revoke…", color="danger", width=120)
        revoke.on_click(lambda _: self.ask_revoke())
        pending = self.param.pending_revoke.rx()
        confirm = w.Button(label="Yes, revoke", color="danger", width=120)
        confirm.on_click(lambda _: self.confirm_revoke())
        cancel = w.Button(label="Cancel", width=120)
        cancel.on_click(lambda _: self.cancel_revoke())
        question = pn.pane.HTML(
            pending.rx.pipe(
                lambda k: (
                    f'<p role="alert">Revoke <b>{html.escape(k.replace(":", " ", 1))}</b>?</p>'
                    if k
                    else ""
                )
            ),
            width=260,
        )
        action = w.TextInput.from_param(self.param.audit_action, width=260)
        since = w.DatetimePicker.from_param(self.param.audit_since, width=260)
        limit = w.IntInput.from_param(
            self.param.audit_limit, width=260, stylesheets=NUMBER_INPUT_CSS
        )
        read = w.Button(label="Read the audit log", width=160)
        read.on_click(lambda _: self.load_audit())
        code = w.Toggle.from_param(self.param.show_code, width=120)
        link = pn.pane.HTML(
            f'<a href="{html.escape(self.tokens_url, quote=True)}" target="_blank" '
            'rel="noopener noreferrer">Your API tokens</a>: made, listed and revoked on the '
            "API's tokens page, in your browser (never from a notebook).",
            width=270,
        )
        owner_controls = pn.Column(
            pn.pane.Markdown("### Give a role", margin=(0, 10)),
            kind,
            who,
            role,
            add,
            pn.pane.Markdown("### Revoke a role", margin=(0, 10)),
            choice,
            revoke,
            pn.Column(question, pn.Row(confirm, cancel), visible=pending.rx.bool()),
            pn.pane.Markdown("### Audit log filters", margin=(0, 10)),
            action,
            since,
            limit,
            read,
            visible=owner,
        )
        controls = pn.Column(
            pn.pane.Markdown("### Dataset", margin=(0, 10)),
            dataset,
            owner_controls,
            pn.pane.Markdown("### Tokens", margin=(0, 10)),
            link,
            pn.pane.Markdown("### Take it away", margin=(0, 10)),
            code,
            width=290,
        )
        main = pn.Column(
            self.status.panel(),
            self.owner_note,
            self.grants_pane,
            self.audit_pane,
            self.code,
            sizing_mode="stretch_width",
        )
        self.grants_pane.loading = self.audit_pane.loading = self.status.param.busy.rx()
        return pn.Row(controls, main, sizing_mode="stretch_width", name="Access")
