"""Records of access: the audit log, grants, API tokens and who the caller is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, field_validator

from stream0d_nb.access import Grant, Level, PrincipalKind, TokenRestriction
from stream0d_nb.records.base import DATASET_ID, Record


class AuditEntry(Record):
    """One row of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    dataset: str | None
    detail: dict[str, Any]
    via: str | None

    @field_validator("detail", mode="before")
    @classmethod
    def _no_detail(cls, v: Any) -> Any:
        return {} if v is None else v


class GrantRecord(Grant):
    """A stored grant: the pure ``Grant`` plus who gave it when."""

    model_config = ConfigDict(from_attributes=True, frozen=True, extra="ignore")

    dataset: str = Field(validation_alias=DATASET_ID)
    kind: PrincipalKind = Field(validation_alias=AliasChoices("kind", "principal_kind"))
    granted_by: str
    granted_at: datetime


class TokenRecord(Record):
    """A stored API token as shown to its owner (never with its secret)."""

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


class NewToken(TokenRecord):
    """A token just issued: its record plus the token itself, shown this once."""

    token: str = Field(repr=False)


def _sorted(v: Any) -> Any:
    """Sets (an identity's groups, scopes, datasets) as sorted lists."""
    return sorted(v) if isinstance(v, set | frozenset) else v


class CallerToken(Record):
    """What the API token the caller used narrows them to."""

    id: str | None = Field(validation_alias=AliasChoices("id", "token_id"))
    level: Level
    partner: str | None
    datasets: list[str] | None

    @field_validator("datasets", mode="before")
    @classmethod
    def _sort(cls, v: Any) -> Any:
        return _sorted(v)


class WhoAmI(Record):
    """Who the service takes the caller for (``GET /whoami``), read from an ``Identity``."""

    user: str
    groups: list[str] = Field(description="The user's partners (hub groups).")
    is_admin: bool
    scopes: list[str]
    via: str = Field(description="As the audit log records it: token:<id>, session...")
    token: CallerToken | None = Field(description="The API token used, if one was.")

    @field_validator("groups", "scopes", mode="before")
    @classmethod
    def _sort(cls, v: Any) -> Any:
        return _sorted(v)
