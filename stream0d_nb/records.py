"""Records the API returns and the HTTP client reads back: plain pydantic models.

They live apart from the SQL tables that store them (``store.*_tables``) so that the
client and other light code can use them without SQLAlchemy, Alembic or Icechunk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from stream0d_nb.access import Grant, Level, TokenRestriction


class AuditEntry(BaseModel):
    """One row of the audit log."""

    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    actor: str
    action: str
    dataset: str | None
    detail: dict[str, Any]
    via: str | None


class GrantRecord(Grant):
    """A stored grant: the pure ``Grant`` plus who gave it when."""

    granted_by: str
    granted_at: datetime


class TokenRecord(BaseModel):
    """A stored API token as shown to its owner (never with its secret)."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    note: str
    level: Level
    partner: str | None
    datasets: tuple[str, ...] | None
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def active(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (now or datetime.now(UTC)) < self.expires_at

    def restriction(self) -> TokenRestriction:
        """What this token narrows its owner's rights to (for ``access.Identity``)."""
        ds = None if self.datasets is None else frozenset(self.datasets)
        return TokenRestriction(self.level, self.partner, ds, self.id)


class EventRecord(BaseModel):
    """An alert event as read back."""

    model_config = ConfigDict(frozen=True)
    id: int
    dataset: str
    rule: str
    series: str
    at: datetime
    from_state: str
    to_state: str
    severity: str
    value: float | None
    detail: dict[str, Any]
