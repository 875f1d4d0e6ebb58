"""Datasets: list what I may see, create, show, update, delete; channels and history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from stream0d_nb import derived
from stream0d_nb.access import (
    Action,
    Identity,
    Role,
    check_create,
    check_namespace,
    effective_role,
    visible_datasets,
)
from stream0d_nb.api.deps import AccessDep, DatasetContext, IdentityDep, StoreDep, require
from stream0d_nb.db.dataset_tables import DatasetRecord
from stream0d_nb.errors import ValidationError
from stream0d_nb.records import (
    AttrView,
    ChannelDeleted,
    ChannelList,
    ChannelsSaved,
    DatasetDeleted,
    DatasetDetail,
    DatasetInfo,
    WhoAmI,
)
from stream0d_nb.specs import ChannelSpec, CommitInfo, DatasetSpec

router = APIRouter(tags=["datasets"])


class DatasetUpdate(BaseModel):
    """Descriptive fields to change (missing: keep); other fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=20_000)


def dataset_info(record: DatasetRecord, role: Role | None) -> DatasetInfo:
    """A dataset as the API lists it: its spec, bookkeeping and the caller's role."""
    return DatasetInfo.model_validate(AttrView(record.spec, record, role=role))


@router.get("/whoami")
def whoami(identity: IdentityDep) -> WhoAmI:
    """Who the service takes the caller for, and through what."""
    return WhoAmI.model_validate(identity)


@router.get("/datasets")
def list_datasets(identity: IdentityDep, store: StoreDep, access: AccessDep) -> list[DatasetInfo]:
    """The datasets the caller may see (any role), with that role."""
    grants = access.grants_for(identity.user, identity.groups)
    return [
        dataset_info(rec, effective_role(identity, rec, [g for g in grants if g.dataset == rec.id]))
        for rec in visible_datasets(identity, store.list_datasets(), grants)
    ]


@router.post("/datasets", status_code=201)
def create_dataset(spec: DatasetSpec, identity: IdentityDep, store: StoreDep) -> DatasetInfo:
    """Create a dataset of one of the caller's partners (write access needed).

    The id must lie in the partner's namespace (``<partner>-<name>``), checked on the
    text before the registry is asked: no answer depends on another partner's ids.
    """
    check_create(identity, spec)
    check_namespace(spec)
    return dataset_info(store.create_dataset(spec, actor=identity.user), Role.OWNER)


Read = Annotated[DatasetContext, Depends(require(Action.READ))]


@router.get("/datasets/{dataset_id}")
def show_dataset(ctx: Read, store: StoreDep) -> DatasetDetail:
    """One dataset with what is stored (extent, channels, commits)."""
    extent = store.summary(ctx.id)
    return DatasetDetail.model_validate(
        AttrView(ctx.record.spec, ctx.record, role=ctx.role, summary=extent)
    )


@router.patch("/datasets/{dataset_id}")
def update_dataset(
    body: DatasetUpdate,
    ctx: Annotated[DatasetContext, Depends(require(Action.UPDATE))],
    store: StoreDep,
) -> DatasetInfo:
    """Change title or description (editor)."""
    ident: Identity = ctx.identity
    rec = store.registry.update_dataset(
        ctx.id, ident.user, title=body.title, description=body.description, via=ident.via
    )
    return dataset_info(rec, ctx.role)


@router.delete("/datasets/{dataset_id}")
def delete_dataset(
    ctx: Annotated[DatasetContext, Depends(require(Action.DELETE))],
    store: StoreDep,
    confirm: Annotated[str | None, Query(description="Repeat the dataset id.")] = None,
) -> DatasetDeleted:
    """Delete a dataset and all its data (owner; ``confirm`` repeats the id)."""
    objects = store.delete_dataset(ctx.id, confirm, actor=ctx.identity.user)
    return DatasetDeleted(deleted=ctx.id, objects=objects)


@router.get("/datasets/{dataset_id}/channels")
def channels(
    ctx: Read, store: StoreDep, as_of: Annotated[str | None, Query()] = None
) -> ChannelList:
    """Stored channels (as of a snapshot or time) and derived ones (formulas)."""
    return ChannelList(
        stored=store.channels(ctx.id, as_of), derived=derived.list_formulas(store, ctx.id)
    )


@router.put("/datasets/{dataset_id}/channels")
def set_channels(
    specs: list[ChannelSpec],
    ctx: Annotated[DatasetContext, Depends(require(Action.UPDATE))],
    store: StoreDep,
) -> ChannelsSaved:
    """Create channels or update their metadata (editor); units of a channel with data stay.

    Channels not named are left as they are. Returns the commit (None if nothing changed).
    """
    if not specs:
        raise ValidationError("name at least one channel")
    names = [c.name for c in specs]
    if len(set(names)) != len(names):
        raise ValidationError(f"channels named twice in {names!r}")
    snapshot = store.set_channels(ctx.id, specs, actor=ctx.identity.user)
    return ChannelsSaved(commit=snapshot, stored=store.channels(ctx.id))


@router.delete("/datasets/{dataset_id}/channels/{name}")
def delete_channel(
    name: str,
    ctx: Annotated[DatasetContext, Depends(require(Action.DELETE))],
    store: StoreDep,
    confirm: Annotated[str | None, Query(description="Repeat the channel name.")] = None,
) -> ChannelDeleted:
    """Delete a channel from the current version on (owner; history keeps it)."""
    snapshot = store.delete_channel(ctx.id, name, confirm, actor=ctx.identity.user)
    return ChannelDeleted(deleted=name, commit=snapshot)


@router.get("/datasets/{dataset_id}/history")
def history(
    ctx: Read, store: StoreDep, limit: Annotated[int | None, Query(ge=1, le=10_000)] = 100
) -> list[CommitInfo]:
    """The dataset's commits, newest first."""
    return store.history(ctx.id, limit)
