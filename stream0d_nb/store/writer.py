"""Put raw batches on a dataset's grid and merge them into stored chunks.

``Staging`` applies the grid policies (off-grid times, duplicate timestamps) to batches as
they stream in, into whole-chunk buffers. ``Applier`` merges each finished chunk with what
is stored (``on_existing`` policy) inside the write session and writes only chunks whose
values change, which makes re-ingesting a file a no-op.

Sorted input (the usual case) is written *early*: a chunk the stream has passed goes to
the ``Applier`` at once, on a background thread, and its buffer is reused, so memory stays
at a few chunks and reading overlaps compression. If a later batch goes back to a chunk
already written, ``Revisit`` is raised and the caller redoes the write in a fresh session
without early writes: all chunks are then held (spilling to disk past a memory budget)
until the input ends.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest.types import RawBatch
from stream0d_nb.specs import IngestOptions, parse_duration
from stream0d_nb.store.grid import Grid
from stream0d_nb.store.repo import WriteView

MAX_LOCATIONS = 10
IN_FLIGHT = 3
GROW_CHUNKS = 64
F8 = npt.NDArray[np.float64]


@dataclass
class WriteStats:
    """Counts of one write, turned into the ingest report."""

    values_read: int = 0
    values_written: int = 0
    values_new: int = 0
    values_changed: int = 0
    values_unchanged: int = 0
    values_kept: int = 0
    values_snapped: int = 0
    duplicates_dropped: int = 0
    duplicates_resolved: int = 0
    gaps: int = 0
    longest_gap: int = 0
    """Longest gap in grid steps (missing samples + 1)."""
    start: int | None = None
    stop: int | None = None
    channels_written: list[str] = field(default_factory=list)


class Revisit(Exception):
    """A batch went back to a chunk that was already written early."""


class ChunkBuf:
    """Staged values of one chunk: values, how many input samples hit each cell, first line.

    ``[lo, hi)`` bounds the positions any sample has hit so far (empty when ``lo >= hi``):
    a sorted stream's next segment lies outside it, so it is copied in without looking at
    the counts already there.
    """

    __slots__ = ("count", "hi", "line", "lo", "values")

    def __init__(self, length: int, nch: int) -> None:
        # Channel-major so that each channel's values are contiguous.
        self.values: F8 = np.full((nch, length), np.nan)
        self.count = np.zeros((nch, length), dtype=np.uint32)
        self.line = np.zeros(length, dtype=np.int64)
        self.lo, self.hi = length, 0

    @property
    def nbytes(self) -> int:
        """Memory held by the buffer."""
        return self.values.nbytes + self.count.nbytes + self.line.nbytes

    def reset(self) -> ChunkBuf:
        """Empty the buffer for reuse (cheaper than new memory: no page faults)."""
        self.values.fill(np.nan)
        self.count.fill(0)
        self.line.fill(0)
        self.lo, self.hi = self.line.size, 0
        return self


class Staging:
    """Gridded, de-duplicated values of one input, chunk by chunk, in bounded memory."""

    def __init__(
        self,
        grid: Grid,
        channels: list[str],
        options: IngestOptions,
        file: str,
        transforms: dict[str, Callable[[F8], F8]] | None = None,
        memory_budget: int = 1 << 30,
        spill_dir: Path | None = None,
        sink: Callable[[int, ChunkBuf], None] | None = None,
        early: bool = False,
    ) -> None:
        self.grid = grid
        self.channels = channels
        self.options = options
        self.file = file
        self.transforms = transforms or {}
        self.tolerance = parse_duration(options.off_grid_tolerance or "0s") or 0
        self.mean = options.duplicates == "mean" or options.off_grid == "mean"
        self.memory_budget = memory_budget
        self.sink = sink
        self.early = early and sink is not None
        self._spill_parent = spill_dir
        self._spill: tempfile.TemporaryDirectory[str] | None = None
        self.bufs: dict[int, ChunkBuf] = {}
        self.spilled: dict[int, Path] = {}
        self.done: set[int] = set()
        self.pool: list[ChunkBuf] = []
        self.stats = WriteStats()

    # ---- adding ----------------------------------------------------------------------
    def add(self, batch: RawBatch) -> None:
        """Place one batch on the grid, applying the off-grid and duplicate policies."""
        n = len(batch.times)
        if n == 0:
            return
        idx, off = self.grid.snap(batch.times)
        self._check_grid(batch, idx, off)
        self.stats.values_snapped += int(np.count_nonzero(off)) * len(self.channels)
        cols = [self._column(batch, name) for name in self.channels]
        lines = batch.lines
        if n > 1 and not np.all(idx[1:] >= idx[:-1]):
            order = np.argsort(idx, kind="stable")
            idx, lines = idx[order], lines[order]
            cols = [c[order] for c in cols]
        valid = [np.equal(c, c) for c in cols]  # not NaN, in one pass
        self.stats.values_read += sum(int(np.count_nonzero(v)) for v in valid)
        length = self.grid.chunk_len
        chunk_ids = idx // length
        bounds = np.flatnonzero(chunk_ids[1:] != chunk_ids[:-1]) + 1
        starts = np.r_[0, bounds]
        stops = np.r_[bounds, n]
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            c = int(chunk_ids[a])
            if c in self.done:
                raise Revisit(c)
            self._add_segment(
                c,
                idx[a:b] - c * length,
                lines[a:b],
                [col[a:b] for col in cols],
                [v[a:b] for v in valid],
            )
        if self.early:
            position = int(chunk_ids[-1])
            for c in sorted(k for k in self.bufs if k < position):
                self._hand(c)

    def _column(self, batch: RawBatch, name: str) -> F8:
        col = np.asarray(batch.values[name], dtype=np.float64)
        if name in self.transforms:
            col = self.transforms[name](col)
        return col

    def _check_grid(
        self, batch: RawBatch, idx: npt.NDArray[np.int64], off: npt.NDArray[np.int64]
    ) -> None:
        if idx.size and idx.min() < 0:
            k = int(np.argmax(idx < 0))
            raise IngestError(
                f"{self.file}: times before 1970-01-01 cannot be stored",
                [
                    Location(
                        self.file, int(batch.lines[k]), None, str(self.grid.time_of(int(idx[k])))
                    )
                ],
            )
        if self.options.off_grid != "error":
            return
        bad = np.flatnonzero(np.abs(off) > self.tolerance)
        if bad.size:
            interval = self.grid.interval_ns / 1e9
            locs = [
                Location(
                    self.file,
                    int(batch.lines[k]),
                    None,
                    f"{np.datetime64(int(batch.times[k]), 'ns')} is {off[k] / 1e9:+g} s from the "
                    f"grid point {np.datetime64(int(idx[k]) * self.grid.interval_ns, 'ns')}",
                )
                for k in bad[:MAX_LOCATIONS]
            ]
            raise IngestError(
                f"{self.file}: {bad.size} times in this part of the file are off the dataset's "
                f"{interval:g} s grid; snap them to the nearest grid point, average the samples "
                "of each grid point, or accept small offsets",
                locs,
                [
                    Fix("off_grid", "nearest"),
                    Fix("off_grid", "mean"),
                    Fix("off_grid_tolerance", example="100ms"),
                ],
            )

    def _buf(self, c: int) -> ChunkBuf:
        buf = self.bufs.get(c)
        if buf is not None:
            return buf
        path = self.spilled.pop(c, None)
        buf = self.pool.pop() if self.pool else ChunkBuf(self.grid.chunk_len, len(self.channels))
        if path is not None:
            with np.load(path) as z:
                buf.values[:], buf.count[:], buf.line[:] = z["values"], z["count"], z["line"]
            buf.lo, buf.hi = 0, buf.line.size
            path.unlink()
        self._make_room(c, buf.nbytes)
        self.bufs[c] = buf
        return buf

    def _make_room(self, current: int, need: int) -> None:
        held = sum(b.nbytes for b in self.bufs.values())
        # Spill chunks the (mostly sorted) stream has passed first, then any others.
        for c in sorted(self.bufs, key=lambda k: (k >= current, k)):
            if held + need <= self.memory_budget:
                break
            if self._spill is None:
                self._spill = tempfile.TemporaryDirectory(
                    prefix="stream0d-stage-", dir=self._spill_parent
                )
            buf = self.bufs.pop(c)
            path = Path(self._spill.name) / f"{c}.npz"
            np.savez(path, values=buf.values, count=buf.count, line=buf.line)
            self.spilled[c] = path
            held -= buf.nbytes

    def _add_segment(
        self,
        c: int,
        pos: npt.NDArray[np.int64],
        lines: npt.NDArray[np.int64],
        cols: list[F8],
        valid: list[npt.NDArray[np.bool_]],
    ) -> None:
        buf = self._buf(c)
        p0, p1 = int(pos[0]), int(pos[-1]) + 1  # pos is sorted
        fresh = p1 <= buf.lo or p0 >= buf.hi  # no sample of this input has been here yet
        buf.lo, buf.hi = min(buf.lo, p0), max(buf.hi, p1)
        if fresh and p1 - p0 == pos.size:  # sorted input: a run of new grid points
            buf.line[p0:p1] = lines
            for j, (v, m) in enumerate(zip(cols, valid, strict=True)):
                buf.values[j, p0:p1] = v
                buf.count[j, p0:p1] = m
            return
        first = np.r_[True, pos[1:] != pos[:-1]]
        upos = pos[first]
        buf.line[upos] = np.where(buf.line[upos] == 0, lines[first], buf.line[upos])
        dup_within = not bool(first.all())
        contiguous = not dup_within and p1 - p0 == pos.size
        for j, (v, m) in enumerate(zip(cols, valid, strict=True)):
            if contiguous and not buf.count[j, p0:p1].any():
                buf.values[j, p0:p1] = v
                buf.count[j, p0:p1] = m
                continue
            if not m.any():
                continue
            p, x, ln = pos[m], v[m], lines[m]
            if not dup_within and not buf.count[j, p].any():
                buf.values[j, p] = x
                buf.count[j, p] = 1
                continue
            self._merge_duplicates(c, buf, j, p, x, ln)

    def _merge_duplicates(
        self,
        c: int,
        buf: ChunkBuf,
        j: int,
        p: npt.NDArray[np.int64],
        x: F8,
        ln: npt.NDArray[np.int64],
    ) -> None:
        starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
        ends = np.r_[starts[1:], p.size]
        u = p[starts]
        cnt = ends - starts
        ec = buf.count[j, u].astype(np.int64)
        ev = buf.values[j, u]
        has_prev = ec > 0
        gmin = np.minimum.reduceat(x, starts)
        gmax = np.maximum.reduceat(x, starts)
        equal = (gmin == gmax) & (~has_prev | (ev == gmin))
        extra = cnt - 1 + has_prev
        policy = self.options.duplicates
        if self.mean:
            gsum = np.add.reduceat(x, starts)
            newv = (np.where(has_prev, ev * ec, 0.0) + gsum) / (ec + cnt)
        elif policy == "last":
            newv = x[ends - 1]
        else:
            newv = np.where(has_prev, ev, x[starts])
            if policy == "error" and not equal.all():
                self._raise_conflicts(c, buf, j, u, starts, ends, has_prev, ev, x, ln, ~equal)
        self.stats.duplicates_dropped += int(extra[equal].sum())
        self.stats.duplicates_resolved += int(extra[~equal].sum())
        buf.values[j, u] = newv
        buf.count[j, u] = ec + cnt

    def _raise_conflicts(
        self,
        c: int,
        buf: ChunkBuf,
        j: int,
        u: npt.NDArray[np.int64],
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
        has_prev: npt.NDArray[np.bool_],
        ev: F8,
        x: F8,
        ln: npt.NDArray[np.int64],
        conflict: npt.NDArray[np.bool_],
    ) -> None:
        name = self.channels[j]
        locs, details = [], []
        for k in np.flatnonzero(conflict)[:MAX_LOCATIONS]:
            group = x[starts[k] : ends[k]]
            ref = ev[k] if has_prev[k] else group[0]
            ref_line = int(buf.line[u[k]]) if has_prev[k] else int(ln[starts[k]])
            other = int(np.argmax(group != ref))
            when = self.grid.time_of(c * self.grid.chunk_len + int(u[k]))
            locs.append(
                Location(self.file, int(ln[starts[k] + other]), name, repr(float(group[other])))
            )
            details.append(
                f"{when.isoformat()}: line {ref_line} has {float(ref)!r}, "
                f"line {int(ln[starts[k] + other])} has {float(group[other])!r}"
            )
        raise IngestError(
            f"{self.file}: duplicate timestamps with different values in channel {name!r} "
            f"(first: {details[0]}). Nothing was stored; choose which value to keep (the "
            "last, the first) or their mean.",
            locs,
            [Fix("duplicates", p) for p in ("last", "first", "mean")],
        )

    # ---- handing chunks on -------------------------------------------------------------
    def _hand(self, c: int) -> None:
        buf = self._buf(c)
        del self.bufs[c]
        self.done.add(c)
        assert self.sink is not None
        self.sink(c, buf)

    def release(self, buf: ChunkBuf) -> None:
        """Take back a buffer the sink has finished with."""
        self.pool.append(buf.reset())

    def finish(self) -> None:
        """Hand every remaining chunk to the sink, ascending."""
        for c in sorted({*self.bufs, *self.spilled}):
            self._hand(c)

    def close(self) -> None:
        """Drop buffers and spill files."""
        self.bufs.clear()
        self.spilled.clear()
        self.pool.clear()
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None


class Applier:
    """Merges finished chunks into a write session; writes run on a background thread."""

    def __init__(self, view: WriteView, channels: list[str], on_existing: str, file: str) -> None:
        self.view = view
        self.grid = view.grid
        self.channels = channels
        self.on_existing = on_existing
        self.file = file
        self.stats = WriteStats()
        self.ext_start: int | None = view.meta.get("start")
        self.ext_stop: int | None = view.meta.get("stop")
        self.written: set[str] = set()
        self.prev_row: int | None = None
        self.first_row: int | None = None
        self.release: Callable[[ChunkBuf], None] = lambda buf: None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="stream0d-write")
        self._pending: deque[tuple[Future[None], ChunkBuf]] = deque()

    def __call__(self, c: int, buf: ChunkBuf) -> None:
        """Merge chunk ``c`` with what is stored and queue the changed channels' writes."""
        length = self.grid.chunk_len
        base = c * length
        if base + length > self.view.shape:
            self._drain()
            self.view.ensure_stop(base + GROW_CHUNKS * length)
        stats = self.stats
        maybe_stored = (
            self.ext_start is not None
            and self.ext_stop is not None
            and base < self.ext_stop
            and base + length > self.ext_start
        )
        writes: dict[str, F8] = {}
        for j, name in enumerate(self.channels):
            counts = buf.count[j]
            nhit = int(np.count_nonzero(counts))
            if nhit == 0:
                continue
            new = buf.values[j]
            if not maybe_stored:  # nothing stored here: every staged value is new
                stats.values_new += nhit
                writes[name] = new
                continue
            hit = counts > 0
            old = self.view.read(name, base, base + length)
            missing = np.isnan(old)
            same = hit & (old == new)
            is_new = hit & missing
            changed = hit & ~missing & ~same
            if changed.any() and self.on_existing == "error":
                self._drain()
                ks = np.flatnonzero(changed)[:MAX_LOCATIONS]
                when = self.grid.time_of(base + int(ks[0])).isoformat()
                raise IngestError(
                    f"{self.file}: {int(changed.sum())} values in channel {name!r} differ from "
                    f"stored ones, and changing stored values was refused; first at {when}: "
                    f"stored {float(old[ks[0]])!r}, file {float(new[ks[0]])!r}. Nothing was stored.",
                    [Location(self.file, int(buf.line[k]), name, repr(float(new[k]))) for k in ks],
                    [Fix("on_existing", "overwrite"), Fix("on_existing", "keep")],
                )
            stats.values_unchanged += int(same.sum())
            stats.values_new += int(is_new.sum())
            if self.on_existing == "keep":
                stats.values_kept += int(changed.sum())
                write = is_new
            else:
                stats.values_changed += int(changed.sum())
                write = is_new | changed
            if write.any():
                writes[name] = np.where(write, new, old)
        self._track_rows(base, buf)
        self.written.update(writes)
        while len(self._pending) >= IN_FLIGHT:
            self._wait_oldest()
        self._pending.append((self._pool.submit(self.view.write_many, base, writes), buf))

    def _track_rows(self, base: int, buf: ChunkBuf) -> None:
        rows = np.flatnonzero(buf.count.any(axis=0)) + base
        if not rows.size:
            return
        if self.first_row is None:
            self.first_row = int(rows[0])
        steps = np.diff(rows) if self.prev_row is None else np.diff(np.r_[self.prev_row, rows])
        gaps = steps[steps > 1]
        self.stats.gaps += int(gaps.size)
        if gaps.size:
            self.stats.longest_gap = max(self.stats.longest_gap, int(gaps.max()))
        self.prev_row = int(rows[-1])

    def _wait_oldest(self) -> None:
        fut, buf = self._pending.popleft()
        fut.result()
        self.release(buf)

    def _drain(self) -> None:
        while self._pending:
            self._wait_oldest()

    def finish(self) -> WriteStats:
        """Wait for every write, record the new extent, and return the counts."""
        self._drain()
        self._pool.shutdown()
        st = self.stats
        st.values_written = st.values_new + st.values_changed
        st.start = self.first_row
        st.stop = None if self.prev_row is None else self.prev_row + 1
        st.channels_written = [c for c in self.channels if c in self.written]
        if self.written and self.first_row is not None and self.prev_row is not None:
            self.view.extend_extent(self.first_row, self.prev_row + 1)
        return st

    def abort(self) -> None:
        """Stop after an error: wait for queued writes (the session is discarded anyway)."""
        for fut, _ in self._pending:
            fut.exception()
        self._pending.clear()
        self._pool.shutdown()


def merge_stats(staged: WriteStats, applied: WriteStats) -> WriteStats:
    """Counts from reading (staging) and from merging (applier) in one record."""
    for name in ("values_read", "values_snapped", "duplicates_dropped", "duplicates_resolved"):
        setattr(applied, name, getattr(staged, name))
    return applied


def stage_and_apply(
    view: WriteView,
    batches: Callable[[], Iterable[RawBatch]],
    channels: list[str],
    options: IngestOptions,
    file: str,
    transforms: dict[str, Callable[[F8], F8]] | None,
    memory_budget: int,
    spill_dir: Path | None,
    early: bool,
    progress: Callable[[int], None] | None = None,
) -> WriteStats:
    """Stream batches through staging into the session; ``Revisit`` when early writes fail."""
    applier = Applier(view, channels, options.on_existing, file)
    staging = Staging(
        view.grid,
        channels,
        options,
        file,
        transforms,
        memory_budget,
        spill_dir,
        sink=applier,
        early=early,
    )
    applier.release = staging.release
    try:
        for batch in batches():
            staging.add(batch)
            if progress is not None:
                progress(batch.bytes_read)
        staging.finish()
        return merge_stats(staging.stats, applier.finish())
    except BaseException:
        applier.abort()
        raise
    finally:
        staging.close()
