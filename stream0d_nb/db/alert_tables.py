"""SQL tables of alerting: rules, live state, events, silences, sinks, routes, deliveries.

Rows are plain JSON specs validated by ``stream0d_nb.alerts`` (the layer above), so this
module only stores and queries them. Every change of configuration is audited in the same
transaction; events and deliveries are the alert history itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
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
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from stream0d_nb.db.base import Base, BigIntPK, JSONType, UTCDateTime, utcnow
from stream0d_nb.db.dataset_tables import dataset_row
from stream0d_nb.db.sealed import Sealer
from stream0d_nb.db.upsert import save_by_name
from stream0d_nb.errors import (
    RuleNotFoundError,
    SilenceNotFoundError,
    SinkNotFoundError,
    ValidationError,
)
from stream0d_nb.records import EventRecord

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry


def _ds_fk() -> ForeignKey:
    return ForeignKey("datasets.id", ondelete="CASCADE")


class AlertRuleRow(Base):
    """A saved alert rule (its spec as JSON)."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(63), _ds_fk())
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String)


class AlertStateRow(Base):
    """The engine's state of one rule and series, to continue after a restart."""

    __tablename__ = "alert_states"
    __table_args__ = (UniqueConstraint("dataset_id", "rule", "series"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(63), _ds_fk())
    rule: Mapped[str] = mapped_column(String(128))
    series: Mapped[str] = mapped_column(String(256))
    state: Mapped[dict[str, Any]] = mapped_column(JSONType)
    evaluated_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertEventRow(Base):
    """A state change of a rule on a series (unique, so replays do not duplicate it)."""

    __tablename__ = "alert_events"
    __table_args__ = (
        UniqueConstraint("dataset_id", "rule", "series", "at", "to_state"),
        Index("ix_alert_events_dataset_id_at", "dataset_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(63), _ds_fk())
    rule: Mapped[str] = mapped_column(String(128))
    series: Mapped[str] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SilenceRow(Base):
    """A mute window (one-off or recurring) for a dataset, or one rule of it."""

    __tablename__ = "alert_silences"
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(63), _ds_fk())
    rule: Mapped[str | None] = mapped_column(String(128), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)


class SinkRow(Base):
    """A notification sink (kind + config JSON), shared by datasets through routes."""

    __tablename__ = "alert_sinks"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String)


class RoutesRow(Base):
    """A dataset's routing table (JSON)."""

    __tablename__ = "alert_routes"
    dataset_id: Mapped[str] = mapped_column(String(63), _ds_fk(), primary_key=True)
    routes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String)


class DeliveryRow(Base):
    """One attempt series of sending a notification to a sink, successful or not."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_key_sink", "key", "sink"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(512))
    sink: Mapped[str] = mapped_column(String(128))
    dataset_id: Mapped[str | None] = mapped_column(String(63), nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeliveryRecord(BaseModel):
    """A delivery as read back."""

    model_config = ConfigDict(frozen=True)
    key: str
    sink: str
    dataset: str | None
    ok: bool
    attempts: int
    error: str | None
    at: datetime


class AlertRegistry:
    """Alert rows in the platform's registry database (same engine, same migrations)."""

    def __init__(self, registry: Registry, sealer: Sealer | None = None) -> None:
        self.registry = registry
        self.sealer = sealer  # sink configurations hold passwords: sealed at rest when set

    # -- rules ---------------------------------------------------------------------
    def save_rule(self, dataset_id: str, name: str, spec: dict[str, Any], actor: str) -> None:
        """Insert or replace a rule (audited ``alert.create``/``alert.update``)."""

        def fill(row: AlertRuleRow, created: bool) -> dict[str, Any] | None:
            if not created and row.spec == spec:
                return None
            row.spec = spec
            return {"rule": name, "spec": spec}

        save_by_name(
            self.registry,
            AlertRuleRow,
            {"dataset_id": dataset_id, "name": name},
            fill,
            actor=actor,
            actions=("alert.create", "alert.update"),
            dataset_id=dataset_id,
        )

    def rule(self, dataset_id: str, name: str) -> dict[str, Any]:
        """The spec of one rule (``RuleNotFoundError`` naming the dataset's rules)."""
        with self.registry.read_session() as s:
            dataset_row(s, dataset_id)
            row = s.scalars(
                select(AlertRuleRow).where(
                    AlertRuleRow.dataset_id == dataset_id, AlertRuleRow.name == name
                )
            ).one_or_none()
            if row is None:
                raise self._no_rule(s, dataset_id, name)
            return dict(row.spec)

    @staticmethod
    def _no_rule(s: Session, dataset_id: str, name: str) -> RuleNotFoundError:
        known = s.scalars(
            select(AlertRuleRow.name)
            .where(AlertRuleRow.dataset_id == dataset_id)
            .order_by(AlertRuleRow.id)
        ).all()
        return RuleNotFoundError(
            f"dataset {dataset_id!r} has no alert rule {name!r} (rules: "
            + (", ".join(known) or "none")
            + ")"
        )

    def rules(self, dataset_id: str) -> list[dict[str, Any]]:
        """Specs of a dataset's rules, oldest first."""
        with self.registry.read_session() as s:
            dataset_row(s, dataset_id)
            rows = s.scalars(
                select(AlertRuleRow)
                .where(AlertRuleRow.dataset_id == dataset_id)
                .order_by(AlertRuleRow.id)
            )
            return [dict(r.spec) for r in rows]

    def delete_rule(self, dataset_id: str, name: str, actor: str) -> None:
        """Delete a rule with its live state (events stay as history); ``RuleNotFoundError``."""
        with self.registry.write_session() as s:
            n = s.execute(
                delete(AlertRuleRow).where(
                    AlertRuleRow.dataset_id == dataset_id, AlertRuleRow.name == name
                )
            ).rowcount  # type: ignore[attr-defined]
            if not n:
                dataset_row(s, dataset_id)
                raise self._no_rule(s, dataset_id, name)
            s.execute(
                delete(AlertStateRow).where(
                    AlertStateRow.dataset_id == dataset_id, AlertStateRow.rule == name
                )
            )
            self.registry.add_audit(s, actor, "alert.delete", dataset_id, {"rule": name}, None)

    # -- live state and events --------------------------------------------------------
    def states(self, dataset_id: str, rule: str) -> dict[str, tuple[dict[str, Any], int | None]]:
        """Series -> (engine state, evaluated until ns) of one rule."""
        with self.registry.read_session() as s:
            rows = s.scalars(
                select(AlertStateRow).where(
                    AlertStateRow.dataset_id == dataset_id, AlertStateRow.rule == rule
                )
            )
            return {r.series: (dict(r.state), r.evaluated_until) for r in rows}

    def commit_evaluation(
        self,
        dataset_id: str,
        rule: str,
        states: Mapping[str, tuple[dict[str, Any], int | None]],
        events: list[dict[str, Any]],
    ) -> list[int]:
        """Store new states and events in one transaction; returns ids of events that are new.

        Events already stored (same rule, series, time and state) are skipped, so running an
        evaluation again after a crash neither duplicates nor loses them.
        """
        now = utcnow()
        new_ids: list[int] = []
        with self.registry.write_session() as s:
            for series, (state, until) in states.items():
                row = s.scalars(
                    select(AlertStateRow).where(
                        AlertStateRow.dataset_id == dataset_id,
                        AlertStateRow.rule == rule,
                        AlertStateRow.series == series,
                    )
                ).one_or_none()
                if row is None:
                    row = AlertStateRow(dataset_id=dataset_id, rule=rule, series=series)
                    s.add(row)
                row.state, row.evaluated_until, row.updated_at = state, until, now
            for ev in events:
                exists = s.scalars(
                    select(AlertEventRow.id).where(
                        AlertEventRow.dataset_id == dataset_id,
                        AlertEventRow.rule == rule,
                        AlertEventRow.series == ev["series"],
                        AlertEventRow.at == ev["at"],
                        AlertEventRow.to_state == ev["to_state"],
                    )
                ).first()
                if exists is not None:
                    continue
                row_ev = AlertEventRow(
                    dataset_id=dataset_id,
                    rule=rule,
                    series=ev["series"],
                    at=ev["at"],
                    from_state=ev["from_state"],
                    to_state=ev["to_state"],
                    severity=ev["severity"],
                    value=ev.get("value"),
                    detail=ev.get("detail", {}),
                    recorded_at=now,
                )
                s.add(row_ev)
                s.flush()
                new_ids.append(row_ev.id)
        return new_ids

    def events(
        self,
        dataset_id: str | None = None,
        rule: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        ids: list[int] | None = None,
        severity: str | None = None,
        before: tuple[datetime, int] | None = None,
    ) -> list[EventRecord]:
        """Events newest first, filtered by dataset, rule, state (to_state), severity and
        time; ``before`` = (at, id) of the last event of the previous page (keyset paging:
        events stored meanwhile neither repeat nor shift a page)."""
        q = select(AlertEventRow)
        if severity is not None:
            q = q.where(AlertEventRow.severity == severity)
        if before is not None:
            at, last = before
            q = q.where(
                (AlertEventRow.at < at) | ((AlertEventRow.at == at) & (AlertEventRow.id < last))
            )
        if dataset_id is not None:
            q = q.where(AlertEventRow.dataset_id == dataset_id)
        if rule is not None:
            q = q.where(AlertEventRow.rule == rule)
        if state is not None:
            q = q.where(AlertEventRow.to_state == state)
        if since is not None:
            q = q.where(AlertEventRow.at >= since)
        if until is not None:
            q = q.where(AlertEventRow.at < until)
        if ids is not None:
            q = q.where(AlertEventRow.id.in_(ids))
        q = q.order_by(AlertEventRow.at.desc(), AlertEventRow.id.desc()).limit(limit)
        with self.registry.read_session() as s:
            return [EventRecord.model_validate(r) for r in s.scalars(q)]

    # -- silences ------------------------------------------------------------------
    def add_silence(
        self, dataset_id: str, rule: str | None, spec: dict[str, Any], actor: str
    ) -> int:
        """Save a mute window; returns its id."""
        with self.registry.write_session() as s:
            dataset_row(s, dataset_id)
            row = SilenceRow(
                dataset_id=dataset_id, rule=rule, spec=spec, created_at=utcnow(), created_by=actor
            )
            s.add(row)
            s.flush()
            self.registry.add_audit(
                s,
                actor,
                "alert.silence",
                dataset_id,
                {"silence": row.id, "rule": rule, "spec": spec},
                None,
            )
            return row.id

    def silences(self, dataset_id: str) -> list[tuple[int, str | None, dict[str, Any]]]:
        """(id, rule or None for all rules, spec) of a dataset's silences."""
        with self.registry.read_session() as s:
            rows = s.scalars(
                select(SilenceRow)
                .where(SilenceRow.dataset_id == dataset_id)
                .order_by(SilenceRow.id)
            )
            return [(r.id, r.rule, dict(r.spec)) for r in rows]

    def delete_silence(self, dataset_id: str, silence_id: int, actor: str) -> None:
        """Remove a silence (``SilenceNotFoundError`` if the dataset has none with that id)."""
        with self.registry.write_session() as s:
            n = s.execute(
                delete(SilenceRow).where(
                    SilenceRow.dataset_id == dataset_id, SilenceRow.id == silence_id
                )
            ).rowcount  # type: ignore[attr-defined]
            if not n:
                raise SilenceNotFoundError(f"dataset {dataset_id!r} has no silence {silence_id}")
            self.registry.add_audit(
                s, actor, "alert.unsilence", dataset_id, {"silence": silence_id}, None
            )

    # -- sinks and routes ----------------------------------------------------------
    def save_sink(self, name: str, kind: str, config: dict[str, Any], actor: str) -> None:
        """Insert or replace a sink's configuration (sealed when a sealer is set; audited
        ``alert.sink`` each time: a sealed configuration cannot be compared)."""

        def fill(row: SinkRow, created: bool) -> dict[str, Any]:
            row.kind = kind
            row.config = self.sealer.seal(config) if self.sealer is not None else config
            return {"sink": name, "kind": kind}

        actions = ("alert.sink", "alert.sink")
        save_by_name(self.registry, SinkRow, {"name": name}, fill, actor=actor, actions=actions)

    def delete_sink(self, name: str, actor: str) -> None:
        """Remove a sink's configuration (audited); ``SinkNotFoundError`` if there is none."""
        with self.registry.write_session() as s:
            row = s.get(SinkRow, name)
            if row is None:
                raise SinkNotFoundError(f"no sink {name!r}")
            kind = row.kind
            s.delete(row)
            s.flush()
            self.registry.add_audit(
                s, actor, "alert.sink.delete", None, {"sink": name, "kind": kind}, None
            )

    def sinks(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Sink name -> (kind, config)."""
        with self.registry.read_session() as s:
            rows = [(r.name, r.kind, dict(r.config)) for r in s.scalars(select(SinkRow))]
        if self.sealer is None:
            return {name: (kind, cfg) for name, kind, cfg in rows}
        return {
            name: (kind, self.sealer.unseal(cfg, f"alert sink {name!r}"))
            for name, kind, cfg in rows
        }

    def set_routes(self, dataset_id: str, routes: dict[str, Any], actor: str) -> None:
        """Replace a dataset's routing table (audited ``alert.routes``)."""

        def fill(row: RoutesRow, created: bool) -> dict[str, Any]:
            row.routes = routes
            return {"routes": routes}

        save_by_name(
            self.registry,
            RoutesRow,
            {"dataset_id": dataset_id},
            fill,
            actor=actor,
            actions=("alert.routes", "alert.routes"),
            dataset_id=dataset_id,
        )

    def routes_using(self, sink: str) -> list[str]:
        """Datasets whose routing table names ``sink`` (which then must not disappear)."""
        with self.registry.read_session() as s:
            rows = [(r.dataset_id, dict(r.routes)) for r in s.scalars(select(RoutesRow))]
        return sorted(
            ds
            for ds, table in rows
            if sink in table.get("default_sinks", [])
            or any(sink in r.get("sinks", []) for r in table.get("routes", []))
        )

    def routes(self, dataset_id: str) -> dict[str, Any] | None:
        """A dataset's routing table, if one was set."""
        with self.registry.read_session() as s:
            row = s.get(RoutesRow, dataset_id)
            return None if row is None else dict(row.routes)

    # -- deliveries ----------------------------------------------------------------
    def delivered(self, key: str, sink: str) -> bool:
        """Whether a notification was already delivered to a sink (no duplicates on restart)."""
        with self.registry.read_session() as s:
            return (
                s.scalars(
                    select(DeliveryRow.id).where(
                        DeliveryRow.key == key, DeliveryRow.sink == sink, DeliveryRow.ok.is_(True)
                    )
                ).first()
                is not None
            )

    def delivered_pairs(self, keys: list[str]) -> set[tuple[str, str]]:
        """(key, sink) of the successful deliveries among ``keys``, in one query."""
        if not keys:
            return set()
        with self.registry.read_session() as s:
            rows = s.execute(
                select(DeliveryRow.key, DeliveryRow.sink).where(
                    DeliveryRow.key.in_(keys), DeliveryRow.ok.is_(True)
                )
            )
            return {(k, sink) for k, sink in rows}

    def record_delivery(
        self,
        key: str,
        sink: str,
        dataset_id: str | None,
        ok: bool,
        attempts: int,
        error: str | None,
        at: datetime | None = None,
    ) -> None:
        """Record a delivery or a failure (failures stay visible)."""
        try:
            with self.registry.write_session() as s:
                s.add(
                    DeliveryRow(
                        key=key,
                        sink=sink,
                        dataset_id=dataset_id,
                        ok=ok,
                        attempts=attempts,
                        error=error,
                        at=at or utcnow(),
                    )
                )
        except IntegrityError as exc:  # pragma: no cover - no unique constraint today
            raise ValidationError(str(exc)) from exc

    def deliveries(
        self, dataset_id: str | None = None, failed_only: bool = False, limit: int = 100
    ) -> list[DeliveryRecord]:
        """Deliveries newest first."""
        q = select(DeliveryRow)
        if dataset_id is not None:
            q = q.where(DeliveryRow.dataset_id == dataset_id)
        if failed_only:
            q = q.where(DeliveryRow.ok.is_(False))
        q = q.order_by(DeliveryRow.id.desc()).limit(limit)
        with self.registry.read_session() as s:
            return [
                DeliveryRecord(
                    key=r.key,
                    sink=r.sink,
                    dataset=r.dataset_id,
                    ok=r.ok,
                    attempts=r.attempts,
                    error=r.error,
                    at=r.at,
                )
                for r in s.scalars(q)
            ]
