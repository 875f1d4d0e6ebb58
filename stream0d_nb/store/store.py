"""The store: datasets (registry rows + Icechunk repositories), ingest, reads, history.

This is the one object the CLI, the API and notebooks use to reach data. It keeps opened
repositories cached (reads reuse opened arrays until the branch head moves) and records
every change in the registry's audit log.
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
import xarray as xr

from stream0d_nb.db.dataset_tables import DatasetRecord
from stream0d_nb.db.registry import Registry
from stream0d_nb.errors import (
    ChannelNotFoundError,
    ConfirmationRequiredError,
    DatasetExistsError,
    DatasetNotFoundError,
    Fix,
    IngestError,
    Location,
    StorageUnavailableError,
    Stream0dError,
    ValidationError,
)
from stream0d_nb.ingest.frames import frame_source
from stream0d_nb.ingest.types import Source, SourceInfo
from stream0d_nb.settings import Settings
from stream0d_nb.specs import (
    AppendReport,
    ChannelSpec,
    CommitInfo,
    DatasetSpec,
    IngestOptions,
    IngestReport,
    format_duration,
)
from stream0d_nb.store import reader
from stream0d_nb.store.buffer import AppendBuffer, Target, file_frames, prepare
from stream0d_nb.store.fold import FoldResult, fold
from stream0d_nb.store.grid import Grid
from stream0d_nb.store.repo import AsOf, DatasetData, WriteView
from stream0d_nb.store.storage import StorageLocation, dataset_location, delete_location, parse_root
from stream0d_nb.store.writer import Revisit, WriteStats, stage_and_apply
from stream0d_nb.units import check_units, converter

Progress = Callable[[int, int], None]
WriteHook = Callable[["Store", str, IngestReport], None]
STAGING_BUDGET = 1 << 30


def _sha256(path: Path, out: dict[str, str]) -> None:
    with path.open("rb") as fh:
        out["sha256"] = hashlib.file_digest(fh, "sha256").hexdigest()


class Store:
    """Datasets of one installation: registry in SQL, data in Icechunk repositories."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self.settings.resolved_database_url())
        self.root = parse_root(self.settings.resolved_storage_url())
        self.appends = AppendBuffer(self.registry)
        self._data: dict[str, DatasetData] = {}
        self._tzs: dict[str, str] = {}
        self._write_hooks: list[WriteHook] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the registry's connections."""
        self.registry.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_write_hook(self, hook: WriteHook) -> None:
        """Call ``hook(store, dataset_id, report)`` after every write that committed data.

        Upper layers use it to react to new data (re-materialise derived channels, evaluate
        alert rules) without the store importing them. A hook's Stream0dError becomes a
        warning of the report: the data is committed by then.
        """
        if hook not in self._write_hooks:
            self._write_hooks.append(hook)

    def actor(self, actor: str | None) -> str:
        """Who is acting: explicit, else settings, else the OS user."""
        return actor or self.settings.user or getpass.getuser()

    # ---- datasets ------------------------------------------------------------------
    def create_dataset(self, spec: DatasetSpec, actor: str | None = None) -> DatasetRecord:
        """Create a dataset: its repository (first commit, then its channels), then its
        registry row with the channels (one transaction).

        ``DatasetExistsError`` only for a real dataset: a registry row of that id, or a
        repository already at its place. A storage that fails (unreachable, refused,
        misconfigured) is ``StorageUnavailableError``; other errors are raised as they are.
        Whatever fails, no registry row is left and the repository made here is removed.
        """
        who = self.actor(actor)
        for c in spec.channels:  # a bad unit is refused before anything is made
            check_units(c.units, c.name)
        try:
            self.registry.get_dataset(spec.id)
        except DatasetNotFoundError:
            pass
        else:
            raise DatasetExistsError(f"dataset {spec.id!r} exists already")
        loc = dataset_location(self.root, spec.id)
        try:
            self._clear_orphan(spec.id, loc)
            data = DatasetData.create(
                spec.id, spec.interval_ns, loc, self.settings, who, spec.compression
            )
        except Stream0dError:
            raise
        except Exception as exc:
            raise _storage_failed(spec.id, loc, exc) from exc
        try:
            try:
                _set_channels(data, spec.channels, who)
            except Stream0dError:
                raise
            except Exception as exc:
                raise _storage_failed(spec.id, loc, exc, created=True) from exc
            record = self.registry.create_dataset(spec, loc.uri, who)
        except BaseException:
            delete_location(loc, self.settings)
            raise
        with self._lock:
            self._data[spec.id] = data
        return record

    def _clear_orphan(self, dataset_id: str, loc: StorageLocation) -> None:
        """Remove a repository left without registry row by a crash during creation.

        Only one that holds no data is removed; one with data is refused by ``create``.
        """
        try:
            orphan = DatasetData.open(dataset_id, loc, self.settings)
        except DatasetNotFoundError:
            return
        if all(h.metadata.get("action") in (None, "create", "channels") for h in orphan.history()):
            delete_location(loc, self.settings)

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        """The registry record of a dataset (DatasetNotFoundError if absent)."""
        return self.registry.get_dataset(dataset_id)

    def list_datasets(self, partner: str | None = None) -> list[DatasetRecord]:
        """Every dataset, or those of one partner."""
        return self.registry.list_datasets(partner)

    def data(self, dataset_id: str) -> DatasetData:
        """The opened repository of a dataset (cached)."""
        with self._lock:
            d = self._data.get(dataset_id)
        if d is None:
            rec = self.registry.get_dataset(dataset_id)
            opened = DatasetData.open(dataset_id, parse_root(rec.storage_uri), self.settings)
            with self._lock:
                d = self._data.setdefault(dataset_id, opened)
        if d.live is None:  # head reads overlay the append buffer
            d.live = self.appends.live(dataset_id)
        return d

    def delete_dataset(self, dataset_id: str, confirm: str | None, actor: str | None = None) -> int:
        """Delete a dataset and all its data; ``confirm`` must repeat the dataset id."""
        rec = self.registry.get_dataset(dataset_id)
        if confirm != dataset_id:
            raise ConfirmationRequiredError(
                f"deleting dataset {dataset_id!r} removes all its data and history: "
                "confirm by repeating its id"
            ).with_fixes([Fix("confirm", dataset_id)])
        data = self.data(dataset_id)
        head = data.head()
        with self._lock:
            self._data.pop(dataset_id, None)
            self._tzs.pop(dataset_id, None)
        self.appends.forget(dataset_id)
        n = delete_location(data.loc, self.settings)
        self.registry.delete_dataset(
            dataset_id,
            self.actor(actor),
            detail={"storage": rec.storage_uri, "last_snapshot": head, "objects": n},
        )
        return n

    # ---- channels ------------------------------------------------------------------
    def channels(self, dataset_id: str, as_of: AsOf = None) -> list[ChannelSpec]:
        """Channels as stored (in the data, so ``as_of`` shows past channel sets)."""
        snap = self.data(dataset_id).snapshot(as_of)
        return [_spec_from_attrs(name, attrs) for name, attrs in snap.channels.items()]

    def set_channels(
        self, dataset_id: str, specs: list[ChannelSpec], actor: str | None = None
    ) -> str | None:
        """Create channels or update their metadata (units of a channel with data are fixed)."""
        who = self.actor(actor)
        for s in specs:
            check_units(s.units, s.name)
        changed, snap = _set_channels(self.data(dataset_id), specs, who)
        if changed:
            self.registry.upsert_channels(dataset_id, specs, who)
        return snap

    def delete_channel(
        self, dataset_id: str, name: str, confirm: str | None, actor: str | None = None
    ) -> str | None:
        """Delete a channel from the current version on (history keeps it); confirm repeats its name."""
        who = self.actor(actor)
        data = self.data(dataset_id)
        if name not in data.snapshot().channels:
            raise ChannelNotFoundError(f"dataset {dataset_id!r} has no channel {name!r}")
        if confirm != name:
            raise ConfirmationRequiredError(
                f"deleting channel {name!r} of {dataset_id!r}: confirm by repeating its name"
            ).with_fixes([Fix("confirm", name)])
        self._fold_first(dataset_id)
        _, snap = data.transact(
            lambda v: v.delete_channel(name),
            lambda _: f"delete channel {name} by {who}",
            lambda _: {"actor": who, "action": "delete-channel", "channel": name},
        )
        try:
            self.registry.delete_channel(dataset_id, name, who)
        except ChannelNotFoundError:
            self.registry.audit(
                who, "channel.delete", dataset_id, {"channel": name, "snapshot": snap}
            )
        return snap

    # ---- writing -------------------------------------------------------------------
    def ingest(
        self,
        dataset_id: str,
        path: str | Path,
        options: IngestOptions | None = None,
        actor: str | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Ingest a file (CSV, Excel, Parquet, JSON) as one commit; bad input stores nothing."""
        from stream0d_nb.ingest import detect_format, open_source

        p = Path(path)
        if not p.is_file():
            raise IngestError(f"{path}: no such file")
        opts = options or IngestOptions()
        rec = self.registry.get_dataset(dataset_id)
        digest: dict[str, str] = {}
        hasher: threading.Thread | None = None
        if detect_format(p, opts) != "csv":  # the CSV reader hashes the bytes it reads
            hasher = threading.Thread(target=_sha256, args=(p, digest), daemon=True)
            hasher.start()

        def checksum(source: Source | None) -> str:
            found = None if source is None else source.sha256()
            if found:
                return found
            if hasher is None:
                _sha256(p, digest)
            else:
                hasher.join()
            return digest.get("sha256", "")

        return self._write(
            rec,
            lambda: open_source(p, opts, default_tz=rec.spec.tz),
            opts,
            self.actor(actor),
            p.name,
            checksum,
            progress,
        )

    def write(
        self,
        dataset_id: str,
        frame: pd.DataFrame | xr.Dataset,
        actor: str | None = None,
        source: str = "python",
        units: dict[str, str] | None = None,
        options: IngestOptions | None = None,
    ) -> IngestReport:
        """Write in-memory data (time index, one column per channel) through the ingest path."""
        rec = self.registry.get_dataset(dataset_id)
        df = frame.to_dataframe() if isinstance(frame, xr.Dataset) else frame
        if isinstance(frame, xr.Dataset):
            # xarray times are naive UTC (as reads return them), not the dataset's zone
            if isinstance(df.index, pd.DatetimeIndex) and df.index.tz is None:
                df = df.tz_localize("UTC")
            units = {
                **{
                    str(k): str(v.attrs["units"])
                    for k, v in frame.data_vars.items()
                    if "units" in v.attrs
                },
                **(units or {}),
            }
        opts = options or IngestOptions()
        return self._write(
            rec,
            lambda: frame_source(df, source, rec.spec.tz, units),
            opts,
            self.actor(actor),
            source,
            lambda _source: "",
            None,
        )

    def _write(
        self,
        rec: DatasetRecord,
        open_source: Callable[[], Source],
        opts: IngestOptions,
        who: str,
        source_name: str,
        checksum: Callable[[Source | None], str],
        progress: Progress | None,
    ) -> IngestReport:
        t0 = time.perf_counter()
        self._fold_first(rec.spec.id)
        data = self.data(rec.spec.id)
        # The grid is constant for the life of a dataset: take it from the write session
        # (opening a read snapshot for it cost ~20-50 ms before and again after the write).
        grids: list[Grid] = []
        spill = self.settings.home / "tmp"
        spill.mkdir(parents=True, exist_ok=True)

        def work(view: WriteView, early: bool) -> tuple[Source, WriteStats, list[ChannelSpec]]:
            grids.append(view.grid)
            source = open_source()
            transforms, new_specs = _plan_channels(source.info, opts, view)
            for spec in new_specs:
                view.create_channel(spec)
            total = source.info.bytes_total
            stats = stage_and_apply(
                view,
                source.batches,
                source.info.channels,
                opts,
                source.info.file,
                transforms,
                STAGING_BUDGET,
                spill,
                early,
                None if progress is None else (lambda done: progress(done, total)),
            )
            return source, stats, new_specs

        def message(r: tuple[Source, WriteStats, list[ChannelSpec]]) -> str | None:
            source, st, new = r
            grid = grids[-1]
            if st.values_written == 0 and not new:
                return None
            span = ""
            if st.start is not None and st.stop is not None:
                span = f", {grid.time_of(st.start).isoformat()}..{grid.time_of(st.stop - 1).isoformat()}"
            digest = checksum(source)
            return (
                f"ingest {source_name}{f' (sha256 {digest[:12]})' if digest else ''} by {who}: "
                f"{st.values_written:,} values ({st.values_new:,} new, {st.values_changed:,} changed) "
                f"in {len(st.channels_written)} channels{span}"
            )

        def metadata(r: tuple[Source, WriteStats, list[ChannelSpec]]) -> dict[str, Any]:
            source, st, new = r
            grid = grids[-1]
            return {
                "actor": who,
                "action": "ingest",
                "source": source_name,
                "sha256": checksum(source),
                "values_written": st.values_written,
                "values_new": st.values_new,
                "values_changed": st.values_changed,
                "new_channels": [s.name for s in new],
                "channels": st.channels_written,
                "start": None if st.start is None else st.start * grid.interval_ns,
                "stop": None if st.stop is None else st.stop * grid.interval_ns,
                "options": opts.model_dump(exclude_defaults=True),
            }

        try:  # sorted input: chunks are written as soon as the stream passes them
            (source, stats, new_specs), snap = data.transact(
                lambda v: work(v, True), message, metadata
            )
        except Revisit:  # the input went back to a written chunk: hold every chunk instead
            (source, stats, new_specs), snap = data.transact(
                lambda v: work(v, False), message, metadata
            )
        report = _report(
            rec.spec.id, source_name, checksum(source), source, stats, new_specs, snap, grids[-1]
        )
        report.warnings = _warnings(report, opts, new_specs)
        if snap is None:
            report.commit = data.head()
        if new_specs:
            self.registry.upsert_channels(rec.spec.id, new_specs, who)
        if snap is not None:
            self.registry.audit(
                who,
                "ingest",
                rec.spec.id,
                {
                    "source": source_name,
                    "sha256": report.checksum,
                    "snapshot": snap,
                    "values_written": stats.values_written,
                },
            )
        if snap is not None:
            for hook in list(self._write_hooks):
                try:
                    hook(self, rec.spec.id, report)
                except Stream0dError as exc:  # the data is committed; say what failed after it
                    report.warnings.append(f"after-write step failed: {exc}")
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def append(
        self,
        dataset_id: str,
        frame: pd.DataFrame | xr.Dataset,
        actor: str | None = None,
        off_grid: str = "error",
        off_grid_tolerance: str | None = None,
        run_hooks: bool = True,
    ) -> AppendReport:
        """Append rows to existing channels through the durable buffer (no commit).

        ``frame``: a time index (naive times in the dataset's zone, as ``write``; xarray
        times are UTC) and one column per channel. Returns once the rows survive any
        crash; reads see them at once, a fold commits them later (docs/storage.md,
        "Appends"). Write hooks then run with ``report.commit`` None (``run_hooks=False``:
        the caller runs them, e.g. after answering; ``run_write_hooks``).
        """
        t0 = time.perf_counter()

        def load() -> Target:
            rec = self.registry.get_dataset(dataset_id)
            grid = self.appends.grid_of(dataset_id, rec.created_at)
            if grid is None:
                grid = self.data(dataset_id).committed().grid
            names = frozenset(c.name for c in rec.spec.channels)
            return Target(grid, rec.spec.tz, names, rec.created_at)

        target = self.appends.target(dataset_id, load)
        if not target.channels.issuperset(map(str, frame_columns(frame))):
            target = self.appends.target(dataset_id, load, fresh=True)
        grid = target.grid
        df = _utc_frame(frame, target.tz)
        rows = prepare(grid, df, target.channels, off_grid, off_grid_tolerance)
        report = self.appends.append(dataset_id, grid, rows, self.actor(actor))
        if rows.idx.size:
            report.start = grid.time_of(int(rows.idx[0])).to_pydatetime()
            report.end = grid.time_of(int(rows.idx[-1])).to_pydatetime()
        report.channels = rows.names
        report.seconds = round(time.perf_counter() - t0, 4)
        if run_hooks and report.values_new:
            self.run_write_hooks(dataset_id, append_ingest_report(report))
        return report

    def append_file(
        self,
        dataset_id: str,
        path: str | Path,
        options: IngestOptions | None = None,
        actor: str | None = None,
    ) -> AppendReport:
        """Append a file's rows (read as ingest reads them; e.g. a gateway's last minutes
        as CSV) through the buffer instead of a commit; one durable append per batch of
        rows, the write hooks once at the end. Off-grid times follow ``off_grid``
        (``error`` or ``nearest``); units the file declares are converted to the stored."""
        opts = options or IngestOptions()
        if opts.off_grid not in ("error", "nearest"):
            raise ValidationError(
                f"off_grid={opts.off_grid!r} is not for appends: use 'error' or 'nearest'"
            )
        rec = self.registry.get_dataset(dataset_id)
        units = {c.name: c.units for c in rec.spec.channels}
        total: AppendReport | None = None
        for frame in file_frames(path, opts, rec.spec.tz, units):
            rep = self.append(
                dataset_id, frame, actor, opts.off_grid, opts.off_grid_tolerance, False
            )
            total = rep if total is None else _add_reports(total, rep)
        report = total or AppendReport(dataset=dataset_id)
        if report.values_new:
            self.run_write_hooks(dataset_id, append_ingest_report(report))
        return report

    def fold(
        self, dataset_id: str, everything: bool = True, actor: str | None = None
    ) -> FoldResult:
        """Fold the dataset's buffered appends into its chunks now, as one commit
        (``everything=False``: only chunks due by ``FoldPolicy``; see ``store.fold``)."""
        return fold(self, dataset_id, everything=everything, actor=actor)

    def _fold_first(self, dataset_id: str) -> None:
        """Before a write that is not an append: commit the buffered appends first, so
        that the write lands on them (history in order) and never under them."""
        if not self.appends.view(dataset_id).empty:
            self.fold(dataset_id)

    def run_write_hooks(self, dataset_id: str, report: IngestReport) -> list[str]:
        """Run the write hooks for ``report``; returns the warnings of those that failed."""
        failed = []
        for hook in list(self._write_hooks):
            try:
                hook(self, dataset_id, report)
            except Stream0dError as exc:  # the data is stored; say what failed after it
                failed.append(f"after-write step failed: {exc}")
        return failed

    # ---- reading -------------------------------------------------------------------
    def read(
        self,
        dataset_id: str,
        channels: list[str] | None = None,
        start: object | None = None,
        end: object | None = None,
        every: str | None = None,
        how: str = "mean",
        as_of: AsOf = None,
    ) -> xr.Dataset:
        """Channels over ``[start, end)`` (default: all stored), optionally aggregated."""
        data = self.data(dataset_id)
        snap = data.snapshot(as_of)
        if channels is not None:
            unknown = [c for c in channels if c not in snap.channels]
            if unknown:
                hints = {c: difflib.get_close_matches(c, list(snap.channels), 1) for c in unknown}
                raise ChannelNotFoundError(
                    f"dataset {dataset_id!r} has no channel "
                    + ", ".join(
                        f"{c!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
                        for c, h in hints.items()
                    )
                )
        tz = self._tz(dataset_id)
        return reader.read(snap, dataset_id, channels, start, end, every, how, tz)

    def zone(self, dataset_id: str) -> str:
        """The dataset's time zone (fixed for its life: cached, no registry query)."""
        return self._tz(dataset_id)

    def _tz(self, dataset_id: str) -> str:
        """The dataset's zone, cached: reads must not query the registry each time."""
        tz = self._tzs.get(dataset_id)
        if tz is None:
            tz = self._tzs[dataset_id] = self.registry.get_dataset(dataset_id).spec.tz
        return tz

    def history(self, dataset_id: str, limit: int | None = None) -> list[CommitInfo]:
        """The dataset's commits, newest first."""
        return self.data(dataset_id).history(limit)

    def summary(self, dataset_id: str) -> dict[str, Any]:
        """What is stored: extent, channels, counts of commits (for `dataset show`)."""
        data = self.data(dataset_id)
        snap = data.snapshot()
        g = snap.grid
        return {
            "snapshot": snap.id,
            "start": None if snap.start is None else g.time_of(snap.start),
            "end": None if snap.stop is None else g.time_of(snap.stop - 1),
            "samples": 0 if snap.start is None or snap.stop is None else snap.stop - snap.start,
            "chunk": format_duration(g.chunk_len * g.interval_ns),
            "channels": [_spec_from_attrs(n, a) for n, a in snap.channels.items()],
            "commits": len(data.history()),
        }


def frame_columns(frame: pd.DataFrame | xr.Dataset) -> list[str]:
    """The channel names of an appended frame."""
    return [str(c) for c in (frame.data_vars if isinstance(frame, xr.Dataset) else frame.columns)]


def _utc_frame(frame: pd.DataFrame | xr.Dataset, tz: str) -> pd.DataFrame:
    """A frame with a UTC index: naive pandas times are in ``tz``, naive xarray ones UTC."""
    if isinstance(frame, xr.Dataset):
        df = frame.to_dataframe()
        tz = "UTC"
    else:
        df = frame
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        try:
            index = pd.DatetimeIndex(index)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"appended rows need a time index: {exc}") from None
    if index.tz is None:
        try:
            index = index.tz_localize(tz, ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError) as exc:  # pytz/zoneinfo ambiguity errors
            raise ValidationError(f"times in zone {tz}: {exc}") from None
    return df.set_axis(index, axis=0)


def _add_reports(a: AppendReport, b: AppendReport) -> AppendReport:
    """One report for two appends of one file."""
    starts = [t for t in (a.start, b.start) if t is not None]
    ends = [t for t in (a.end, b.end) if t is not None]
    return a.model_copy(
        update={
            "rows": a.rows + b.rows,
            "values": a.values + b.values,
            "values_new": a.values_new + b.values_new,
            "values_unchanged": a.values_unchanged + b.values_unchanged,
            "values_snapped": a.values_snapped + b.values_snapped,
            "channels": list(dict.fromkeys([*a.channels, *b.channels])),
            "start": min(starts) if starts else None,
            "end": max(ends) if ends else None,
            "sequence": b.sequence if b.sequence is not None else a.sequence,
            "seconds": a.seconds + b.seconds,
        }
    )


def append_ingest_report(report: AppendReport) -> IngestReport:
    """The ``IngestReport`` write hooks get for an append: ``commit`` None (buffered)."""
    return IngestReport(
        dataset=report.dataset,
        source="append",
        format="append",
        channels=list(report.channels),
        rows_read=report.rows,
        values_read=report.values,
        values_written=report.values_new,
        values_new=report.values_new,
        values_unchanged=report.values_unchanged,
        values_snapped=report.values_snapped,
        start=report.start,
        end=report.end,
        commit=None,
    )


def _storage_failed(
    dataset_id: str, loc: StorageLocation, exc: Exception, created: bool = False
) -> Stream0dError:
    """What a storage failure while creating a dataset is: ``DatasetExistsError`` only when
    a repository was at its place before (Icechunk's "not a clean prefix"), anything else
    ``StorageUnavailableError`` naming the storage and the cause."""
    if not created and "clean prefix" in str(exc):
        return DatasetExistsError(
            f"dataset {dataset_id!r}: storage at {loc.uri} is not empty; "
            "delete it or choose another id"
        )
    cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StorageUnavailableError(
        f"dataset {dataset_id!r}: the storage at {loc.uri} failed: {cause}"
    )


def _set_channels(
    data: DatasetData, specs: list[ChannelSpec], who: str
) -> tuple[list[str], str | None]:
    """Create channels or update their metadata in one commit (units of a channel with
    data are fixed); ``(["+new", "~changed"...], snapshot or None)``."""

    def work(view: WriteView) -> list[str]:
        changed = []
        for s in specs:
            if s.name not in view.arrays:
                view.create_channel(s)
                changed.append(f"+{s.name}")
                continue
            old = _spec_from_attrs(s.name, dict(view.arrays[s.name].attrs))
            if old == s:
                continue
            if old.units != s.units and view.meta.get("start") is not None:
                raise ValidationError(
                    f"channel {s.name!r} holds data in {old.units!r}; its units cannot change "
                    f"to {s.units!r} (create a derived channel to convert)"
                )
            view.update_channel_attrs(s)
            changed.append(f"~{s.name}")
        return changed

    return data.transact(
        work,
        lambda ch: f"set channels {', '.join(ch)} by {who}" if ch else None,
        lambda ch: {"actor": who, "action": "channels", "changed": ch},
    )


def _spec_from_attrs(name: str, attrs: dict[str, Any]) -> ChannelSpec:
    return ChannelSpec(
        name=name,
        units=str(attrs.get("units", "")),
        long_name=str(attrs.get("long_name", "")) if attrs.get("long_name") != name else "",
        description=str(attrs.get("description", "")),
        tags=list(attrs.get("tags", [])),
    )


def _plan_channels(
    info: SourceInfo, opts: IngestOptions, view: WriteView
) -> tuple[dict[str, Callable[[Any], Any]], list[ChannelSpec]]:
    """Unit conversions for known channels and specs of new ones; refuses what is unclear."""
    transforms: dict[str, Callable[[Any], Any]] = {}
    new: list[ChannelSpec] = []
    no_units: list[str] = []
    unknown: list[str] = []
    for ch in info.channels:
        col = info.columns.get(ch, ch)
        declared = opts.units.get(ch) or opts.units.get(col) or info.units.get(ch)
        where = Location(info.file, None, col)
        if ch in view.arrays:
            stored = str(view.arrays[ch].attrs.get("units", ""))
            if declared is not None and declared != stored:
                try:
                    conv = converter(declared, stored)
                except ValidationError as exc:
                    raise IngestError(
                        f"{info.file}: channel {ch!r} is stored in {stored!r} but the "
                        f"file gives {declared!r}: {exc}",
                        [where],
                    ) from None
                if conv is not None:
                    transforms[ch] = conv
            continue
        if not opts.new_channels:
            unknown.append(ch)
            continue
        if declared is None and not opts.allow_missing_units:
            no_units.append(ch)
            continue
        try:
            check_units(declared or "", ch)
            new.append(
                ChannelSpec(name=ch, units=declared or "", long_name="" if col == ch else col)
            )
        except (pydantic.ValidationError, Stream0dError) as exc:
            msg = exc.errors()[0]["msg"] if isinstance(exc, pydantic.ValidationError) else str(exc)
            raise IngestError(
                f"{info.file}: column {col!r} cannot be a channel: {msg}", [where]
            ) from None
    if unknown:
        known = list(view.arrays)
        hints = [
            f"{c!r}"
            + (
                f" (did you mean {m[0]!r}?)"
                if (m := difflib.get_close_matches(c, known, 1))
                else ""
            )
            for c in unknown
        ]
        raise IngestError(
            f"{info.file}: the dataset has no channels {', '.join(hints)} and new channels "
            "are not allowed here",
            [Location(info.file, None, info.columns.get(c, c)) for c in unknown],
            [
                Fix("new_channels", True),
                Fix("skip_columns", [info.columns.get(c, c) for c in unknown]),
            ],
        )
    if no_units:
        raise IngestError(
            f"{info.file}: no units for new channels {', '.join(map(repr, no_units))}: "
            "declare them (1 for dimensionless) or allow channels without units",
            [Location(info.file, None, info.columns.get(c, c)) for c in no_units],
            [Fix("units", example={no_units[0]: "degC"}), Fix("allow_missing_units", True)],
        )
    return transforms, new


def _warnings(r: IngestReport, opts: IngestOptions, new_specs: list[ChannelSpec]) -> list[str]:
    """What a user should know about an ingest that succeeded."""
    out = []
    if r.bad_cells_missing:
        out.append(
            f"{r.bad_cells_missing:,} unparseable cells were read as missing (bad_values='missing')"
        )
    if r.rows_dropped_time:
        out.append(
            f"{r.rows_dropped_time:,} rows in a skipped DST hour were dropped (nonexistent='drop')"
        )
    if r.duplicates_resolved and opts.off_grid != "mean":  # averaging is what mean asks for
        out.append(
            f"{r.duplicates_resolved:,} duplicate samples with different values were resolved "
            f"(duplicates={opts.duplicates!r})"
        )
    if r.values_kept:
        out.append(
            f"{r.values_kept:,} values differ from stored ones and were kept (on_existing='keep')"
        )
    no_units = [s.name for s in new_specs if not s.units]
    if no_units:
        out.append(f"channels created without units: {', '.join(no_units)}")
    out += [hint.warning() for hint in r.sentinels]
    return out


def _report(
    dataset_id: str,
    source_name: str,
    checksum: str,
    source: Source,
    stats: WriteStats,
    new_specs: list[ChannelSpec],
    snap: str | None,
    grid: Grid,
) -> IngestReport:
    c = source.counters
    return IngestReport(
        dataset=dataset_id,
        source=source_name,
        checksum=checksum,
        format=source.info.format,
        detected=dict(source.info.detected),
        channels=list(source.info.channels),
        new_channels=[s.name for s in new_specs],
        skipped_columns=source.info.skipped_columns,
        sentinels=source.sentinels(),
        rows_read=c.rows_read,
        rows_skipped=c.rows_skipped,
        values_read=stats.values_read,
        values_written=stats.values_written,
        values_new=stats.values_new,
        values_changed=stats.values_changed,
        values_unchanged=stats.values_unchanged,
        values_kept=stats.values_kept,
        values_snapped=stats.values_snapped,
        duplicates_dropped=stats.duplicates_dropped,
        duplicates_resolved=stats.duplicates_resolved,
        bad_cells_missing=c.bad_cells_missing,
        rows_dropped_time=c.rows_dropped_time,
        gaps=stats.gaps,
        longest_gap=format_duration(stats.longest_gap * grid.interval_ns)
        if stats.longest_gap
        else None,
        start=None if stats.start is None else grid.time_of(stats.start).to_pydatetime(),
        end=None if stats.stop is None else grid.time_of(stats.stop - 1).to_pydatetime(),
        commit=snap,
        unchanged=snap is None,
    )
