"""Folds: buffered appends moved into the dataset's Zarr chunks as one Icechunk commit.

A fold takes the buffered segments of some chunks (numbered up to the newest it saw),
merges them in order (later wins), writes each chunk once through the ingest path's
``Applier`` (merge with what is stored; only changed chunks written), commits, and then,
in one SQL transaction, deletes exactly those segments and records the fold. A crash
before the commit stores nothing; a crash between the commit and the delete leaves the
segments, and the next fold writes the same values again, which changes nothing (no
commit): every acknowledged row ends up in the repository once, none is lost.

When: a chunk is folded once it is complete (the dataset's newest buffered time, or the
clock, is ``grace`` past its end), or when its oldest row waited ``max_age``, or when it
holds ``max_values``. Folding completed chunks writes each chunk once, so the history
grows with the data, not with the number of appends (docs/storage.md, "Appends").

Between folds the buffer is compacted (``compact``): a chunk's segments merge in levels
(``compact_at`` of one level become one of the next), so a process that loads the buffer
reads a few segments, and each value is rewritten a few times (log of the appends).

``Folder`` does both in the background (a thread in the API; ``stream0d fold --loop``),
one process at a time per dataset (a lease in ``append_state``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from stream0d_nb.db.buffer_tables import ChunkPlan, Segment
from stream0d_nb.errors import WriteConflictError
from stream0d_nb.specs import IngestReport
from stream0d_nb.store.buffer import encode, merge_segments
from stream0d_nb.store.grid import Grid
from stream0d_nb.store.repo import WriteView
from stream0d_nb.store.writer import Applier, ChunkBuf, WriteStats

if TYPE_CHECKING:
    from stream0d_nb.store.store import Store

__all__ = ["FoldPolicy", "FoldResult", "Folder", "compact", "due_chunks", "fold"]

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.001
"""Seconds between GIL hand-overs in a process that folds in the background (``start``)."""


@dataclass(frozen=True)
class FoldPolicy:
    """When buffered chunks are folded and compacted (see the module docstring)."""

    grace: timedelta = timedelta(minutes=1)
    """How long late rows of a chunk are awaited: the dataset's newest buffered time is
    this far past the chunk's end, or the clock is and the chunk got nothing for as long
    (a back-fill of old days keeps its chunk open while its rows keep coming)."""
    max_age: timedelta = timedelta(days=1)
    """Fold a chunk whose oldest buffered row waited this long, complete or not."""
    max_values: int = 2_000_000
    """Fold a chunk holding this many buffered values, complete or not."""
    compact_at: int = 8
    """Merge a chunk's segments of one level once there are this many."""
    lease: timedelta = timedelta(minutes=2)
    """How long a folding process holds a dataset (a killed one's lease runs out: its
    datasets are folded that much later; their rows stay readable meanwhile)."""


@dataclass
class FoldResult:
    """What one fold did."""

    dataset: str
    chunks: list[int] = field(default_factory=list)
    values: int = 0
    """Buffered values folded."""
    values_written: int = 0
    """Values that changed the repository (0 when a crashed fold had written them)."""
    segments: int = 0
    snapshot: str | None = None
    warnings: list[str] = field(default_factory=list)


def due_chunks(chunks: list[ChunkPlan], grid: Grid, policy: FoldPolicy, now: datetime) -> list[int]:
    """The chunks to fold now (see ``FoldPolicy``)."""
    if not chunks:
        return []
    step = grid.interval_ns
    grace = max(int(policy.grace.total_seconds() * 1e9) // step, 0)
    newest = max(c.stop_idx for c in chunks)
    now_idx = int(now.timestamp() * 1e9) // step
    out = []
    for c in chunks:
        end = (c.chunk + 1) * grid.chunk_len
        if (
            newest >= end + grace
            or (now_idx >= end + grace and now - c.newest >= policy.grace)
            or now - c.oldest >= policy.max_age
            or c.values >= policy.max_values
        ):
            out.append(c.chunk)
    return out


def _actors(segments: list[Segment]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for s in segments:
        counts.update(s.actors)
    return dict(counts)


def fold(
    store: Store,
    dataset_id: str,
    everything: bool = False,
    policy: FoldPolicy | None = None,
    now: datetime | None = None,
    actor: str | None = None,
    owner: str | None = None,
    wait: float = 120.0,
) -> FoldResult:
    """Fold the dataset's due chunks (``everything``: all buffered chunks) in one commit.

    Holds the dataset's fold lease meanwhile (``owner``: a lease the caller holds already;
    otherwise one is taken, waiting up to ``wait`` seconds for another folder). Runs the
    write hooks after the commit, as any write does (materialised derived channels, model
    channels, alert rules).
    """
    policy = policy or FoldPolicy()
    tables = store.appends.tables
    if not tables.plan(dataset_id)[2]:
        return FoldResult(dataset_id)
    mine = owner or f"fold-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + wait
    while not tables.take_lease(dataset_id, mine, policy.lease.total_seconds()):
        if time.monotonic() > deadline:
            raise WriteConflictError(
                f"dataset {dataset_id!r}: another process has been folding its appends for "
                f"over {wait:g} s; try again later"
            )
        time.sleep(0.1)
    try:
        return _fold(store, dataset_id, everything, policy, now or datetime.now(UTC), actor)
    finally:
        if owner is None:
            tables.release_lease(dataset_id, mine)


def _fold(
    store: Store,
    dataset_id: str,
    everything: bool,
    policy: FoldPolicy,
    now: datetime,
    actor: str | None,
) -> FoldResult:
    """``fold`` with the lease held."""
    who = store.actor(actor)
    tables = store.appends.tables
    result = FoldResult(dataset_id)
    last, _, plan = tables.plan(dataset_id)
    if not plan:
        return result
    data = store.data(dataset_id)
    grid = data.committed().grid
    chunks = [c.chunk for c in plan] if everything else due_chunks(plan, grid, policy, now)
    if not chunks:
        return result
    segments = tables.segments(dataset_id, chunks, last)
    if not segments:
        return result
    length = grid.chunk_len
    by_chunk: dict[int, list[Segment]] = {}
    for s in segments:
        by_chunk.setdefault(s.chunk, []).append(s)
    merged = {c: merge_segments(segs, c * length, (c + 1) * length) for c, segs in by_chunk.items()}
    result.chunks = sorted(by_chunk)
    result.segments = len(segments)
    result.values = sum(
        int(np.count_nonzero(~np.isnan(v))) for cols in merged.values() for v in cols.values()
    )
    actors = _actors(segments)
    dropped: set[str] = set()

    def work(view: WriteView) -> WriteStats:
        names = sorted({n for cols in merged.values() for n in cols if n in view.arrays})
        dropped.update(n for cols in merged.values() for n in cols if n not in view.arrays)
        applier = Applier(view, names, "overwrite", "append")
        try:
            for c in result.chunks:
                buf = ChunkBuf(length, len(names))
                for j, name in enumerate(names):
                    col = merged[c].get(name)
                    if col is not None:
                        buf.values[j] = col
                        buf.count[j] = ~np.isnan(col)
                applier(c, buf)
            return applier.finish()
        except BaseException:
            applier.abort()
            raise

    def message(st: WriteStats) -> str | None:
        if st.values_written == 0:
            return None
        who_list = ", ".join(f"{k} ({n})" for k, n in sorted(actors.items()))
        span = ""
        if st.start is not None and st.stop is not None:
            span = (
                f", {grid.time_of(st.start).isoformat()}..{grid.time_of(st.stop - 1).isoformat()}"
            )
        return (
            f"fold {st.values_written:,} appended values ({st.values_new:,} new, "
            f"{st.values_changed:,} changed) of {sum(actors.values()):,} appends by {who_list} "
            f"into {len(result.chunks)} chunk(s){span}"
        )

    def metadata(st: WriteStats) -> dict[str, Any]:
        return {
            "actor": who,
            "action": "fold",
            "source": "append",
            "values_written": st.values_written,
            "values_new": st.values_new,
            "values_changed": st.values_changed,
            "channels": st.channels_written,
            "start": None if st.start is None else st.start * grid.interval_ns,
            "stop": None if st.stop is None else st.stop * grid.interval_ns,
            "appends": actors,
            "buffer_seq": last,
        }

    stats, snap = data.transact(work, message, metadata)
    result.values_written = stats.values_written
    result.snapshot = snap
    if dropped:
        result.warnings.append(
            f"values of channels deleted since they were appended were dropped: {sorted(dropped)}"
        )
    detail = {
        "snapshot": snap,
        "chunks": result.chunks,
        "values": result.values,
        "values_written": stats.values_written,
        "appends": actors,
        "buffer_seq": last,
    }
    tables.finish_fold(dataset_id, result.chunks, last, snap, result.values, who, detail)
    if snap is not None:
        report = IngestReport(
            dataset=dataset_id,
            source="fold",
            format="append",
            channels=stats.channels_written,
            values_read=result.values,
            values_written=stats.values_written,
            values_new=stats.values_new,
            values_changed=stats.values_changed,
            start=None if stats.start is None else grid.time_of(stats.start).to_pydatetime(),
            end=None if stats.stop is None else grid.time_of(stats.stop - 1).to_pydatetime(),
            commit=snap,
        )
        result.warnings += store.run_write_hooks(dataset_id, report)
    return result


def compact(store: Store, dataset_id: str, policy: FoldPolicy | None = None) -> int:
    """Merge each chunk's segments level by level (``compact_at`` of one level become one
    of the next, numbered like the newest of them); returns how many merges were made.

    Segments of one level are consecutive among their chunk's (appends add level 0 at the
    end; a merge puts level L+1 where its newest was), so merging them keeps the order in
    which later rows win."""
    policy = policy or FoldPolicy()
    tables = store.appends.tables
    last, _, plan = tables.plan(dataset_id)
    merges = 0
    for c in plan:
        for level in sorted(c.levels):
            if c.levels[level] < policy.compact_at:
                continue
            segs = [s for s in tables.segments(dataset_id, [c.chunk], last) if s.level == level]
            if len(segs) < policy.compact_at:
                continue
            first, stop = min(s.first_idx for s in segs), max(s.stop_idx for s in segs)
            cols = merge_segments(segs, first, stop)
            names = sorted(cols)
            if names:
                values = np.stack([cols[n] for n in names])
                rows = np.flatnonzero(~np.isnan(values).all(axis=0))
                idx = rows.astype(np.int64) + first
                values = values[:, rows]
            else:
                idx, values = np.empty(0, np.int64), np.empty((0, 0))
            n = int(np.count_nonzero(~np.isnan(values)))
            merged = Segment(
                seq=max(s.seq for s in segs),
                chunk=c.chunk,
                level=level + 1,
                first_idx=int(idx[0]) if idx.size else first,
                stop_idx=int(idx[-1]) + 1 if idx.size else first,
                n_values=n,
                appends=sum(s.appends for s in segs),
                received_at=min(s.received_at for s in segs),
                newest_at=max(s.newest_at for s in segs),
                actors=_actors(segs),
                payload=encode(idx, names, values),
            )
            if tables.replace(dataset_id, [s.seq for s in segs], merged):
                merges += 1
    return merges


class Folder:
    """Folds and compacts every dataset's buffer in a background thread, every ``every``
    seconds; ``after_pass`` (e.g. retention) runs after each pass. Errors are logged
    and retried next time (the buffer keeps the rows)."""

    def __init__(
        self,
        store: Store,
        every: float = 5.0,
        policy: FoldPolicy | None = None,
        after_pass: Callable[[Store], object] | None = None,
    ) -> None:
        self.store = store
        self.every = every
        self.policy = policy or FoldPolicy()
        self.after_pass = after_pass
        self.owner = f"folder-{uuid.uuid4().hex[:12]}"
        self._grids: dict[str, Grid] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> list[FoldResult]:
        """One pass over the datasets with buffered rows (those another process is not
        folding); returns the folds that moved something."""
        out = []
        tables = self.store.appends.tables
        lease = self.policy.lease.total_seconds()
        for dataset_id in tables.datasets():
            if self._stop.is_set():
                break
            try:  # read-only: no lease to take when there is nothing to do
                to_compact, to_fold = self._work_for(dataset_id, now)
            except Exception:
                log.exception("planning the fold of %s failed; retrying next pass", dataset_id)
                continue
            if not (to_compact or to_fold) or not tables.take_lease(dataset_id, self.owner, lease):
                continue
            try:
                if to_compact:
                    compact(self.store, dataset_id, self.policy)
                if to_fold:
                    res = fold(
                        self.store, dataset_id, policy=self.policy, now=now, owner=self.owner
                    )
                    if res.chunks:
                        out.append(res)
            except Exception:  # a pass must not die with one dataset; the rows stay buffered
                log.exception("folding %s failed; retrying next pass", dataset_id)
            finally:
                tables.release_lease(dataset_id, self.owner)
        if self.after_pass is not None:
            try:
                self.after_pass(self.store)
            except Exception:
                log.exception("after-fold step failed")
        return out

    def _work_for(self, dataset_id: str, now: datetime | None) -> tuple[bool, bool]:
        """Whether the dataset has chunks to compact, and chunks to fold now (its grid,
        which never changes, is looked up once: opening a new head costs more than a pass
        of appends)."""
        _, _, plan = self.store.appends.tables.plan(dataset_id)
        to_compact = any(n >= self.policy.compact_at for c in plan for n in c.levels.values())
        if not plan:
            return to_compact, False
        grid = self._grids.get(dataset_id)
        if grid is None:
            grid = self._grids[dataset_id] = self.store.data(dataset_id).committed().grid
        return to_compact, bool(due_chunks(plan, grid, self.policy, now or datetime.now(UTC)))

    def start(self) -> Folder:
        """Run passes in a daemon thread until ``stop``.

        The process then serves requests (the API) while folds compute beside them, so
        its interpreter hands the GIL over every ``SWITCH_INTERVAL`` instead of Python's
        5 ms: a request thread back from a short wait (SQLite, a socket) waited up to
        5 ms for a computing thread each time, several times a request. Measured with
        ``bench/bench_append.py`` (60 rows/push, the day's folds of 20 datasets in the
        load): append p99 57 and 98 ms against 374 and 170 ms, runs interleaved."""
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="stream0d-folder", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            t0 = time.monotonic()
            self.run_once()
            log.debug("fold pass took %.3f s", time.monotonic() - t0)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current dataset and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
