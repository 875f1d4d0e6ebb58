"""Alert tables on SQLite and PostgreSQL: rules, state, idempotent events, silences, deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stream0d_nb.db.alert_tables import AlertRegistry
from stream0d_nb.db.registry import Registry
from stream0d_nb.errors import (
    DatasetNotFoundError,
    RuleNotFoundError,
    SilenceNotFoundError,
    SinkNotFoundError,
)
from stream0d_nb.specs import DatasetSpec
from tests.races import at_once


@pytest.fixture
def alerts(registry_url: str) -> Iterator[AlertRegistry]:
    reg = Registry(registry_url)
    reg.create_dataset(DatasetSpec(id="line-1", interval="1s"), "/tmp/x", "alice")
    try:
        yield AlertRegistry(reg)
    finally:
        reg.close()


T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_rules_saved_replaced_deleted_and_audited(alerts: AlertRegistry) -> None:
    spec = {"name": "hot", "kind": "threshold", "channel": "temp", "op": ">", "value": 80}
    alerts.save_rule("line-1", "hot", spec, "alice")
    alerts.save_rule("line-1", "hot", spec, "alice")  # unchanged: no second audit entry
    alerts.save_rule("line-1", "hot", {**spec, "value": 85}, "bob")
    alerts.save_rule("line-1", "cold", {**spec, "name": "cold", "op": "<"}, "bob")
    assert [r["name"] for r in alerts.rules("line-1")] == ["hot", "cold"]
    assert alerts.rules("line-1")[0]["value"] == 85
    alerts.commit_evaluation("line-1", "hot", {"temp": ({"state": "firing"}, 10)}, [])
    alerts.delete_rule("line-1", "hot", "carol")
    assert alerts.states("line-1", "hot") == {}
    with pytest.raises(RuleNotFoundError, match=r"no alert rule 'hot' \(rules: cold\)"):
        alerts.delete_rule("line-1", "hot", "carol")
    assert alerts.rule("line-1", "cold")["op"] == "<"
    with pytest.raises(RuleNotFoundError, match="'hot'"):
        alerts.rule("line-1", "hot")
    log = [
        (e.action, e.actor)
        for e in alerts.registry.audit_log("line-1")
        if e.action.startswith("alert")
    ]
    assert log == [
        ("alert.delete", "carol"),
        ("alert.create", "bob"),
        ("alert.update", "bob"),
        ("alert.create", "alice"),
    ]
    with pytest.raises(DatasetNotFoundError):
        alerts.rules("nope")


def test_evaluation_commits_are_idempotent(alerts: AlertRegistry) -> None:
    ev = {
        "series": "temp",
        "at": T0,
        "from_state": "pending",
        "to_state": "firing",
        "severity": "major",
        "value": 91.0,
        "detail": {"episode_start": T0.isoformat()},
    }
    first = alerts.commit_evaluation("line-1", "hot", {"temp": ({"s": 1}, 100)}, [ev])
    again = alerts.commit_evaluation("line-1", "hot", {"temp": ({"s": 2}, 200)}, [ev])  # a replay
    assert len(first) == 1 and again == []
    assert alerts.states("line-1", "hot") == {"temp": ({"s": 2}, 200)}
    later = {
        **ev,
        "at": T0 + timedelta(minutes=5),
        "from_state": "firing",
        "to_state": "resolved",
        "value": 70.0,
    }
    alerts.commit_evaluation("line-1", "hot", {}, [later])
    got = alerts.events("line-1")
    assert [(e.to_state, e.value) for e in got] == [("resolved", 70.0), ("firing", 91.0)]
    assert [e.to_state for e in alerts.events("line-1", state="firing")] == ["firing"]
    assert alerts.events("line-1", since=T0 + timedelta(minutes=1))[0].to_state == "resolved"
    assert alerts.events("line-1", rule="other") == []
    assert got[1].at == T0 and got[1].detail == {"episode_start": T0.isoformat()}


def test_silences_sinks_routes_and_deliveries(alerts: AlertRegistry) -> None:
    sid = alerts.add_silence(
        "line-1", None, {"start": "2024-01-01T00:00Z", "end": "2024-01-02T00:00Z"}, "alice"
    )
    alerts.add_silence("line-1", "hot", {"weekly": {"days": [5, 6]}}, "alice")
    assert [(r, s) for _, r, s in alerts.silences("line-1")][1] == (
        "hot",
        {"weekly": {"days": [5, 6]}},
    )
    alerts.delete_silence("line-1", sid, "alice")
    assert len(alerts.silences("line-1")) == 1
    with pytest.raises(SilenceNotFoundError, match=f"no silence {sid}"):
        alerts.delete_silence("line-1", sid, "alice")
    alerts.save_sink("ops-mail", "email", {"host": "127.0.0.1", "port": 25}, "alice")
    alerts.save_sink("ops-mail", "email", {"host": "127.0.0.1", "port": 2525}, "alice")
    assert alerts.sinks() == {"ops-mail": ("email", {"host": "127.0.0.1", "port": 2525})}
    assert alerts.routes("line-1") is None
    alerts.set_routes("line-1", {"default_sinks": ["ops-mail"]}, "alice")
    assert alerts.routes("line-1") == {"default_sinks": ["ops-mail"]}
    alerts.delete_sink("ops-mail", "alice")
    with pytest.raises(SinkNotFoundError, match="no sink 'ops-mail'"):
        alerts.delete_sink("ops-mail", "alice")
    assert [e.action for e in alerts.registry.audit_log() if "sink" in e.action] == [
        "alert.sink.delete",
        "alert.sink",
        "alert.sink",
    ]
    assert not alerts.delivered("k1", "ops-mail")
    alerts.record_delivery("k1", "ops-mail", "line-1", False, 3, "connection refused")
    assert not alerts.delivered("k1", "ops-mail")
    alerts.record_delivery("k1", "ops-mail", "line-1", True, 1, None)
    assert alerts.delivered("k1", "ops-mail")
    assert alerts.delivered_pairs(["k1", "k2"]) == {("k1", "ops-mail")}
    assert [d.error for d in alerts.deliveries("line-1", failed_only=True)] == [
        "connection refused"
    ]


def test_long_notification_keys_fit_and_stay_distinct(alerts: AlertRegistry) -> None:
    """Keys of long series labels are cut to the column's 512 characters with a digest of
    the whole key: stable, distinct, and stored on every backend (PostgreSQL enforces it)."""
    from tests.alert_servers import make_notification

    short = make_notification()
    a = make_notification(series="é" * 300 + "a")
    b = make_notification(series="é" * 300 + "b")
    assert len(short.key) < 100 and "sha256" not in short.key
    assert len(a.key) == len(b.key) == 512
    assert a.key != b.key and a.key == make_notification(series="é" * 300 + "a").key
    assert a.key.startswith("line-1/temp_high/%C3%A9%C3%A9")
    repeat = make_notification(series="é" * 300 + "a", repeat=2)
    assert len(repeat.key) == 512 and repeat.key != a.key
    for n in (a, b, repeat):
        alerts.record_delivery(n.key, "ops-mail", "line-1", True, 1, None)
    assert alerts.delivered_pairs([a.key, b.key, repeat.key, short.key]) == {
        (a.key, "ops-mail"),
        (b.key, "ops-mail"),
        (repeat.key, "ops-mail"),
    }


def test_concurrent_first_saves_leave_one_row(alerts: AlertRegistry) -> None:
    """First saves of one rule, sink or routing table at the same moment all succeed, one
    row each (a rule's losers find the winner's row unchanged: one audit entry)."""
    spec = {"name": "hot", "kind": "threshold", "channel": "temp", "op": ">", "value": 80}
    at_once(6, lambda i: alerts.save_rule("line-1", "hot", spec, f"user{i}"))
    assert alerts.rules("line-1") == [spec]
    assert [e.action for e in alerts.registry.audit_log("line-1", action="alert.create")] == [
        "alert.create"
    ]
    assert alerts.registry.audit_log("line-1", action="alert.update") == []
    at_once(6, lambda i: alerts.save_sink("ops", "log", {"n": i}, f"user{i}"))
    assert list(alerts.sinks()) == ["ops"]
    at_once(6, lambda i: alerts.set_routes("line-1", {"default_sinks": ["ops"]}, f"user{i}"))
    assert alerts.routes("line-1") == {"default_sinks": ["ops"]}
