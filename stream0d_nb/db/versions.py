"""Versions of configuration read from the audit log: one indexed query instead of many.

Every change of configuration writes its audit entry in the same transaction as the
change (``Registry.add_audit``: no change without its audit row), so the number of audit
entries of a dataset and the newest of their ids change with every committed change of
its rules, silences, routes, formulas, channels or grants, and with every fold. Caches of
a dataset's configuration (the alert rules evaluated after every append, the dataset
record and grants an append is checked against) compare this value instead of reading
every table again: a change made by any process is seen by the next use. Sinks and API
tokens belong to no dataset: their changes (``SINK_ACTIONS``, ``TOKEN_ACTIONS``) are
counted apart. The count matters on PostgreSQL, whose ids come from a sequence and may
commit out of order; the newest id alone would miss such a change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, func, select

from stream0d_nb.db.dataset_tables import AuditRow

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry

__all__ = ["SINK_ACTIONS", "TOKEN_ACTIONS", "config_version"]

SINK_ACTIONS = ("alert.sink", "alert.sink.delete")
"""Audit actions of the notification sinks, which every dataset's routes may use."""
TOKEN_ACTIONS = ("token.revoke",)
"""Audit actions that take rights away from an API token."""


def _count_and_newest(where: ColumnElement[bool]) -> list[ScalarSelect[int]]:
    return [
        select(func.count()).select_from(AuditRow).where(where).scalar_subquery(),
        select(func.max(AuditRow.id)).where(where).scalar_subquery(),
    ]


_VERSION = select(  # built once: building a statement costs more than running it
    *_count_and_newest(AuditRow.dataset == bindparam("dataset_id")),
    *_count_and_newest(AuditRow.action.in_(SINK_ACTIONS)),
    *_count_and_newest(AuditRow.action.in_(TOKEN_ACTIONS)),
)


def config_version(registry: Registry, dataset_id: str) -> tuple[int, ...]:
    """``(entries, newest id)`` of the dataset's audit entries, then of the sinks' and of
    token revocations: different after any committed change of the dataset's
    configuration or grants, of a sink, or a token revoked."""
    with registry.engine.connect() as conn:
        row = conn.execute(_VERSION, {"dataset_id": dataset_id}).one()
    return tuple(int(v or 0) for v in row)
