"""Records the API returns and the HTTP client reads back: plain pydantic models.

Every answer of the API that is not a spec one writes (``DatasetSpec``, ``FormulaSpec``,
``ViewSpec``, ``AlertRule``...) is one of these, so that the server and the client share
one definition. They are read from ORM rows and domain objects by attribute
(``Record.model_validate(row)``, ``from_attributes``; a column named differently is a
field's validation alias, ``AttrView`` adds what a row lacks), and by the client from
the API's JSON (``Record.model_validate(json)``), ignoring fields it does not know yet.
They live apart from the SQL tables (``stream0d_nb.db``) so that the client and other
light code use them without SQLAlchemy, Alembic or Icechunk. No secret is ever in one.
"""

from __future__ import annotations

from stream0d_nb.records.access import (
    AuditEntry,
    CallerToken,
    GrantRecord,
    NewToken,
    TokenRecord,
    WhoAmI,
)
from stream0d_nb.records.alerts import (
    AlertDelivery,
    AlertEpisode,
    AlertPreview,
    AlertRoutes,
    AlertTransition,
    EventRecord,
    RouteRecord,
    Silence,
    SilenceRecord,
    SinkRecord,
)
from stream0d_nb.records.base import DATASET_ID, AttrView, Record
from stream0d_nb.records.datasets import (
    ChannelDeleted,
    ChannelList,
    ChannelsSaved,
    ChannelSummary,
    CommitSummary,
    DatasetDeleted,
    DatasetDetail,
    DatasetInfo,
    DatasetSummary,
    StoredExtent,
)
from stream0d_nb.records.recalibration import (
    RUN_FILES,
    DriftCheck,
    ModelInfo,
    ModelRecord,
    RunInfo,
    ScheduleInfo,
    VersionRecord,
)

__all__ = [
    "DATASET_ID",
    "RUN_FILES",
    "AlertDelivery",
    "AlertEpisode",
    "AlertPreview",
    "AlertRoutes",
    "AlertTransition",
    "AttrView",
    "AuditEntry",
    "CallerToken",
    "ChannelDeleted",
    "ChannelList",
    "ChannelSummary",
    "ChannelsSaved",
    "CommitSummary",
    "DatasetDeleted",
    "DatasetDetail",
    "DatasetInfo",
    "DatasetSummary",
    "DriftCheck",
    "EventRecord",
    "GrantRecord",
    "ModelInfo",
    "ModelRecord",
    "NewToken",
    "Record",
    "RouteRecord",
    "RunInfo",
    "ScheduleInfo",
    "Silence",
    "SilenceRecord",
    "SinkRecord",
    "StoredExtent",
    "TokenRecord",
    "VersionRecord",
    "WhoAmI",
]
