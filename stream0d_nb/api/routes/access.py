"""Grants and audit log of a dataset (owner), and the caller's API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from stream0d_nb.access import (
    Action,
    Identity,
    Level,
    PrincipalKind,
    Role,
    check_token_request,
)
from stream0d_nb.api.deps import (
    AccessDep,
    DatasetContext,
    IdentityDep,
    StoreDep,
    require,
    session_only,
)
from stream0d_nb.records import AttrView, AuditEntry, GrantRecord, NewToken, TokenRecord

router = APIRouter(tags=["access"])

Owner = Annotated[DatasetContext, Depends(require(Action.MANAGE_GRANTS))]
Auditor = Annotated[DatasetContext, Depends(require(Action.VIEW_AUDIT))]


class GrantIn(BaseModel):
    """A role for a partner group or a user (the dataset is the path's; extra fields: 422)."""

    model_config = ConfigDict(extra="forbid")

    kind: PrincipalKind
    principal: str = Field(..., min_length=1, max_length=255)
    role: Role


class TokenRequest(BaseModel):
    """What a new token may do and until when."""

    model_config = ConfigDict(extra="forbid")

    level: Level
    expires_at: datetime
    note: str = Field("", max_length=1000)
    partner: str | None = None
    datasets: list[str] | None = None


@router.get("/datasets/{dataset_id}/grants")
def list_grants(ctx: Owner, access: AccessDep) -> list[GrantRecord]:
    """Who has which role on the dataset (besides its partner and admins)."""
    return access.list_grants(ctx.id)


@router.post("/datasets/{dataset_id}/grants", status_code=201)
def add_grant(body: GrantIn, ctx: Owner, access: AccessDep) -> GrantRecord:
    """Give a group or user a role (replacing its previous one); audited."""
    ident: Identity = ctx.identity
    return access.grant(ctx.id, body.kind, body.principal, body.role, ident.user, ident.via)


@router.delete("/datasets/{dataset_id}/grants/{kind}/{principal}", status_code=204)
def remove_grant(kind: PrincipalKind, principal: str, ctx: Owner, access: AccessDep) -> None:
    """Remove a grant; audited."""
    access.revoke_grant(ctx.id, kind, principal, ctx.identity.user, ctx.identity.via)


@router.get("/datasets/{dataset_id}/audit")
def audit(
    ctx: Auditor,
    store: StoreDep,
    action: Annotated[str | None, Query()] = None,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[AuditEntry]:
    """The dataset's audit log, newest first (owner)."""
    return store.registry.audit_log(ctx.id, action, since, limit)


@router.get("/tokens")
def list_tokens(identity: IdentityDep, access: AccessDep) -> list[TokenRecord]:
    """The caller's API tokens (never their secrets)."""
    return access.list_tokens(identity.user)


@router.post("/tokens", status_code=201)
def create_token(
    body: TokenRequest,
    identity: Annotated[Identity, Depends(session_only)],
    access: AccessDep,
) -> NewToken:
    """Issue a token (hub browser sessions only); its secret is shown this once."""
    check_token_request(identity, body.level)
    issued = access.issue_token(
        identity.user,
        level=body.level,
        expires_at=body.expires_at,
        note=body.note,
        partner=body.partner,
        datasets=body.datasets,
        via=identity.via,
    )
    return NewToken.model_validate(AttrView(issued.record, token=issued.token))


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, identity: IdentityDep, access: AccessDep) -> TokenRecord:
    """Revoke one of the caller's tokens (admins: any)."""
    return access.revoke_token(
        token_id, identity.user, is_admin=identity.is_admin, via=identity.via
    )
