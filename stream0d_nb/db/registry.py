"""The SQL registry: datasets, their channels and the audit log (SQLAlchemy 2 + Alembic).

SQLite by default, PostgreSQL in production; both behave the same. The schema is owned by
the Alembic environment shipped in ``stream0d_nb/db/migrations`` and ``Registry(url)``
upgrades to head when it opens, under a lock so that concurrent openers are safe
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL). Every mutating call writes
its audit entry in the same transaction as the change: no change without its audit row,
no audit row for a change that failed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

# every table module, so that ``Base.metadata`` knows them all when migrations compare
from stream0d_nb.db import (  # noqa: F401
    access_tables,
    alert_tables,
    buffer_tables,
    recal_tables,
    view_tables,
)
from stream0d_nb.db.base import retry_on_unique, utcnow
from stream0d_nb.db.dataset_tables import (
    AuditRow,
    ChannelRow,
    DatasetRecord,
    DatasetRow,
    FormulaRow,
    dataset_record,
    dataset_row,
)
from stream0d_nb.db.upsert import save_by_name
from stream0d_nb.errors import (
    ChannelNotFoundError,
    DatasetExistsError,
    Stream0dError,
    ValidationError,
)
from stream0d_nb.records import AuditEntry
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "Registry",
    "RegistryVersionError",
    "alembic_config",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Our own name, so that a PostgreSQL database shared with another Alembic user
# (JupyterHub keeps ``alembic_version``) never mixes revisions.
VERSION_TABLE = "stream0d_alembic_version"
# Any constant works; it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 0x5330_4D49_4752  # "S0MIGR"
_SQLITE_BUSY_TIMEOUT_S = 30.0
_CHANNEL_FIELDS = ("units", "long_name", "description", "tags")
_DATASET_FIELDS = ("title", "description", "partner")


AUDIT_VIA: ContextVar[dict[str, str | None] | None] = ContextVar("stream0d_audit_via", default=None)
"""How the current actor came in (``{"via": "token:<id>"}``...) when a caller does not say.

The API puts a fresh holder here per request and fills it once it knows the identity, so
every audit entry written while serving the request records it without each layer passing
it along (a holder, because identity is resolved in a worker thread's copy of the context)."""


class RegistryVersionError(Stream0dError, RuntimeError):
    """The database schema is newer than this code (or unknown to it); upgrade the package."""


def _jsonable(detail: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON-safe copy of ``detail`` (datetimes, paths... become strings)."""
    if not detail:
        return {}
    out = json.loads(json.dumps(detail, default=str))
    if not isinstance(out, dict):  # pragma: no cover - json of a dict is a dict
        raise ValidationError("audit detail must be a mapping")
    return out


# ----------------------------------------------------------------------------- engine


def _normalise_url(url: str) -> str:
    """Pick psycopg 3 for bare ``postgresql://`` URLs (psycopg2 is not a dependency)."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _is_memory_sqlite(url: str) -> bool:
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def _make_engine(url: str) -> Engine:
    """An engine with SQLite set up for concurrency (WAL, busy timeout, FKs, our BEGIN)."""
    url = _normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    memory = _is_memory_sqlite(url)
    if not memory and u.database and not u.query.get("uri"):
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # A pool as large as the API's thread pool (40): overflow connections would be closed
    # after each use and reopened (PRAGMAs, WAL check) under concurrent requests.
    pooling: dict[str, Any] = (
        {"poolclass": StaticPool} if memory else {"pool_size": 40, "max_overflow": 10}
    )
    engine = create_engine(
        url,
        connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        **pooling,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # We emit BEGIN ourselves (below), so that transactions, DDL included, are real.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            if not memory:
                _enable_wal(cur)
                cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later upgrades
        # to a write fails at once with "database is locked" instead of waiting.
        mode = conn.get_execution_options().get("stream0d_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def _enable_wal(cur: Any) -> None:
    """Switch the file to WAL (persistent); retried since it needs a moment of exclusivity."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() == "wal":
                return
        except Exception as exc:  # sqlite3.OperationalError: database is locked
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise OperationalError("PRAGMA journal_mode = WAL", {}, RuntimeError(mode))
        time.sleep(0.05)


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for the shipped migrations (no alembic.ini needed).

    Pass ``connection`` to run inside an existing transaction (what ``Registry`` does) or
    ``url`` for developer commands, e.g.
    ``command.revision(alembic_config(url), autogenerate=True, message="...")``.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", _normalise_url(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# ----------------------------------------------------------------------------- registry


class Registry:
    """Datasets, channels and the audit log in one SQL database (thread-safe; one per process).

    Opening upgrades the schema to the newest migration. Each method runs in its own
    transaction; mutating methods write their audit entry in that same transaction.
    """

    def __init__(self, url: str) -> None:
        self.url = _normalise_url(url)
        self._engine = _make_engine(self.url)
        self._is_sqlite = self._engine.dialect.name == "sqlite"
        write_engine = self._engine.execution_options(stream0d_begin="IMMEDIATE")
        self._read = sessionmaker(bind=self._engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(bind=write_engine, expire_on_commit=False)
        try:
            self._upgrade()
        except BaseException:
            self._engine.dispose()
            raise

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    # -- schema ---------------------------------------------------------------

    def _upgrade(self) -> None:
        """Upgrade to head; cheap when already there, serialised when not."""
        script = ScriptDirectory.from_config(alembic_config())
        heads = set(script.get_heads())
        with self._engine.connect() as conn:
            current = self._current_heads(conn)
            conn.rollback()
        if current == heads:
            return
        self._check_known(script, current)
        write_engine = self._engine.execution_options(stream0d_begin="IMMEDIATE")
        with write_engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            current = self._current_heads(conn)  # someone may have migrated meanwhile
            if current != heads:
                self._check_known(script, current)
                command.upgrade(alembic_config(connection=conn), "heads")

    @staticmethod
    def _current_heads(conn: Connection) -> set[str]:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return set(ctx.get_current_heads())

    @staticmethod
    def _check_known(script: ScriptDirectory, current: set[str]) -> None:
        known = {rev.revision for rev in script.walk_revisions()}
        unknown = current - known
        if unknown:
            raise RegistryVersionError(
                f"the registry database is at revision(s) {sorted(unknown)} which this version "
                "of stream0d_nb does not know; upgrade the package"
            )

    def schema_revision(self) -> set[str]:
        """The Alembic revision(s) the database is at."""
        with self._engine.connect() as conn:
            return self._current_heads(conn)

    # -- plumbing -------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for modules that keep their own tables in this database)."""
        return self._engine

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session in a write transaction: commits on success, rolls back on any error.

        For other modules' tables: change rows and call ``add_audit`` in the same session so
        that the change and its audit entry commit together. On SQLite the transaction takes
        the write lock at once (``BEGIN IMMEDIATE``), so writers queue instead of failing.
        """
        with self._write_sessions.begin() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reading (rolled back at the end)."""
        with self._read() as session:
            yield session

    def add_audit(
        self,
        session: Session,
        actor: str,
        action: str,
        dataset_id: str | None,
        detail: dict[str, Any] | None,
        via: str | None,
        at: datetime | None = None,
    ) -> AuditRow:
        """Add an audit row to ``session``'s transaction (flushed, so failures show here)."""
        if not actor:
            raise ValidationError("audit actor must not be empty")
        if not action:
            raise ValidationError("audit action must not be empty")
        row = AuditRow(
            at=at or utcnow(),
            actor=actor,
            action=action,
            dataset=dataset_id,
            detail=_jsonable(detail),
            via=via if via is not None else (AUDIT_VIA.get() or {}).get("via"),
        )
        session.add(row)
        session.flush()
        return row

    # -- datasets -------------------------------------------------------------

    def create_dataset(
        self, spec: DatasetSpec, storage_uri: str, actor: str, via: str | None = None
    ) -> DatasetRecord:
        """Register a new dataset with its channels; ``DatasetExistsError`` if the id is taken."""
        _check_unique_names(spec.channels)
        now = utcnow()
        try:
            with self.write_session() as s:
                if s.get(DatasetRow, spec.id) is not None:
                    raise DatasetExistsError(f"dataset {spec.id!r} exists already")
                row = DatasetRow(
                    id=spec.id,
                    interval=spec.interval,
                    title=spec.title,
                    partner=spec.partner,
                    description=spec.description,
                    tz=spec.tz,
                    compression=spec.compression,
                    storage_uri=storage_uri,
                    created_at=now,
                    created_by=actor,
                    updated_at=now,
                )
                row.channels = [_channel_row(c, i, now) for i, c in enumerate(spec.channels)]
                s.add(row)
                s.flush()
                detail = {
                    "interval": spec.interval,
                    "tz": spec.tz,
                    "compression": spec.compression,
                    "title": spec.title,
                    "partner": spec.partner,
                    "storage_uri": storage_uri,
                    "channels": [c.name for c in spec.channels],
                }
                self.add_audit(s, actor, "dataset.create", spec.id, detail, via, now)
                return dataset_record(row)
        except IntegrityError as exc:
            # A concurrent creator won the race between our check and our insert.
            if self._exists(spec.id):
                raise DatasetExistsError(f"dataset {spec.id!r} exists already") from exc
            raise

    def _exists(self, dataset_id: str) -> bool:
        with self._read() as s:
            return s.get(DatasetRow, dataset_id) is not None

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        """The dataset with that id; ``DatasetNotFoundError`` if there is none."""
        with self._read() as s:
            return dataset_record(dataset_row(s, dataset_id))

    def list_datasets(self, partner: str | None = None) -> list[DatasetRecord]:
        """Every dataset (of one partner if given), ordered by id."""
        stmt = select(DatasetRow).options(selectinload(DatasetRow.channels))
        if partner is not None:
            stmt = stmt.where(DatasetRow.partner == partner)
        with self._read() as s:
            return [dataset_record(r) for r in s.scalars(stmt.order_by(DatasetRow.id))]

    def update_dataset(
        self,
        dataset_id: str,
        actor: str,
        *,
        title: str | None = None,
        description: str | None = None,
        partner: str | None = None,
        via: str | None = None,
    ) -> DatasetRecord:
        """Change descriptive fields (None = keep); audited only when something changed."""
        wanted = {"title": title, "description": description, "partner": partner}
        with self.write_session() as s:
            row = dataset_row(s, dataset_id)
            changes: dict[str, dict[str, str]] = {}
            for field in _DATASET_FIELDS:
                new = wanted[field]
                old = getattr(row, field)
                if new is not None and new != old:
                    changes[field] = {"from": old, "to": new}
                    setattr(row, field, new)
            if changes:
                now = utcnow()
                row.updated_at = now
                self.add_audit(
                    s, actor, "dataset.update", dataset_id, {"changes": changes}, via, now
                )
            return dataset_record(row)

    def delete_dataset(
        self,
        dataset_id: str,
        actor: str,
        via: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Remove the dataset and its channels (FK cascade); its audit entries stay."""
        with self.write_session() as s:
            row = dataset_row(s, dataset_id)
            info: dict[str, Any] = {
                "storage_uri": row.storage_uri,
                "channels": [c.name for c in row.channels],
            }
            info.update(detail or {})
            s.delete(row)
            s.flush()
            self.add_audit(s, actor, "dataset.delete", dataset_id, info, via)

    # -- channels -------------------------------------------------------------

    def list_channels(self, dataset_id: str) -> list[ChannelSpec]:
        """The dataset's channels in creation order; ``DatasetNotFoundError`` if none."""
        with self._read() as s:
            return [c.to_spec() for c in dataset_row(s, dataset_id).channels]

    def upsert_channels(
        self,
        dataset_id: str,
        channels: list[ChannelSpec],
        actor: str,
        via: str | None = None,
    ) -> list[ChannelSpec]:
        """Insert new channels and update changed metadata; return all channels after that.

        A given channel's metadata replaces the stored one as a whole (as the store does with
        the Zarr attributes); channels not given are left alone. Writes ``channel.create`` /
        ``channel.update`` audit entries only when something changed.
        """
        _check_unique_names(channels)

        def run() -> list[ChannelSpec]:
            with self.write_session() as s:
                row = dataset_row(s, dataset_id)
                existing = {c.name: c for c in row.channels}
                position = max((c.position for c in row.channels), default=-1) + 1
                now = utcnow()
                created: list[str] = []
                changes: dict[str, dict[str, dict[str, Any]]] = {}
                for spec in channels:
                    current = existing.get(spec.name)
                    if current is None:
                        new_row = _channel_row(spec, position, now)
                        row.channels.append(new_row)
                        position += 1
                        created.append(spec.name)
                        continue
                    diff: dict[str, dict[str, Any]] = {}
                    for field in _CHANNEL_FIELDS:
                        new, old = getattr(spec, field), getattr(current, field)
                        if field == "tags":
                            new, old = list(new), list(old or [])
                        if new != old:
                            diff[field] = {"from": old, "to": new}
                            setattr(current, field, new)
                    if diff:
                        current.updated_at = now
                        changes[spec.name] = diff
                if created or changes:
                    row.updated_at = now
                    s.flush()
                if created:
                    self.add_audit(
                        s, actor, "channel.create", dataset_id, {"channels": created}, via, now
                    )
                if changes:
                    self.add_audit(
                        s, actor, "channel.update", dataset_id, {"changes": changes}, via, now
                    )
                return [c.to_spec() for c in sorted(row.channels, key=lambda c: c.position)]

        return retry_on_unique(run)

    def delete_channel(
        self, dataset_id: str, name: str, actor: str, via: str | None = None
    ) -> None:
        """Remove one channel's registration; ``ChannelNotFoundError`` if it has none."""
        with self.write_session() as s:
            row = dataset_row(s, dataset_id)
            match = [c for c in row.channels if c.name == name]
            if not match:
                known = ", ".join(c.name for c in row.channels) or "none"
                raise ChannelNotFoundError(
                    f"dataset {dataset_id!r} has no channel {name!r} (channels: {known})"
                )
            now = utcnow()
            row.channels.remove(match[0])
            row.updated_at = now
            s.flush()
            self.add_audit(s, actor, "channel.delete", dataset_id, {"channel": name}, via, now)

    # -- formulas (derived channels) -----------------------------------------

    def list_formulas(self, dataset_id: str) -> list[FormulaSpec]:
        """The dataset's derived channels, oldest first."""
        with self._read() as s:
            dataset_row(s, dataset_id)
            rows = s.scalars(
                select(FormulaRow)
                .where(FormulaRow.dataset_id == dataset_id)
                .order_by(FormulaRow.id)
            )
            return [r.to_spec() for r in rows]

    def save_formula(
        self, dataset_id: str, spec: FormulaSpec, actor: str, via: str | None = None
    ) -> FormulaSpec:
        """Insert or replace a derived channel (audited as ``formula.create``/``formula.update``)."""

        def fill(row: FormulaRow, created: bool) -> dict[str, Any] | None:
            before = None if created else row.to_spec()
            if before == spec:
                return None
            row.formula, row.units, row.description = spec.formula, spec.units, spec.description
            row.materialize = spec.materialize
            detail: dict[str, Any] = {
                "name": spec.name,
                "formula": spec.formula,
                "units": spec.units,
            }
            if before is not None:
                detail["from"] = before.model_dump()
            return detail

        key = {"dataset_id": dataset_id, "name": spec.name}
        actions = ("formula.create", "formula.update")
        saved = save_by_name(
            self,
            FormulaRow,
            key,
            fill,
            actor=actor,
            actions=actions,
            dataset_id=dataset_id,
            via=via,
        )
        return saved.row.to_spec()

    def delete_formula(
        self, dataset_id: str, name: str, actor: str, via: str | None = None
    ) -> None:
        """Remove a derived channel; ``ChannelNotFoundError`` if there is none of that name."""
        with self.write_session() as s:
            dataset_row(s, dataset_id)
            row = s.scalars(
                select(FormulaRow).where(
                    FormulaRow.dataset_id == dataset_id, FormulaRow.name == name
                )
            ).one_or_none()
            if row is None:
                raise ChannelNotFoundError(
                    f"dataset {dataset_id!r} has no derived channel {name!r}"
                )
            detail = row.to_spec().model_dump()
            s.delete(row)
            s.flush()
            self.add_audit(s, actor, "formula.delete", dataset_id, detail, via)

    # -- audit ----------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        dataset_id: str | None = None,
        detail: dict[str, Any] | None = None,
        via: str | None = None,
    ) -> None:
        """Record an event that changed something elsewhere (e.g. ``ingest`` in the store).

        ``detail`` is stored as JSON; values JSON cannot hold (datetimes...) become text.
        """
        with self.write_session() as s:
            self.add_audit(s, actor, action, dataset_id, detail, via)

    def audit_log(
        self,
        dataset_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit entries, newest first, filtered by dataset, exact action and ``at >= since``."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, not {limit}")
        stmt = select(AuditRow)
        if dataset_id is not None:
            stmt = stmt.where(AuditRow.dataset == dataset_id)
        if action is not None:
            stmt = stmt.where(AuditRow.action == action)
        if since is not None:
            if since.tzinfo is None or since.utcoffset() is None:
                raise ValidationError(f"since={since!r} must be timezone-aware (e.g. UTC)")
            stmt = stmt.where(AuditRow.at >= since)
        stmt = stmt.order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        with self._read() as s:
            return [AuditEntry.model_validate(r) for r in s.scalars(stmt)]

    def count_audit(self, dataset_id: str | None = None) -> int:
        """How many audit entries there are (for one dataset if given)."""
        stmt = select(func.count()).select_from(AuditRow)
        if dataset_id is not None:
            stmt = stmt.where(AuditRow.dataset == dataset_id)
        with self._read() as s:
            return int(s.scalar(stmt) or 0)


def _channel_row(spec: ChannelSpec, position: int, now: datetime) -> ChannelRow:
    """A new channel row from its spec."""
    return ChannelRow(
        name=spec.name,
        position=position,
        units=spec.units,
        long_name=spec.long_name,
        description=spec.description,
        tags=list(spec.tags),
        created_at=now,
        updated_at=now,
    )


def _check_unique_names(channels: list[ChannelSpec]) -> None:
    """Refuse a list that names a channel twice (which one would win is ambiguous)."""
    counts = Counter(c.name for c in channels)
    dupes = sorted(name for name, n in counts.items() if n > 1)
    if dupes:
        raise ValidationError(f"channel names given more than once: {', '.join(dupes)}")
