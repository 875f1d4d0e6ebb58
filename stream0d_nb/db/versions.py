"""Versions of configuration read from the audit log: one indexed query instead of many.

Every change of configuration writes its audit entry in the same transaction as the
change (``Registry.add_audit``: no change without its audit row), so the number of audit
entries of a dataset and the newest of their ids change with every committed change of
its rules, silences, routes, formulas, channels or grants, and with every fold. Caches of
a dataset's configuration (the alert rules evaluated after every append) compare this
value instead of reading every table again: a change made by any process is seen by the
next evaluation. The count matters on PostgreSQL, whose ids come from a sequence and may
commit out of order; the newest id alone would miss such a change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select

from stream0d_nb.db.dataset_tables import AuditRow

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry

__all__ = ["SINK_ACTIONS", "config_version"]

SINK_ACTIONS = ("alert.sink", "alert.sink.delete")
"""Audit actions of the notification sinks, which every dataset's routes may use."""


_DS = AuditRow.dataset == bindparam("dataset_id")
_SINKS = AuditRow.action.in_(SINK_ACTIONS)
_VERSION = select(  # built once: building a statement costs more than running it
    select(func.count()).select_from(AuditRow).where(_DS).scalar_subquery(),
    select(func.max(AuditRow.id)).where(_DS).scalar_subquery(),
    select(func.count()).select_from(AuditRow).where(_SINKS).scalar_subquery(),
    select(func.max(AuditRow.id)).where(_SINKS).scalar_subquery(),
)


def config_version(registry: Registry, dataset_id: str) -> tuple[int, int, int, int]:
    """``(entries, newest id)`` of the dataset's audit entries, then of the sinks' ones:
    different after any committed change of the dataset's configuration or of a sink."""
    with registry.engine.connect() as conn:
        row = conn.execute(_VERSION, {"dataset_id": dataset_id}).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0)
