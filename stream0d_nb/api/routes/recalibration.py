"""Recalibration of a dataset's process models: models and their versions, notebook runs
(started off the request, status, log, executed notebook, HTML report) and schedules.

The user actions of ``stream0d recal`` (docs/recalibration.md), per dataset: reading needs
the dataset's read permission (viewer), changing needs ``Action.RECALIBRATE`` (editor). Runs
and schedules of other datasets look missing. Files are served only from the runs folder.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, get_settings, require
from stream0d_nb.api.errors import NotFoundError
from stream0d_nb.api.routes.data import check_limits
from stream0d_nb.db.recal_tables import RecalRegistry, RunRecord, ScheduleRecord
from stream0d_nb.errors import ValidationError, WriteConflictError
from stream0d_nb.recalibration.models import build_model, model_names
from stream0d_nb.recalibration.runner import (
    DEFAULT_TIMEOUT_S,
    RUNS_DIR,
    RunResult,
    check_parameters,
    run_notebook,
)
from stream0d_nb.recalibration.scheduler import (
    CATCH_UP,
    add_schedule,
    next_slot,
    resolve_notebook,
    start_manual_run,
    update_schedule,
)
from stream0d_nb.recalibration.service import Activation, Recalibration
from stream0d_nb.records import (
    RUN_FILES,
    AttrView,
    DriftCheck,
    ModelInfo,
    ModelRecord,
    RunInfo,
    ScheduleInfo,
    VersionRecord,
)
from stream0d_nb.store import Store

router = APIRouter(tags=["recalibration"])

Read = Annotated[DatasetContext, Depends(require(Action.READ))]
ViewRuns = Annotated[DatasetContext, Depends(require(Action.VIEW_RUNS))]
Edit = Annotated[DatasetContext, Depends(require(Action.RECALIBRATE))]

NotebookName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}(\.ipynb)?$",
        description="A notebook of the platform's recalibration_runs/ folder, by name.",
    ),
]
Timeout = Annotated[
    float, Field(gt=0, le=DEFAULT_TIMEOUT_S, description="Time limit of a run, seconds.")
]
MAX_API_RUNS = 2  # runs executing at once per API process (each is a kernel process)
MAX_QUEUED_RUNS = 8  # beyond this many unfinished API runs, new ones are refused (409)
# the report may show its own inline styles and SVG, and nothing else: no script, no fetch
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "script-src 'none'; form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox"
)


class RunsBusyError(WriteConflictError):
    """Too many API runs are waiting or executing (HTTP 409)."""


# ---- models -----------------------------------------------------------------------------
class ActivationIn(BaseModel):
    """When a candidate version replaces the active one (docs/recalibration.md)."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["cv_rmse", "rmse", "mae", "abs_nmbe", "r2"] = "cv_rmse"
    margin: float = Field(0.0, ge=0, lt=1, description="Relative improvement needed.")
    require_acceptance: bool = False


class ModelIn(BaseModel):
    """A model of the dataset: its kind, output and inputs (channels or formulas),
    kind-specific options (``lags``, ``alpha``, ``initial``...) and activation rule."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(..., min_length=1, max_length=64, description="linear, first_order_thermal…")
    output: str = Field(..., min_length=1, max_length=1000)
    inputs: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        ..., min_length=1, max_length=100
    )
    options: dict[str, Any] = Field(default_factory=dict)
    activation: ActivationIn = Field(default_factory=ActivationIn)


def _model_out(table: RecalRegistry, rec: ModelRecord) -> ModelInfo:
    active = table.active_version(rec.dataset, rec.name)
    return ModelInfo.model_validate(AttrView(rec, active=active))


@router.get("/datasets/{dataset_id}/models")
def list_models(ctx: Read, store: StoreDep) -> list[ModelInfo]:
    """The dataset's models with their active version (viewer)."""
    table = RecalRegistry(store.registry)
    return [_model_out(table, m) for m in table.models(ctx.id)]


@router.get("/datasets/{dataset_id}/models/{name}")
def show_model(name: str, ctx: Read, store: StoreDep) -> ModelInfo:
    """One model with its active version (viewer)."""
    table = RecalRegistry(store.registry)
    return _model_out(table, table.model(ctx.id, name))


@router.put("/datasets/{dataset_id}/models/{name}", status_code=200)
def save_model(
    name: str, body: ModelIn, ctx: Edit, store: StoreDep, response: Response
) -> ModelInfo:
    """Create (201) or redefine (200) a model (editor); its inputs and output must resolve
    on the dataset. Audited ``recal.model.create|update`` like ``stream0d recal model add``."""
    if body.kind not in model_names():
        raise ValidationError(
            f"kind: {body.kind!r} is not a model kind (known: {', '.join(model_names())})"
        )
    taken = sorted({"model", "inputs", "output"} & set(body.options))
    if taken:
        raise ValidationError(f"options: {', '.join(taken)} are fields of their own")
    try:
        model = build_model(
            {"model": body.kind, "inputs": body.inputs, "output": body.output, **body.options}
        )
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"options: {exc}") from None
    table = RecalRegistry(store.registry)
    existed = any(m.name == name for m in table.models(ctx.id))
    rec = Recalibration(store).define_model(
        ctx.id,
        name,
        model,
        Activation(**body.activation.model_dump()),
        actor=ctx.identity.user,
    )
    response.status_code = 200 if existed else 201
    return _model_out(table, rec)


@router.get("/datasets/{dataset_id}/models/{name}/versions")
def model_versions(
    name: str,
    ctx: Read,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[VersionRecord]:
    """A model's versions, newest first: status (active, rejected, retired), metrics on the
    train and hold-out windows, windows, snapshot, trigger and the reason of the decision."""
    return RecalRegistry(store.registry).versions(ctx.id, name, limit)


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


@router.get("/datasets/{dataset_id}/models/{name}/drift")
def model_drift(
    name: str,
    ctx: Read,
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
    window: Annotated[
        str, Query(min_length=1, max_length=64, description="Rolling CV(RMSE) window.")
    ] = "1h",
    cv_threshold: Annotated[float, Query(gt=0, description="CV(RMSE) alarm level, %.")] = 30.0,
    delta: Annotated[
        float, Query(ge=0, description="Page-Hinkley tolerance (output units).")
    ] = 0.5,
    threshold: Annotated[float, Query(gt=0, description="Page-Hinkley alarm level.")] = 50.0,
    start: Annotated[
        datetime | None, Query(description="Default: end of the hold-out window; naive = UTC.")
    ] = None,
    end: Annotated[datetime | None, Query(description="Default: end of the data.")] = None,
) -> DriftCheck:
    """Check the active version's residuals for drift, as ``stream0d recal drift`` does
    (viewer): rolling CV(RMSE) over ``window`` above ``cv_threshold`` and Page-Hinkley on
    the residual mean, since the version's hold-out window ended (or over ``[start, end)``).
    A model without an active version is 422; the read is bounded like ``/data`` (413)."""
    rc = Recalibration(store)
    span = rc.drift_span(ctx.id, name, start, end)
    if span.end > span.start:
        snap = store.data(ctx.id).snapshot()
        bounds = (_iso(span.read_start), _iso(span.end))
        check_limits(snap, span.channels, *bounds, None, "mean", settings, "arrow", store, ctx.id)
    lo, hi = (pd.Timestamp(t, unit="ns", tz="UTC") for t in (span.start, span.end))
    report = rc.check_drift(
        ctx.id,
        name,
        lo,
        hi,
        window=window,
        cv_threshold=cv_threshold,
        delta=delta,
        threshold=threshold,
    )
    return DriftCheck.model_validate(
        AttrView(
            report,
            dataset=ctx.id,
            model=name,
            version=span.version.version,
            start=lo,
            end=hi,
            window=window,
            cv_threshold=cv_threshold,
            delta=delta,
            threshold=threshold,
        )
    )


# ---- runs -------------------------------------------------------------------------------
MEDIA_TYPES = {
    "log": "text/plain; charset=utf-8",
    "notebook": "application/x-ipynb+json",
    "report": "text/html; charset=utf-8",
}


def _find_run(store: Store, dataset_id: str, run_id: int) -> RunRecord:
    """The dataset's run ``run_id`` (runs of other datasets look missing: 404)."""
    return RecalRegistry(store.registry).run(run_id, dataset_id)


class RunIn(BaseModel):
    """A notebook to run now on this dataset, with its parameters (``dataset`` is the
    path's; checked against the notebook's ``parameters`` cell before anything starts)."""

    model_config = ConfigDict(extra="forbid")

    notebook: NotebookName = "recalibrate"
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_s: Timeout = DEFAULT_TIMEOUT_S


def _dataset_parameters(ctx: DatasetContext, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters with ``dataset`` set to the path's dataset (another one: 422)."""
    given = parameters.get("dataset", ctx.id)
    if given != ctx.id:
        raise ValidationError(
            f"parameters.dataset: {given!r} is not this dataset ({ctx.id!r}); runs and "
            "schedules act on the dataset of their path"
        )
    return {**parameters, "dataset": ctx.id}


class _ApiRuns:
    """The API process's run executor: at most ``MAX_API_RUNS`` kernels at once, a
    bounded queue, each run recorded in a final state whatever happens."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(MAX_API_RUNS, thread_name_prefix="api-recal-run")
        self.inflight: dict[int, Future[RunResult]] = {}
        self.lock = threading.Lock()

    def pending(self) -> int:
        with self.lock:
            for rid in [r for r, f in self.inflight.items() if f.done()]:
                self.inflight.pop(rid)
            return len(self.inflight)

    def check_room(self) -> None:
        """RunsBusyError (409) when ``MAX_QUEUED_RUNS`` runs wait or execute already."""
        if self.pending() >= MAX_QUEUED_RUNS:
            raise RunsBusyError(
                f"{MAX_QUEUED_RUNS} runs are waiting or executing on this service: start this "
                "one when they have ended"
            )

    def submit(self, store: Store, path: Path, params: dict[str, Any], run: RunRecord,
               timeout_s: float, actor: str, claim: tuple[str, str] | None = None,
               ) -> None:  # fmt: skip
        """Execute ``run`` off the request; ``claim`` (schedule name, owner) is the claim of
        a schedule's run: renewed when the run leaves the queue, released when it ends."""
        table = RecalRegistry(store.registry)

        def work() -> RunResult:
            try:
                if claim is not None and not table.renew(*claim):
                    return RunResult(table.run(run.id))  # taken over: ended as abandoned
                return run_notebook(
                    store, path, params, timeout_s=timeout_s, trigger=run.trigger,
                    actor=actor, dataset_id=run.dataset, run=run,
                )  # fmt: skip
            except Exception as exc:  # a run must end in a final state, never stay running
                return RunResult(table.crashed(run.id, exc))
            finally:
                if claim is not None:
                    table.release(*claim)

        with self.lock:
            self.inflight[run.id] = self.pool.submit(work)


_RUNS_LOCK = threading.Lock()


def _api_runs(request: Request) -> _ApiRuns:
    """The app's run executor (created on first use)."""
    with _RUNS_LOCK:
        runs: _ApiRuns | None = getattr(request.app.state, "recal_runs", None)
        if runs is None:
            runs = request.app.state.recal_runs = _ApiRuns()
        return runs


@router.get("/datasets/{dataset_id}/recalibration/runs")
def list_runs(
    ctx: ViewRuns,
    store: StoreDep,
    status: Annotated[
        Literal["queued", "running", "succeeded", "failed", "timed_out"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[RunInfo]:
    """The dataset's notebook runs, newest first (viewer)."""
    rows = RecalRegistry(store.registry).runs(None, ctx.id, status, limit)
    return [RunInfo.model_validate(r) for r in rows]


@router.post("/datasets/{dataset_id}/recalibration/runs", status_code=202)
def start_run(
    body: RunIn, ctx: Edit, store: StoreDep, request: Request, response: Response
) -> RunInfo:
    """Start a notebook run on the dataset (editor): the parameters are checked first
    (422), then the run is recorded ``queued`` and executes off the request; the answer
    (202) is the run, whose status ``GET .../runs/{run}`` follows."""
    path = resolve_notebook(body.notebook)
    params = _dataset_parameters(ctx, body.parameters)
    try:
        check_parameters(path, params)
    except ValidationError as exc:
        raise ValidationError(f"parameters: {exc}") from None
    runs = _api_runs(request)
    runs.check_room()
    run = RecalRegistry(store.registry).create_run(
        notebook=str(path),
        parameters=params,
        trigger="api",
        actor=ctx.identity.user,
        dataset_id=ctx.id,
        timeout_s=body.timeout_s,
    )
    runs.submit(store, path, params, run, body.timeout_s, ctx.identity.user)
    response.headers["Location"] = str(
        request.url_for("show_run", dataset_id=ctx.id, run_id=run.id)
    )
    return RunInfo.model_validate(run)


@router.get("/datasets/{dataset_id}/recalibration/runs/{run_id}")
def show_run(run_id: int, ctx: ViewRuns, store: StoreDep) -> RunInfo:
    """One run: status, times, parameters, snapshot, model version, error (viewer)."""
    return RunInfo.model_validate(_find_run(store, ctx.id, run_id))


def _run_file(store: Store, rec: RunRecord, what: str) -> Path:
    """A run's file, only if it is a file inside the local runs folder (404 otherwise)."""
    where = rec.outputs.get(RUN_FILES[what])
    if not where:
        raise NotFoundError(f"run {rec.id} has no {what} (status {rec.status})")
    if str(where).startswith("az://"):
        raise NotFoundError(f"the {what} of run {rec.id} is stored on Azure, at {where}")
    root = (store.settings.home / RUNS_DIR).resolve()
    path = Path(where).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFoundError(f"run {rec.id} has no {what}")
    return path


@router.get("/datasets/{dataset_id}/recalibration/runs/{run_id}/{what}")
def run_file(
    run_id: int, what: Literal["log", "notebook", "report"], ctx: Read, store: StoreDep
) -> Response:
    """A run's kernel log (text), executed notebook (.ipynb, kept when a cell failed) or
    HTML report (served with a CSP forbidding scripts), with the dataset's read permission."""
    rec = _find_run(store, ctx.id, run_id)
    path = _run_file(store, rec, what)
    headers = {"X-Content-Type-Options": "nosniff"}
    if what == "report":
        headers["Content-Security-Policy"] = REPORT_CSP
    elif what == "notebook":
        headers["Content-Disposition"] = f'attachment; filename="run-{rec.id}-{path.name}"'
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[what], headers=headers)


# ---- schedules --------------------------------------------------------------------------
class ScheduleIn(BaseModel):
    """A notebook run on a cron schedule (UTC) on this dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=63, description="Unique slug.")
    cron: str = Field(..., min_length=1, max_length=128, description="e.g. '0 3 * * *'.")
    notebook: NotebookName = "recalibrate"
    parameters: dict[str, Any] = Field(default_factory=dict)
    catch_up: Literal["skip", "once", "all"] = "once"
    max_catch_up: int = Field(10, ge=1, le=1000)
    timeout_s: Timeout = DEFAULT_TIMEOUT_S
    enabled: bool = True


class ScheduleChange(BaseModel):
    """Fields of a schedule to change (the others stay); ``enabled`` pauses or resumes."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(None, min_length=1, max_length=128)
    notebook: NotebookName | None = None
    parameters: dict[str, Any] | None = None
    catch_up: Literal["skip", "once", "all"] | None = None
    max_catch_up: int | None = Field(None, ge=1, le=1000)
    timeout_s: Timeout | None = None
    enabled: bool | None = None


def _schedule_out(rec: ScheduleRecord) -> ScheduleInfo:
    """The schedule with its next slot (computed here: the records know no cron)."""
    slot = next_slot(rec.cron, rec.last_fired_for or rec.created_at)
    return ScheduleInfo.model_validate(AttrView(rec, next_slot=slot))


def _find_schedule(store: Store, dataset_id: str, name: str) -> ScheduleRecord:
    """The dataset's schedule ``name`` (others' schedules look missing: 404)."""
    return RecalRegistry(store.registry).schedule(name, dataset_id)


@router.get("/datasets/{dataset_id}/recalibration/schedules")
def list_schedules(ctx: ViewRuns, store: StoreDep) -> list[ScheduleInfo]:
    """The dataset's schedules with their next slot (viewer)."""
    rows = RecalRegistry(store.registry).schedules()
    return [_schedule_out(s) for s in rows if s.dataset == ctx.id]


@router.get("/datasets/{dataset_id}/recalibration/schedules/{name}")
def show_schedule(name: str, ctx: ViewRuns, store: StoreDep) -> ScheduleInfo:
    """One schedule (viewer)."""
    return _schedule_out(_find_schedule(store, ctx.id, name))


@router.post("/datasets/{dataset_id}/recalibration/schedules", status_code=201)
def create_schedule(body: ScheduleIn, ctx: Edit, store: StoreDep) -> ScheduleInfo:
    """Schedule a notebook on the dataset (editor); cron, notebook and parameters are
    checked now (422); the name begins with the dataset's id and a dash; a name in use
    is 409. Audited."""
    if not body.name.startswith(f"{ctx.id}-"):
        # names are unique across datasets: decided on the text alone, before looking, a
        # 409 can only name one of this dataset's schedules, never reveal another's
        raise ValidationError(
            f"schedule name {body.name!r}: schedules of dataset {ctx.id!r} are named "
            f"'{ctx.id}-<name>' (e.g. '{ctx.id}-nightly')"
        )
    params = _dataset_parameters(ctx, body.parameters)
    assert body.catch_up in CATCH_UP
    rec = add_schedule(  # a name in use: ScheduleExistsError (409)
        store,
        body.name,
        body.cron,
        body.notebook,
        params,
        catch_up=body.catch_up,
        max_catch_up=body.max_catch_up,
        timeout_s=body.timeout_s,
        actor=ctx.identity.user,
    )
    if not body.enabled:
        RecalRegistry(store.registry).set_enabled(body.name, False, ctx.identity.user)
        rec = RecalRegistry(store.registry).schedule(body.name)
    return _schedule_out(rec)


@router.patch("/datasets/{dataset_id}/recalibration/schedules/{name}")
def change_schedule(name: str, body: ScheduleChange, ctx: Edit, store: StoreDep) -> ScheduleInfo:
    """Change a schedule, pause (``enabled: false``) or resume it (editor); audited.
    Changing anything but ``enabled`` while one of its runs executes is 409."""
    changes = body.model_dump(exclude_unset=True, exclude={"enabled"})
    if any(v is None for v in changes.values()):
        nulls = ", ".join(k for k, v in changes.items() if v is None)
        raise ValidationError(f"{nulls}: null is not a value (leave the field out instead)")
    if "parameters" in changes:
        changes["parameters"] = _dataset_parameters(ctx, changes["parameters"])
    if changes:
        update_schedule(store, name, changes, actor=ctx.identity.user, dataset_id=ctx.id)
    if body.enabled is not None:
        RecalRegistry(store.registry).set_enabled(name, body.enabled, ctx.identity.user, ctx.id)
    return _schedule_out(_find_schedule(store, ctx.id, name))


@router.post("/datasets/{dataset_id}/recalibration/schedules/{name}/run", status_code=202)
def run_schedule(
    name: str, ctx: Edit, store: StoreDep, request: Request, response: Response
) -> RunInfo:
    """Run one of the dataset's schedules now with its own notebook, parameters and time
    limit, as ``stream0d recal run --schedule`` does (editor; its cron slots do not move):
    through the schedule's claim (409 while one of its runs executes), then like
    ``POST .../runs``: 202 with the queued run, trigger ``manual:<name>``."""
    runs = _api_runs(request)
    runs.check_room()
    owner = f"api-{uuid.uuid4().hex[:12]}"
    table = RecalRegistry(store.registry)
    sched, run = start_manual_run(table, name, owner, ctx.identity.user, ctx.id)
    try:
        runs.submit(store, Path(sched.notebook), sched.parameters, run, sched.timeout_s,
                    ctx.identity.user, claim=(name, owner))  # fmt: skip
    except BaseException as exc:  # not submitted (e.g. shutting down): end it, free the claim
        table.crashed(run.id, exc)
        table.release(name, owner)
        raise
    response.headers["Location"] = str(
        request.url_for("show_run", dataset_id=ctx.id, run_id=run.id)
    )
    return RunInfo.model_validate(run)


@router.delete("/datasets/{dataset_id}/recalibration/schedules/{name}", status_code=204)
def delete_schedule(name: str, ctx: Edit, store: StoreDep) -> None:
    """Delete a schedule (editor; its runs stay); 409 while one of its runs executes."""
    table = RecalRegistry(store.registry)
    table.remove_schedule(name, ctx.identity.user, refuse_claimed=True, dataset_id=ctx.id)
