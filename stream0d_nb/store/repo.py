"""One dataset's data: an Icechunk repository of float64 channel arrays on a fixed grid.

Layout (Zarr v3, root group): attribute ``stream0d`` holds the grid (``interval_ns``,
``chunk_len``) and the extent of stored samples (``start``, ``stop`` grid indices, stop
exclusive) and the chunk ``compression``; each channel is a 1-D float64 array (fill NaN)
with CF attributes and dimension name ``time``. Arrays always span whole chunks from the epoch, so writes are
whole-chunk regions and nothing ever shifts.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import icechunk as ic
import numpy as np
import pandas as pd
import zarr
from numcodecs import Blosc, Zstd
from numcodecs.abc import Codec
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync as zsync

from stream0d_nb.errors import (
    ChannelNotFoundError,
    DatasetNotFoundError,
    SnapshotNotFoundError,
    WriteConflictError,
)
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, CommitInfo
from stream0d_nb.store.grid import Grid
from stream0d_nb.store.storage import StorageLocation, icechunk_storage, writer_lock

FORMAT_VERSION = 1
BRANCH = "main"
DAILY_TAG = "daily-"
"""Tags ``daily-YYYY-MM-DD`` keep each old day's last commit (``store.retention``)."""
# zstd level 1: 1.5x faster to compress than the default (3) for ~20 % more bytes on
# sensor data; decompression speed is the same (bench/bench_store.py).
ZSTD_LEVEL = 1
# Repositories made before the choice existed have no "compression" in their metadata.
LEGACY_COMPRESSION = "zstd"
T = TypeVar("T")
_ENCODE_POOL: ThreadPoolExecutor | None = None
_ENCODE_POOL_LOCK = threading.Lock()


def _encode_pool() -> ThreadPoolExecutor:
    """Threads that compress whole chunks (numcodecs releases the GIL while compressing)."""
    global _ENCODE_POOL
    with _ENCODE_POOL_LOCK:
        if _ENCODE_POOL is None:
            _ENCODE_POOL = ThreadPoolExecutor(
                max(2, os.cpu_count() or 2), thread_name_prefix="stream0d-zstd"
            )
        return _ENCODE_POOL


def _forget_encode_pool() -> None:
    """In a forked child the parent's pool threads do not exist: start a new pool there."""
    global _ENCODE_POOL, _ENCODE_POOL_LOCK
    _ENCODE_POOL = None
    _ENCODE_POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_encode_pool)


def compressor_for(compression: str) -> BytesBytesCodec:
    """The Zarr codec of a dataset's ``compression`` (see ``specs.Compression``).

    ``lz4`` is Blosc LZ4 with byte shuffle, Zarr v2's default: about 10x less CPU to
    compress and 4x less to decompress than zstd, for 0-55 % more bytes on real sensor
    data (docs/storage.md). Both are core Zarr v3 codecs any reader understands.
    """
    if compression == "lz4":
        return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=8)
    if compression == "zstd":
        return ZstdCodec(level=ZSTD_LEVEL)
    raise ValueError(f"unknown compression {compression!r}; use lz4 or zstd")


def _chunk_encoder(arr: zarr.Array[Any]) -> Codec | None:
    """The compressor of ``arr``'s chunks when its codecs are bytes + zstd or blosc, else None.

    Whole chunks of such arrays are encoded here and stored directly: the stored bytes are
    those zarr writes (little-endian float64 bytes through the numcodecs codec configured
    as zarr configures it), without zarr's per-chunk asyncio pipeline, which cost ~25 % of
    a month's CSV ingest (bench/bench_store.py).
    """
    meta = arr.metadata
    codecs = getattr(meta, "codecs", None)
    if (
        sys.byteorder != "little"
        or arr.dtype != np.dtype("float64")
        or len(arr.shape) != 1
        or not isinstance(codecs, tuple | list)
        or len(codecs) != 2
    ):
        return None
    serializer, compressor = codecs
    endian = getattr(serializer, "endian", None)
    endian = getattr(endian, "value", endian)  # a str in zarr 3.4, an Enum before
    if not (isinstance(serializer, BytesCodec) and endian == "little"):
        return None
    if isinstance(compressor, ZstdCodec):
        return Zstd(level=compressor.level, checksum=compressor.checksum)
    if isinstance(compressor, BloscCodec) and compressor.typesize == 8:
        return Blosc(
            cname=_value(compressor.cname),
            clevel=compressor.clevel,
            shuffle={"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[_value(compressor.shuffle)],
            blocksize=compressor.blocksize,
            typesize=8,
        )
    return None


def _value(x: Any) -> str:
    """A codec setting as its string (an Enum in some zarr versions, a str in others)."""
    return str(getattr(x, "value", x))


def _meta(group: zarr.Group) -> dict[str, Any]:
    """The ``stream0d`` attribute of a dataset's root group (grid and extent)."""
    return dict(cast(dict[str, Any], group.attrs["stream0d"]))


def channel_order(meta: dict[str, Any], arrays: dict[str, Any]) -> list[str]:
    """Channels in the order they were created (Zarr lists arrays in no stable order)."""
    known = [c for c in meta.get("channels", []) if c in arrays]
    return known + sorted(set(arrays) - set(known))


class Snapshot:
    """A read-only view of a dataset at one snapshot, with its arrays opened once."""

    def __init__(self, session: ic.Session) -> None:
        self.id = session.snapshot_id
        self.group = zarr.open_group(store=session.store, mode="r")
        meta = _meta(self.group)
        self.grid = Grid(int(meta["interval_ns"]), int(meta["chunk_len"]))
        self.start: int | None = meta.get("start")
        self.stop: int | None = meta.get("stop")
        self._arrays: dict[str, zarr.Array[Any]] = dict(self.group.arrays())
        self.channels: dict[str, dict[str, Any]] = {
            name: dict(self._arrays[name].attrs) for name in channel_order(meta, self._arrays)
        }

    def array(self, name: str) -> Any:
        """The channel's array (a ``zarr.Array``; sliced only, as a live view's arrays are);
        ChannelNotFoundError names the channels there are."""
        try:
            return self._arrays[name]
        except KeyError:
            raise ChannelNotFoundError(
                f"no channel {name!r}; channels: {', '.join(sorted(self._arrays)) or '(none)'}"
            ) from None


AsOf = str | datetime | pd.Timestamp | Snapshot | None
"""What a read is of: the head (None), a snapshot id or a time, or an opened ``Snapshot``
(read again exactly: a live view at the head keeps the buffered rows it held)."""


class WriteView:
    """What a write transaction sees and changes: one writable session on the branch head."""

    def __init__(self, session: ic.Session) -> None:
        self.session = session
        self.group = zarr.open_group(store=session.store, mode="r+")
        self.meta = _meta(self.group)
        self.grid = Grid(int(self.meta["interval_ns"]), int(self.meta["chunk_len"]))
        self.arrays: dict[str, zarr.Array[Any]] = dict(self.group.arrays())
        self.base_snapshot = session.snapshot_id
        self._encoders: dict[str, Codec | None] = {}

    @property
    def shape(self) -> int:
        """Current length of every channel array."""
        return int(self.meta.get("shape", 0))

    def create_channel(self, spec: ChannelSpec) -> zarr.Array[Any]:
        """Add a channel array (same length as the others)."""
        arr = self.group.create_array(
            spec.name,
            shape=(max(self.shape, self.grid.chunk_len),),
            chunks=(self.grid.chunk_len,),
            dtype="float64",
            fill_value=np.nan,
            compressors=[compressor_for(self.meta.get("compression", LEGACY_COMPRESSION))],
            dimension_names=["time"],
            attributes=cast(dict[str, Any], spec.cf_attrs()),
        )
        self.arrays[spec.name] = arr
        self.meta["channels"] = [*channel_order(self.meta, self.arrays)]
        self._set_shape(max(self.shape, self.grid.chunk_len))
        return arr

    def update_channel_attrs(self, spec: ChannelSpec) -> None:
        """Replace a channel's CF attributes."""
        self.arrays[spec.name].attrs.update(cast(dict[str, Any], spec.cf_attrs()))

    def delete_channel(self, name: str) -> None:
        """Remove a channel array and its chunks from this version on."""
        if name not in self.arrays:
            raise ChannelNotFoundError(f"no channel {name!r}")
        del self.group[name]
        del self.arrays[name]
        self.meta["channels"] = [c for c in self.meta.get("channels", []) if c != name]
        self.group.attrs["stream0d"] = self.meta

    def ensure_stop(self, stop_index: int) -> None:
        """Grow every array (whole chunks) so that index ``stop_index - 1`` fits."""
        need = self.grid.shape_for(stop_index)
        if need > self.shape:
            for arr in self.arrays.values():
                arr.resize((need,))
            self._set_shape(need)

    def extend_extent(self, start: int, stop: int) -> None:
        """Widen the recorded extent of stored samples to include ``[start, stop)``."""
        old_start, old_stop = self.meta.get("start"), self.meta.get("stop")
        self.meta["start"] = start if old_start is None else min(old_start, start)
        self.meta["stop"] = stop if old_stop is None else max(old_stop, stop)
        self.group.attrs["stream0d"] = self.meta

    def _set_shape(self, n: int) -> None:
        self.meta["shape"] = n
        self.group.attrs["stream0d"] = self.meta

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Values of ``[start, stop)`` as this session sees them (NaN beyond the array)."""
        arr = self.arrays[name]
        out = np.full(stop - start, np.nan)
        hi = min(stop, arr.shape[0])
        if hi > start:
            out[: hi - start] = arr[start:hi]
        return out

    def write_many(self, start: int, columns: dict[str, np.ndarray]) -> None:
        """Write equal-length blocks of several channels at ``start``, concurrently.

        Whole chunks holding at least one value are compressed on a thread pool and
        stored as they are (see ``_chunk_encoder``); anything else (partial or empty
        chunks, other codecs) goes through zarr's ``setitem``.
        """
        if not columns:
            return
        direct: dict[str, tuple[str, Codec, np.ndarray]] = {}
        rest: dict[str, np.ndarray] = {}
        length = self.grid.chunk_len
        for name, v in columns.items():
            enc = self._encoder(name)
            whole = start % length == 0 and len(v) == length
            if enc is not None and whole and not _all_nan(v):
                key = self.arrays[name].metadata.encode_chunk_key((start // length,))
                direct[name] = (f"{self.arrays[name].path}/{key}", enc, v)
            else:
                rest[name] = v
        pool = _encode_pool()
        encoded = [(key, pool.submit(_encode, enc, v)) for key, enc, v in direct.values()]
        proto = default_buffer_prototype()
        store = self.session.store

        async def _store(key: str, fut: Future[bytes]) -> None:
            data: bytes = await asyncio.wrap_future(fut)
            await store.set(key, proto.buffer.from_bytes(data))

        async def _all() -> None:
            await asyncio.gather(
                *(_store(key, fut) for key, fut in encoded),
                *(
                    self.arrays[name]._async_array.setitem(slice(start, start + len(v)), v)
                    for name, v in rest.items()
                ),
            )

        zsync(_all())

    def _encoder(self, name: str) -> Codec | None:
        if name not in self._encoders:
            self._encoders[name] = _chunk_encoder(self.arrays[name])
        return self._encoders[name]


def _all_nan(v: np.ndarray) -> bool:
    """Whether a block holds no value (zarr stores no chunk for it); usually decided at [0]."""
    return bool(v.size == 0 or (np.isnan(v[0]) and np.isnan(v).all()))


def _encode(enc: Codec, v: np.ndarray) -> bytes:
    """Zarr's encoding of a float64 chunk: its little-endian bytes, then the compressor."""
    return bytes(enc.encode(np.ascontiguousarray(v, dtype="<f8").view(np.uint8)))


def _commit_info(info: ic.SnapshotInfo) -> CommitInfo:
    return CommitInfo(
        id=info.id,
        parent=info.parent_id,
        written_at=info.written_at,
        message=info.message,
        metadata=dict(info.metadata or {}),
    )


class DatasetData:
    """Open handle on one dataset's repository: cached reads, serialised retried writes."""

    def __init__(
        self, dataset_id: str, loc: StorageLocation, settings: Settings, repo: ic.Repository
    ) -> None:
        self.dataset_id = dataset_id
        self.loc = loc
        self.settings = settings
        self.repo = repo
        self._lock = writer_lock(loc, settings)
        self._thread_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self.live: Callable[[Callable[[], Snapshot]], Snapshot] | None = None
        """Set by the store: makes head reads overlay the append buffer (``store.buffer``)."""

    @classmethod
    def create(
        cls,
        dataset_id: str,
        interval_ns: int,
        loc: StorageLocation,
        settings: Settings,
        actor: str,
        compression: str,
    ) -> DatasetData:
        """Create the repository with its grid and chunk compression, as the first commit."""
        compressor_for(compression)  # refuse an unknown name before creating anything
        repo = ic.Repository.create(icechunk_storage(loc, settings))
        grid = Grid.for_interval(interval_ns)
        session = repo.writable_session(BRANCH)
        root = zarr.open_group(store=session.store, mode="w")
        root.attrs["stream0d"] = {
            "format": FORMAT_VERSION,
            "dataset": dataset_id,
            "epoch": "1970-01-01T00:00:00Z",
            "interval_ns": grid.interval_ns,
            "chunk_len": grid.chunk_len,
            "start": None,
            "stop": None,
            "shape": 0,
            "compression": compression,
        }
        session.commit(
            f"create dataset {dataset_id} by {actor}", metadata={"actor": actor, "action": "create"}
        )
        return cls(dataset_id, loc, settings, repo)

    @classmethod
    def open(cls, dataset_id: str, loc: StorageLocation, settings: Settings) -> DatasetData:
        """Open an existing repository."""
        storage = icechunk_storage(loc, settings)
        try:
            repo = ic.Repository.open(storage)
        except ic.IcechunkError as exc:
            raise DatasetNotFoundError(
                f"dataset {dataset_id!r}: no repository at {loc.uri} ({exc})"
            ) from exc
        return cls(dataset_id, loc, settings, repo)

    # ---- reading -------------------------------------------------------------------
    def head(self) -> str:
        """Snapshot id at the tip of the branch (one small storage read)."""
        return self.repo.lookup_branch(BRANCH)

    def snapshot(self, as_of: AsOf = None) -> Snapshot:
        """A cached read-only view at the head (with the append buffer over it when the store
        set ``live``), a snapshot id, or a time; an opened ``Snapshot`` is returned as is."""
        if isinstance(as_of, Snapshot):
            return as_of
        if as_of is None and self.live is not None:
            return self.live(self.committed)
        return self.committed(as_of)

    def committed(self, as_of: AsOf = None) -> Snapshot:
        """A cached read-only view of a commit: the head, a snapshot id, or a time."""
        if isinstance(as_of, Snapshot):
            return as_of
        snap_id = self._resolve(as_of)
        with self._thread_lock:
            snap = self._snapshots.get(snap_id)
            if snap is not None:
                self._snapshots.move_to_end(snap_id)
                return snap
        snap = Snapshot(self.repo.readonly_session(snapshot_id=snap_id))
        with self._thread_lock:
            self._snapshots[snap_id] = snap
            while len(self._snapshots) > 4:
                self._snapshots.popitem(last=False)
        return snap

    def _resolve(self, as_of: str | datetime | pd.Timestamp | None) -> str:
        if as_of is None:
            return self.head()
        if isinstance(as_of, str):
            try:
                self.repo.lookup_snapshot(as_of)
                return as_of
            except (ic.IcechunkError, ValueError):
                pass
            try:
                when = pd.Timestamp(as_of)
            except ValueError:
                raise SnapshotNotFoundError(
                    f"as_of {as_of!r} is neither a snapshot id of {self.dataset_id!r} nor a time"
                ) from None
        else:
            when = pd.Timestamp(as_of)
        if when.tzinfo is None:
            when = when.tz_localize("UTC")
        for info in self.repo.ancestry(branch=BRANCH):
            if info.written_at <= when and info.parent_id is not None:
                return info.id
        # older than what retention keeps commit by commit: the last kept day before it
        kept = [c for c in self._daily() if c.written_at <= when]
        if kept:
            return max(kept, key=lambda c: c.written_at).id
        raise SnapshotNotFoundError(
            f"dataset {self.dataset_id!r} has no commit at or before {when.isoformat()}: it "
            "did not exist yet, or retention keeps no older day"
        )

    def history(self, limit: int | None = None, since: str | None = None) -> list[CommitInfo]:
        """Commits of the branch (or before snapshot ``since``, inclusive), newest first."""
        out = []
        walk = self.repo.ancestry(snapshot_id=since) if since else self.repo.ancestry(branch=BRANCH)
        for info in walk:
            out.append(_commit_info(info))
            if limit is not None and len(out) >= limit:
                break
        if since is None and (limit is None or len(out) < limit or out[-1].parent is None):
            daily = [c for c in self._daily() if c.id not in {o.id for o in out}]
            if daily:  # retention expired the commits between: the days it kept
                out = sorted(out + daily, key=lambda c: c.written_at, reverse=True)[:limit]
        return out

    def _daily(self) -> list[CommitInfo]:
        """The commits the daily tags of retention keep."""
        tags = [t for t in self.repo.list_tags() if t.startswith(DAILY_TAG)]
        return [_commit_info(self.repo.lookup_snapshot(self.repo.lookup_tag(t))) for t in tags]

    def forget_snapshots(self) -> None:
        """Drop cached snapshots (after retention: expired ones may lose their chunks)."""
        with self._thread_lock:
            self._snapshots.clear()

    # ---- writing -------------------------------------------------------------------
    @contextmanager
    def _writer(self) -> Iterator[None]:
        with self._write_lock, self._lock or nullcontext():
            yield

    def transact(
        self,
        work: Callable[[WriteView], T],
        message: Callable[[T], str | None],
        metadata: Callable[[T], dict[str, Any]],
        retries: int = 5,
    ) -> tuple[T, str | None]:
        """Run ``work`` on a fresh session at the head and commit it; redo it on conflict.

        ``message`` returns None when there is nothing to commit. On a conflict the whole
        ``work`` is redone on the new head (never resolved chunk-wise, which would lose the
        other writer's values: DESIGN §2), at most ``retries`` times.
        """
        last: Exception | None = None
        with self._writer():
            for _ in range(retries + 1):
                session = self.repo.writable_session(BRANCH)
                result = work(WriteView(session))
                msg = message(result)
                if msg is None or not session.has_uncommitted_changes:
                    return result, None
                try:
                    meta = {"at": datetime.now(UTC).isoformat(), **metadata(result)}
                    snap = session.commit(msg, metadata=meta)
                    return result, snap
                except ic.ConflictError as exc:
                    last = exc
        raise WriteConflictError(
            f"dataset {self.dataset_id!r}: other writers kept changing the same data; "
            f"gave up after {retries + 1} attempts ({last})"
        )
