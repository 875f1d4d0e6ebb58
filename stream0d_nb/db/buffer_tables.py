"""SQL tables of the append buffer: rows acknowledged but not yet folded into Zarr chunks.

A dataset's appended rows wait here, in the registry every platform process already
shares (SQLite WAL locally, PostgreSQL in production), until a fold moves them into the
dataset's Icechunk repository as one commit (docs/storage.md, "Appends").

- ``append_state``: one row per dataset that was ever appended to. ``last_seq`` numbers
  the segments (taken under this row's lock, so a dataset's segments are numbered in
  commit order); ``fold_gen`` grows with every fold, which tells processes caching the
  buffer to reload it; a lease lets one process at a time fold or compact a dataset.
- ``append_segments``: what one append added (or several, merged by compaction), within
  one chunk of the dataset's grid, as an opaque payload the store encodes (grid indices
  and float64 values per channel). Later segments win over earlier ones for the same
  channel and time (last write wins, in acknowledgement order).

An append commits with ``synchronous = FULL`` on SQLite (the WAL is on disk before the
acknowledgement, so it survives ``kill -9`` and a power cut); PostgreSQL commits durably
by default. On SQLite, this module's write transactions in one process take turns on a
lock of the process first: SQLite's own wait for its write lock sleeps in growing steps
(1, 2, 5, 10, 15, 20, 25 ms...), which made an append that arrived during another one's
``fsync`` wait up to 80 ms; threads queued on a lock are woken when it is released.
``transaction`` holds the appends of a group commit (``store.buffer``) in one durable
transaction. Appends run prebuilt Core statements, not the ORM: they are the platform's
hot path.

Appends are not audited one by one (at 20 appends a second that would be
1.7 M audit rows a day): each segment keeps who appended (``actors``: actor and channel
-> number of appends) and each fold writes one ``append.fold`` audit entry with those
counts, next to the commit that holds the rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from stream0d_nb.db.base import Base, JSONType, UTCDateTime, retry_on_unique, utcnow
from stream0d_nb.db.dataset_tables import not_found

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry

__all__ = [
    "AppendSegmentRow",
    "AppendStateRow",
    "BufferTables",
    "ChunkPlan",
    "LockedBuffer",
    "Segment",
    "actor_key",
]


class AppendStateRow(Base):
    """Per dataset: segment numbering, fold generation, fold lease, totals."""

    __tablename__ = "append_state"

    dataset_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    fold_gen: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    appended_values: Mapped[int] = mapped_column(BigInteger, default=0)
    folded_values: Mapped[int] = mapped_column(BigInteger, default=0)
    last_fold_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_fold_snapshot: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AppendSegmentRow(Base):
    """Rows of one chunk added by one append (or by several, merged)."""

    __tablename__ = "append_segments"
    __table_args__ = (Index("ix_append_segments_dataset_id_chunk", "dataset_id", "chunk"),)

    dataset_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chunk: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[int] = mapped_column(Integer, default=0)
    first_idx: Mapped[int] = mapped_column(BigInteger)
    stop_idx: Mapped[int] = mapped_column(BigInteger)
    n_values: Mapped[int] = mapped_column(Integer)
    appends: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    newest_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actors: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class Segment:
    """One segment as read (``received_at``: its oldest append, ``newest_at``: its newest)."""

    seq: int
    chunk: int
    level: int
    first_idx: int
    stop_idx: int
    n_values: int
    appends: int
    received_at: datetime
    newest_at: datetime
    actors: dict[str, int]
    payload: bytes


@dataclass(frozen=True)
class ChunkPlan:
    """What one chunk has buffered: for deciding whether to fold or compact it."""

    chunk: int
    segments: int
    values: int
    oldest: datetime
    newest: datetime
    first_idx: int
    stop_idx: int
    levels: dict[int, int]


_SEGMENT_COLUMNS = (
    AppendSegmentRow.seq,
    AppendSegmentRow.chunk,
    AppendSegmentRow.level,
    AppendSegmentRow.first_idx,
    AppendSegmentRow.stop_idx,
    AppendSegmentRow.n_values,
    AppendSegmentRow.appends,
    AppendSegmentRow.received_at,
    AppendSegmentRow.newest_at,
    AppendSegmentRow.actors,
    AppendSegmentRow.payload,
)


# The append path's statements, built once (building one costs more than running it).
_SEGMENTS_AFTER = (
    select(*_SEGMENT_COLUMNS)
    .where(
        AppendSegmentRow.dataset_id == bindparam("b_dataset"),
        AppendSegmentRow.seq > bindparam("b_after"),
    )
    .order_by(AppendSegmentRow.seq)
)
_STATE_LOCKED = (
    select(AppendStateRow.last_seq, AppendStateRow.fold_gen)
    .where(AppendStateRow.dataset_id == bindparam("b_dataset"))
    .with_for_update()
)
_INSERT_SEGMENT = insert(AppendSegmentRow)
_NUMBER_SEGMENTS = (
    update(AppendStateRow)
    .where(AppendStateRow.dataset_id == bindparam("b_dataset"))
    .values(
        last_seq=bindparam("b_last"),
        appended_values=AppendStateRow.appended_values + bindparam("b_values"),
    )
)

_SERIAL: dict[str, threading.Lock] = {}
_SERIAL_GUARD = threading.Lock()


def _serial_lock(url: str) -> threading.Lock:
    """The lock this process's buffer writes to the SQLite database ``url`` take turns on."""
    with _SERIAL_GUARD:
        return _SERIAL.setdefault(url, threading.Lock())


def _segments(session: Session | Connection, *where: Any) -> list[Segment]:
    """Segments matching ``where``, oldest first (plain rows: the append path is hot)."""
    stmt = select(*_SEGMENT_COLUMNS).where(*where).order_by(AppendSegmentRow.seq)
    return _rows_to_segments(session.execute(stmt))


def _rows_to_segments(rows: Any) -> list[Segment]:
    return [
        Segment(
            int(r[0]),
            int(r[1]),
            int(r[2]),
            int(r[3]),
            int(r[4]),
            int(r[5]),
            int(r[6]),
            r[7],
            r[8],
            dict(r[9] or {}),
            bytes(r[10]),
        )
        for r in rows
    ]


def actor_key(actor: str) -> str:
    """How a segment counts who appended: the actor with the channel they came in by, as
    the audit log records it (read in the caller's own context, e.g. the request's)."""
    from stream0d_nb.db.registry import AUDIT_VIA

    via = (AUDIT_VIA.get() or {}).get("via")
    return f"{actor} via {via}" if via else actor


class LockedBuffer:
    """A dataset's buffer inside a write transaction that holds its state row; segments
    added are inserted by ``flush`` (before the transaction ends or locks the dataset's
    row again)."""

    def __init__(self, conn: Connection, dataset_id: str, last_seq: int, fold_gen: int) -> None:
        self.conn = conn
        self.dataset_id = dataset_id
        self.last_seq = last_seq
        self.fold_gen = fold_gen
        self._new: list[dict[str, Any]] = []

    def segments_after(self, seq: int) -> list[Segment]:
        """Segments numbered above ``seq``, oldest first (no query when there are none)."""
        if seq >= self.last_seq:
            return []
        rows = self.conn.execute(_SEGMENTS_AFTER, {"b_dataset": self.dataset_id, "b_after": seq})
        return _rows_to_segments(rows)

    def add(
        self,
        chunk: int,
        first_idx: int,
        stop_idx: int,
        n_values: int,
        payload: bytes,
        actor: str,
        at: datetime,
    ) -> int:
        """Add a segment and return its number (``actor``: as ``actor_key`` gives it)."""
        key = actor
        self.last_seq += 1
        self._new.append(
            {
                "dataset_id": self.dataset_id,
                "seq": self.last_seq,
                "chunk": chunk,
                "level": 0,
                "first_idx": first_idx,
                "stop_idx": stop_idx,
                "n_values": n_values,
                "appends": 1,
                "received_at": at,
                "newest_at": at,
                "actors": {key: 1},
                "payload": payload,
            }
        )
        return self.last_seq

    def flush(self) -> None:
        """Insert the added segments and number the state row past them."""
        if not self._new:
            return
        self.conn.execute(_INSERT_SEGMENT, self._new)
        self.conn.execute(
            _NUMBER_SEGMENTS,
            {
                "b_dataset": self.dataset_id,
                "b_last": self.last_seq,
                "b_values": sum(int(r["n_values"]) for r in self._new),
            },
        )
        self._new = []


class BufferTables:
    """The append buffer in the registry database (thread-safe; one per store)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._sqlite = registry.engine.dialect.name == "sqlite"
        self._known: set[str] = set()  # datasets whose state row exists
        # SQLite: this process's writes of the buffer take turns here (see the docstring)
        self._serial = _serial_lock(registry.url) if self._sqlite else None

    def _turn(self) -> threading.Lock | nullcontext[None]:
        """This process's turn to write (SQLite); PostgreSQL queues writers itself."""
        return self._serial if self._serial is not None else nullcontext()

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def _durable(self) -> Iterator[Session]:
        """A write transaction whose commit is on disk when it returns.

        SQLite's registry connections run ``synchronous = NORMAL`` (safe against a killed
        process, not a power cut); an acknowledged append must survive both, so this
        transaction runs with ``FULL`` (set outside the transaction, as SQLite requires).
        """
        with (
            self._durable_connection() as conn,
            Session(bind=conn, expire_on_commit=False) as s,
            s.begin(),
        ):
            yield s

    @contextmanager
    def _durable_connection(self) -> Iterator[Connection]:
        """A connection whose transactions commit durably, in this process's turn."""
        with self._turn(), self.registry.engine.connect() as conn:
            if not self._sqlite:
                yield conn
                return
            raw: Any = conn.connection.dbapi_connection
            raw.execute("PRAGMA synchronous = FULL")
            try:
                conn.execution_options(stream0d_begin="IMMEDIATE")
                yield conn
            finally:
                raw.execute("PRAGMA synchronous = NORMAL")

    @contextmanager
    def locked(self, dataset_id: str) -> Iterator[LockedBuffer]:
        """A durable write transaction holding the dataset's state row (made if missing)."""
        with self.transaction([dataset_id]) as lock:
            locked = lock(dataset_id)
            yield locked
            locked.flush()

    @contextmanager
    def transaction(self, datasets: Iterable[str]) -> Iterator[Callable[[str], LockedBuffer]]:
        """One durable write transaction for appends to ``datasets`` (a group commit: one
        ``fsync`` for all of them); yields ``lock(dataset_id)``, which holds the dataset's
        state row in it (made if missing). Flush a ``LockedBuffer`` before locking its
        dataset again."""
        for dataset_id in datasets:  # before the write transaction, which they would wait for
            self.ensure_state(dataset_id)
        with self._durable_connection() as conn, conn.begin():

            def lock(dataset_id: str) -> LockedBuffer:
                row = conn.execute(_STATE_LOCKED, {"b_dataset": dataset_id}).one_or_none()
                if row is None:  # deleted since we knew it: made again, or gone
                    try:
                        conn.execute(
                            insert(AppendStateRow),
                            {"dataset_id": dataset_id, "last_seq": 0, "fold_gen": 0},
                        )
                    except IntegrityError:  # no dataset row to refer to
                        raise not_found(dataset_id) from None
                last, gen = (0, 0) if row is None else (int(row[0]), int(row[1]))
                return LockedBuffer(conn, dataset_id, last, gen)

            yield lock

    def ensure_state(self, dataset_id: str) -> None:
        """Make the dataset's state row if it has none (the lease lives there too)."""
        if dataset_id not in self._known:
            retry_on_unique(lambda: self._ensure_state(dataset_id))
            self._known.add(dataset_id)

    def forget(self, dataset_id: str) -> None:
        """The dataset was deleted: its state row went with it."""
        self._known.discard(dataset_id)

    def _ensure_state(self, dataset_id: str) -> None:
        with self.registry.read_session() as s:
            if s.get(AppendStateRow, dataset_id) is not None:
                return
        with self.registry.write_session() as s:
            if s.get(AppendStateRow, dataset_id) is None:
                s.add(AppendStateRow(dataset_id=dataset_id, last_seq=0, fold_gen=0))

    @contextmanager
    def _consistent(self) -> Iterator[Session]:
        """A read transaction whose statements all see one state (repeatable read)."""
        with self.registry.read_session() as s:
            if not self._sqlite:  # SQLite's read transactions are snapshots already
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield s

    # -- reading ---------------------------------------------------------------------------
    def read(
        self, dataset_id: str, after_seq: int, fold_gen: int
    ) -> tuple[int, int, list[Segment]]:
        """``(last_seq, fold_gen, segments)``: the segments above ``after_seq``, or all of
        them when the fold generation is not ``fold_gen`` any more (a fold removed some)."""
        with self._consistent() as s:
            row = s.execute(
                select(AppendStateRow.last_seq, AppendStateRow.fold_gen).where(
                    AppendStateRow.dataset_id == dataset_id
                )
            ).one_or_none()
            if row is None:
                return 0, 0, []
            last, gen = int(row[0]), int(row[1])
            since = after_seq if gen == fold_gen else 0
            if last <= since:
                return last, gen, []
            segments = _segments(
                s, AppendSegmentRow.dataset_id == dataset_id, AppendSegmentRow.seq > since
            )
            return last, gen, segments

    def plan(self, dataset_id: str) -> tuple[int, int, list[ChunkPlan]]:
        """``(last_seq, fold_gen, chunks)``: per buffered chunk, its segments and values."""
        with self._consistent() as s:
            row = s.execute(
                select(AppendStateRow.last_seq, AppendStateRow.fold_gen).where(
                    AppendStateRow.dataset_id == dataset_id
                )
            ).one_or_none()
            if row is None:
                return 0, 0, []
            stats = s.execute(
                select(
                    AppendSegmentRow.chunk,
                    AppendSegmentRow.level,
                    func.count(),
                    func.sum(AppendSegmentRow.n_values),
                    func.min(AppendSegmentRow.received_at),
                    func.max(AppendSegmentRow.newest_at),
                    func.min(AppendSegmentRow.first_idx),
                    func.max(AppendSegmentRow.stop_idx),
                )
                .where(AppendSegmentRow.dataset_id == dataset_id)
                .group_by(AppendSegmentRow.chunk, AppendSegmentRow.level)
            ).all()
        chunks: dict[int, ChunkPlan] = {}
        for chunk, level, n, values, oldest, newest, first, stop in stats:
            prev = chunks.get(int(chunk))
            levels = dict(prev.levels) if prev else {}
            levels[int(level)] = int(n)
            chunks[int(chunk)] = ChunkPlan(
                int(chunk),
                (prev.segments if prev else 0) + int(n),
                (prev.values if prev else 0) + int(values or 0),
                min(prev.oldest, oldest) if prev else oldest,
                max(prev.newest, newest) if prev else newest,
                min(prev.first_idx, int(first)) if prev else int(first),
                max(prev.stop_idx, int(stop)) if prev else int(stop),
                levels,
            )
        return int(row[0]), int(row[1]), sorted(chunks.values(), key=lambda c: c.chunk)

    def segments(self, dataset_id: str, chunks: list[int], upto_seq: int) -> list[Segment]:
        """The segments of ``chunks`` numbered up to ``upto_seq``, oldest first."""
        with self._consistent() as s:
            return _segments(
                s,
                AppendSegmentRow.dataset_id == dataset_id,
                AppendSegmentRow.chunk.in_(chunks),
                AppendSegmentRow.seq <= upto_seq,
            )

    def datasets(self) -> list[str]:
        """Datasets that have buffered segments."""
        with self.registry.read_session() as s:
            return sorted(s.scalars(select(AppendSegmentRow.dataset_id).distinct()))

    def buffered_values(self, dataset_id: str) -> int:
        """How many values the dataset has buffered (merged segments counted once)."""
        with self.registry.read_session() as s:
            return int(
                s.scalar(
                    select(func.coalesce(func.sum(AppendSegmentRow.n_values), 0)).where(
                        AppendSegmentRow.dataset_id == dataset_id
                    )
                )
                or 0
            )

    def state(self, dataset_id: str) -> AppendStateRow | None:
        """The dataset's state row (a detached copy), None before its first append."""
        with self.registry.read_session() as s:
            row = s.get(AppendStateRow, dataset_id)
            if row is not None:
                s.expunge(row)
            return row

    # -- folding and compacting ------------------------------------------------------------
    def take_lease(self, dataset_id: str, owner: str, seconds: float) -> bool:
        """Claim the dataset for folding/compaction for ``seconds`` unless another owner
        holds an unexpired lease (a crashed holder's lease simply runs out)."""
        now = utcnow()
        with self._turn(), self.registry.write_session() as s:
            n = s.execute(
                update(AppendStateRow)
                .where(
                    AppendStateRow.dataset_id == dataset_id,
                    (AppendStateRow.lease_owner.is_(None))
                    | (AppendStateRow.lease_owner == owner)
                    | (AppendStateRow.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
            ).rowcount  # type: ignore[attr-defined]
            return bool(n)

    def release_lease(self, dataset_id: str, owner: str) -> None:
        """Give the lease back (no-op when another owner took it meanwhile)."""
        with self._turn(), self.registry.write_session() as s:
            s.execute(
                update(AppendStateRow)
                .where(AppendStateRow.dataset_id == dataset_id, AppendStateRow.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def finish_fold(
        self,
        dataset_id: str,
        chunks: list[int],
        upto_seq: int,
        snapshot: str | None,
        values: int,
        actor: str,
        detail: dict[str, Any],
    ) -> int:
        """After the fold's commit: delete the folded segments (those of ``chunks`` up to
        ``upto_seq``, exactly what the fold read), record the fold, audit it; one
        transaction, so a crash before it leaves the segments for the next fold, which
        writes the same values again (no change, no duplicate)."""
        with self._durable() as s:
            state = s.scalars(
                select(AppendStateRow)
                .where(AppendStateRow.dataset_id == dataset_id)
                .with_for_update()
            ).one()
            n = s.execute(
                delete(AppendSegmentRow).where(
                    AppendSegmentRow.dataset_id == dataset_id,
                    AppendSegmentRow.chunk.in_(chunks),
                    AppendSegmentRow.seq <= upto_seq,
                )
            ).rowcount  # type: ignore[attr-defined]
            state.fold_gen += 1
            state.folded_values += values
            state.last_fold_at = utcnow()
            if snapshot is not None:
                state.last_fold_snapshot = snapshot
            if n:
                self.registry.add_audit(s, actor, "append.fold", dataset_id, detail, None)
            return int(n or 0)

    def replace(self, dataset_id: str, seqs: list[int], merged: Segment) -> bool:
        """Compaction: swap segments ``seqs`` (one chunk, consecutive there) for one merged
        segment numbered like the newest of them; False when any of them is gone (a fold
        or another compaction came first). Readers' caches need no reload: applying the
        merged segment over any prefix of the ones it replaces gives the same result.

        Not ``synchronous = FULL``: a compaction lost to a power cut leaves the segments it
        merged, which hold the same values; one ``fsync`` less holding the write lock."""
        try:
            with self._turn(), self.registry.write_session() as s:
                s.scalars(
                    select(AppendStateRow)
                    .where(AppendStateRow.dataset_id == dataset_id)
                    .with_for_update()
                ).one()
                n = s.execute(
                    delete(AppendSegmentRow).where(
                        AppendSegmentRow.dataset_id == dataset_id, AppendSegmentRow.seq.in_(seqs)
                    )
                ).rowcount  # type: ignore[attr-defined]
                if n != len(seqs):
                    raise _Gone
                s.add(
                    AppendSegmentRow(
                        dataset_id=dataset_id,
                        seq=merged.seq,
                        chunk=merged.chunk,
                        level=merged.level,
                        first_idx=merged.first_idx,
                        stop_idx=merged.stop_idx,
                        n_values=merged.n_values,
                        appends=merged.appends,
                        received_at=merged.received_at,
                        newest_at=merged.newest_at,
                        actors=merged.actors,
                        payload=merged.payload,
                    )
                )
        except _Gone:
            return False
        return True


class _Gone(Exception):
    """A segment to compact was deleted meanwhile (rolls the compaction back)."""
