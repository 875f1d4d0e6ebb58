"""The registry's own tables: datasets, their channels, derived channels and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from stream0d_nb.db.base import Base, BigIntPK, JSONType, UTCDateTime
from stream0d_nb.errors import DatasetNotFoundError
from stream0d_nb.records import AttrView
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec


class DatasetRow(Base):
    """One dataset: its grid, descriptive metadata and where its data lives."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    interval: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text, default="")
    partner: Mapped[str] = mapped_column(String, default="", index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    # datasets made before migration 0006 were all zstd
    compression: Mapped[str] = mapped_column(String(16), server_default="zstd")
    storage_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    channels: Mapped[list[ChannelRow]] = relationship(
        back_populates="dataset",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ChannelRow.position",
    )


class ChannelRow(Base):
    """One channel of a dataset, with its CF-style metadata; ``position`` keeps the order."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    units: Mapped[str] = mapped_column(String, default="")
    long_name: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    dataset: Mapped[DatasetRow] = relationship(back_populates="channels")

    def to_spec(self) -> ChannelSpec:
        """The channel as the shared pydantic model."""
        return ChannelSpec.model_validate(self, from_attributes=True)


class FormulaRow(Base):
    """A derived channel of a dataset: its formula and the units found when it was checked."""

    __tablename__ = "formulas"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(128))
    formula: Mapped[str] = mapped_column(Text)
    units: Mapped[str] = mapped_column(String, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    materialize: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String)

    def to_spec(self) -> FormulaSpec:
        """The derived channel as the shared pydantic model."""
        return FormulaSpec.model_validate(self, from_attributes=True)


class AuditRow(Base):
    """Who did what, when, to which dataset; no FK so entries outlive their dataset."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_dataset_at", "dataset", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String, index=True)
    dataset: Mapped[str | None] = mapped_column(String(63), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    via: Mapped[str | None] = mapped_column(String, nullable=True)


# ----------------------------------------------------------------------------- records


class DatasetRecord(BaseModel):
    """A dataset as the registry knows it: its spec (with channels) plus bookkeeping."""

    model_config = ConfigDict(frozen=True)

    spec: DatasetSpec
    storage_uri: str
    created_at: datetime
    created_by: str
    updated_at: datetime

    @property
    def id(self) -> str:
        """Shortcut for ``spec.id``."""
        return self.spec.id


def dataset_record(row: DatasetRow) -> DatasetRecord:
    """The row read by attribute: its spec (with its channels in order) and bookkeeping."""
    channels = [c.to_spec() for c in sorted(row.channels, key=lambda c: c.position)]
    spec = DatasetSpec.model_validate(AttrView(row, channels=channels), from_attributes=True)
    return DatasetRecord.model_validate(AttrView(row, spec=spec), from_attributes=True)


def not_found(dataset_id: str) -> DatasetNotFoundError:
    """The error for a missing dataset; edges add where to look (the CLI its list command)."""
    return DatasetNotFoundError(f"no dataset {dataset_id!r} in the registry")


def dataset_row(session: Session, dataset_id: str) -> DatasetRow:
    """The dataset's row with its channels, or ``DatasetNotFoundError``."""
    row = session.scalars(
        select(DatasetRow)
        .where(DatasetRow.id == dataset_id)
        .options(selectinload(DatasetRow.channels))
    ).one_or_none()
    if row is None:
        raise not_found(dataset_id)
    return row
