"""Live alerting end to end: rules on a real store, events, restarts, outbox, silences, webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream0d_nb.alerts.notify import RetryPolicy
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.service import AlertService, Silence
from stream0d_nb.errors import ConfirmationRequiredError, RuleNotFoundError, ValidationError
from stream0d_nb.formulas import FormulaError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from tests.alert_servers import webhook_server
from tests.conftest import CliRun

T0 = pd.Timestamp("2024-03-01", tz="UTC")
HOT = AlertRule(
    name="hot",
    kind="threshold",
    channels=["temp"],
    op=">",
    value=80.0,
    for_duration="2min",
    severity="major",
    labels={"area": "press"},
)


@pytest.fixture
def store(tmp_path: Path):
    st = Store(Settings(home=tmp_path / "home"))
    st.create_dataset(
        DatasetSpec(id="line-1", interval="1min", channels=[ChannelSpec(name="temp", units="degC")])
    )
    yield st
    st.close()


def write(store: Store, start_min: int, values: list[float]) -> None:
    idx = pd.date_range(
        T0 + pd.Timedelta(minutes=start_min), periods=len(values), freq="1min"
    ).as_unit("ns")
    store.write("line-1", pd.DataFrame({"temp": values}, index=idx))


def service(store: Store) -> AlertService:
    return AlertService(store, retry=RetryPolicy(attempts=1, base_delay=0.0))


def in_app(store: Store) -> list[dict]:
    path = store.settings.home / "alerts" / "notifications.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_rules_are_validated_saved_and_deleted(store: Store) -> None:
    svc = service(store)
    svc.add_rule("line-1", HOT)
    with pytest.raises(FormulaError, match="did you mean 'temp'"):
        svc.add_rule("line-1", HOT.model_copy(update={"name": "x", "channels": ["tmp"]}))
    assert [r.name for r in svc.rules("line-1")] == ["hot"]
    assert svc.rule("line-1", "hot") == HOT
    with pytest.raises(ConfirmationRequiredError):
        svc.delete_rule("line-1", "hot", confirm=None)
    svc.delete_rule("line-1", "hot", confirm="hot")
    with pytest.raises(RuleNotFoundError, match="no alert rule 'hot'"):
        svc.rule("line-1", "hot")
    with pytest.raises(RuleNotFoundError, match="no alert rule 'hot'"):
        svc.delete_rule("line-1", "hot", confirm="hot")


def test_live_evaluation_across_writes_and_restarts_notifies_once(store: Store) -> None:
    svc = service(store)
    svc.add_rule("line-1", HOT)
    store.add_write_hook(svc.after_write)
    write(store, 0, [70, 85, 86, 87, 88])  # above from minute 1: firing at minute 3 (for 2 min)
    events = svc.table.events("line-1")
    assert [(e.to_state, e.at) for e in reversed(events)] == [
        ("pending", T0 + pd.Timedelta(minutes=1)),
        ("firing", T0 + pd.Timedelta(minutes=3)),
    ]
    assert [(n["state"], n["rule"]) for n in in_app(store)] == [("firing", "hot")]
    # a restart: new store and service on the same home; the episode goes on and resolves
    store2 = Store(store.settings)
    svc2 = service(store2)
    store2.add_write_hook(svc2.after_write)
    svc2.run("line-1")  # nothing new: no event, no notification again
    assert len(svc2.table.events("line-1")) == 2 and len(in_app(store)) == 1
    write(store2, 5, [90, 75, 74])
    states = [e.to_state for e in reversed(svc2.table.events("line-1"))]
    assert states == ["pending", "firing", "resolved"]
    notes = in_app(store)
    assert [n["state"] for n in notes] == ["firing", "resolved"]
    assert (
        notes[1]["episode_start"]
        == notes[0]["episode_start"]
        == (T0 + pd.Timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    )
    svc2.run("line-1")
    assert len(in_app(store)) == 2
    store2.close()


def test_outbox_delivers_events_stored_before_a_crash(store: Store) -> None:
    svc = service(store)
    svc.add_rule("line-1", HOT.model_copy(update={"for_duration": "0s"}))
    write(store, 0, [90, 91])
    svc.run("line-1", notify=False)  # events stored, then "crash" before sending
    assert in_app(store) == []
    service(store).deliver("line-1")
    assert [n["state"] for n in in_app(store)] == ["firing"]
    service(store).deliver("line-1")
    assert len(in_app(store)) == 1


def test_silences_mute_notifications_not_events(store: Store) -> None:
    svc = service(store)
    svc.add_rule("line-1", HOT.model_copy(update={"for_duration": "0s"}))
    svc.silence(
        "line-1",
        Silence(
            start=T0.to_pydatetime(),
            end=(T0 + pd.Timedelta(hours=1)).to_pydatetime(),
            comment="maintenance",
        ),
        rule="hot",
    )
    write(store, 0, [90, 70])
    svc.run("line-1")
    assert [e.to_state for e in reversed(svc.table.events("line-1"))] == ["firing", "resolved"]
    assert in_app(store) == []
    weekly = Silence(days=[4], from_time="22:00", to_time="06:00", tz="Europe/Madrid")  # Fri night
    assert weekly.covers(datetime(2024, 3, 1, 22, 30, tzinfo=UTC))  # Fri 23:30 Madrid
    assert weekly.covers(datetime(2024, 3, 2, 4, 0, tzinfo=UTC))  # Sat 05:00 Madrid
    assert not weekly.covers(datetime(2024, 3, 2, 6, 0, tzinfo=UTC))  # Sat 07:00 Madrid
    with pytest.raises(ValueError):
        Silence(days=[4])
    # a silence naming no rule of the dataset is a bad value (not a missing thing asked for)
    with pytest.raises(ValidationError, match=r"no alert rule 'nope' \(rules: hot\)"):
        svc.silence("line-1", weekly, rule="nope")


def test_webhook_sink_routed_by_severity_with_signature(store: Store) -> None:
    svc = service(store)
    svc.add_rule("line-1", HOT.model_copy(update={"for_duration": "0s", "severity": "critical"}))
    with webhook_server(secret="s3cret") as hook:
        svc.table.save_sink(
            "ops-hook", "webhook", {"url": hook.url, "secret": "s3cret", "timeout": 5}, "alice"
        )
        svc.table.set_routes(
            "line-1",
            {
                "routes": [{"min_severity": "major", "sinks": ["ops-hook", "in-app"]}],
                "default_sinks": ["in-app"],
            },
            "alice",
        )
        write(store, 0, [95])
        svc.run("line-1")
        got = hook.received
        assert len(got) == 1 and got[0].signature_error is None
        body = json.loads(got[0].body)
        assert (
            body["rule"] == "hot" and body["state"] == "firing" and body["severity"] == "critical"
        )
    assert sorted(d.sink for d in svc.table.deliveries("line-1") if d.ok) == ["in-app", "ops-hook"]


def test_no_data_rule_fires_on_the_timer(store: Store) -> None:
    clock = {"now": (T0 + pd.Timedelta(minutes=30)).timestamp()}
    svc = AlertService(
        store, retry=RetryPolicy(attempts=1, base_delay=0.0), clock=lambda: clock["now"]
    )
    svc.add_rule(
        "line-1",
        AlertRule(
            name="silent", kind="no_data", channels=["temp"], window="10min", severity="warning"
        ),
    )
    write(store, 0, list(np.linspace(60, 61, 5)))
    assert svc.tick() >= 1
    firing = [e for e in svc.table.events("line-1") if e.to_state == "firing"]
    assert len(firing) == 1 and firing[0].at <= T0 + pd.Timedelta(minutes=30)
    clock["now"] += 600
    svc.tick()
    assert len([e for e in svc.table.events("line-1") if e.to_state == "firing"]) == 1
    # the rule's evaluation_interval (default 1min) spaces timer runs: not due yet
    rule = svc.rule("line-1", "silent")
    now_ns = int(clock["now"] * 1e9)
    assert not svc._due("line-1", rule, now_ns + 30 * 10**9)
    assert svc._due("line-1", rule, now_ns + 60 * 10**9)


def test_cli_alerts_follow_ingests(tmp_path: Path, cli: CliRun) -> None:
    run = cli
    run("dataset", "create", "oven", "--interval", "1min", "--channel", "temp=degC")
    code, out, err = run(
        "alerts",
        "add",
        "oven",
        "hot",
        "--kind",
        "threshold",
        "--channel",
        "temp",
        "--op",
        ">",
        "--value",
        "200",
        "--for",
        "2min",
        "--severity",
        "critical",
        "--label",
        "team=ops",
    )
    assert code == 0, err
    assert "saved alert rule hot (threshold, critical): {temp} > 200.0" in out
    code, _, err = run(
        "alerts",
        "add",
        "oven",
        "bad",
        "--kind",
        "threshold",
        "--channel",
        "tmp",
        "--op",
        ">",
        "--value",
        "1",
    )
    assert code == 1 and "did you mean 'temp'" in err and "^" in err
    csv = tmp_path / "oven.csv"
    csv.write_text(
        "time,temp\n"
        + "".join(
            f"2024-03-01T00:{m:02d}:00,{v}\n" for m, v in enumerate([180, 210, 215, 220, 190, 185])
        )
    )
    code, out, err = run("ingest", "oven", str(csv))
    assert code == 0, err
    code, out, _ = run("alerts", "events", "oven", "--json")
    got = [(e["to_state"], e["at"][:16]) for e in reversed(json.loads(out))]
    assert got == [
        ("pending", "2024-03-01T00:01"),
        ("firing", "2024-03-01T00:03"),
        ("resolved", "2024-03-01T00:04"),
    ]
    notes = [
        json.loads(line)
        for line in (tmp_path / "alerts" / "notifications.jsonl").read_text().splitlines()
    ]
    assert [n["state"] for n in notes] == ["firing", "resolved"] and notes[0]["labels"] == {
        "team": "ops"
    }
    code, out, _ = run("alerts", "backfill", "oven")
    assert "2024-03-01T00:03:00" in out and "1 episodes" in out
    code, out, _ = run(
        "alerts", "silence", "oven", "--days", "5,6", "--from", "00:00", "--to", "23:59"
    )
    assert code == 0 and "silence 1 saved" in out
    code, _, err = run("alerts", "delete", "oven", "hot")
    assert code == 1 and "confirm" in err
    code, out, _ = run("alerts", "delete", "oven", "hot", "--confirm", "hot")
    assert code == 0


def test_cli_sinks_routes_and_failed_deliveries(tmp_path: Path, cli: CliRun) -> None:
    run = cli
    run("dataset", "create", "oven", "--interval", "1min", "--channel", "temp=degC")
    run(
        "alerts",
        "add",
        "oven",
        "hot",
        "--kind",
        "threshold",
        "--channel",
        "temp",
        "--op",
        ">",
        "--value",
        "200",
        "--severity",
        "critical",
    )
    with webhook_server(secret="k3y") as hook:
        code, out, err = run(
            "alerts",
            "sink",
            "ops",
            "--kind",
            "webhook",
            "--config",
            json.dumps({"url": hook.url, "secret": "k3y", "timeout": 2}),
        )
        assert code == 0 and "k3y" not in out, err
        run(
            "alerts",
            "sink",
            "dead",
            "--kind",
            "webhook",
            "--config",
            json.dumps({"url": "http://127.0.0.1:9/none", "timeout": 1}),
        )
        code, out, err = run(
            "alerts",
            "routes",
            "oven",
            "--set",
            json.dumps({"routes": [{"min_severity": "major", "sinks": ["ops", "dead"]}]}),
        )
        assert code == 0, err
        csv = tmp_path / "oven.csv"
        csv.write_text("time,temp\n2024-03-01T00:00:00,250\n")
        code, _, err = run("ingest", "oven", str(csv))
        assert code == 0, err
        assert len(hook.received) == 1 and hook.received[0].signature_error is None
    code, out, _ = run("alerts", "deliveries", "oven", "--failed")
    assert "dead" in out and "ops" not in out.replace("dead", "")
