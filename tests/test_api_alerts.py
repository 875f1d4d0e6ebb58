"""The rest of ``stream0d alerts`` over real HTTP with real tokens (issue 12, point 1):
backfill of saved rules (``alerts backfill``) and notification deliveries (``alerts
deliveries``). ``alerts run`` stays the runner's (docs/api.md says why).

Backfill runs on the servers and users of ``tests.test_api_previews`` (``vera`` a viewer
of fersa's dataset, ``bob`` of another partner) and must equal ``AlertService.backfill``;
deliveries on those of ``tests.test_api_sinks`` (``ops`` a hub admin, ``alice`` owner,
``carl`` editor, ``bob`` another partner's owner), from a real run that delivers to a
webhook that refuses the connection, and never show a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stream0d_nb.alerts.notify import RetryPolicy
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.client import NotFoundError, PermissionDeniedError, RequestValidationError
from stream0d_nb.records import AlertDelivery, AlertPreview
from tests import test_api_previews as previews
from tests import test_api_sinks as sinks
from tests.test_api_previews import DS, HOT, T0, error, hidden, ns

T5 = "2024-05-01T00:05:00Z"
COLD = {"name": "cold", "kind": "threshold", "channels": ["temp"], "op": "<", "value": 59.0}


# ----------------------------------------------------------------------------- backfill


@pytest.fixture(scope="module")
def rules_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[previews.Server]:
    """The previews' server with two saved rules of different severities."""
    s = previews.Server(tmp_path_factory.mktemp("backfill") / "home")
    for rule in ({**HOT, "severity": "major"}, {**COLD, "for": "1s", "severity": "minor"}):
        s.alerts.add_rule(DS, AlertRule.model_validate(rule), actor="alice")
    yield s
    s.stop()


def backfill(srv: previews.Server, who: str, **body: Any) -> Any:
    return srv.call(who, "POST", f"/datasets/{DS}/alerts/backfill", json=body)


def test_backfill_equals_the_cli_and_stores_nothing(rules_srv: previews.Server) -> None:
    srv = rules_srv
    before = srv.state()
    r = backfill(srv, "vera", start=T0, end=T5)
    assert r.status_code == 200, r.text
    got = r.json()
    assert srv.state() == before  # no event, state or audit entry
    res = srv.alerts.backfill(DS, T0, T5)
    assert [p["rule"] for p in got] == ["hot", "cold"]  # as listed
    for p in got:
        assert (p["start"], ns(p["end"])) == ("2024-05-01T00:00:00Z", ns(T5))
        assert [
            (ns(e["start"]), ns(e["end"]), e["series"], e["peak_value"], e["severity"])
            for e in p["episodes"]
        ] == [
            (e.start, e.end, e.series, e.peak_value, e.severity)
            for e in res.episodes
            if e.rule == p["rule"]
        ]
        assert [
            (ns(t["at"]), t["from_state"], t["to_state"], t["value"]) for t in p["transitions"]
        ] == [
            (t.at, t.from_state, t.to_state, t.value)
            for t in res.transitions
            if t.rule == p["rule"]
        ]
    assert {len(p["episodes"]) > 0 for p in got} == {True}
    assert {t["severity"] for t in got[0]["transitions"]} == {"major"}
    assert {t["severity"] for t in got[1]["transitions"]} == {"minor"}
    # named rules only (repeats once); the whole data by default
    only = backfill(srv, "vera", rules=["cold", "cold"]).json()
    assert [p["rule"] for p in only] == ["cold"]
    whole = srv.alerts.backfill(DS, None, None, ["cold"])
    assert [ns(e["start"]) for e in only[0]["episodes"]] == [e.start for e in whole.episodes]
    assert srv.state() == before


def test_backfill_access_input_and_limits(rules_srv: previews.Server) -> None:
    srv = rules_srv
    before = srv.state()
    hidden(srv, "POST", "/datasets/{ds}/alerts/backfill", json={})
    status, msg = error(backfill(srv, "vera", rules=["hot", "nope"]))
    assert status == 422 and msg.startswith("rules: ") and "'nope'" in msg
    assert "hot, cold" in msg  # the rules there are
    for body, field in (
        ({"rules": []}, "rules"),
        ({"rules": "hot"}, "rules"),
        ({"rule": ["hot"]}, "rule"),
        ({"start": 5}, "start"),
    ):
        status, msg = error(backfill(srv, "vera", **body))
        assert status == 422 and msg.startswith(f"{field}"), (body, msg)
    status, _ = error(backfill(srv, "vera", start="not a time"))
    assert status == 422
    # bounded as the preview: their one input over ~2 h scans too much
    status, msg = error(backfill(srv, "vera", start="2024-04-30T22:00:00Z", end=T5))
    assert status == 413 and f"over the limit of {previews.MAX_SCAN:,}" in msg
    assert srv.state() == before


def test_client_backfill(rules_srv: previews.Server) -> None:
    vera, bob = rules_srv.client("vera"), rules_srv.client("bob")
    got = vera.backfill_alert_rules(DS, start=T0, end=T5)
    assert all(isinstance(p, AlertPreview) for p in got)
    http = backfill(rules_srv, "vera", start=T0, end=T5).json()
    assert got == [AlertPreview.model_validate(p) for p in http]
    assert [p.rule for p in vera.backfill_alert_rules(DS, ["hot"], T0, T5)] == ["hot"]
    with pytest.raises(NotFoundError):
        bob.backfill_alert_rules(DS)
    with pytest.raises(RequestValidationError, match="rules: "):
        vera.backfill_alert_rules(DS, ["nope"])


# ----------------------------------------------------------------------------- deliveries

OTHER = sinks.OTHER
TOKEN, SECRET, HEADER = "p4th-t0ken", "s3cr3t-value", "Bearer h3ader-secret"
HOOK = {
    "kind": "webhook",
    "url": f"http://127.0.0.1:9/hooks/{TOKEN}?key=q-k3y",  # nothing listens: refused
    "secret": SECRET,
    "headers": {"Authorization": HEADER},
    "timeout": 2,
}
LEAKS = (TOKEN, SECRET, "h3ader-secret", "q-k3y")


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sinks.Server]:
    """The sinks' server after a real run of fersa's rule, routed to the in-app list and
    to a webhook that fails; plus failures whose text holds secrets, of both datasets."""
    s = sinks.Server(tmp_path_factory.mktemp("deliveries") / "home")
    assert s.call("ops", "PUT", "/alerts/sinks/ops-hook", json=HOOK).status_code == 200
    routes = {"default_sinks": ["in-app", "ops-hook"]}
    assert s.call("alice", "PUT", f"/datasets/{DS}/alerts/routes", json=routes).status_code == 200
    svc = AlertService(s.store, retry=RetryPolicy(attempts=1, base_delay=0, max_delay=0))
    svc.add_rule(DS, AlertRule.model_validate(HOT), actor="alice")
    assert svc.run(DS)
    leaky = f"unexpected OSError: {HEADER} {SECRET} at {HOOK['url']} (not retried)"
    svc.table.record_delivery(f"{DS}/x", "ops-hook", DS, False, 1, leaky)
    svc.table.record_delivery(f"{OTHER}/x", "ops-hook", OTHER, False, 2, "refused")
    yield s
    s.stop()


def deliveries(srv: sinks.Server, who: str, path: str, **params: Any) -> Any:
    return srv.call(who, "GET", path, params=params)


def test_owner_sees_the_dataset_deliveries_without_secrets(sent: sinks.Server) -> None:
    table = AlertService(sent.store).table
    r = deliveries(sent, "alice", f"/datasets/{DS}/alerts/deliveries", limit=1000)
    assert r.status_code == 200, r.text
    assert not any(leak in r.text for leak in LEAKS)
    got = [AlertDelivery.model_validate(d) for d in r.json()]
    rows = table.deliveries(DS, False, 1000)
    assert [(d.key, d.sink, d.dataset, d.ok, d.attempts, d.at) for d in got] == [
        (d.key, d.sink, d.dataset, d.ok, d.attempts, d.at) for d in rows
    ]
    assert {d.sink for d in got} == {"in-app", "ops-hook"} and {d.dataset for d in got} == {DS}
    assert all(d.ok for d in got if d.sink == "in-app")
    newest = got[0]
    assert newest.key == f"{DS}/x" and newest.error is not None
    assert newest.error == "unexpected OSError: ********** ********** at ********** (not retried)"
    refused = [d for d in got if d.sink == "ops-hook" and d.key != newest.key]
    assert refused and all(not d.ok and d.error for d in refused)
    assert all(d.error == r.error for d, r in zip(got[1:], rows[1:], strict=True))  # no secret
    failed = deliveries(sent, "alice", f"/datasets/{DS}/alerts/deliveries", failed=True).json()
    assert failed and all(not d["ok"] for d in failed)
    assert len(deliveries(sent, "alice", f"/datasets/{DS}/alerts/deliveries", limit=2).json()) == 2
    status, msg = error(deliveries(sent, "alice", f"/datasets/{DS}/alerts/deliveries", limit=0))
    assert status == 422 and msg.startswith("query.limit"), msg


def test_deliveries_seats(sent: sinks.Server) -> None:
    path = f"/datasets/{DS}/alerts/deliveries"
    status, msg = error(deliveries(sent, "carl", path))  # an editor: routes are the owners'
    assert status == 403, msg
    hidden(sent, "GET", "/datasets/{ds}/alerts/deliveries")
    # every dataset's: hub admins with an unrestricted admin token only
    everyone = deliveries(sent, "ops", "/alerts/deliveries", limit=1000)
    assert everyone.status_code == 200 and not any(leak in everyone.text for leak in LEAKS)
    assert {d["dataset"] for d in everyone.json()} == {DS, OTHER}
    only = deliveries(sent, "ops", "/alerts/deliveries", dataset=OTHER).json()
    assert [(d["dataset"], d["attempts"], d["error"]) for d in only] == [(OTHER, 2, "refused")]
    for who in ("alice", "ops-read", "ops-fersa"):
        assert deliveries(sent, who, "/alerts/deliveries").status_code == 403, who


def test_client_deliveries(sent: sinks.Server) -> None:
    alice, carl, bob, ops = (sent.client(u) for u in ("alice", "carl", "bob", "ops"))
    got = alice.alert_deliveries(DS, limit=1000)
    http = deliveries(sent, "alice", f"/datasets/{DS}/alerts/deliveries", limit=1000).json()
    assert got == [AlertDelivery.model_validate(d) for d in http]
    assert all(not d.ok for d in alice.alert_deliveries(DS, failed=True))
    assert {d.dataset for d in ops.alert_deliveries(limit=1000)} == {DS, OTHER}
    with pytest.raises(PermissionDeniedError):
        carl.alert_deliveries(DS)
    with pytest.raises(PermissionDeniedError):
        alice.alert_deliveries()
    with pytest.raises(NotFoundError):
        bob.alert_deliveries(DS)
