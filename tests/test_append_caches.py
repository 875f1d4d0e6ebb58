"""What an append relies on is cached, and the caches never hide a change: a rule saved
(by the API or by another process, as the command line does), changed or deleted, a
silence, a grant or a token revoked by another process are all seen by the next append.
A real API server over HTTP with real tokens; its short-lived cache of tokens and grants
is set to ten minutes, so only the caches' own checks can make these tests pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.api import ApiSettings
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import (
    AuthenticationError,
    Client,
    NotFoundError,
    PermissionDeniedError,
)
from stream0d_nb.db.access_tables import AccessRegistry, parse_token
from stream0d_nb.records import EventRecord, Silence
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp, seed_partner_datasets
from tests.test_append import DS, OTHER, at, iso

SCOPES = frozenset({"custom:stream0d:write", "custom:stream0d:admin"})
USERS = {
    "ana": UserInfo(frozenset({"fersa"}), False, SCOPES),  # owner with an admin token
    "zoe": UserInfo(frozenset({"zf"}), False, SCOPES),
}
HOT = {"name": "hot", "kind": "threshold", "channels": ["temp"], "op": ">", "value": 90}
WITNESS = {"name": "witness", "kind": "threshold", "channels": ["p_in"], "op": ">", "value": 100}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiOverHttp]:
    store = Store(Settings(home=tmp_path / "home"))
    seed_partner_datasets(store, {DS: "fersa", OTHER: "zf"})
    srv = ApiOverHttp(store, USERS, settings=ApiSettings(cache_seconds=600, fold_seconds=0))
    try:
        yield srv
    finally:
        srv.stop()
        store.close()


def _events(c: Client, rule: str, second: int, state: str) -> list[EventRecord]:
    return [
        e
        for e in c.alert_events(DS, rule=rule, since=at(second), until=at(second + 1))
        if e.to_state == state
    ]


def _step(c: Client, second: int, temp: float) -> None:
    """Append ``temp`` with the witness rule crossing at ``second``, then a quiet row, and
    wait until the witness fired and resolved: the run that evaluated ``second`` is over
    (the rules of an app run one dataset run at a time), whatever the other rules did."""
    c.append(DS, [{"time": iso(second), "temp": temp, "p_in": 101.0}])
    c.append(DS, [{"time": iso(second + 1), "temp": 60.0, "p_in": 5.0}])
    deadline = time.monotonic() + 60  # no timed assert: a bound on waiting only
    while not _events(c, "witness", second + 1, "resolved"):
        assert time.monotonic() < deadline, f"the witness rule did not run on {second}"
        time.sleep(0.05)
    assert _events(c, "witness", second, "firing")


def test_rules_saved_changed_deleted_and_silenced_are_seen_by_the_next_append(
    server: ApiOverHttp,
) -> None:
    ana = server.client("ana")
    ana.add_alert_rule(DS, WITNESS)
    _step(ana, 0, 60.0)  # the app's caches now hold the witness rule only
    # saved by another process (as `stream0d alerts add` does): the next append fires it
    with Store(server.store.settings) as other:
        AlertService(other).add_rule(DS, AlertRule.model_validate(HOT), actor="ana")
    _step(ana, 10, 95.0)
    assert _events(ana, "hot", 10, "firing")
    # changed over the API: the same value no longer fires
    ana.add_alert_rule(DS, {**HOT, "value": 200})
    _step(ana, 20, 150.0)
    assert not _events(ana, "hot", 20, "firing")
    _step(ana, 30, 250.0)  # positive control: above the new limit it does
    assert _events(ana, "hot", 30, "firing")
    # deleted: nothing more from it
    ana.delete_alert_rule(DS, "hot")
    _step(ana, 40, 250.0)
    assert not ana.alert_events(DS, rule="hot", since=at(40))
    # silenced by another process: the event is stored, its notification is not sent
    ana.add_alert_rule(DS, HOT)
    _step(ana, 50, 95.0)
    owner = Client(server.url, server.token("ana", "admin"))  # deliveries are the owner's
    assert _sent(owner, 50) == {("hot", "firing"), ("witness", "firing")}  # positive control
    with Store(server.store.settings) as other:
        AlertService(other).silence(DS, Silence(start=at(55), end=at(100)), rule="hot")
    _step(ana, 60, 95.0)
    assert _events(ana, "hot", 60, "firing")  # evaluated and stored
    assert _sent(owner, 60) == {("witness", "firing")}


def _sent(c: Client, second: int) -> set[tuple[str, str]]:
    """(rule, state) of the notifications sent of episodes starting at ``second``, once
    the witness's resolution of it is sent (the last of the run that evaluated it)."""
    start = at(second).isoformat().replace("+00:00", "Z")
    deadline = time.monotonic() + 60
    while True:
        keys = [d.key.split("/") for d in c.alert_deliveries(DS, limit=1000) if d.ok]
        mine = {(k[1], k[4]) for k in keys if k[3].startswith(start[:19])}
        if ("witness", "resolved") in mine:
            return {m for m in mine if m[1] == "firing"}
        assert time.monotonic() < deadline, f"no notification of {second}: {keys[:5]}"
        time.sleep(0.05)


def test_grants_and_tokens_revoked_elsewhere_are_refused_at_the_next_append(
    server: ApiOverHttp,
) -> None:
    rows = [{"time": iso(0), "temp": 61.0}]
    zoe = server.client("zoe")
    with pytest.raises(NotFoundError):  # another partner's dataset: hidden
        zoe.append(DS, rows)
    ana = server.client("ana")
    owner = Client(server.url, server.token("ana", "admin"))
    owner.grant(DS, "group", "zf", "viewer")
    owner.grant(DS, "user", "zoe", "editor")
    assert zoe.append(DS, rows).values_new == 1  # positive control: her grant lets her
    # revoked by another process (not through this app, whose cache keeps grants 10 min)
    with Store(server.store.settings) as other:
        AccessRegistry(other.registry).revoke_grant(DS, "user", "zoe", actor="ana")
    with pytest.raises(PermissionDeniedError):  # 403: a viewer now, through her group
        zoe.append(DS, [{"time": iso(1), "temp": 62.0}])
    owner.revoke_grant(DS, "group", "zf")
    with pytest.raises(NotFoundError):  # nothing left: hidden again
        zoe.append(DS, [{"time": iso(2), "temp": 63.0}])
    # a token revoked by another process
    assert ana.append(DS, [{"time": iso(3), "temp": 64.0}]).values_new == 1
    token_id, _ = parse_token(server.tokens["ana"])
    with Store(server.store.settings) as other:
        AccessRegistry(other.registry).revoke_token(token_id, "ana")
    with pytest.raises(AuthenticationError):
        ana.append(DS, [{"time": iso(4), "temp": 65.0}])
    with Store(server.store.settings) as other:  # what was refused stored nothing
        got = other.read(DS, ["temp"], start=at(0), end=at(5)).temp.values.tolist()
    assert got[0] == 61.0 and got[3] == 64.0 and all(v != v for v in (got[1], got[2], got[4]))
