"""Recalibration tables on SQLite and PostgreSQL: models, versions, schedule claims, runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from stream0d_nb.db.recal_tables import RecalRegistry, RecalScheduleRow
from stream0d_nb.db.registry import Registry
from stream0d_nb.errors import (
    ModelNotFoundError,
    ModelVersionNotFoundError,
    RunNotFoundError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    ValidationError,
)
from stream0d_nb.specs import DatasetSpec
from tests.races import at_once

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.fixture
def table(registry_url: str) -> Iterator[RecalRegistry]:
    reg = Registry(registry_url)
    reg.create_dataset(DatasetSpec(id="line-1", interval="1s"), "/tmp/x", "alice")
    try:
        yield RecalRegistry(reg)
    finally:
        reg.close()


def _version(table: RecalRegistry, activate: bool, expected: int | None) -> int:
    v = table.record_version(
        "line-1",
        "zone",
        params={"gain": 1.0},
        metrics={"holdout": {"cv_rmse": 3.0}},
        train_window=(T0, T0 + timedelta(days=1)),
        holdout_window=(T0 + timedelta(days=1), T0 + timedelta(days=2)),
        snapshot="SNAP",
        trigger="test",
        activate=activate,
        reason="because",
        actor="alice",
        expected_active=expected,
    )
    return v.id


def test_versions_activation_and_audit(table: RecalRegistry) -> None:
    table.save_model("line-1", "zone", "linear", {"model": "linear"}, {"metric": "rmse"}, "alice")
    table.save_model("line-1", "zone", "linear", {"model": "linear"}, {"metric": "rmse"}, "alice")
    v1 = _version(table, True, None)
    v2 = _version(table, True, v1)
    _version(table, False, v2)
    stale = _version(table, True, v1)  # decided against v1, but v2 is active now
    assert [(v.version, v.status) for v in table.versions("line-1", "zone")] == [
        (4, "rejected"),
        (3, "rejected"),
        (2, "active"),
        (1, "retired"),
    ]
    assert "became active while" in table.version(stale).reason
    active = table.active_version("line-1", "zone")
    assert active is not None and active.id == v2 and active.snapshot == "SNAP"
    actions = [e.action for e in table.registry.audit_log("line-1")]
    assert actions.count("recal.model.create") == 1 and "recal.model.update" not in actions
    assert actions.count("recal.version.activate") == 2
    with pytest.raises(ModelNotFoundError, match=r"has no model 'nope' \(models: zone\)"):
        table.versions("line-1", "nope")
    with pytest.raises(ModelVersionNotFoundError):
        table.version(10**9)
    table.delete_model("line-1", "zone", "bob")
    assert table.models() == []


def test_schedule_claims_and_abandoned_runs(table: RecalRegistry) -> None:
    table.add_schedule(
        "nightly",
        cron="0 3 * * *",
        notebook="/nb.ipynb",
        parameters={"dataset": "line-1"},
        catch_up="once",
        max_catch_up=3,
        timeout_s=60,
        dataset_id="line-1",
        actor="alice",
        start_after=T0,
    )
    slot = T0 + timedelta(hours=17)
    assert table.claim("nightly", "a", fired_for=slot, expected_last=T0, check_last=True)
    assert not table.claim("nightly", "b")  # held
    assert not table.claim("nightly", "b", fired_for=slot, expected_last=T0, check_last=True)
    run = table.create_run(
        notebook="/nb.ipynb", parameters={}, trigger="schedule:nightly", actor="a",
        dataset_id="line-1", schedule_id=table.schedule("nightly").id, scheduled_for=slot,
    )  # fmt: skip
    table.attach_run("nightly", "a", run.id)
    table.update_run(run.id, status="running", started_at=T0)
    sched = table.schedule("nightly")
    assert (sched.claimed_by, sched.claim_run_id, sched.last_fired_for) == ("a", run.id, slot)
    # "a" dies: its claim gets old, "b" takes it over and the orphaned run is ended
    with table.registry.write_session() as s:
        s.execute(
            update(RecalScheduleRow).values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert table.claim("nightly", "b")
    orphan = table.run(run.id)
    assert orphan.status == "failed" and orphan.error_name == "Abandoned"
    table.release("nightly", "a")  # a late release of the dead owner changes nothing
    assert table.schedule("nightly").claimed_by == "b"
    table.release("nightly", "b")
    assert table.schedule("nightly").claimed_by is None
    assert table.advance("nightly", slot, slot + timedelta(days=1))
    assert not table.advance("nightly", slot, slot + timedelta(days=2))  # stale expectation
    assert [r.id for r in table.runs(schedule="nightly")] == [run.id]
    table.remove_schedule("nightly", "alice")
    assert table.run(run.id).schedule_id is None  # runs outlive their schedule
    with pytest.raises(ScheduleNotFoundError, match="no schedule named 'nightly'"):
        table.schedule("nightly")
    with pytest.raises(RunNotFoundError, match=f"dataset 'line-2' has no run {run.id}"):
        table.run(run.id, "line-2")  # a run of another dataset looks missing
    assert table.run(run.id, "line-1").id == run.id


def _nightly(table: RecalRegistry, name: str = "nightly", actor: str = "alice") -> None:
    table.add_schedule(
        name,
        cron="0 3 * * *",
        notebook="/nb.ipynb",
        parameters={"dataset": "line-1"},
        catch_up="once",
        max_catch_up=3,
        timeout_s=60,
        dataset_id="line-1",
        actor=actor,
    )


def test_concurrent_first_saves_of_a_model_and_a_schedule(table: RecalRegistry) -> None:
    """First saves of one model at the same moment all succeed (one row, one creation);
    of creates of one schedule exactly one wins, the others are ScheduleExistsError (409),
    never an IntegrityError (500)."""
    spec, activation = {"model": "linear"}, {"metric": "rmse"}
    saved = at_once(
        6, lambda i: table.save_model("line-1", "zone", "linear", spec, activation, f"u{i}")
    )
    assert len({m.id for m in saved}) == 1 and len(table.models("line-1")) == 1
    assert len(table.registry.audit_log("line-1", action="recal.model.create")) == 1
    assert table.registry.audit_log("line-1", action="recal.model.update") == []

    def create(i: int) -> str:
        try:
            _nightly(table, actor=f"u{i}")
        except ScheduleExistsError:
            return "exists"
        return "created"

    assert sorted(at_once(6, create)) == ["created"] + ["exists"] * 5
    assert [s.name for s in table.schedules()] == ["nightly"]


def test_schedule_changes_by_dataset(table: RecalRegistry) -> None:
    """A schedule changed, paused or removed "of a dataset" is not found from another one;
    unchanged values write nothing; each change is audited once."""
    _nightly(table)
    table.registry.create_dataset(DatasetSpec(id="line-2", interval="1s"), "/tmp/y", "bob")
    for call in (
        lambda: table.schedule("nightly", "line-2"),
        lambda: table.update_schedule("nightly", {"cron": "0 4 * * *"}, "bob", "line-2"),
        lambda: table.set_enabled("nightly", False, "bob", "line-2"),
        lambda: table.remove_schedule("nightly", "bob", dataset_id="line-2"),
    ):
        with pytest.raises(ScheduleNotFoundError, match="dataset 'line-2' has no schedule"):
            call()
    changed = table.update_schedule("nightly", {"cron": "0 4 * * *"}, "alice", "line-1")
    assert changed.cron == "0 4 * * *"
    table.update_schedule("nightly", {"cron": "0 4 * * *"}, "alice")  # unchanged
    assert not table.set_enabled("nightly", False, "alice", "line-1").enabled
    table.set_enabled("nightly", False, "alice")  # unchanged
    with pytest.raises(ValidationError, match="cannot be changed"):
        table.update_schedule("nightly", {"name": "x"}, "alice")
    with pytest.raises(ScheduleNotFoundError, match="no schedule named 'nope'"):
        table.update_schedule("nope", {"cron": "0 4 * * *"}, "alice")
    table.remove_schedule("nightly", "alice", dataset_id="line-1")
    actions = [e.action for e in table.registry.audit_log("line-1") if "schedule" in e.action]
    assert actions == [
        "recal.schedule.delete",
        "recal.schedule.disable",
        "recal.schedule.update",
        "recal.schedule.create",
    ]
