"""The append buffer as the store sees it: durable rows in SQL, overlaid on every read.

An append (``Store.append``) puts rows on the dataset's grid and stores what is new in
``append_segments`` (``db.buffer_tables``) in one durable SQL transaction: that is the
acknowledgement. Nothing is written to the Icechunk repository then; a fold
(``store.fold``) later moves whole chunks of buffered rows into it as one commit.

Reads see buffered rows at once: ``DatasetData.snapshot()`` at the head (the live view)
first brings this process's copy of the buffer up to date (one small SQL query; new
segments only), then looks up the head, and answers a ``LiveSnapshot`` whose arrays
overlay the buffered values on the committed ones. Reading the buffer *before* the head
is what makes a fold invisible to readers: a fold commits its rows before deleting them
from the buffer, so whatever the buffer no longer holds, the head read after it does.

The copy of the buffer (``BufferView``) is immutable: values in blocks of ``BLOCK`` grid
points per channel, replaced (copy on write) when segments arrive, so a read holds one
consistent view for all its channels however many appends land meanwhile.

Appends of one process commit in groups: the first to arrive stores every append that
waits, its own included, in one durable transaction (one ``fsync``), while the ones
arriving meanwhile queue for the next group. Each is acknowledged once its group is
committed; a group that fails is stored again append by append, so that one bad append
(its dataset deleted meanwhile) fails alone.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numcodecs import Zstd

from stream0d_nb.db.buffer_tables import BufferTables, LockedBuffer, Segment, actor_key
from stream0d_nb.db.registry import Registry
from stream0d_nb.errors import Fix, ValidationError
from stream0d_nb.specs import AppendReport, IngestOptions, parse_duration
from stream0d_nb.store.grid import Grid
from stream0d_nb.store.repo import Snapshot

__all__ = [
    "BLOCK",
    "AppendBuffer",
    "BufferView",
    "LiveSnapshot",
    "Prepared",
    "decode",
    "encode",
    "merge_segments",
    "prepare",
]

BLOCK = 4096
"""Grid points per block of the in-memory buffer (one channel: 32 KiB)."""
F8 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int64]
_MAGIC = b"S0A1"
_HEAD = struct.Struct("<4sIIBB")  # magic, rows, channels, contiguous, compressed
_ZSTD = Zstd(level=1)
_COMPRESS_ABOVE = 256  # values; smaller payloads are stored as they are


# ---- segment payloads --------------------------------------------------------------------
def encode(idx: I8, names: list[str], values: F8) -> bytes:
    """A segment's payload: sorted unique grid indices, channel names, values (channels x
    rows, NaN = no value). Contiguous indices are stored as their first; zstd above a few
    hundred values."""
    n = int(idx.size)
    contiguous = n > 0 and int(idx[-1]) - int(idx[0]) + 1 == n
    text = "\x00".join(names).encode()
    body = (
        struct.pack("<q", int(idx[0]) if n else 0)
        if contiguous
        else np.ascontiguousarray(idx, "<i8").tobytes()
    )
    body += struct.pack("<I", len(text)) + text + np.ascontiguousarray(values, "<f8").tobytes()
    packed = n * len(names) > _COMPRESS_ABOVE
    if packed:
        body = bytes(_ZSTD.encode(body))
    return _HEAD.pack(_MAGIC, n, len(names), contiguous, packed) + body


def decode(payload: bytes) -> tuple[I8, list[str], F8]:
    """The ``(idx, names, values)`` of a payload made by ``encode``."""
    magic, n, nch, contiguous, packed = _HEAD.unpack_from(payload)
    if magic != _MAGIC:
        raise ValueError("not an append segment")
    body = bytes(_ZSTD.decode(payload[_HEAD.size :])) if packed else payload[_HEAD.size :]
    if contiguous:
        (first,) = struct.unpack_from("<q", body)
        idx = np.arange(first, first + n, dtype=np.int64)
        at = 8
    else:
        idx = np.frombuffer(body, "<i8", n).astype(np.int64)
        at = 8 * n
    (tlen,) = struct.unpack_from("<I", body, at)
    at += 4
    names = body[at : at + tlen].decode().split("\x00") if nch else []
    at += tlen
    values = np.frombuffer(body, "<f8", n * nch, at).astype(np.float64).reshape(nch, n)
    return idx, names, values


def merge_segments(segments: Iterable[Segment], first: int, stop: int) -> dict[str, F8]:
    """Values of grid indices ``[first, stop)`` per channel after applying ``segments`` in
    order (later ones win; NaN = no value)."""
    out: dict[str, F8] = {}
    for seg in segments:
        idx, names, values = decode(seg.payload)
        pos = idx - first
        for j, name in enumerate(names):
            v = values[j]
            ok = ~np.isnan(v)
            if not ok.any():
                continue
            col = out.get(name)
            if col is None:
                col = out[name] = np.full(stop - first, np.nan)
            col[pos[ok]] = v[ok]
    return out


# ---- the in-memory view -------------------------------------------------------------------
@dataclass(frozen=True)
class BufferView:
    """An immutable copy of a dataset's buffer: per channel, blocks of ``BLOCK`` values.

    ``seq`` is the newest segment applied, ``fold_gen`` the fold generation it was read
    at; ``extent`` per channel is ``(first, stop)`` of its buffered grid indices.
    """

    seq: int = 0
    fold_gen: int = 0
    blocks: dict[str, dict[int, F8]] = field(default_factory=dict)
    extent: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether nothing is buffered."""
        return not self.extent

    @property
    def span(self) -> tuple[int, int] | None:
        """``(first, stop)`` of every buffered grid index, None when empty."""
        if not self.extent:
            return None
        return min(a for a, _ in self.extent.values()), max(b for _, b in self.extent.values())

    def apply(self, name: str, start: int, out: F8) -> None:
        """Put the buffered values of ``name`` over ``out`` (grid indices from ``start``)."""
        blocks = self.blocks.get(name)
        span = self.extent.get(name)
        stop = start + out.size
        if not blocks or span is None or span[1] <= start or span[0] >= stop:
            return
        for b in range(max(start, span[0]) // BLOCK, (min(stop, span[1]) - 1) // BLOCK + 1):
            block = blocks.get(b)
            if block is None:
                continue
            lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
            part = block[lo - b * BLOCK : hi - b * BLOCK]
            ok = ~np.isnan(part)
            if ok.any():
                target = out[lo - start : hi - start]
                target[ok] = part[ok]

    def values(self, name: str, idx: I8) -> F8:
        """Buffered values of ``name`` at the grid indices ``idx`` (NaN where none)."""
        return self.take([name], idx)[0]

    def take(self, names: list[str], idx: I8) -> F8:
        """Buffered values of ``names`` (rows) at the grid indices ``idx`` (NaN where none)."""
        out = np.full((len(names), idx.size), np.nan)
        if idx.size == 0 or not any(n in self.blocks for n in names):
            return out
        bno = idx // BLOCK
        parts = [(b, bno == b) for b in np.unique(bno).tolist()]
        for j, name in enumerate(names):
            blocks = self.blocks.get(name)
            if not blocks:
                continue
            for b, at in parts:
                block = blocks.get(b)
                if block is not None:
                    out[j, at] = block[idx[at] - b * BLOCK]
        return out

    def with_segments(self, segments: Iterable[Segment], seq: int, fold_gen: int) -> BufferView:
        """A new view: this one with ``segments`` applied in order (copy on write)."""
        blocks = dict(self.blocks)
        extent = dict(self.extent)
        copied: set[tuple[str, int]] = set()
        for seg in segments:
            idx, names, values = decode(seg.payload)
            if idx.size == 0:
                continue
            bno = idx // BLOCK  # the segment's blocks, found once for all its channels
            first, last = int(bno[0]), int(bno[-1])
            parts: list[tuple[int, Any]] = (
                [(first, slice(None))]
                if first == last
                else [(b, bno == b) for b in np.unique(bno).tolist()]
            )
            ok = ~np.isnan(values)
            for j in np.flatnonzero(ok.any(axis=1)).tolist():
                name = names[j]
                chan = blocks[name] = dict(blocks.get(name, {}))
                for b, sel in parts:
                    okj = ok[j, sel]
                    if not okj.any():
                        continue
                    if (name, b) not in copied:
                        old = chan.get(b)
                        chan[b] = np.full(BLOCK, np.nan) if old is None else old.copy()
                        copied.add((name, b))
                    chan[b][idx[sel][okj] - b * BLOCK] = values[j, sel][okj]
                pos = idx[ok[j]]  # sorted: its ends are the extent
                lo, hi = int(pos[0]), int(pos[-1]) + 1
                prev = extent.get(name)
                extent[name] = (lo, hi) if prev is None else (min(prev[0], lo), max(prev[1], hi))
        return BufferView(seq, fold_gen, blocks, extent)


class _DatasetBuffer:
    """This process's view of one dataset's buffer and the lock that updates it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.view = BufferView()

    def update(self, last: int, gen: int, segments: list[Segment]) -> BufferView:
        """Apply what ``BufferTables.read``/``LockedBuffer`` returned (lock held)."""
        base = self.view if gen == self.view.fold_gen else BufferView()
        if segments or gen != self.view.fold_gen or last > self.view.seq:
            self.view = base.with_segments(segments, max(last, base.seq), gen)
        return self.view


# ---- live snapshots ---------------------------------------------------------------------
class OverlaidArray:
    """A channel's Zarr array with the buffered values over it (reads by slices only)."""

    def __init__(self, array: Any, view: BufferView, name: str, length: int) -> None:
        self.array = array
        self.view = view
        self.name = name
        self.shape = (length,)

    def __getitem__(self, key: slice) -> F8:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("buffered arrays are read by slices")
        a, b, _ = key.indices(self.shape[0])
        out = np.full(max(b - a, 0), np.nan)
        hi = min(b, self.array.shape[0])
        if hi > a:
            out[: hi - a] = self.array[a:hi]
        self.view.apply(self.name, a, out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.array, name)


class LiveSnapshot(Snapshot):
    """A snapshot (the head when read) with the buffered rows over it.

    ``id`` stays the commit's id: the buffered rows are in no commit yet, so a read
    ``as_of`` that id later gives the committed data only. Pass the object itself as
    ``as_of`` to read again exactly what this view holds.
    """

    def __init__(self, base: Snapshot, view: BufferView) -> None:
        self.__dict__.update(base.__dict__)
        self.base = base
        self.buffer = view
        span = view.span
        if span is not None:
            self.start = span[0] if base.start is None else min(base.start, span[0])
            self.stop = span[1] if base.stop is None else max(base.stop, span[1])

    def array(self, name: str) -> Any:
        """The channel's array, buffered values included."""
        arr = self.base.array(name)
        ext = self.buffer.extent.get(name)
        if ext is None:
            return arr
        length = max(arr.shape[0], self.grid.shape_for(ext[1]))
        return OverlaidArray(arr, self.buffer, name, length)


# ---- appending --------------------------------------------------------------------------
TARGET_SECONDS = 5.0


@dataclass(frozen=True)
class Target:
    """A dataset as appends see it: its grid, its zone and its channels (``created``: when
    the dataset was made, which tells a dataset made again under the same id)."""

    grid: Grid
    tz: str
    channels: frozenset[str]
    created: datetime | None = None


@dataclass
class Prepared:
    """Rows of an append on the grid: sorted unique indices, channels, values."""

    idx: I8
    names: list[str]
    values: F8
    snapped: int = 0

    @property
    def n_values(self) -> int:
        """Values that are not missing."""
        return int(np.count_nonzero(~np.isnan(self.values)))


def prepare(
    grid: Grid,
    frame: pd.DataFrame,
    channels: Iterable[str],
    off_grid: str = "error",
    off_grid_tolerance: str | None = None,
) -> Prepared:
    """Put a frame (UTC ``DatetimeIndex``, one float column per channel) on the grid.

    Refuses what ingest refuses by default: unknown channels, times before 1970, times
    off the grid (unless ``off_grid='nearest'`` or within the tolerance), and one time
    given twice with different values; equal repeats are dropped.
    """
    known = set(channels)
    unknown = [str(c) for c in frame.columns if c not in known]
    if unknown:
        raise ValidationError(
            f"the dataset has no channel {', '.join(map(repr, unknown))}; appends only go to "
            "existing channels (create them first, or ingest a file)"
        )
    if off_grid not in ("error", "nearest"):
        raise ValidationError(f"off_grid must be 'error' or 'nearest', not {off_grid!r}")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValidationError("appended rows need timezone-aware times")
    names = [str(c) for c in frame.columns]
    times = index.tz_convert("UTC").as_unit("ns").asi8
    values = np.ascontiguousarray(frame.to_numpy(dtype=np.float64, na_value=np.nan).T)
    if values.size and not np.isfinite(values[~np.isnan(values)]).all():
        raise ValidationError("appended values must be finite numbers (or missing)")
    idx, off = grid.snap(times)
    if idx.size and idx.min() < 0:
        raise ValidationError("times before 1970-01-01 cannot be stored")
    tolerance = parse_duration(off_grid_tolerance or "0s") or 0
    if off_grid == "error":
        bad = np.flatnonzero(np.abs(off) > tolerance)
        if bad.size:
            k = int(bad[0])
            raise ValidationError(
                f"{bad.size} times are off the dataset's {grid.interval_ns / 1e9:g} s grid, "
                f"e.g. {pd.Timestamp(times[k], tz='UTC').isoformat()}: send grid times, snap "
                "them to the nearest grid point, or accept small offsets"
            ).with_fixes([Fix("off_grid", "nearest"), Fix("off_grid_tolerance", example="100ms")])
    snapped = int(np.count_nonzero(off)) * len(names)
    order = np.argsort(idx, kind="stable")
    idx, values = idx[order], values[:, order]
    if idx.size > 1 and (dup := idx[1:] == idx[:-1]).any():
        keep = np.r_[True, ~dup]
        for j, name in enumerate(names):  # repeats must agree where both have a value
            a, b = values[j, :-1][dup], values[j, 1:][dup]
            clash = ~np.isnan(a) & ~np.isnan(b) & (a != b)
            if clash.any():
                at = pd.Timestamp(int(idx[1:][dup][clash][0]) * grid.interval_ns, tz="UTC")
                raise ValidationError(
                    f"time {at.isoformat()} is given twice with different values of "
                    f"{name!r}: send one value per time"
                )
        starts = np.flatnonzero(keep)
        merged = np.full((len(names), starts.size), np.nan)
        for j in range(len(names)):  # the last value given at each time
            col = values[j]
            pos = np.flatnonzero(~np.isnan(col))
            group = np.searchsorted(starts, pos, side="right") - 1
            merged[j, group] = col[pos]
        idx, values = idx[starts], merged
    return Prepared(idx.astype(np.int64), names, values, snapped)


def file_frames(
    path: str | Path, options: IngestOptions, tz: str, units: dict[str, str]
) -> Iterator[pd.DataFrame]:
    """A file's rows, read as ingest reads them, as frames for ``Store.append`` (UTC
    index), converted to the stored ``units`` where the file declares others."""
    from stream0d_nb.ingest import open_source
    from stream0d_nb.units import converter

    source = open_source(path, options, default_tz=tz)
    info = source.info
    convert: dict[str, Callable[[F8], F8]] = {}
    for ch in info.channels:
        declared = options.units.get(ch) or info.units.get(ch)
        if ch in units and declared and declared != units[ch]:
            fn = converter(declared, units[ch])
            if fn is not None:
                convert[ch] = fn
    for batch in source.batches():
        cols = {c: convert[c](v) if c in convert else v for c, v in batch.values.items()}
        index = pd.DatetimeIndex(batch.times.astype("datetime64[ns]")).tz_localize("UTC")
        yield pd.DataFrame(cols, index=index)


class AppendBuffer:
    """The buffers of a store's datasets: durable appends, cached views (thread-safe)."""

    def __init__(self, registry: Registry) -> None:
        self.tables = BufferTables(registry)
        self._buffers: dict[str, _DatasetBuffer] = {}
        self._targets: dict[str, tuple[float, Target]] = {}
        self._lock = threading.Lock()
        self._turn = threading.Condition()  # group commits: who waits, whether one runs
        self._waiting: list[_Append] = []
        self._leading = False

    def target(self, dataset_id: str, load: Callable[[], Target], fresh: bool = False) -> Target:
        """What an append needs of a dataset (grid, zone, channels), reused for
        ``TARGET_SECONDS`` (``fresh``: loaded again, e.g. to check an unknown channel)."""
        now = time.monotonic()
        hit = self._targets.get(dataset_id)
        if hit is None or fresh or now - hit[0] > TARGET_SECONDS:
            hit = self._targets[dataset_id] = (now, load())
        return hit[1]

    def grid_of(self, dataset_id: str, created: datetime) -> Grid | None:
        """The grid of the dataset made at ``created`` if known already: a dataset's grid
        never changes, and reading it from the repository opens the head's arrays (slow
        after every fold, which makes a new head)."""
        hit = self._targets.get(dataset_id)
        return hit[1].grid if hit is not None and hit[1].created == created else None

    def _buffer(self, dataset_id: str) -> _DatasetBuffer:
        with self._lock:
            buf = self._buffers.get(dataset_id)
            if buf is None:
                buf = self._buffers[dataset_id] = _DatasetBuffer()
            return buf

    def forget(self, dataset_id: str) -> None:
        """Drop the cached view (the dataset was deleted)."""
        with self._lock:
            self._buffers.pop(dataset_id, None)
            self._targets.pop(dataset_id, None)
        self.tables.forget(dataset_id)

    def view(self, dataset_id: str) -> BufferView:
        """The dataset's buffer as committed now (new segments fetched; all of them again
        after a fold)."""
        buf = self._buffer(dataset_id)
        with buf.lock:
            last, gen, segments = self.tables.read(dataset_id, buf.view.seq, buf.view.fold_gen)
            return buf.update(last, gen, segments)

    def live(self, dataset_id: str) -> Callable[[Callable[[], Snapshot]], Snapshot]:
        """The hook ``DatasetData.snapshot`` calls for head reads: the buffer first, then
        the head, overlaid."""

        def at_head(head: Callable[[], Snapshot]) -> Snapshot:
            view = self.view(dataset_id)
            snap = head()
            return snap if view.empty else LiveSnapshot(snap, view)

        return at_head

    def append(self, dataset_id: str, grid: Grid, rows: Prepared, actor: str) -> AppendReport:
        """Store what ``rows`` change in the buffer, durably (with the appends of other
        threads waiting meanwhile: one transaction for the group).

        Values equal to the buffered ones are dropped (a re-sent row stores nothing); a
        different value for the same channel and time is stored and wins (last write wins,
        in acknowledgement order). Returns counts; the caller fills times and channels.
        """
        item = _Append(dataset_id, grid, rows, actor_key(actor), time.perf_counter())
        group: list[_Append] = []
        with self._turn:
            self._waiting.append(item)
            while not item.done:
                if not self._leading:  # store the group that waits, this append's included
                    self._leading = True
                    group, self._waiting = self._waiting, []
                    break
                self._turn.wait()
        if group:
            try:
                self._store(group)
            finally:
                with self._turn:
                    self._leading = False
                    self._turn.notify_all()
        if item.error is not None:
            raise item.error
        assert item.report is not None
        return item.report

    def _store(self, group: list[_Append]) -> None:
        """Commit ``group`` in one transaction; if that fails, each append on its own."""
        try:
            try:
                self._commit(group)
            except Exception:
                if len(group) == 1:
                    raise
                for item in group:
                    try:
                        self._commit([item])
                    except Exception as exc:
                        item.error = exc
        except BaseException as exc:
            for item in group:
                if item.report is None and item.error is None:
                    item.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for item in group:
                item.done = True

    def _commit(self, group: list[_Append]) -> None:
        """One durable transaction storing ``group``; the views (whose locks it holds)
        take the new segments once it is committed, and are read again if it fails."""
        names = sorted({item.dataset_id for item in group})
        bufs = {name: self._buffer(name) for name in names}
        now = pd.Timestamp.now(tz="UTC").to_pydatetime()
        with ExitStack() as held:
            for name in names:
                held.enter_context(bufs[name].lock)
            try:
                with self.tables.transaction(names) as lock:
                    # by dataset (stable: each dataset's appends keep their order), so that
                    # two processes' groups lock state rows in one order (PostgreSQL)
                    for item in sorted(group, key=lambda it: it.dataset_id):
                        _stage(lock(item.dataset_id), bufs[item.dataset_id], item, now)
            except BaseException:
                for name in names:  # they may hold segments of the failed transaction
                    bufs[name].view = BufferView()
                raise
            # committed: this process's views take the new segments without asking again
            for item in group:
                buf = bufs[item.dataset_id]
                if item.added:
                    buf.view = buf.view.with_segments(item.added, item.last, item.gen)
                item.report = item.answer()


@dataclass
class _Append:
    """One append waiting for its group's commit, then what it stored."""

    dataset_id: str
    grid: Grid
    rows: Prepared
    actor: str
    t0: float
    new_rows: Prepared | None = None
    added: list[Segment] = field(default_factory=list)
    last: int = 0
    gen: int = 0
    report: AppendReport | None = None
    error: BaseException | None = None
    done: bool = False

    def answer(self) -> AppendReport:
        """The report of the stored append."""
        rows = self.rows
        total = rows.n_values
        fresh = self.new_rows.n_values if self.new_rows is not None else total
        return AppendReport(
            dataset=self.dataset_id,
            rows=int(rows.idx.size),
            values=total,
            values_new=fresh,
            values_unchanged=total - fresh,
            values_snapped=rows.snapped,
            sequence=self.added[-1].seq if self.added else None,
            seconds=round(time.perf_counter() - self.t0, 4),
        )


def _stage(locked: LockedBuffer, buf: _DatasetBuffer, item: _Append, now: datetime) -> None:
    """Inside the group's transaction (the dataset's view lock held): bring the view up to
    date with what other processes stored, drop the values it holds already, add a
    segment per chunk touched."""
    rows, grid = item.rows, item.grid
    since = buf.view.seq if locked.fold_gen == buf.view.fold_gen else 0
    view = buf.update(locked.last_seq, locked.fold_gen, locked.segments_after(since))
    values = rows.values.copy()
    values[view.take(rows.names, rows.idx) == values] = np.nan
    keep_rows = ~np.isnan(values).all(axis=0)
    keep_cols = ~np.isnan(values).all(axis=1)
    names = [n for n, k in zip(rows.names, keep_cols, strict=True) if k]
    new_rows = Prepared(rows.idx[keep_rows], names, values[keep_cols][:, keep_rows])
    added: list[Segment] = []
    if new_rows.idx.size:
        chunks = new_rows.idx // grid.chunk_len
        cuts = np.flatnonzero(np.diff(chunks)) + 1
        for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, chunks.size].tolist(), strict=True):
            idx = new_rows.idx[a:b]
            part = new_rows.values[:, a:b]
            payload = encode(idx, names, part)
            n = int(np.count_nonzero(~np.isnan(part)))
            first, stop, chunk = int(idx[0]), int(idx[-1]) + 1, int(chunks[a])
            seq = locked.add(chunk, first, stop, n, payload, item.actor, now)
            added.append(Segment(seq, chunk, 0, first, stop, n, 1, now, now, {}, payload))
    locked.flush()
    item.new_rows, item.added = new_rows, added
    item.last, item.gen = locked.last_seq, locked.fold_gen
