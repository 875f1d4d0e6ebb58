"""Notification sinks (hub admins) and alert routes (dataset owners) over the API.

From every seat: a hub admin with an admin-level, unrestricted token manages sinks and
never sees a secret back; the same admin with a read-level or partner-limited token, and
partner owners, cannot; server-side file settings are refused to everyone; a dataset's
owners set its routes, its editors and other partners cannot (404 like a missing one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stream0d_nb.alerts.service import AlertService
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp, seed_partner_datasets

DS, OTHER = "fersa-press", "zf-oven"
ADMIN = frozenset({"custom:stream0d:admin"})
WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "ops": UserInfo(frozenset(), True, ADMIN),  # hub admin
    "alice": UserInfo(frozenset({"fersa"}), False, ADMIN),  # owner of fersa's datasets
    "carl": UserInfo(frozenset({"fersa"}), False, WRITE),  # editor of them
    "bob": UserInfo(frozenset({"zf"}), False, ADMIN),  # owner of zf's
}
HOOK = {"kind": "webhook", "url": "https://hooks.example.org/x", "secret": "s3cr3t-value"}


class Server(ApiOverHttp):
    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        seed_partner_datasets(store, {DS: "fersa", OTHER: "zf"})
        super().__init__(store, USERS, level="admin")
        self.tokens["ops-read"] = self.token("ops", "read")
        self.tokens["ops-fersa"] = self.token("ops", "admin", partner="fersa")

    def audit(self) -> list[str]:
        return [e.action for e in self.store.registry.audit_log()]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("sinks") / "home")
    yield s
    s.stop()


def error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["message"]


def test_hub_admin_manages_sinks_and_never_sees_a_secret(srv: Server) -> None:
    r = srv.call("ops", "PUT", "/alerts/sinks/ops-hook", json=HOOK)
    assert r.status_code == 200, r.text
    assert r.json()["secret"] == "**********" and "s3cr3t" not in r.text
    listed = srv.call("ops", "GET", "/alerts/sinks")
    assert listed.status_code == 200 and "s3cr3t" not in listed.text
    assert [(s["name"], s["kind"]) for s in listed.json()] == [
        ("ops-hook", "webhook"),
        ("in-app", "log"),
    ]
    # stored with its secret (sealed at rest), so it can deliver
    kind, config = AlertService(srv.store).table.sinks()["ops-hook"]
    assert (kind, config["secret"]) == ("webhook", "s3cr3t-value")
    assert "alert.sink" in srv.audit()
    assert srv.call("ops", "DELETE", "/alerts/sinks/ops-hook").status_code == 204
    assert [s["name"] for s in srv.call("ops", "GET", "/alerts/sinks").json()] == ["in-app"]
    assert "alert.sink.delete" in srv.audit()
    assert error(srv.call("ops", "DELETE", "/alerts/sinks/ops-hook")) == (
        404,
        "no sink 'ops-hook'",
    )


@pytest.mark.parametrize("who", ["alice", "carl", "bob", "ops-read", "ops-fersa"])
def test_only_an_unrestricted_admin_credential_touches_sinks(srv: Server, who: str) -> None:
    before = AlertService(srv.store).table.sinks()
    message = (
        "notification sinks are managed by hub admins with an admin-level credential not "
        "limited to a partner or datasets"
    )
    assert error(srv.call(who, "GET", "/alerts/sinks")) == (403, message)
    assert error(srv.call(who, "PUT", "/alerts/sinks/x", json=HOOK)) == (403, message)
    assert error(srv.call(who, "DELETE", "/alerts/sinks/x")) == (403, message)
    assert AlertService(srv.store).table.sinks() == before


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"kind": "log", "path": "/work/main/var/registry.sqlite"},
            422,
            "sink 'x': path name files on the platform's machine and cannot be set through "
            "the API; an operator sets them with `stream0d alerts sink`",
        ),
        (
            {**HOOK, "ca_file": "/etc/shadow"},
            422,
            "sink 'x': ca_file name files on the platform's machine and cannot be set "
            "through the API; an operator sets them with `stream0d alerts sink`",
        ),
        ({"kind": "pager"}, 422, "sink 'x': unknown kind 'pager' (known: email, log, webhook)"),
    ],
)
def test_bad_sinks_are_refused_and_nothing_stored(
    srv: Server, body: dict[str, Any], status: int, message: str
) -> None:
    assert error(srv.call("ops", "PUT", "/alerts/sinks/x", json=body)) == (status, message)
    assert "x" not in AlertService(srv.store).table.sinks()
    r = srv.call("ops", "PUT", "/alerts/sinks/in-app", json=HOOK)
    assert error(r) == (422, "sink 'in-app' is built in and cannot be replaced")


def test_owners_route_their_alerts_editors_and_other_partners_cannot(srv: Server) -> None:
    assert srv.call("ops", "PUT", "/alerts/sinks/fersa-hook", json=HOOK).status_code == 200
    path = f"/datasets/{DS}/alerts/routes"
    assert srv.call("alice", "GET", path).json() == {"routes": [], "default_sinks": ["in-app"]}
    table = {"routes": [{"min_severity": "major", "sinks": ["fersa-hook"]}]}
    r = srv.call("alice", "PUT", path, json=table)
    assert r.status_code == 200, r.text
    assert r.json()["routes"][0]["sinks"] == ["fersa-hook"]
    assert srv.call("alice", "GET", path).json() == r.json()
    assert "alert.routes" in srv.audit()
    unknown = {"routes": [{"min_severity": "major", "sinks": ["nope"]}]}
    assert srv.call("alice", "PUT", path, json=unknown).status_code == 422
    # an editor of the dataset: 403; another partner's owner: 404 exactly like a missing one
    assert srv.call("carl", "PUT", path, json=table).status_code == 403
    theirs = srv.call("bob", "GET", path)
    missing = srv.call("bob", "GET", "/datasets/fersa-nosuch/alerts/routes")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == {
        "error": {
            **missing.json()["error"],
            "message": missing.json()["error"]["message"].replace("fersa-nosuch", DS),
        }
    }
    assert srv.call("alice", "GET", path).json()["routes"][0]["sinks"] == ["fersa-hook"]


def test_client_covers_sinks_and_routes(srv: Server) -> None:
    from stream0d_nb.client import Client, PermissionDeniedError

    base = f"http://127.0.0.1:{srv.uvicorn.port}"
    with Client(base, srv.tokens["ops"]) as ops, Client(base, srv.tokens["alice"]) as alice:
        saved = ops.save_sink("client-hook", "webhook", url="https://h.example.org/", secret="x1")
        assert saved.kind == "webhook" and saved.settings["secret"] == "**********"
        assert "x1" not in repr(saved) and "x1" not in saved.model_dump_json()
        listed = {s.name: s for s in ops.sinks()}
        assert listed["client-hook"].settings["url"] == "https://h.example.org/"
        assert listed["in-app"].built_in and not listed["client-hook"].built_in
        table = {"routes": [{"min_severity": "minor", "sinks": ["client-hook"]}]}
        assert alice.set_alert_routes(DS, table).routes[0].sinks == ["client-hook"]
        routes = alice.alert_routes(DS)
        assert routes.routes[0].min_severity == "minor" and not routes.routes[0].continue_
        assert alice.set_alert_routes(DS, routes) == routes  # a record goes back as it came
        with pytest.raises(PermissionDeniedError):
            alice.sinks()
        r = srv.call("ops", "DELETE", "/alerts/sinks/client-hook")  # still routed to: 409
        assert error(r) == (
            409,
            f"sink 'client-hook' is named by the alert routes of {DS}: change those routes first",
        )
        alice.set_alert_routes(DS, {"default_sinks": ["in-app"]})
        ops.delete_sink("client-hook")
        assert "client-hook" not in [s.name for s in ops.sinks()]
