"""SQL tables of access control: per-dataset grants and our API tokens (hashes only).

Tokens read ``s0d_<id>_<secret>``: a public 16-hex-digit id to find the row and 32 random
bytes (``secrets.token_urlsafe``) of secret. Only SHA-256 of ``<id>:<secret>`` is stored
and compared in constant time. A fast hash is right here: the secret has 256 bits of
entropy, so a leaked hash cannot be brute-forced, while a slow password hash (scrypt,
bcrypt) would cost tens of milliseconds of CPU per API call and invite denial of service;
a server pepper would add a key to manage for no gain at this entropy. Every change is
audited in the same transaction; the secret never reaches the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from stream0d_nb.access import (
    Level,
    PrincipalKind,
    Role,
    TokenExpiredError,
    TokenNotFoundError,
    TokenRevokedError,
    TokenUnknownError,
)
from stream0d_nb.db.base import Base, BigIntPK, JSONType, UTCDateTime, retry_on_unique, utcnow
from stream0d_nb.db.dataset_tables import dataset_row
from stream0d_nb.errors import Stream0dError, ValidationError
from stream0d_nb.records import GrantRecord, TokenRecord
from stream0d_nb.specs import check_slug

if TYPE_CHECKING:
    from stream0d_nb.db.registry import Registry

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "TOKEN_PREFIX",
    "AccessRegistry",
    "ApiTokenRow",
    "GrantNotFoundError",
    "GrantRecord",
    "GrantRow",
    "IssuedToken",
    "TokenRecord",
    "hash_secret",
    "looks_like_token",
    "parse_token",
]


TOKEN_PREFIX = "s0d_"
MAX_TOKEN_LIFETIME = timedelta(days=366)
_TOKEN_RE = re.compile(r"^s0d_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f\s]{1,255}$")
_DUMMY_HASH = "0" * 64


class GrantNotFoundError(Stream0dError, LookupError):
    """No grant to that principal on that dataset."""


# ----------------------------------------------------------------------------- rows


class GrantRow(Base):
    """A role on a dataset for a group (partner) or a user; gone with its dataset."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("dataset_id", "principal_kind", "principal"),
        Index("ix_grants_principal_kind_principal", "principal_kind", "principal"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("datasets.id", ondelete="CASCADE")
    )
    principal_kind: Mapped[str] = mapped_column(String(8))
    principal: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    granted_by: Mapped[str] = mapped_column(String)


class ApiTokenRow(Base):
    """One API token: its owner, limits and lifecycle; the secret only as a hash."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(8))
    partner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    datasets: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String, nullable=True)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the plaintext (shown once, never stored) and its record."""

    token: str = field(repr=False)
    record: TokenRecord


# ----------------------------------------------------------------------------- token text


def hash_secret(token_id: str, secret: str) -> str:
    """Hex SHA-256 of ``<id>:<secret>`` (binding the secret to its id)."""
    return hashlib.sha256(f"{token_id}:{secret}".encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Whether ``value`` is meant as one of our tokens (not a hub token)."""
    return value.startswith(TOKEN_PREFIX)


def parse_token(value: str) -> tuple[str, str]:
    """``(id, secret)`` of ``s0d_<id>_<secret>``; ``TokenUnknownError`` if malformed."""
    m = _TOKEN_RE.match(value.strip())
    if m is None:
        raise TokenUnknownError("invalid API token")
    return m.group(1), m.group(2)


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValidationError(f"{what} {value!r} must be 1-255 printable characters, no spaces")
    return value


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{what}={value!r} must be timezone-aware (e.g. UTC)")
    return value


# ----------------------------------------------------------------------------- facade


class AccessRegistry:
    """Grants and API tokens in the platform's registry database (same engine, migrations).

    This layer stores and verifies; deciding who may grant or issue is ``access.check``'s
    job in the API, except revoking a token, which only its owner or an admin can do.
    ``last_used_granularity`` throttles the last-used write (one per token per interval)
    so that busy clients do not turn every authenticated read into a write.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        last_used_granularity: timedelta = timedelta(seconds=60),
        max_lifetime: timedelta = MAX_TOKEN_LIFETIME,
    ) -> None:
        self.registry = registry
        self.last_used_granularity = last_used_granularity
        self.max_lifetime = max_lifetime

    # -- grants ------------------------------------------------------------------------

    def grant(
        self,
        dataset_id: str,
        kind: PrincipalKind | str,
        principal: str,
        role: Role | str,
        actor: str,
        via: str | None = None,
    ) -> GrantRecord:
        """Give ``principal`` ``role`` on the dataset (replacing its role); audited ``grant.add``."""
        kind, role = _kind(kind), _role(role)
        _check_name(principal, f"{kind.value} name")

        def run() -> GrantRecord:
            with self.registry.write_session() as s:
                dataset_row(s, dataset_id)
                row = self._grant_row(s, dataset_id, kind, principal)
                detail: dict[str, Any] = {
                    "kind": kind.value,
                    "principal": principal,
                    "role": role.value,
                }
                now = utcnow()
                if row is None:
                    row = GrantRow(
                        dataset_id=dataset_id, principal_kind=kind.value, principal=principal
                    )
                    s.add(row)
                elif row.role == role.value:
                    return GrantRecord.model_validate(row)
                else:
                    detail["from"] = row.role
                row.role, row.granted_at, row.granted_by = role.value, now, actor
                s.flush()
                self.registry.add_audit(s, actor, "grant.add", dataset_id, detail, via, now)
                return GrantRecord.model_validate(row)

        return retry_on_unique(run)

    def revoke_grant(
        self,
        dataset_id: str,
        kind: PrincipalKind | str,
        principal: str,
        actor: str,
        via: str | None = None,
    ) -> None:
        """Remove a grant; audited ``grant.remove``; ``GrantNotFoundError`` if there is none."""
        kind = _kind(kind)
        with self.registry.write_session() as s:
            dataset_row(s, dataset_id)
            row = self._grant_row(s, dataset_id, kind, principal)
            if row is None:
                raise GrantNotFoundError(
                    f"dataset {dataset_id!r} has no grant to {kind.value} {principal!r}"
                )
            detail = {"kind": kind.value, "principal": principal, "role": row.role}
            s.delete(row)
            s.flush()
            self.registry.add_audit(s, actor, "grant.remove", dataset_id, detail, via)

    @staticmethod
    def _grant_row(
        s: Session, dataset_id: str, kind: PrincipalKind, principal: str
    ) -> GrantRow | None:
        row: GrantRow | None = s.scalars(
            select(GrantRow).where(
                GrantRow.dataset_id == dataset_id,
                GrantRow.principal_kind == kind.value,
                GrantRow.principal == principal,
            )
        ).one_or_none()
        return row

    def list_grants(self, dataset_id: str | None = None) -> list[GrantRecord]:
        """Grants of one dataset (or all), by dataset, kind, principal."""
        stmt = select(GrantRow)
        if dataset_id is not None:
            stmt = stmt.where(GrantRow.dataset_id == dataset_id)
        stmt = stmt.order_by(GrantRow.dataset_id, GrantRow.principal_kind, GrantRow.principal)
        with self.registry.read_session() as s:
            return [GrantRecord.model_validate(r) for r in s.scalars(stmt)]

    def grants_for(self, user: str, groups: Iterable[str] = ()) -> list[GrantRecord]:
        """Every grant to ``user`` or one of ``groups`` (what ``visible_datasets`` needs)."""
        groups = sorted(set(groups))
        cond: ColumnElement[bool] = (GrantRow.principal_kind == PrincipalKind.USER.value) & (
            GrantRow.principal == user
        )
        if groups:
            cond = or_(
                cond,
                (GrantRow.principal_kind == PrincipalKind.GROUP.value)
                & GrantRow.principal.in_(groups),
            )
        stmt = select(GrantRow).where(cond).order_by(GrantRow.dataset_id, GrantRow.id)
        with self.registry.read_session() as s:
            return [GrantRecord.model_validate(r) for r in s.scalars(stmt)]

    # -- tokens ------------------------------------------------------------------------

    def issue_token(
        self,
        owner: str,
        *,
        level: Level | str,
        expires_at: datetime,
        note: str = "",
        partner: str | None = None,
        datasets: Iterable[str] | None = None,
        via: str | None = None,
    ) -> IssuedToken:
        """Create a token; the plaintext is returned here once. Audited ``token.create``."""
        _check_name(owner, "token owner")
        level = _level(level)
        now = utcnow()
        _aware(expires_at, "expires_at")
        if expires_at <= now:
            raise ValidationError(f"expires_at {expires_at.isoformat()} is not in the future")
        if expires_at > now + self.max_lifetime:
            raise ValidationError(f"a token may live at most {self.max_lifetime.days} days")
        if partner is not None:
            _check_name(partner, "partner")
        ds = None
        if datasets is not None:
            try:
                ds = sorted({check_slug(d, "dataset id") for d in datasets})
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc
            if not ds:
                raise ValidationError("a dataset restriction needs at least one dataset")
        if len(note) > 1000:
            raise ValidationError("a token note may have at most 1000 characters")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row = ApiTokenRow(
            id=token_id,
            owner=owner,
            note=note,
            secret_hash=hash_secret(token_id, secret),
            level=level.value,
            partner=partner,
            datasets=ds,
            created_at=now,
            expires_at=expires_at,
        )
        with self.registry.write_session() as s:
            s.add(row)
            s.flush()
            detail = {
                "id": token_id,
                "note": note,
                "level": level.value,
                "partner": partner,
                "datasets": ds,
                "expires_at": expires_at.isoformat(),
            }
            self.registry.add_audit(s, owner, "token.create", None, detail, via, now)
            record = TokenRecord.model_validate(row)
        return IssuedToken(f"{TOKEN_PREFIX}{token_id}_{secret}", record)

    def verify_token(self, token: str, now: datetime | None = None) -> TokenRecord:
        """The record of a usable token; ``TokenUnknownError``/``Revoked``/``Expired`` if not.

        Revoked and expired are only told to a caller holding the real secret. Updates
        ``last_used_at`` (at most once per ``last_used_granularity``).
        """
        now = _aware(now, "now") if now is not None else utcnow()
        token_id, secret = parse_token(token)
        with self.registry.read_session() as s:
            row = s.get(ApiTokenRow, token_id)
            stored = row.secret_hash if row is not None else _DUMMY_HASH
            ok = hmac.compare_digest(stored, hash_secret(token_id, secret))
            if row is None or not ok:
                raise TokenUnknownError("invalid API token")
            record = TokenRecord.model_validate(row)
        if record.revoked_at is not None:
            raise TokenRevokedError(f"API token {token_id} was revoked")
        if now >= record.expires_at:
            raise TokenExpiredError(
                f"API token {token_id} expired at {record.expires_at.isoformat()}"
            )
        last = record.last_used_at
        if last is None or now - last >= self.last_used_granularity:
            with self.registry.write_session() as s:
                s.execute(
                    update(ApiTokenRow)
                    .where(
                        ApiTokenRow.id == token_id,
                        or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at < now),
                    )
                    .values(last_used_at=now)
                )
            record = record.model_copy(update={"last_used_at": now})
        return record

    def get_token(self, token_id: str) -> TokenRecord:
        """One token by id; ``TokenNotFoundError`` if there is none."""
        with self.registry.read_session() as s:
            row = s.get(ApiTokenRow, token_id)
            if row is None:
                raise TokenNotFoundError(f"no API token {token_id!r}")
            return TokenRecord.model_validate(row)

    def list_tokens(self, owner: str, include_inactive: bool = True) -> list[TokenRecord]:
        """The tokens of ``owner``, newest first (optionally only usable ones)."""
        stmt = select(ApiTokenRow).where(ApiTokenRow.owner == owner)
        stmt = stmt.order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id)
        with self.registry.read_session() as s:
            records = [TokenRecord.model_validate(r) for r in s.scalars(stmt)]
        if not include_inactive:
            now = utcnow()
            records = [r for r in records if r.active(now)]
        return records

    def revoke_token(
        self, token_id: str, actor: str, *, is_admin: bool = False, via: str | None = None
    ) -> TokenRecord:
        """Revoke a token of ``actor`` (any token for admins); audited ``token.revoke``.

        Someone else's token is reported as not found, so ids cannot be probed. Revoking
        twice is a no-op.
        """
        with self.registry.write_session() as s:
            row = s.get(ApiTokenRow, token_id)
            if row is None or (row.owner != actor and not is_admin):
                raise TokenNotFoundError(f"no API token {token_id!r} of {actor}")
            if row.revoked_at is None:
                now = utcnow()
                row.revoked_at, row.revoked_by = now, actor
                s.flush()
                detail = {"id": token_id, "owner": row.owner, "note": row.note}
                self.registry.add_audit(s, actor, "token.revoke", None, detail, via, now)
            return TokenRecord.model_validate(row)


def _kind(kind: PrincipalKind | str) -> PrincipalKind:
    try:
        return PrincipalKind(kind)
    except ValueError as exc:
        raise ValidationError(f"principal kind {kind!r} must be 'group' or 'user'") from exc


def _level(level: Level | str) -> Level:
    try:
        return Level(level)
    except ValueError as exc:
        raise ValidationError(f"token level {level!r} must be read, write or admin") from exc


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise ValidationError(f"role {role!r} must be viewer, editor or owner") from exc
