"""Appends: a few rows pushed often (a gateway's last seconds), buffered durably.

``POST /datasets/{id}/append`` takes JSON (``rows`` as objects, or columns ``time`` plus
``channels``) or an Arrow IPC stream (``Content-Type: application/vnd.apache.arrow.stream``,
a ``time`` column and one numeric column per channel). It needs the right to ingest; a
dataset the caller may not see is answered like a missing one. The answer (an
``AppendReport``) comes once the rows are durable and readable; the write hooks (alert
rules...) run right after, in one background thread of the app, dataset after dataset
(appends arriving meanwhile are evaluated together by the next run), so alerts follow
within a second.
Appends are not audited one by one: each fold's audit entry counts them per caller
(``db.buffer_tables``).

A gateway appends every second or so, so the route does its work off the event loop in
one worker-thread hop: who calls, whether they may ingest there, the rows, the buffer.
Declared as dependencies, those steps were six hops (every synchronous dependency runs
in the thread pool), each a hand-over of the GIL that waits for a busy thread to let go
of it; under load that made most of an append's latency. The steps are the API's own
(``get_identity``, ``access.check``); only the group resolver is taken as a dependency, so
that tests and the hub can override it as for every route.

The dataset's record and grants are reused while its configuration version (one indexed
query per append, ``db.versions``) is the one they were read at, so a grant revoked or a
dataset changed by any process is seen by the next append, and a gateway appending every
second does not read them again each time the app's two-second cache runs out. When a
token was revoked anywhere since, the app's cache of verified tokens is dropped first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from stream0d_nb.access import Action, check
from stream0d_nb.api.deps import (
    GroupResolver,
    get_access,
    get_cache,
    get_group_resolver,
    get_identity,
    get_store,
)
from stream0d_nb.db.access_tables import AccessRegistry, GrantRecord
from stream0d_nb.db.dataset_tables import DatasetRecord
from stream0d_nb.db.versions import config_version
from stream0d_nb.errors import ValidationError
from stream0d_nb.specs import AppendReport, IngestReport
from stream0d_nb.store import Store
from stream0d_nb.store.store import append_ingest_report

router = APIRouter(tags=["ingest"])
log = logging.getLogger(__name__)

ARROW = "application/vnd.apache.arrow.stream"
MAX_ROWS = 100_000
MAX_DATASETS = 10_000
OffGrid = Literal["error", "nearest"]


class AppendRows(BaseModel):
    """JSON body of an append: ``rows`` (objects with ``time`` and channel values) or the
    columns ``time`` and ``channels`` (channel -> values); null is a missing value.

    Times are ISO 8601; naive ones are in the dataset's zone.
    """

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, float | str | None]] | None = Field(None, max_length=MAX_ROWS)
    time: list[str] | None = Field(None, max_length=MAX_ROWS)
    channels: dict[str, list[float | None]] | None = None
    off_grid: OffGrid = "error"
    off_grid_tolerance: str | None = Field(
        None, description="Distance to the grid accepted under off_grid='error'."
    )


def _times(texts: list[Any]) -> pd.DatetimeIndex:
    """ISO texts as times (aware, or naive for the dataset's zone)."""
    if not all(isinstance(t, str) for t in texts):
        raise ValidationError("every row needs a 'time' as ISO 8601 text")
    try:
        # an object array: a list would first become an Arrow string array (twice slower)
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(texts, dtype=object), format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"times must be ISO 8601: {exc}") from None


def frame_from_json(body: AppendRows) -> pd.DataFrame:
    """The rows of a JSON append as a frame (time index, one float column per channel)."""
    if (body.rows is None) == (body.time is None):
        raise ValidationError("send either 'rows' or 'time' with 'channels'")
    if body.rows is not None:
        rows = body.rows
        times = _times([r.get("time") for r in rows])
        names = list(dict.fromkeys(k for r in rows for k in r if k != "time"))
        cells = [[r.get(name) for r in rows] for name in names]
        for name, col in zip(names, cells, strict=True):
            if any(isinstance(c, str) for c in col):
                raise ValidationError(f"values of {name!r} must be numbers or null")
        return _frame(times, names, cells)
    times = _times(list(body.time or []))
    columns = body.channels or {}
    for name, values in columns.items():
        if len(values) != len(times):
            raise ValidationError(
                f"channel {name!r} has {len(values)} values for {len(times)} times"
            )
    return _frame(times, list(columns), list(columns.values()))


def _frame(
    times: pd.DatetimeIndex, names: list[str], cells: Sequence[Sequence[Any]]
) -> pd.DataFrame:
    """One float64 block (channels as columns; None is NaN): a frame of one block is built
    several times faster than one of a column per channel."""
    values = np.array(cells, dtype=np.float64).reshape(len(names), len(times))
    return pd.DataFrame(values.T, index=times, columns=names, copy=False)


def frame_from_arrow(data: bytes) -> pd.DataFrame:
    """The rows of an Arrow IPC stream: column ``time`` (timestamps or ISO text), numbers."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"not an Arrow IPC stream: {exc}") from None
    if "time" not in table.column_names:
        raise ValidationError("the Arrow table needs a 'time' column")
    if table.num_rows > MAX_ROWS:
        raise ValidationError(f"at most {MAX_ROWS:,} rows per append")
    t = table.column("time")
    if pa.types.is_timestamp(t.type):
        times = pd.DatetimeIndex(t.to_pandas())
    elif pa.types.is_string(t.type) or pa.types.is_large_string(t.type):
        times = _times(t.to_pylist())
    else:
        raise ValidationError(f"column 'time' must hold timestamps or ISO text, not {t.type}")
    cols: dict[str, Any] = {}
    for name in table.column_names:
        if name == "time":
            continue
        col = table.column(name)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise ValidationError(f"column {name!r} must hold numbers, not {col.type}")
        cols[name] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    return pd.DataFrame(cols, index=times)


class HookRunner:
    """Runs the write hooks after appends in one background thread, dataset after
    dataset; appends that arrive while a dataset waits or runs are merged into its next
    run. One thread, not one per append: rules never fall behind (under load they run
    less often, each on everything new) and their SQL writes do not pile up against the
    appends' on the registry."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._pending: dict[str, IngestReport] = {}
        self._thread: threading.Thread | None = None

    def submit(self, dataset_id: str, report: IngestReport) -> None:
        """Queue ``report`` (merged with what waits for the dataset); returns at once."""
        with self._cond:
            prev = self._pending.get(dataset_id)
            self._pending[dataset_id] = report if prev is None else _merge(prev, report)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="stream0d-append-hooks", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                dataset_id = next(iter(self._pending))  # the one waiting longest
                report = self._pending.pop(dataset_id)
            try:
                for warning in self.store.run_write_hooks(dataset_id, report):
                    log.warning("dataset %s: %s", dataset_id, warning)
            except Exception:  # a failing hook must not stop the others' runs
                log.exception("write hooks after appends to %s failed", dataset_id)


def _merge(a: IngestReport, b: IngestReport) -> IngestReport:
    """One report covering two appends (channels and time span of both)."""
    starts = [t for t in (a.start, b.start) if t is not None]
    ends = [t for t in (a.end, b.end) if t is not None]
    return a.model_copy(
        update={
            "channels": list(dict.fromkeys([*a.channels, *b.channels])),
            "start": min(starts) if starts else None,
            "end": max(ends) if ends else None,
            "values_new": a.values_new + b.values_new,
            "values_written": a.values_written + b.values_written,
        }
    )


_RUNNERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Known:
    """A dataset's record and grants as read at its configuration version ``version``."""

    version: tuple[int, ...]
    record: DatasetRecord
    grants: list[GrantRecord]


class _Versions:
    """What this app's appends know of datasets and tokens, with the versions read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.datasets: dict[str, _Known] = {}
        self.tokens: tuple[int, ...] | None = None


def _versions(request: Request) -> _Versions:
    with _RUNNERS_LOCK:
        versions: _Versions | None = getattr(request.app.state, "append_versions", None)
        if versions is None:
            versions = request.app.state.append_versions = _Versions()
        return versions


def _dataset(
    request: Request, store: Store, access: AccessRegistry, dataset_id: str
) -> tuple[DatasetRecord, list[GrantRecord], bool]:
    """The dataset's record and grants, and whether a token was revoked since this app's
    last append (then the app's cache of verified tokens is dropped). Record and grants
    are reused while the dataset's configuration version is the one they were read at,
    read again when a grant or the dataset changed, from any process (the version is
    read first: a change committed meanwhile shows in the next one)."""
    version = config_version(store.registry, dataset_id)
    versions = _versions(request)
    with versions.lock:
        hit = versions.datasets.get(dataset_id)
        revoked = versions.tokens != version[4:]
        versions.tokens = version[4:]
    if revoked:
        get_cache(request).clear()
    if hit is not None and hit.version == version:
        return hit.record, hit.grants, revoked
    record, grants = store.get_dataset(dataset_id), access.list_grants(dataset_id)
    with versions.lock:
        if len(versions.datasets) >= MAX_DATASETS:
            versions.datasets.clear()
        versions.datasets[dataset_id] = _Known(version, record, grants)
    return record, grants, revoked


def _runner(request: Request, store: Store) -> HookRunner:
    with _RUNNERS_LOCK:
        runner: HookRunner | None = getattr(request.app.state, "append_hooks", None)
        if runner is None:
            runner = request.app.state.append_hooks = HookRunner(store)
        return runner


def _append(
    request: Request,
    dataset_id: str,
    resolver: GroupResolver,
    kind: str,
    data: bytes,
    off_grid: OffGrid | None,
    off_grid_tolerance: str | None,
) -> AppendReport:
    """What an append does in a worker thread: the caller (401), their right to ingest
    into the dataset (404 when hidden, 403), the rows (422), the durable buffer."""
    store, access = get_store(request), get_access(request)
    identity = get_identity(request, access, resolver)  # 401 before anything else
    record, grants, revoked = _dataset(request, store, access, dataset_id)
    if revoked:
        identity = get_identity(request, access, resolver)  # the token again
    check(identity, record, Action.INGEST, grants)  # 404 when hidden, 403
    if kind == ARROW:
        frame = frame_from_arrow(data)
        grid_policy, tolerance = off_grid or "error", off_grid_tolerance
    elif kind in ("application/json", ""):
        body = AppendRows.model_validate_json(data or b"{}")
        frame = frame_from_json(body)
        grid_policy = off_grid or body.off_grid
        tolerance = off_grid_tolerance or body.off_grid_tolerance
    else:
        raise ValidationError(f"appends are JSON or {ARROW}, not {kind!r}")
    return store.append(record.id, frame, identity.user, grid_policy, tolerance, False)


@router.post("/datasets/{dataset_id}/append")
async def append(
    request: Request,
    dataset_id: Annotated[str, Path(description="Dataset id")],
    resolver: Annotated[GroupResolver, Depends(get_group_resolver)],
    off_grid: Annotated[OffGrid | None, Query(description="For Arrow bodies.")] = None,
    off_grid_tolerance: Annotated[str | None, Query(description="For Arrow bodies.")] = None,
) -> AppendReport:
    """Append rows to existing channels; answered once they are durable and readable.
    Needs the right to ingest (editor)."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    data = await request.body()
    report = await run_in_threadpool(
        _append, request, dataset_id, resolver, kind, data, off_grid, off_grid_tolerance
    )
    if report.values_new:  # alert rules... right after answering
        store = get_store(request)
        _runner(request, store).submit(report.dataset, append_ingest_report(report))
    return report
