"""The SQL registry on both backends (SQLite file, real PostgreSQL): API, audit, migrations."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from stream0d_nb.db.base import Base
from stream0d_nb.db.dataset_tables import DatasetRecord
from stream0d_nb.db.registry import VERSION_TABLE, Registry, RegistryVersionError, alembic_config
from stream0d_nb.errors import (
    ChannelNotFoundError,
    DatasetExistsError,
    DatasetNotFoundError,
    Stream0dError,
    ValidationError,
)
from stream0d_nb.records import AuditEntry
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from tests.races import at_once

HEADS = set(ScriptDirectory.from_config(alembic_config()).get_heads())


def make_spec(dataset_id: str = "line-1", **kw: Any) -> DatasetSpec:
    """A small spec with two channels."""
    channels = [
        ChannelSpec(name="temp", units="degC", long_name="Temperature", tags=["oven"]),
        ChannelSpec(name="pressure", units="bar"),
    ]
    return DatasetSpec(
        id=dataset_id, interval="1s", title="Line 1", partner="acme", channels=channels, **kw
    )


@pytest.fixture
def reg(registry_url: str) -> Iterator[Registry]:
    """An open registry on the backend under test."""
    registry = Registry(registry_url)
    try:
        yield registry
    finally:
        registry.close()


def count(reg: Registry, table: str) -> int:
    """Rows in ``table`` (raw SQL, independent of the ORM)."""
    with reg.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def aware_utc(value: datetime) -> bool:
    """Whether ``value`` is timezone-aware with zero offset."""
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


# ----------------------------------------------------------------------------- schema


def test_open_upgrades_to_head(reg: Registry) -> None:
    assert reg.schema_revision() == HEADS
    assert count(reg, "datasets") == 0
    assert count(reg, "channels") == 0
    assert count(reg, "audit_log") == 0


def test_open_twice_is_idempotent(registry_url: str) -> None:
    with Registry(registry_url) as first:
        first.create_dataset(make_spec(), "/data/line-1", actor="alice")
    with Registry(registry_url) as second, Registry(registry_url) as third:
        assert second.schema_revision() == third.schema_revision() == HEADS
        assert [r.id for r in third.list_datasets()] == ["line-1"]
        assert count(second, VERSION_TABLE) == 1


def test_models_match_migrations(reg: Registry) -> None:
    """Autogenerate finds nothing to do: the ORM and the migrations describe one schema."""
    with reg.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_datasets_from_before_0006_are_zstd(registry_url: str) -> None:
    """Migration 0006 records the compression of existing datasets as zstd (what they were
    written with); new ones record what their spec says."""
    from alembic import command
    from sqlalchemy import column, create_engine, table

    from stream0d_nb.db.base import UTCDateTime
    from stream0d_nb.db.registry import _normalise_url

    at_0005 = table(
        "datasets",
        *(column(c) for c in ("id", "interval", "title", "partner", "description", "tz")),
        column("storage_uri"),
        column("created_by"),
        column("created_at", UTCDateTime()),
        column("updated_at", UTCDateTime()),
    )
    engine = create_engine(_normalise_url(registry_url))
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0005")
            t = datetime(2025, 1, 1, tzinfo=UTC)
            conn.execute(
                at_0005.insert().values(
                    id="old",
                    interval="1s",
                    title="",
                    partner="",
                    description="",
                    tz="UTC",
                    storage_uri="/data/old",
                    created_by="alice",
                    created_at=t,
                    updated_at=t,
                )
            )
    finally:
        engine.dispose()
    with Registry(registry_url) as reg:
        assert reg.get_dataset("old").spec.compression == "zstd"
        reg.create_dataset(make_spec("new"), "/data/new", actor="alice")
        reg.create_dataset(make_spec("small", compression="zstd"), "/data/small", actor="bob")
        assert reg.get_dataset("new").spec.compression == "lz4"
        assert reg.get_dataset("small").spec.compression == "zstd"
        assert reg.audit_log("small", action="dataset.create")[0].detail["compression"] == "zstd"


def test_unknown_revision_is_refused(registry_url: str) -> None:
    with Registry(registry_url) as registry, registry.engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff_future'"))
    with pytest.raises(RegistryVersionError, match="ffff_future"):
        Registry(registry_url)


def test_sqlite_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    with Registry(f"sqlite:///{tmp_path / 'sub' / 'reg.sqlite'}") as registry:
        with registry.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert (tmp_path / "sub" / "reg.sqlite").exists()


def test_in_memory_sqlite_works() -> None:
    with Registry("sqlite://") as registry:
        registry.create_dataset(make_spec(), "mem://", actor="alice")
        assert registry.get_dataset("line-1").spec.channels[0].name == "temp"


# ----------------------------------------------------------------------------- datasets


def test_create_and_get_round_trip(reg: Registry) -> None:
    spec = make_spec(description="Oven line", tz="Europe/Madrid")
    record = reg.create_dataset(spec, "/data/line-1", actor="alice", via="cli")
    assert isinstance(record, DatasetRecord)
    assert record.spec == spec
    assert record.id == "line-1"
    assert record.storage_uri == "/data/line-1"
    assert record.created_by == "alice"
    assert aware_utc(record.created_at) and aware_utc(record.updated_at)

    got = reg.get_dataset("line-1")
    assert got == record
    assert [c.name for c in got.spec.channels] == ["temp", "pressure"]
    assert got.spec.channels[0].tags == ["oven"]

    (entry,) = reg.audit_log()
    assert isinstance(entry, AuditEntry)
    assert (entry.action, entry.actor, entry.dataset, entry.via) == (
        "dataset.create",
        "alice",
        "line-1",
        "cli",
    )
    assert entry.detail["channels"] == ["temp", "pressure"]
    assert entry.detail["storage_uri"] == "/data/line-1"
    assert aware_utc(entry.at)


def test_duplicate_id_is_refused_without_audit(reg: Registry) -> None:
    reg.create_dataset(make_spec(), "/a", actor="alice")
    with pytest.raises(DatasetExistsError, match="line-1"):
        reg.create_dataset(make_spec(), "/b", actor="bob")
    assert reg.get_dataset("line-1").storage_uri == "/a"
    assert [e.actor for e in reg.audit_log()] == ["alice"]


def test_concurrent_create_same_id_one_wins(reg: Registry) -> None:
    barrier = threading.Barrier(4)

    def create(i: int) -> str:
        barrier.wait(timeout=60)
        try:
            reg.create_dataset(make_spec(), f"/{i}", actor=f"user{i}")
            return "created"
        except DatasetExistsError:
            return "exists"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(create, range(4), timeout=120))
    assert sorted(results) == ["created", "exists", "exists", "exists"]
    assert count(reg, "datasets") == 1
    assert count(reg, "channels") == 2
    assert len(reg.audit_log(action="dataset.create")) == 1


def test_not_found_errors(reg: Registry) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"^no dataset 'nope' in the registry$") as info:
        reg.get_dataset("nope")  # no command of an edge named down here (issue 12, point 6)
    assert isinstance(info.value, LookupError) and isinstance(info.value, Stream0dError)
    with pytest.raises(DatasetNotFoundError):
        reg.update_dataset("nope", "alice", title="x")
    with pytest.raises(DatasetNotFoundError):
        reg.delete_dataset("nope", "alice")
    with pytest.raises(DatasetNotFoundError):
        reg.list_channels("nope")
    with pytest.raises(DatasetNotFoundError):
        reg.upsert_channels("nope", [ChannelSpec(name="a")], "alice")
    with pytest.raises(DatasetNotFoundError):
        reg.delete_channel("nope", "a", "alice")
    assert reg.audit_log() == []


def test_list_datasets_by_partner(reg: Registry) -> None:
    reg.create_dataset(make_spec("line-2"), "/2", actor="alice")
    reg.create_dataset(make_spec("line-1"), "/1", actor="alice")
    reg.create_dataset(DatasetSpec(id="plant", interval="5min", partner="other"), "/p", "bob")
    assert [r.id for r in reg.list_datasets()] == ["line-1", "line-2", "plant"]
    assert [r.id for r in reg.list_datasets(partner="acme")] == ["line-1", "line-2"]
    assert [r.id for r in reg.list_datasets(partner="other")] == ["plant"]
    assert reg.list_datasets(partner="nobody") == []
    assert [c.name for c in reg.list_datasets()[0].spec.channels] == ["temp", "pressure"]
    assert reg.list_datasets(partner="other")[0].spec.interval == "5min"


def test_update_dataset(reg: Registry) -> None:
    created = reg.create_dataset(make_spec(), "/a", actor="alice")
    updated = reg.update_dataset("line-1", "bob", title="New", partner="beta", via="api")
    assert (updated.spec.title, updated.spec.partner) == ("New", "beta")
    assert updated.spec.description == ""  # None keeps
    assert updated.updated_at >= created.updated_at
    assert updated.created_at == created.created_at
    assert reg.get_dataset("line-1") == updated
    entry = reg.audit_log(action="dataset.update")[0]
    assert (entry.actor, entry.via) == ("bob", "api")
    assert entry.detail == {
        "changes": {
            "title": {"from": "Line 1", "to": "New"},
            "partner": {"from": "acme", "to": "beta"},
        }
    }
    # Nothing changed: no audit entry.
    reg.update_dataset("line-1", "bob", title="New")
    reg.update_dataset("line-1", "bob")
    assert len(reg.audit_log(action="dataset.update")) == 1


def test_delete_dataset_cascades_and_keeps_audit(reg: Registry) -> None:
    reg.create_dataset(make_spec(), "/a", actor="alice")
    reg.create_dataset(make_spec("line-2"), "/b", actor="alice")
    reg.delete_dataset("line-1", "bob", via="cli", detail={"data_removed": True})
    with pytest.raises(DatasetNotFoundError):
        reg.get_dataset("line-1")
    assert count(reg, "channels") == 2  # line-2's only
    log = reg.audit_log(dataset_id="line-1")
    assert [e.action for e in log] == ["dataset.delete", "dataset.create"]
    assert log[0].detail == {
        "storage_uri": "/a",
        "channels": ["temp", "pressure"],
        "data_removed": True,
    }
    # The id is free again.
    reg.create_dataset(make_spec(), "/c", actor="carol")
    assert reg.get_dataset("line-1").storage_uri == "/c"


def test_foreign_key_cascade_in_the_database(reg: Registry) -> None:
    """Deleting a dataset row with plain SQL removes its channels (ON DELETE CASCADE)."""
    reg.create_dataset(make_spec(), "/a", actor="alice")
    with reg.engine.begin() as conn:
        conn.execute(text("DELETE FROM datasets WHERE id = 'line-1'"))
    assert count(reg, "channels") == 0
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"), reg.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO channels (dataset_id, position, name, units, long_name, "
                "description, tags, created_at, updated_at) VALUES ('ghost', 0, 'x', '', '', "
                "'', '[]', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )


# ----------------------------------------------------------------------------- transactions


def test_failed_create_leaves_no_audit_row(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit row is written, then the transaction fails: neither row survives."""
    real = Registry.add_audit

    def add_then_fail(self: Registry, session: Any, *args: Any, **kwargs: Any) -> Any:
        real(self, session, *args, **kwargs)
        raise RuntimeError("boom after audit")

    monkeypatch.setattr(Registry, "add_audit", add_then_fail)
    with pytest.raises(RuntimeError, match="boom"):
        reg.create_dataset(make_spec(), "/a", actor="alice")
    monkeypatch.undo()
    assert count(reg, "audit_log") == 0
    assert count(reg, "datasets") == 0
    assert count(reg, "channels") == 0


def test_failed_audit_leaves_no_change(reg: Registry) -> None:
    """The change is flushed, then its audit entry is refused: the change is rolled back."""
    with pytest.raises(ValidationError, match="actor"):
        reg.create_dataset(make_spec(), "/a", actor="")
    assert count(reg, "datasets") == 0
    reg.create_dataset(make_spec(), "/a", actor="alice")
    with pytest.raises(ValidationError):
        reg.update_dataset("line-1", "", title="changed")
    with pytest.raises(ValidationError):
        reg.delete_dataset("line-1", "")
    with pytest.raises(ValidationError):
        reg.upsert_channels("line-1", [ChannelSpec(name="new")], "")
    with pytest.raises(ValidationError):
        reg.delete_channel("line-1", "temp", "")
    record = reg.get_dataset("line-1")
    assert record.spec.title == "Line 1"
    assert [c.name for c in record.spec.channels] == ["temp", "pressure"]
    assert count(reg, "audit_log") == 1


def test_duplicate_channel_names_refused(reg: Registry) -> None:
    spec = DatasetSpec(id="d", interval="1s", channels=[ChannelSpec(name="a")] * 2)
    with pytest.raises(ValidationError, match="more than once: a"):
        reg.create_dataset(spec, "/d", actor="alice")
    reg.create_dataset(make_spec(), "/a", actor="alice")
    with pytest.raises(ValidationError):
        reg.upsert_channels("line-1", [ChannelSpec(name="x"), ChannelSpec(name="x")], "alice")
    assert count(reg, "audit_log") == 1


# ----------------------------------------------------------------------------- channels


def test_upsert_channels(reg: Registry) -> None:
    reg.create_dataset(make_spec(), "/a", actor="alice")
    result = reg.upsert_channels(
        "line-1",
        [
            ChannelSpec(name="speed", units="m/s", tags=["belt"]),
            ChannelSpec(name="temp", units="K", long_name="Temperature", tags=["oven"]),
            ChannelSpec(name="pressure", units="bar"),  # unchanged
        ],
        actor="ingest",
        via="store",
    )
    assert [c.name for c in result] == ["temp", "pressure", "speed"]
    assert result == reg.list_channels("line-1")
    temp = result[0]
    assert (temp.units, temp.long_name, temp.tags) == ("K", "Temperature", ["oven"])
    assert result[2].tags == ["belt"]

    log = reg.audit_log(dataset_id="line-1")
    assert [e.action for e in log[:2]] == ["channel.update", "channel.create"]
    by_action = {e.action: e for e in log}
    assert by_action["channel.create"].detail == {"channels": ["speed"]}
    assert by_action["channel.update"].detail == {
        "changes": {"temp": {"units": {"from": "degC", "to": "K"}}}
    }
    assert by_action["channel.create"].via == "store"
    assert reg.get_dataset("line-1").updated_at > reg.get_dataset("line-1").created_at

    # Nothing new: no audit entry, same answer.
    before = count(reg, "audit_log")
    again = reg.upsert_channels("line-1", [temp], "ingest")
    assert again == result
    assert reg.upsert_channels("line-1", [], "ingest") == result
    assert count(reg, "audit_log") == before

    # The given metadata replaces the stored one as a whole.
    reg.upsert_channels("line-1", [ChannelSpec(name="temp", units="K")], "bob")
    temp = reg.list_channels("line-1")[0]
    assert (temp.long_name, temp.tags, temp.units) == ("", [], "K")
    assert reg.audit_log(limit=1)[0].detail == {
        "changes": {
            "temp": {
                "long_name": {"from": "Temperature", "to": ""},
                "tags": {"from": ["oven"], "to": []},
            }
        }
    }


def test_delete_channel(reg: Registry) -> None:
    reg.create_dataset(make_spec(), "/a", actor="alice")
    reg.delete_channel("line-1", "temp", "bob", via="cli")
    assert [c.name for c in reg.list_channels("line-1")] == ["pressure"]
    entry = reg.audit_log(limit=1)[0]
    assert (entry.action, entry.detail, entry.via) == ("channel.delete", {"channel": "temp"}, "cli")
    with pytest.raises(ChannelNotFoundError, match="pressure") as info:
        reg.delete_channel("line-1", "temp", "bob")
    assert isinstance(info.value, LookupError)
    # A re-added channel goes to the end.
    reg.upsert_channels("line-1", [ChannelSpec(name="temp")], "bob")
    assert [c.name for c in reg.list_channels("line-1")] == ["pressure", "temp"]


# ----------------------------------------------------------------------------- audit


def test_audit_and_filters(reg: Registry) -> None:
    start = datetime.now(UTC)
    reg.create_dataset(make_spec(), "/a", actor="alice")
    reg.audit(
        "ingest-bot",
        "ingest",
        "line-1",
        {"values": 10, "file": Path("/x/a.csv"), "start": datetime(2025, 1, 1, tzinfo=UTC)},
        via="cli",
    )
    reg.audit("alice", "login")  # no dataset
    reg.audit("bob", "ingest", "ghost")  # unknown datasets are fine: the log outlives them

    log = reg.audit_log()
    assert [e.action for e in log] == ["ingest", "login", "ingest", "dataset.create"]
    assert [e.id for e in log] == sorted((e.id for e in log), reverse=True)
    assert all(aware_utc(e.at) and e.at >= start - timedelta(seconds=1) for e in log)
    ingest = log[2]
    assert ingest.detail == {"values": 10, "file": "/x/a.csv", "start": "2025-01-01 00:00:00+00:00"}
    assert (ingest.actor, ingest.via, ingest.dataset) == ("ingest-bot", "cli", "line-1")
    assert log[1].dataset is None

    assert [e.action for e in reg.audit_log(dataset_id="line-1")] == ["ingest", "dataset.create"]
    assert [e.dataset for e in reg.audit_log(action="ingest")] == ["ghost", "line-1"]
    assert [e.action for e in reg.audit_log(limit=2)] == ["ingest", "login"]
    assert reg.audit_log(since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert len(reg.audit_log(since=start - timedelta(seconds=1))) == 4
    # ``since`` is compared in UTC whatever zone it is given in.
    plus2 = (start - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=2)))
    assert len(reg.audit_log(since=plus2)) == 4
    assert reg.count_audit() == 4 and reg.count_audit("line-1") == 2


def test_audit_refuses_naive_since_and_bad_limit(reg: Registry) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        reg.audit_log(since=datetime(2025, 1, 1))
    with pytest.raises(ValidationError, match="limit"):
        reg.audit_log(limit=0)
    with pytest.raises(ValidationError, match="action"):
        reg.audit("alice", "")


def test_write_session_and_add_audit_commit_together(reg: Registry) -> None:
    """Other modules' changes can share a transaction with their audit entry."""
    with pytest.raises(RuntimeError), reg.write_session() as session:
        reg.add_audit(session, "alice", "grant.create", "line-1", {"role": "viewer"}, None)
        raise RuntimeError("rolled back")
    assert reg.audit_log() == []
    with reg.write_session() as session:
        reg.add_audit(session, "alice", "grant.create", "line-1", {"role": "viewer"}, None)
    assert reg.audit_log()[0].detail == {"role": "viewer"}


# ----------------------------------------------------------------------------- concurrency


def _open_and_create(url: str, index: int) -> str:
    """Child process body: open a (maybe fresh) registry and create one dataset."""
    with Registry(url) as registry:
        registry.create_dataset(DatasetSpec(id=f"d{index}", interval="1s"), f"/{index}", "p")
        return ",".join(sorted(registry.schema_revision()))


def test_threads_open_fresh_database_at_once(registry_url: str) -> None:
    barrier = threading.Barrier(4)

    def run(i: int) -> str:
        barrier.wait(timeout=60)
        return _open_and_create(registry_url, i)

    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(run, range(4), timeout=120))
    assert set(revisions) == {",".join(sorted(HEADS))}
    with Registry(registry_url) as registry:
        assert [r.id for r in registry.list_datasets()] == ["d0", "d1", "d2", "d3"]
        assert count(registry, VERSION_TABLE) == 1


@pytest.mark.slow
def test_processes_open_fresh_database_at_once(registry_url: str) -> None:
    # An executor (not multiprocessing.Pool) so that a dead child fails the test, never hangs.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        futures = [pool.submit(_open_and_create, registry_url, i) for i in range(4)]
        revisions = [f.result(timeout=120) for f in futures]
    assert set(revisions) == {",".join(sorted(HEADS))}
    with Registry(registry_url) as registry:
        assert [r.id for r in registry.list_datasets()] == ["d0", "d1", "d2", "d3"]
        assert len(registry.audit_log()) == 4


@pytest.mark.postgres
def test_bare_postgresql_url_uses_psycopg(postgres_url: str) -> None:
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with Registry(bare) as registry:
        assert registry.engine.dialect.driver == "psycopg"
        assert registry.schema_revision() == HEADS


def test_formulas_saved_updated_deleted_and_audited(reg: Registry) -> None:
    from stream0d_nb.specs import FormulaSpec

    reg.create_dataset(make_spec(), "/tmp/x", "alice")
    ratio = FormulaSpec(name="ratio", formula="{a} / {b}", units="1")
    assert reg.save_formula("line-1", ratio, "alice") == ratio
    assert reg.save_formula("line-1", ratio, "alice") == ratio  # unchanged: no audit entry
    hot = FormulaSpec(name="hot", formula="temp > 80 degC", units="1", description="too hot")
    reg.save_formula("line-1", hot, "bob")
    changed = ratio.model_copy(update={"formula": "{a} / ({b} + 1)"})
    reg.save_formula("line-1", changed, "carol")
    assert [f.name for f in reg.list_formulas("line-1")] == ["ratio", "hot"]
    assert reg.list_formulas("line-1")[0].formula == "{a} / ({b} + 1)"
    actions = [
        (e.action, e.actor) for e in reg.audit_log("line-1") if e.action.startswith("formula")
    ]
    assert actions == [
        ("formula.update", "carol"),
        ("formula.create", "bob"),
        ("formula.create", "alice"),
    ]
    assert (
        reg.audit_log("line-1", action="formula.update")[0].detail["from"]["formula"] == "{a} / {b}"
    )
    reg.delete_formula("line-1", "hot", "dave")
    with pytest.raises(ChannelNotFoundError):
        reg.delete_formula("line-1", "hot", "dave")
    reg.delete_dataset("line-1", "erin")
    assert count(reg, "formulas") == 0
    with pytest.raises(DatasetNotFoundError):
        reg.list_formulas("line-1")


def test_concurrent_first_saves_of_a_formula_leave_one_row(reg: Registry) -> None:
    """Several first saves of one name at the same moment all succeed: the losers of the
    unique-key race run again and find the winner's row (was a 500 on PostgreSQL)."""
    from stream0d_nb.specs import FormulaSpec

    reg.create_dataset(make_spec(), "/tmp/x", "alice")
    ratio = FormulaSpec(name="ratio", formula="{a} / {b}", units="1")
    assert at_once(6, lambda i: reg.save_formula("line-1", ratio, f"user{i}")) == [ratio] * 6
    assert count(reg, "formulas") == 1
    assert len(reg.audit_log("line-1", action="formula.create")) == 1
    assert reg.audit_log("line-1", action="formula.update") == []  # the others: unchanged


def test_save_by_name_modes_and_race(reg: Registry) -> None:
    """The one upsert helper: a create refuses a taken key, an update a missing one, and a
    unique-key race beyond its attempts surfaces as the IntegrityError it is."""
    from stream0d_nb.db import upsert
    from stream0d_nb.db.dataset_tables import FormulaRow

    reg.create_dataset(make_spec(), "/tmp/x", "alice")
    key = {"dataset_id": "line-1", "name": "f"}

    def fill(row: FormulaRow, created: bool) -> dict[str, Any] | None:
        if not created and row.formula == "{a}":
            return None
        row.formula, row.units, row.description, row.materialize = "{a}", "", "", False
        return {"name": "f"}

    def save(**kw: Any) -> upsert.Saved[FormulaRow]:
        return upsert.save_by_name(
            reg, FormulaRow, key, fill, actor="alice", actions=("f.new", "f.set"), **kw
        )

    with pytest.raises(ChannelNotFoundError, match="missing"):
        save(missing=lambda: ChannelNotFoundError("missing"))
    first = save(dataset_id="line-1", exists=lambda: DatasetExistsError("taken"))
    assert (first.created, first.changed) == (True, True) and first.row.created_by == "alice"
    with pytest.raises(DatasetExistsError, match="taken"):
        save(exists=lambda: DatasetExistsError("taken"))
    again = save()
    assert (again.created, again.changed) == (False, False)
    with pytest.raises(DatasetNotFoundError):
        upsert.save_by_name(
            reg, FormulaRow, key, fill, actor="a", actions=("x", "y"), dataset_id="nope"
        )
    assert [e.action for e in reg.audit_log("line-1") if e.action.startswith("f.")] == ["f.new"]
    # a writer that keeps losing the race: retried, then the error
    calls: list[int] = []

    def always_taken(row: FormulaRow, created: bool) -> dict[str, Any]:
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("unique"))

    with pytest.raises(IntegrityError):
        upsert.save_by_name(reg, FormulaRow, key, always_taken, actor="a", actions=("x", "y"))
    assert len(calls) == upsert.ATTEMPTS
