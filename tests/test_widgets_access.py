"""The Access screen driven without a browser, against a real API over HTTP with real
tokens: grants (add, revoke with a confirmation), the audit log and its filters, the
tokens page link, and the refusals.

Seats: alice (fersa, admin: owner of ``fersa-line``), dan (fersa, write: editor of it, so
not an owner), bob (zf, admin: owner of ``zf-rig``, sees nothing of fersa's until a grant).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import panel as pn
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import Client, NotFoundError, PermissionDeniedError
from stream0d_nb.hub.config import service_url
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store
from stream0d_nb.widgets.access import AccessManager, tokens_page_url
from tests.api_servers import ApiOverHttp, seed_partner_datasets

ADMIN = frozenset({"custom:stream0d:admin"})
WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, ADMIN),
    "dan": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, ADMIN),
}
LINE, RIG = "fersa-line", "zf-rig"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiOverHttp]:
    store = Store(Settings(home=tmp_path_factory.mktemp("widgets-access")))
    seed_partner_datasets(store, {LINE: "fersa", RIG: "zf"})
    server = ApiOverHttp(store, USERS, level="admin")
    yield server
    server.stop()


@pytest.fixture
def clients(srv: ApiOverHttp) -> Iterator[dict[str, Client]]:
    made = {who: srv.client(who) for who in USERS}
    yield made
    for c in made.values():
        c.close()


def test_owner_grants_a_viewer_who_reads_but_cannot_write(clients: dict[str, Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    # bob (zf) does not see fersa's dataset; his own he owns (positive control)
    theirs = AccessManager(bob)
    assert theirs.param.dataset.objects == [RIG] and theirs.is_owner
    assert theirs.grants_pane.visible and "Grants of zf-rig" in theirs.grants_pane.object
    with pytest.raises(NotFoundError):
        bob.read(LINE, ["temp"])
    theirs.param.dataset.objects = [RIG, LINE]  # forced in bob's own kernel...
    theirs.dataset = LINE
    assert theirs.status.state == "error" and f"no dataset '{LINE}'" in theirs.status.error
    assert theirs.grant_rows == [] and theirs.audit_rows == [] and not theirs.is_owner

    screen = AccessManager(alice)
    assert screen.dataset == LINE and screen.is_owner and not screen.owner_note.visible
    assert screen.grant_rows == [] and "no grants besides its partner" in screen.grants_pane.object
    screen.grant_kind, screen.principal, screen.role = "user", "bob", "viewer"
    screen.add_grant()
    assert screen.status.state == "ready", screen.status.error
    assert "user bob is now viewer of fersa-line" in screen.status.message
    assert [(g.kind.value, g.principal, g.role.value) for g in alice.grants(LINE)] == [
        ("user", "bob", "viewer")
    ]
    assert "<td>bob</td><td>viewer</td><td>alice</td>" in screen.grants_pane.object
    assert screen.param.revoke_choice.names["user bob (viewer)"] == "user:bob"
    newest = screen.audit_rows[0]
    assert (newest.action, newest.actor, newest.detail["principal"]) == (
        "grant.add",
        "alice",
        "bob",
    )
    assert "grant.add" in screen.audit_pane.object and screen.principal == ""

    # bob now sees the dataset through his own client, as a viewer: reads, cannot write
    assert {d.id: d.role for d in bob.datasets()}[LINE] == "viewer"
    assert bob.read(LINE, ["temp"]).sizes["time"] > 0
    with pytest.raises(PermissionDeniedError):
        bob.update_dataset(LINE, title="renamed by a viewer")
    assert alice.dataset(LINE).title == LINE
    # ... and his Access screen says grants are the owners', and refuses him (403 banner)
    theirs.refresh()
    theirs.dataset = LINE
    assert not theirs.is_owner and theirs.owner_note.visible
    assert "Only owners of <b>fersa-line</b>" in theirs.owner_note.object
    assert "<b>viewer</b>" in theirs.owner_note.object and not theirs.grants_pane.visible
    theirs.principal, theirs.role = "bob", "owner"
    theirs.add_grant()
    assert theirs.status.state == "error" and "Granting owner" in theirs.status.error
    assert "bob acts as viewer on dataset 'fersa-line'" in theirs.status.error
    assert "'grants.manage' needs owner" in theirs.status.error
    assert [g.role.value for g in alice.grants(LINE)] == ["viewer"]  # nothing changed

    # revoke: a first step that asks, cancel keeps it, confirm removes it
    screen.revoke_choice = "user:bob"
    screen.ask_revoke()
    assert screen.pending_revoke == "user:bob" and "Confirm or cancel" in screen.status.message
    screen.cancel_revoke()
    assert screen.pending_revoke == "" and len(alice.grants(LINE)) == 1
    screen.confirm_revoke()  # nothing pending: nothing happens
    assert len(alice.grants(LINE)) == 1
    screen.ask_revoke()
    screen.confirm_revoke()
    assert screen.status.state == "ready", screen.status.error
    assert alice.grants(LINE) == [] and screen.param.revoke_choice.objects == [""]
    assert [e.action for e in screen.audit_rows[:2]] == ["grant.remove", "grant.add"]
    assert LINE not in {d.id for d in bob.datasets()}
    with pytest.raises(NotFoundError):
        bob.read(LINE, ["temp"])


def test_audit_filters_and_newest_first(clients: dict[str, Client]) -> None:
    alice = clients["alice"]
    screen = AccessManager(alice)
    for who in ("zf", "lab"):
        screen.grant_kind, screen.principal, screen.role = "group", who, "viewer"
        screen.add_grant()
    assert [g.principal for g in alice.grants(LINE)] == ["lab", "zf"]
    assert "<td>partner</td><td>lab</td>" in screen.grants_pane.object
    times = [(e.at, e.id) for e in screen.audit_rows]
    assert times == sorted(times, reverse=True) and len(times) >= 2
    assert screen.audit_rows[0].detail["principal"] == "lab"
    screen.audit_action = "grant.add"
    screen.audit_limit = 1
    screen.load_audit()
    assert [e.action for e in screen.audit_rows] == ["grant.add"]
    assert screen.audit_rows[0].detail["principal"] == "lab"
    screen.audit_limit, screen.audit_action = 100, "dataset.create"
    screen.load_audit()
    assert [e.action for e in screen.audit_rows] == ["dataset.create"]
    assert screen.audit_rows[0].detail["partner"] == "fersa"
    screen.audit_action = ""
    screen.audit_since = datetime.now() + timedelta(days=1)  # UTC wall clock, tomorrow
    screen.load_audit()
    assert screen.audit_rows == [] and "no entries for these filters" in screen.audit_pane.object
    screen.audit_since = datetime.now() - timedelta(days=1)
    screen.load_audit()
    assert {e.action for e in screen.audit_rows} >= {"grant.add"}
    for who in ("zf", "lab"):
        screen.revoke_choice = f"group:{who}"
        screen.ask_revoke()
        screen.confirm_revoke()
    assert alice.grants(LINE) == []


def test_a_non_owner_cannot_grant_or_read_the_audit(clients: dict[str, Client]) -> None:
    alice, dan = clients["alice"], clients["dan"]
    screen = AccessManager(dan)
    assert screen.dataset == LINE and not screen.is_owner  # editor of his partner's line
    assert "<b>editor</b>" in screen.owner_note.object and screen.status.state == "ready"
    screen.grant_kind, screen.principal, screen.role = "user", "dan", "owner"
    screen.add_grant()  # the controls are hidden; forced, the API refuses
    assert screen.status.state == "error" and screen.status.error.startswith(
        "Granting owner on fersa-line to dan failed: "
    )
    assert "https://" not in screen.status.error and "Traceback" not in screen.status.error
    with pytest.raises(PermissionDeniedError) as refused:
        dan.grant(LINE, "user", "dan", "owner")
    assert str(refused.value) in screen.status.error  # the API's message, as is
    assert alice.grants(LINE) == []  # nothing changed
    screen.load_audit()
    assert screen.status.state == "error" and "Reading the audit log" in screen.status.error
    assert "'audit.view' needs owner" in screen.status.error
    # the banner stays until an action succeeds
    screen.refresh()
    assert screen.status.state == "ready" and screen.status.error == ""


def test_tokens_page_link_is_the_browsers_on_the_hub(clients: dict[str, Client]) -> None:
    loopback = "http://127.0.0.1:10101/services/stream0d"  # STREAM0D_API_URL on the hub
    hub = {"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}
    # make run's hub: users and services on their own origins (subdomain_host)
    subdomains = {
        **hub,
        "JUPYTERHUB_HOST": "http://localhost:8000",
        "JUPYTERHUB_PUBLIC_URL": "http://ana.localhost:8000/user/ana/",
    }
    want = service_url("http://localhost:8000") + "/tokens"
    assert tokens_page_url(loopback, subdomains) == want
    assert want == "http://stream0d--service.localhost:8000/services/stream0d/tokens"
    # a hub on an IP address: one origin, the page's path is right from the notebook
    one_origin = {**hub, "JUPYTERHUB_HOST": "", "JUPYTERHUB_PUBLIC_URL": ""}
    assert tokens_page_url(loopback, one_origin) == "/services/stream0d/tokens"
    assert service_url("http://127.0.0.1:8000").endswith("/services/stream0d")
    # a public URL without subdomains: the hub's host
    public = {**hub, "JUPYTERHUB_HOST": "https://hub.example", "JUPYTERHUB_PUBLIC_URL": ""}
    assert tokens_page_url(loopback, public) == "https://hub.example/services/stream0d/tokens"
    # off the hub the client's URL is the browser's; an explicit setting wins
    outside = "https://hub.example/services/stream0d"
    assert tokens_page_url(outside, {}) == outside + "/tokens"
    assert tokens_page_url(loopback, {**subdomains, "STREAM0D_TOKENS_URL": "https://t"}) == (
        "https://t"
    )
    screen = AccessManager(clients["alice"], tokens_url=want)
    layout = screen.__panel__()
    links = [p.object for p in _walk(layout) if isinstance(p, pn.pane.HTML)]
    assert any(f'href="{want}"' in str(o) and 'rel="noopener noreferrer"' in str(o) for o in links)


def test_code_labels_and_layout(clients: dict[str, Client]) -> None:
    alice = clients["alice"]
    screen = AccessManager(alice)
    screen.grant_kind, screen.principal, screen.role = "user", "bob", "editor"
    screen.add_grant()
    screen.show_code = True
    code = screen.code.object
    assert screen.code.visible and "client.grants('fersa-line')" in code
    assert "client.grant('fersa-line', 'user', 'bob', 'editor')" in code
    reads = code.split("```python\n")[1].split("# what was done")[0]
    scope: dict[str, object] = {"CLIENT": alice}
    exec(reads.replace("Client.from_env()", "CLIENT"), scope)  # the shown code runs as is
    screen.revoke_choice = "user:bob"
    screen.ask_revoke()
    screen.confirm_revoke()
    assert "client.revoke_grant('fersa-line', 'user', 'bob')" in screen.code.object
    layout = screen.__panel__()
    assert isinstance(layout, pn.Row)
    controls = [
        w
        for w in _walk(layout)
        if isinstance(w, pn.widgets.Widget)
        and not isinstance(w, pn.widgets.Button | pn.widgets.indicators.Indicator)
    ]
    assert len(controls) >= 8 and all(w.name.strip() for w in controls), [
        type(w).__name__ for w in controls if not w.name.strip()
    ]
    buttons = [w for w in _walk(layout) if isinstance(w, pn.widgets.Button)]
    assert all(b.label.strip() for b in buttons) and len(buttons) == 5


def _walk(obj: object) -> Iterator[object]:
    """Every panel object in a layout, depth first."""
    yield obj
    for child in getattr(obj, "objects", None) or []:
        yield from _walk(child)
