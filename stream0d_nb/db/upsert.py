"""Save a registry row by its name: one helper for every "create or replace" of the registry.

Formulas, alert rules, sinks, routes, recalibration models and schedules, and saved views
are all rows found by a unique key (a name, often within a dataset). Saving one is always
the same transaction: look the row up, insert it or change it, write the audit entry in
the same transaction, and, when a concurrent writer inserted the same key between our
look-up and our insert (the unique constraint refuses ours), run again in a fresh
transaction, which then sees that row and updates it (or refuses it, for a create).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from stream0d_nb.db.base import Base, retry_on_unique, utcnow
from stream0d_nb.db.dataset_tables import dataset_row

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry

__all__ = ["Fill", "Saved", "save_by_name"]

ATTEMPTS = 3

type Fill[R] = Callable[[R, bool], dict[str, Any] | None]
"""``fill(row, created)`` puts the new values on ``row`` and returns the audit detail, or
None when nothing changes (then nothing is written, nor audited)."""


@dataclass(frozen=True)
class Saved[R]:
    """What a save did: the row (detached, loaded), whether it was new, whether it changed."""

    row: R
    created: bool
    changed: bool


def save_by_name[R: Base](
    registry: Registry,
    table: type[R],
    key: Mapping[str, Any],
    fill: Fill[R],
    *,
    actor: str,
    actions: tuple[str, str],
    dataset_id: str | None = None,
    exists: Callable[[], Exception] | None = None,
    missing: Callable[[], Exception] | None = None,
    via: str | None = None,
) -> Saved[R]:
    """Insert or update the row of ``table`` whose columns equal ``key``, audited.

    - ``actions``: the audit action of a creation and of an update;
    - ``dataset_id``: a dataset that must exist (``DatasetNotFoundError``), checked in the
      same transaction; the audit entry names the row's own ``dataset_id`` column, if any;
    - ``exists``: a create only: the error raised when the key is taken;
    - ``missing``: an update only: the error raised when there is no such row;
    - ``via``: how the actor came in, for the audit entry (default: the request's).

    New rows get ``key``, and ``created_at``/``created_by`` when the table has them;
    changed rows get ``updated_at``/``updated_by`` when it has them. A unique-key race
    (``IntegrityError``) is run again in a fresh transaction, at most ``ATTEMPTS`` times.
    """
    columns = set(table.__table__.columns.keys())
    where = [getattr(table, k) == v for k, v in key.items()]

    def attempt() -> Saved[R]:
        with registry.write_session() as s:
            if dataset_id is not None:
                dataset_row(s, dataset_id)
            # FOR UPDATE (PostgreSQL; SQLite writers hold the database lock already): a
            # concurrent update waits, so "unchanged" and an audit's "from" are never stale
            row = s.scalars(select(table).where(*where).with_for_update()).one_or_none()
            now = utcnow()
            created = row is None
            if row is None:
                if missing is not None:
                    raise missing()
                row = table(**key)
                for col, value in (("created_at", now), ("created_by", actor)):
                    if col in columns:
                        setattr(row, col, value)
                s.add(row)
            elif exists is not None:
                raise exists()
            detail = fill(row, created)
            if detail is None and not created:
                return Saved(row, created=False, changed=False)
            for col, value in (("updated_at", now), ("updated_by", actor)):
                if col in columns:
                    setattr(row, col, value)
            s.flush()  # a concurrent insert of the same key fails here (IntegrityError)
            action = actions[0] if created else actions[1]
            audited = getattr(row, "dataset_id", None)
            registry.add_audit(s, actor, action, audited, detail or {}, via, now)
            return Saved(row, created=created, changed=True)

    return retry_on_unique(attempt, ATTEMPTS)
