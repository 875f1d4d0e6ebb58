"""SQL table of saved views: a dataset's named plots (channels, range, kind, options).

Rows hold the view as the JSON of ``stream0d_nb.views.ViewSpec`` (validated there, by the
layer above); this module stores and queries them. Every change is audited in the same
transaction (``view.create``, ``view.update``, ``view.delete``), as formulas are.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from stream0d_nb.db.base import Base, BigIntPK, JSONType, UTCDateTime
from stream0d_nb.db.dataset_tables import dataset_row
from stream0d_nb.db.upsert import save_by_name
from stream0d_nb.errors import DatasetExistsError, Stream0dError
from stream0d_nb.views import ViewSpec

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry

__all__ = ["ViewExistsError", "ViewNotFoundError", "ViewRegistry", "ViewRow"]


class ViewNotFoundError(Stream0dError, LookupError):
    """The dataset has no saved view of that name (HTTP 404)."""


class ViewExistsError(DatasetExistsError):
    """A view of that name exists already in the dataset (HTTP 409)."""


class ViewRow(Base):
    """A saved view of a dataset (its spec as JSON, the name also as a column)."""

    __tablename__ = "views"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String)

    def to_spec(self) -> ViewSpec:
        """The view as the shared pydantic model (checked again, like any input)."""
        return ViewSpec.model_validate(self.spec)


class ViewRegistry:
    """Saved views in the platform's registry database (same engine, same migrations)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _row(self, s: Session, dataset_id: str, name: str) -> ViewRow | None:
        return s.scalars(
            select(ViewRow).where(ViewRow.dataset_id == dataset_id, ViewRow.name == name)
        ).one_or_none()

    def list(self, dataset_id: str) -> list[ViewSpec]:
        """The dataset's views, oldest first (DatasetNotFoundError for no dataset)."""
        with self.registry.read_session() as s:
            dataset_row(s, dataset_id)
            rows = s.scalars(
                select(ViewRow).where(ViewRow.dataset_id == dataset_id).order_by(ViewRow.id)
            )
            return [r.to_spec() for r in rows]

    def get(self, dataset_id: str, name: str) -> ViewSpec:
        """One view (ViewNotFoundError if the dataset has none of that name)."""
        with self.registry.read_session() as s:
            dataset_row(s, dataset_id)
            row = self._row(s, dataset_id, name)
            if row is None:
                raise ViewNotFoundError(f"dataset {dataset_id!r} has no view {name!r}")
            return row.to_spec()

    def save(
        self, dataset_id: str, spec: ViewSpec, actor: str, *, create_only: bool = False
    ) -> tuple[ViewSpec, bool]:
        """Create or replace a view; ``(saved, created)``. Audited ``view.create``/``view.update``
        (nothing written when it is unchanged); ``create_only`` refuses an existing name."""
        body = spec.model_dump(mode="json")

        def fill(row: ViewRow, created: bool) -> dict[str, Any] | None:
            if not created and row.spec == body:
                return None
            detail: dict[str, Any] = {"name": spec.name, "view": body}
            if not created:
                detail["from"] = dict(row.spec)
            row.spec = body
            return detail

        def taken() -> ViewExistsError:
            return ViewExistsError(
                f"dataset {dataset_id!r} has a view {spec.name!r} already "
                "(PUT .../views/{name} replaces it)"
            )

        saved = save_by_name(
            self.registry,
            ViewRow,
            {"dataset_id": dataset_id, "name": spec.name},
            fill,
            actor=actor,
            actions=("view.create", "view.update"),
            dataset_id=dataset_id,
            exists=taken if create_only else None,
        )
        return saved.row.to_spec(), saved.created

    def delete(self, dataset_id: str, name: str, actor: str) -> None:
        """Delete a view (audited ``view.delete`` with what it was)."""
        with self.registry.write_session() as s:
            dataset_row(s, dataset_id)
            row = self._row(s, dataset_id, name)
            if row is None:
                raise ViewNotFoundError(f"dataset {dataset_id!r} has no view {name!r}")
            detail = {"name": name, "view": dict(row.spec)}
            s.delete(row)
            s.flush()
            self.registry.add_audit(s, actor, "view.delete", dataset_id, detail, None)
