"""Datasets: list what I may see, create, show, update, delete; channels and history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from stream0d_nb import derived
from stream0d_nb.access import (
    Action,
    Identity,
    check_create,
    check_namespace,
    effective_role,
    visible_datasets,
)
from stream0d_nb.api.deps import AccessDep, DatasetContext, IdentityDep, StoreDep, require
from stream0d_nb.db.dataset_tables import DatasetRecord
from stream0d_nb.errors import ValidationError
from stream0d_nb.specs import ChannelSpec, CommitInfo, DatasetSpec

router = APIRouter(tags=["datasets"])


class DatasetUpdate(BaseModel):
    """Descriptive fields to change (missing: keep); other fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=20_000)


def dataset_json(record: DatasetRecord, role: str | None) -> dict[str, Any]:
    """A dataset as the API shows it: its spec, bookkeeping and the caller's role."""
    return {
        **record.spec.model_dump(mode="json"),
        "created_at": record.created_at.isoformat(),
        "created_by": record.created_by,
        "updated_at": record.updated_at.isoformat(),
        "role": role,
    }


@router.get("/whoami")
def whoami(identity: IdentityDep) -> dict[str, Any]:
    """Who the service takes the caller for, and through what."""
    token = identity.token
    return {
        "user": identity.user,
        "groups": sorted(identity.groups),
        "is_admin": identity.is_admin,
        "scopes": sorted(identity.scopes),
        "via": identity.via,
        "token": None
        if token is None
        else {
            "id": token.token_id,
            "level": token.level.value,
            "partner": token.partner,
            "datasets": None if token.datasets is None else sorted(token.datasets),
        },
    }


@router.get("/datasets")
def list_datasets(
    identity: IdentityDep, store: StoreDep, access: AccessDep
) -> list[dict[str, Any]]:
    """The datasets the caller may see (any role), with that role."""
    grants = access.grants_for(identity.user, identity.groups)
    out = []
    for rec in visible_datasets(identity, store.list_datasets(), grants):
        role = effective_role(identity, rec, [g for g in grants if g.dataset == rec.id])
        out.append(dataset_json(rec, None if role is None else role.value))
    return out


@router.post("/datasets", status_code=201)
def create_dataset(spec: DatasetSpec, identity: IdentityDep, store: StoreDep) -> dict[str, Any]:
    """Create a dataset of one of the caller's partners (write access needed).

    The id must lie in the partner's namespace (``<partner>-<name>``), checked on the
    text before the registry is asked: no answer depends on another partner's ids.
    """
    check_create(identity, spec)
    check_namespace(spec)
    return dataset_json(store.create_dataset(spec, actor=identity.user), "owner")


Read = Annotated[DatasetContext, Depends(require(Action.READ))]


@router.get("/datasets/{dataset_id}")
def show_dataset(ctx: Read, store: StoreDep) -> dict[str, Any]:
    """One dataset with what is stored (extent, channels, commits)."""
    summary = store.summary(ctx.id)
    summary["channels"] = [c.model_dump(mode="json") for c in summary["channels"]]
    for key in ("start", "end"):
        if summary[key] is not None:
            summary[key] = str(summary[key])
    return {**dataset_json(ctx.record, ctx.role.value), "summary": summary}


@router.patch("/datasets/{dataset_id}")
def update_dataset(
    body: DatasetUpdate,
    ctx: Annotated[DatasetContext, Depends(require(Action.UPDATE))],
    store: StoreDep,
) -> dict[str, Any]:
    """Change title or description (editor)."""
    ident: Identity = ctx.identity
    rec = store.registry.update_dataset(
        ctx.id, ident.user, title=body.title, description=body.description, via=ident.via
    )
    return dataset_json(rec, ctx.role.value)


@router.delete("/datasets/{dataset_id}")
def delete_dataset(
    ctx: Annotated[DatasetContext, Depends(require(Action.DELETE))],
    store: StoreDep,
    confirm: Annotated[str | None, Query(description="Repeat the dataset id.")] = None,
) -> dict[str, Any]:
    """Delete a dataset and all its data (owner; ``confirm`` repeats the id)."""
    objects = store.delete_dataset(ctx.id, confirm, actor=ctx.identity.user)
    return {"deleted": ctx.id, "objects": objects}


@router.get("/datasets/{dataset_id}/channels")
def channels(
    ctx: Read, store: StoreDep, as_of: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    """Stored channels (as of a snapshot or time) and derived ones (formulas)."""
    return {
        "stored": [c.model_dump(mode="json") for c in store.channels(ctx.id, as_of)],
        "derived": [f.model_dump(mode="json") for f in derived.list_formulas(store, ctx.id)],
    }


@router.put("/datasets/{dataset_id}/channels")
def set_channels(
    specs: list[ChannelSpec],
    ctx: Annotated[DatasetContext, Depends(require(Action.UPDATE))],
    store: StoreDep,
) -> dict[str, Any]:
    """Create channels or update their metadata (editor); units of a channel with data stay.

    Channels not named are left as they are. Returns the commit (None if nothing changed).
    """
    if not specs:
        raise ValidationError("name at least one channel")
    names = [c.name for c in specs]
    if len(set(names)) != len(names):
        raise ValidationError(f"channels named twice in {names!r}")
    snapshot = store.set_channels(ctx.id, specs, actor=ctx.identity.user)
    return {
        "commit": snapshot,
        "stored": [c.model_dump(mode="json") for c in store.channels(ctx.id)],
    }


@router.delete("/datasets/{dataset_id}/channels/{name}")
def delete_channel(
    name: str,
    ctx: Annotated[DatasetContext, Depends(require(Action.DELETE))],
    store: StoreDep,
    confirm: Annotated[str | None, Query(description="Repeat the channel name.")] = None,
) -> dict[str, Any]:
    """Delete a channel from the current version on (owner; history keeps it)."""
    snapshot = store.delete_channel(ctx.id, name, confirm, actor=ctx.identity.user)
    return {"deleted": name, "commit": snapshot}


@router.get("/datasets/{dataset_id}/history")
def history(
    ctx: Read, store: StoreDep, limit: Annotated[int | None, Query(ge=1, le=10_000)] = 100
) -> list[CommitInfo]:
    """The dataset's commits, newest first."""
    return store.history(ctx.id, limit)
