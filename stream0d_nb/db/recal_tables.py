"""SQL tables of recalibration: models, their versions, notebook schedules and runs.

Rows hold plain JSON (model specs, parameters, metrics) validated by
``stream0d_nb.recalibration`` (the layer above); this module stores and queries them.
Configuration changes and version decisions are audited in the same transaction as the
change. Schedules carry a **claim** (``claim_run_id``): a run of a schedule starts only
after one conditional ``UPDATE ... WHERE claim_run_id IS NULL`` succeeded, so two
scheduler processes (or a scheduler and a manual trigger) can never run the same
schedule at the same time; a claim older than the schedule's time limit plus a grace
period is considered abandoned (a crashed process) and can be taken over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from stream0d_nb.db.base import Base, BigIntPK, JSONType, UTCDateTime, utcnow
from stream0d_nb.db.dataset_tables import dataset_row
from stream0d_nb.db.upsert import save_by_name
from stream0d_nb.errors import (
    ModelNotFoundError,
    ModelVersionNotFoundError,
    RunNotFoundError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    ValidationError,
    WriteConflictError,
)
from stream0d_nb.records import DATASET_ID, AttrView, ModelRecord, VersionRecord

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry

VersionStatus = Literal["active", "rejected", "retired"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "timed_out"]
CatchUp = Literal["skip", "once", "all"]
FINAL_RUN_STATES = ("succeeded", "failed", "timed_out")
CLAIM_GRACE = timedelta(minutes=5)


class ScheduleClaimedError(WriteConflictError):
    """A schedule cannot be changed or removed while one of its runs holds its claim."""


def run_allowance(timeout_s: float) -> timedelta:
    """How long a run may stay unfinished before it counts as abandoned."""
    return timedelta(seconds=timeout_s) + CLAIM_GRACE


class RecalModelRow(Base):
    """A model of one dataset: its kind, spec (inputs/output/config) and activation rule."""

    __tablename__ = "recal_models"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    activation: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String)


class RecalVersionRow(Base):
    """One calibration of a model: parameters, metrics, windows, data snapshot, decision."""

    __tablename__ = "recal_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        Index("ix_recal_versions_model_id_status", "model_id", "status"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("recal_models.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    train_start: Mapped[datetime] = mapped_column(UTCDateTime())
    train_end: Mapped[datetime] = mapped_column(UTCDateTime())
    holdout_start: Mapped[datetime] = mapped_column(UTCDateTime())
    holdout_end: Mapped[datetime] = mapped_column(UTCDateTime())
    snapshot: Mapped[str | None] = mapped_column(String(64), nullable=True)
    trigger: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)

    @property
    def train_window(self) -> tuple[datetime, datetime]:
        return self.train_start, self.train_end

    @property
    def holdout_window(self) -> tuple[datetime, datetime]:
        return self.holdout_start, self.holdout_end


class RecalScheduleRow(Base):
    """A notebook on a cron schedule, with its catch-up policy and its claim."""

    __tablename__ = "recal_schedules"
    __table_args__ = (UniqueConstraint("name"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63))
    dataset_id: Mapped[str | None] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=True
    )
    cron: Mapped[str] = mapped_column(String(128))
    notebook: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    catch_up: Mapped[str] = mapped_column(String(8))
    max_catch_up: Mapped[int] = mapped_column(Integer)
    timeout_s: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean)
    last_fired_for: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claim_run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)


class RecalRunRow(Base):
    """One execution of a notebook (scheduled or manual), whatever its outcome."""

    __tablename__ = "recal_runs"
    __table_args__ = (
        Index("ix_recal_runs_schedule_id", "schedule_id"),
        Index("ix_recal_runs_queued_at", "queued_at"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("recal_schedules.id", ondelete="SET NULL"), nullable=True
    )
    dataset_id: Mapped[str | None] = mapped_column(String(63), nullable=True)
    notebook: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(255))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # past this, a queued or running run's process is gone: its time limit plus CLAIM_GRACE
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    snapshot: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error_cell: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String)


# ----------------------------------------------------------------------------- records


class _Frozen(BaseModel):
    """Read from a row by attribute (``model_validate(row)``), frozen."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


class ScheduleRecord(_Frozen):
    """A schedule as read back."""

    id: int
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
    last_fired_at: datetime | None
    claimed_by: str | None
    claimed_at: datetime | None
    claim_run_id: int | None
    created_at: datetime
    created_by: str


class RunRecord(_Frozen):
    """A notebook run as read back."""

    id: int
    schedule_id: int | None
    dataset: str | None = Field(validation_alias=DATASET_ID)
    notebook: str
    status: str
    trigger: str
    scheduled_for: datetime | None
    queued_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    deadline: datetime | None = None
    parameters: dict[str, Any]
    snapshot: str | None
    model_version_id: int | None
    error_cell: int | None
    error_name: str | None
    error_message: str | None
    outputs: dict[str, Any]
    metrics: dict[str, Any]
    created_by: str


def _version_of(row: RecalVersionRow, model: RecalModelRow) -> VersionRecord:
    """A version row read with the name and dataset of its model."""
    return VersionRecord.model_validate(AttrView(row, model=model.name, dataset=model.dataset_id))


class RecalRegistry:
    """Recalibration rows in the platform's registry database (same engine, same migrations)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- models --------------------------------------------------------------------
    @staticmethod
    def _model_row(s: Session, dataset_id: str, name: str) -> RecalModelRow:
        row = s.scalars(
            select(RecalModelRow).where(
                RecalModelRow.dataset_id == dataset_id, RecalModelRow.name == name
            )
        ).one_or_none()
        if row is None:
            known = s.scalars(
                select(RecalModelRow.name).where(RecalModelRow.dataset_id == dataset_id)
            ).all()
            raise ModelNotFoundError(
                f"dataset {dataset_id!r} has no model {name!r} (models: "
                + (", ".join(known) or "none")
                + ")"
            )
        return row

    def save_model(
        self,
        dataset_id: str,
        name: str,
        kind: str,
        spec: dict[str, Any],
        activation: dict[str, Any],
        actor: str,
    ) -> ModelRecord:
        """Insert or replace a model definition (audited ``recal.model.create|update``)."""

        def fill(row: RecalModelRow, created: bool) -> dict[str, Any] | None:
            same = (row.kind, row.spec, row.activation) == (kind, spec, activation)
            if not created and same:
                return None
            row.kind, row.spec, row.activation = kind, spec, activation
            return {"model": name, "kind": kind, "spec": spec, "activation": activation}

        saved = save_by_name(
            self.registry,
            RecalModelRow,
            {"dataset_id": dataset_id, "name": name},
            fill,
            actor=actor,
            actions=("recal.model.create", "recal.model.update"),
            dataset_id=dataset_id,
        )
        return ModelRecord.model_validate(saved.row)

    def model(self, dataset_id: str, name: str) -> ModelRecord:
        """One model (``ModelNotFoundError`` naming the dataset's models)."""
        with self.registry.read_session() as s:
            dataset_row(s, dataset_id)
            return ModelRecord.model_validate(self._model_row(s, dataset_id, name))

    def models(self, dataset_id: str | None = None) -> list[ModelRecord]:
        """Models (of one dataset), by dataset then name."""
        q = select(RecalModelRow)
        if dataset_id is not None:
            q = q.where(RecalModelRow.dataset_id == dataset_id)
        with self.registry.read_session() as s:
            rows = s.scalars(q.order_by(RecalModelRow.dataset_id, RecalModelRow.name))
            return [ModelRecord.model_validate(r) for r in rows]

    def delete_model(self, dataset_id: str, name: str, actor: str) -> None:
        """Delete a model with its versions (audited)."""
        with self.registry.write_session() as s:
            row = self._model_row(s, dataset_id, name)
            s.execute(delete(RecalVersionRow).where(RecalVersionRow.model_id == row.id))
            s.delete(row)
            s.flush()
            self.registry.add_audit(
                s, actor, "recal.model.delete", dataset_id, {"model": name}, None
            )

    # -- versions ------------------------------------------------------------------
    def record_version(
        self,
        dataset_id: str,
        model: str,
        *,
        params: dict[str, float],
        metrics: dict[str, Any],
        train_window: tuple[datetime, datetime],
        holdout_window: tuple[datetime, datetime],
        snapshot: str | None,
        trigger: str,
        activate: bool,
        reason: str,
        actor: str,
        run_id: int | None = None,
        expected_active: int | None = None,
    ) -> VersionRecord:
        """Record a candidate: active (the previous active one retired) or rejected.

        ``expected_active`` is the id of the active version the decision was made against
        (None: there was none); if another process activated a version meanwhile, the
        candidate is recorded as rejected with that reason instead of overriding it.
        """
        now = utcnow()
        with self.registry.write_session() as s:
            m = self._model_row(s, dataset_id, model)
            current = s.scalars(
                select(RecalVersionRow).where(
                    RecalVersionRow.model_id == m.id, RecalVersionRow.status == "active"
                )
            ).one_or_none()
            current_id = current.id if current is not None else None
            if activate and current_id != expected_active:
                activate = False
                reason = (
                    f"another version (id {current_id}) became active while this one was "
                    f"being evaluated; not activated ({reason})"
                )
            last = s.scalar(
                select(func.max(RecalVersionRow.version)).where(RecalVersionRow.model_id == m.id)
            )
            row = RecalVersionRow(
                model_id=m.id,
                version=int(last or 0) + 1,
                params=dict(params),
                metrics=metrics,
                train_start=train_window[0],
                train_end=train_window[1],
                holdout_start=holdout_window[0],
                holdout_end=holdout_window[1],
                snapshot=snapshot,
                trigger=trigger,
                status="active" if activate else "rejected",
                reason=reason,
                run_id=run_id,
                created_at=now,
                created_by=actor,
            )
            if activate and current is not None:
                current.status = "retired"
                s.flush()
            s.add(row)
            s.flush()
            self.registry.add_audit(
                s,
                actor,
                "recal.version.activate" if activate else "recal.version.reject",
                dataset_id,
                {
                    "model": model,
                    "version": row.version,
                    "retired": current.version if activate and current is not None else None,
                    "trigger": trigger,
                    "snapshot": snapshot,
                    "reason": reason,
                    "holdout": metrics.get("holdout"),
                },
                None,
                now,
            )
            return _version_of(row, m)

    def versions(self, dataset_id: str, model: str, limit: int = 100) -> list[VersionRecord]:
        """A model's versions, newest first."""
        with self.registry.read_session() as s:
            m = self._model_row(s, dataset_id, model)
            rows = s.scalars(
                select(RecalVersionRow)
                .where(RecalVersionRow.model_id == m.id)
                .order_by(RecalVersionRow.version.desc())
                .limit(limit)
            )
            return [_version_of(r, m) for r in rows]

    def active_version(self, dataset_id: str, model: str) -> VersionRecord | None:
        """The active version of a model (None before the first activation)."""
        with self.registry.read_session() as s:
            m = self._model_row(s, dataset_id, model)
            row = s.scalars(
                select(RecalVersionRow).where(
                    RecalVersionRow.model_id == m.id, RecalVersionRow.status == "active"
                )
            ).one_or_none()
            return None if row is None else _version_of(row, m)

    def version(self, version_id: int) -> VersionRecord:
        """A version by id."""
        with self.registry.read_session() as s:
            row = s.get(RecalVersionRow, version_id)
            if row is None:
                raise ModelVersionNotFoundError(f"no model version with id {version_id}")
            m = s.get(RecalModelRow, row.model_id)
            assert m is not None
            return _version_of(row, m)

    # -- schedules -----------------------------------------------------------------
    def add_schedule(
        self,
        name: str,
        *,
        cron: str,
        notebook: str,
        parameters: dict[str, Any],
        catch_up: CatchUp,
        max_catch_up: int,
        timeout_s: float,
        dataset_id: str | None,
        actor: str,
        enabled: bool = True,
        start_after: datetime | None = None,
    ) -> ScheduleRecord:
        """Create a schedule; it fires for cron times after ``start_after`` (default: now).
        ``ScheduleExistsError`` if the name is taken (names are unique across datasets)."""

        def fill(row: RecalScheduleRow, created: bool) -> dict[str, Any]:
            row.dataset_id, row.cron, row.notebook = dataset_id, cron, notebook
            row.parameters, row.catch_up = parameters, catch_up
            row.max_catch_up, row.timeout_s, row.enabled = max_catch_up, timeout_s, enabled
            row.last_fired_for = start_after or row.created_at
            return {
                "schedule": name,
                "cron": cron,
                "notebook": notebook,
                "parameters": parameters,
                "catch_up": catch_up,
            }

        def taken() -> ScheduleExistsError:
            return ScheduleExistsError(f"a schedule named {name!r} exists already")

        saved = save_by_name(
            self.registry,
            RecalScheduleRow,
            {"name": name},
            fill,
            actor=actor,
            actions=("recal.schedule.create", "recal.schedule.create"),
            dataset_id=dataset_id,
            exists=taken,
        )
        return ScheduleRecord.model_validate(saved.row)

    @staticmethod
    def _key(name: str, dataset_id: str | None) -> dict[str, Any]:
        """A schedule's key: its name, and its dataset when the caller acts on one."""
        return {"name": name} if dataset_id is None else {"name": name, "dataset_id": dataset_id}

    @staticmethod
    def _missing(name: str, dataset_id: str | None) -> ScheduleNotFoundError:
        """No such schedule; never lists the others (other datasets' names are private)."""
        if dataset_id is None:
            return ScheduleNotFoundError(f"no schedule named {name!r}")
        return ScheduleNotFoundError(f"dataset {dataset_id!r} has no schedule {name!r}")

    def _schedule_row(
        self, s: Session, name: str, dataset_id: str | None = None
    ) -> RecalScheduleRow:
        key = self._key(name, dataset_id)
        q = select(RecalScheduleRow).where(
            *(getattr(RecalScheduleRow, k) == v for k, v in key.items())
        )
        row = s.scalars(q).first()
        if row is None:
            raise self._missing(name, dataset_id)
        return row

    def schedule(self, name: str, dataset_id: str | None = None) -> ScheduleRecord:
        """One schedule by name (of ``dataset_id`` if given: another's looks missing);
        ``ScheduleNotFoundError``."""
        with self.registry.read_session() as s:
            return ScheduleRecord.model_validate(self._schedule_row(s, name, dataset_id))

    def schedules(self, enabled_only: bool = False) -> list[ScheduleRecord]:
        """All schedules by name."""
        q = select(RecalScheduleRow)
        if enabled_only:
            q = q.where(RecalScheduleRow.enabled.is_(True))
        with self.registry.read_session() as s:
            return [
                ScheduleRecord.model_validate(r)
                for r in s.scalars(q.order_by(RecalScheduleRow.name))
            ]

    @staticmethod
    def _refuse_claimed(row: RecalScheduleRow, doing: str) -> None:
        """ScheduleClaimedError when a live run holds the schedule's claim."""
        stale = utcnow() - timedelta(seconds=row.timeout_s) - CLAIM_GRACE
        if row.claimed_by is not None and row.claimed_at is not None and row.claimed_at >= stale:
            run = f" (run {row.claim_run_id})" if row.claim_run_id is not None else ""
            raise ScheduleClaimedError(
                f"schedule {row.name!r} is running{run}: {doing} it once the run has ended"
            )

    def update_schedule(
        self, name: str, changes: dict[str, Any], actor: str, dataset_id: str | None = None
    ) -> ScheduleRecord:
        """Change a schedule's cron, notebook, parameters, catch-up or time limit (checked by
        the layer above; audited ``recal.schedule.update``); refused while it runs
        (``ScheduleClaimedError``); ``ScheduleNotFoundError`` (of ``dataset_id`` if given)."""
        allowed = {"cron", "notebook", "parameters", "catch_up", "max_catch_up", "timeout_s"}
        bad = set(changes) - allowed
        if bad:
            raise ValidationError(f"schedule fields {sorted(bad)} cannot be changed")

        def fill(row: RecalScheduleRow, created: bool) -> dict[str, Any] | None:
            self._refuse_claimed(row, "change")
            changed = {k: v for k, v in changes.items() if getattr(row, k) != v}
            if not changed:
                return None
            for k, v in changed.items():
                setattr(row, k, v)
            return {"schedule": name, **changed}

        return self._change(name, dataset_id, fill, actor, "recal.schedule.update")

    def _change(
        self,
        name: str,
        dataset_id: str | None,
        fill: Callable[[RecalScheduleRow, bool], dict[str, Any] | None],
        actor: str,
        action: str,
    ) -> ScheduleRecord:
        """Change an existing schedule through the registry's one save-by-name."""
        saved = save_by_name(
            self.registry,
            RecalScheduleRow,
            self._key(name, dataset_id),
            fill,
            actor=actor,
            actions=(action, action),
            missing=lambda: self._missing(name, dataset_id),
        )
        return ScheduleRecord.model_validate(saved.row)

    def remove_schedule(
        self,
        name: str,
        actor: str,
        refuse_claimed: bool = False,
        dataset_id: str | None = None,
    ) -> None:
        """Delete a schedule (its runs stay, unlinked); with ``refuse_claimed``, not while
        one of its runs holds the claim (ScheduleClaimedError); ``ScheduleNotFoundError``
        (of ``dataset_id`` if given)."""
        with self.registry.write_session() as s:
            row = self._schedule_row(s, name, dataset_id)
            if refuse_claimed:
                self._refuse_claimed(row, "remove")
            ds = row.dataset_id
            s.delete(row)
            s.flush()
            self.registry.add_audit(s, actor, "recal.schedule.delete", ds, {"schedule": name}, None)

    def set_enabled(
        self, name: str, enabled: bool, actor: str, dataset_id: str | None = None
    ) -> ScheduleRecord:
        """Pause or resume a schedule (audited when it changes); ``ScheduleNotFoundError``
        (of ``dataset_id`` if given)."""

        def fill(row: RecalScheduleRow, created: bool) -> dict[str, Any] | None:
            if row.enabled == enabled:
                return None
            row.enabled = enabled
            return {"schedule": name}

        action = "recal.schedule.enable" if enabled else "recal.schedule.disable"
        return self._change(name, dataset_id, fill, actor, action)

    def claim(
        self,
        name: str,
        owner: str,
        *,
        fired_for: datetime | None = None,
        expected_last: datetime | None = None,
        check_last: bool = False,
    ) -> bool:
        """Take a schedule's claim for ``owner`` (a unique token); False if it is held.

        One conditional UPDATE: it succeeds only when no live claim exists (and, with
        ``check_last``, when ``last_fired_for`` is still ``expected_last``: no other
        scheduler fired that slot meanwhile). ``fired_for`` advances ``last_fired_for``
        in the same statement, so a slot is marked fired exactly when it is claimed.
        A claim older than the schedule's time limit plus ``CLAIM_GRACE`` is abandoned
        (its process died) and can be taken over.
        """
        now = utcnow()
        with self.registry.write_session() as s:
            row = self._schedule_row(s, name)
            stale = now - timedelta(seconds=row.timeout_s) - CLAIM_GRACE
            cond = [
                RecalScheduleRow.id == row.id,
                or_(RecalScheduleRow.claimed_by.is_(None), RecalScheduleRow.claimed_at < stale),
            ]
            if check_last:
                cond.append(
                    RecalScheduleRow.last_fired_for.is_(None)
                    if expected_last is None
                    else RecalScheduleRow.last_fired_for == expected_last
                )
            values: dict[str, Any] = {"claimed_by": owner, "claimed_at": now, "claim_run_id": None}
            if fired_for is not None:
                values |= {"last_fired_for": fired_for, "last_fired_at": now}
            abandoned = row.claim_run_id if row.claimed_by is not None else None
            res = s.execute(
                update(RecalScheduleRow)
                .where(and_(*cond))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            won = bool(res.rowcount)  # type: ignore[attr-defined]
            if won and abandoned is not None:  # a dead process's run: end it, visibly
                s.execute(
                    update(RecalRunRow)
                    .where(
                        RecalRunRow.id == abandoned,
                        RecalRunRow.status.in_(("queued", "running")),
                    )
                    .values(
                        status="failed",
                        ended_at=now,
                        error_name="Abandoned",
                        error_message=f"its scheduler ({row.claimed_by}) stopped without "
                        "finishing it; the claim was taken over",
                    )
                    .execution_options(synchronize_session=False)
                )
            return won

    def advance(self, name: str, expected_last: datetime | None, new_last: datetime) -> bool:
        """Move ``last_fired_for`` past skipped slots (conditional, like ``claim``)."""
        with self.registry.write_session() as s:
            row = self._schedule_row(s, name)
            cond = RecalScheduleRow.id == row.id
            last = (
                RecalScheduleRow.last_fired_for.is_(None)
                if expected_last is None
                else RecalScheduleRow.last_fired_for == expected_last
            )
            res = s.execute(
                update(RecalScheduleRow)
                .where(cond, last)
                .values(last_fired_for=new_last)
                .execution_options(synchronize_session=False)
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    def attach_run(self, name: str, owner: str, run_id: int) -> None:
        """Record which run holds the claim (for ``schedule list`` and stale clean-up)."""
        with self.registry.write_session() as s:
            s.execute(
                update(RecalScheduleRow)
                .where(RecalScheduleRow.name == name, RecalScheduleRow.claimed_by == owner)
                .values(claim_run_id=run_id)
                .execution_options(synchronize_session=False)
            )

    def renew(self, name: str, owner: str) -> bool:
        """Restart the age of ``owner``'s claim (a run that waited in a queue starts now);
        False if the claim was taken over meanwhile (its run was then ended as abandoned)."""
        with self.registry.write_session() as s:
            res = s.execute(
                update(RecalScheduleRow)
                .where(RecalScheduleRow.name == name, RecalScheduleRow.claimed_by == owner)
                .values(claimed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    def release(self, name: str, owner: str) -> None:
        """Drop ``owner``'s claim (no-op if it was taken over)."""
        with self.registry.write_session() as s:
            s.execute(
                update(RecalScheduleRow)
                .where(RecalScheduleRow.name == name, RecalScheduleRow.claimed_by == owner)
                .values(claim_run_id=None, claimed_by=None, claimed_at=None)
                .execution_options(synchronize_session=False)
            )

    # -- runs ----------------------------------------------------------------------
    def create_run(
        self,
        *,
        notebook: str,
        parameters: dict[str, Any],
        trigger: str,
        actor: str,
        dataset_id: str | None = None,
        schedule_id: int | None = None,
        scheduled_for: datetime | None = None,
        timeout_s: float | None = None,
    ) -> RunRecord:
        """A new queued run; with ``timeout_s`` it counts as abandoned if still unfinished
        ``timeout_s`` + ``CLAIM_GRACE`` from now (the runner moves this when it starts)."""
        now = utcnow()
        with self.registry.write_session() as s:
            row = RecalRunRow(
                schedule_id=schedule_id,
                dataset_id=dataset_id,
                notebook=notebook,
                status="queued",
                trigger=trigger,
                scheduled_for=scheduled_for,
                queued_at=now,
                deadline=None if timeout_s is None else now + run_allowance(timeout_s),
                parameters=parameters,
                outputs={},
                metrics={},
                created_by=actor,
            )
            s.add(row)
            s.flush()
            return RunRecord.model_validate(row)

    def crashed(self, run_id: int, exc: BaseException) -> RunRecord:
        """End a run whose execution raised ``exc`` as failed: a run never stays running."""
        return self.update_run(
            run_id,
            status="failed",
            ended_at=utcnow(),
            error_name=type(exc).__name__,
            error_message=str(exc),
        )

    def update_run(self, run_id: int, **fields: Any) -> RunRecord:
        """Change fields of a run; moving to a final state is audited."""
        allowed = set(RecalRunRow.__table__.columns.keys()) - {"id", "queued_at", "created_by"}
        bad = set(fields) - allowed
        if bad:
            raise ValidationError(f"unknown run fields {sorted(bad)}")
        status = fields.get("status")
        if status is not None and status not in (*FINAL_RUN_STATES, "queued", "running"):
            raise ValidationError(f"unknown run status {status!r}")
        with self.registry.write_session() as s:
            row = s.get(RecalRunRow, run_id)
            if row is None:
                raise RunNotFoundError(f"no run with id {run_id}")
            for k, v in fields.items():
                setattr(row, k, v)
            s.flush()
            if status in FINAL_RUN_STATES:
                self.registry.add_audit(
                    s,
                    row.created_by,
                    f"recal.run.{status}",
                    row.dataset_id,
                    {
                        "run": run_id,
                        "notebook": row.notebook,
                        "trigger": row.trigger,
                        "duration_s": row.duration_s,
                        "error": row.error_message,
                    },
                    None,
                )
            return RunRecord.model_validate(row)

    def end_abandoned(self) -> int:
        """Mark queued or running runs past their deadline failed (their process died:
        a live runner always ends its run, at the latest at its time limit); how many.

        Reads first, so the usual case (none overdue) takes no write lock."""
        now = utcnow()
        overdue = (
            RecalRunRow.status.in_(("queued", "running")),
            RecalRunRow.deadline.is_not(None),
            RecalRunRow.deadline < now,
        )
        with self.registry.read_session() as s:
            if s.scalar(select(RecalRunRow.id).where(*overdue).limit(1)) is None:
                return 0
        with self.registry.write_session() as s:
            res = s.execute(
                update(RecalRunRow)
                .where(*overdue)
                .values(
                    status="failed",
                    ended_at=now,
                    error_name="Abandoned",
                    error_message="its process stopped without finishing it (time limit "
                    f"plus {CLAIM_GRACE.total_seconds() / 60:g} min passed)",
                )
                .execution_options(synchronize_session=False)
            )
            return int(res.rowcount)  # type: ignore[attr-defined]

    def run(self, run_id: int, dataset_id: str | None = None) -> RunRecord:
        """A run by id (of ``dataset_id`` if given: another's looks missing);
        ``RunNotFoundError``."""
        self.end_abandoned()
        with self.registry.read_session() as s:
            row = s.get(RecalRunRow, run_id)
            if row is None or (dataset_id is not None and row.dataset_id != dataset_id):
                raise RunNotFoundError(
                    f"no run with id {run_id}"
                    if dataset_id is None
                    else f"dataset {dataset_id!r} has no run {run_id}"
                )
            return RunRecord.model_validate(row)

    def runs(
        self,
        schedule: str | None = None,
        dataset_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs newest first, filtered by schedule name, dataset and status."""
        self.end_abandoned()
        q = select(RecalRunRow)
        with self.registry.read_session() as s:
            if schedule is not None:
                q = q.where(RecalRunRow.schedule_id == self._schedule_row(s, schedule).id)
            if dataset_id is not None:
                q = q.where(RecalRunRow.dataset_id == dataset_id)
            if status is not None:
                q = q.where(RecalRunRow.status == status)
            q = q.order_by(RecalRunRow.id.desc()).limit(limit)
            return [RunRecord.model_validate(r) for r in s.scalars(q)]

    def count_running(self) -> int:
        """How many runs are queued or running (for a concurrency limit); abandoned ones
        are ended first, so a dead process's run cannot hold a slot forever."""
        self.end_abandoned()
        with self.registry.read_session() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(RecalRunRow)
                    .where(RecalRunRow.status.in_(("queued", "running")))
                )
                or 0
            )
