"""Records of recalibration: models, their versions, notebook runs and schedules as the
API shows them (notebooks by name and runs' files by kind, never server paths)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from pydantic import AliasChoices, Field, field_validator

from stream0d_nb.records.base import DATASET_ID, Record

RUN_FILES = {"log": "kernel_log", "notebook": "notebook", "report": "html"}
"""A run's files as the API names them -> the runner's output key holding each."""


def _notebook_name(v: Any) -> Any:
    """A notebook by its file name (the server's path stays on the server)."""
    return PurePath(v).name if isinstance(v, str) else v


class ModelRecord(Record):
    """A registered process model of a dataset: kind, spec and activation rule."""

    id: int
    dataset: str = Field(validation_alias=DATASET_ID)
    name: str
    kind: str
    spec: dict[str, Any]
    activation: dict[str, Any]
    created_at: datetime
    created_by: str


class VersionRecord(Record):
    """A model version: parameters, metrics on the train and hold-out windows, the data
    snapshot, and the decision (active, rejected, retired) with its reason."""

    id: int
    model: str
    dataset: str
    version: int
    params: dict[str, float]
    metrics: dict[str, Any]
    train_window: tuple[datetime, datetime]
    holdout_window: tuple[datetime, datetime]
    snapshot: str | None
    trigger: str
    status: str
    reason: str
    run_id: int | None
    created_at: datetime
    created_by: str


class ModelInfo(ModelRecord):
    """A model with its active version (None before the first activation)."""

    active: VersionRecord | None


class DriftCheck(Record):
    """A drift check of a model's active version (``stream0d recal drift``): the range of
    residuals checked, the settings, and when each check first alarmed (None: never)."""

    dataset: str = Field(validation_alias=DATASET_ID)
    model: str
    version: int = Field(description="The active version whose residuals were checked.")
    start: datetime = Field(description="Start of the residuals checked (default: hold-out end).")
    end: datetime = Field(description="End (exclusive) of the residuals checked.")
    window: str
    cv_threshold: float
    delta: float
    threshold: float
    cv_rmse_alarm: datetime | None = Field(
        description="First time the rolling CV(RMSE) was above cv_threshold."
    )
    sequential_alarm: datetime | None = Field(
        description="First alarm of the Page-Hinkley test on the residual mean."
    )
    first_alarm: datetime | None
    drifted: bool

    @field_validator("cv_rmse_alarm", "sequential_alarm", "first_alarm", mode="after")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        """Residual times are naive UTC (xarray's): say so."""
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


class RunInfo(Record):
    """A notebook run as the API shows it: the notebook by name, and which of its files
    (``log``, ``notebook``, ``report``) can be fetched."""

    id: int
    dataset: str | None = Field(validation_alias=DATASET_ID)
    schedule_id: int | None
    notebook: str
    status: str
    trigger: str
    scheduled_for: datetime | None
    queued_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    parameters: dict[str, Any]
    snapshot: str | None
    model_version_id: int | None
    error_cell: int | None
    error_name: str | None
    error_message: str | None
    metrics: dict[str, Any]
    files: list[str] = Field(validation_alias=AliasChoices("files", "outputs"))
    created_by: str

    @field_validator("notebook", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        return _notebook_name(v)

    @field_validator("files", mode="before")
    @classmethod
    def _files(cls, v: Any) -> Any:
        """The runner's outputs (key -> path) as the names of the files one may fetch."""
        if isinstance(v, dict):
            return [name for name, key in RUN_FILES.items() if key in v]
        return v


class ScheduleInfo(Record):
    """A schedule as the API shows it: its next slot (given by the caller, who knows
    cron) and the run holding it, if one runs."""

    name: str
    dataset: str | None = Field(validation_alias=DATASET_ID)
    cron: str
    notebook: str
    parameters: dict[str, Any]
    catch_up: str
    max_catch_up: int
    timeout_s: float
    enabled: bool
    last_fired_for: datetime | None
    next_slot: datetime
    running_run: int | None = Field(
        validation_alias=AliasChoices("running_run", "claim_run_id"),
        description="The run holding the schedule's claim (None: none runs).",
    )
    created_at: datetime
    created_by: str

    @field_validator("notebook", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        return _notebook_name(v)
