"""Saved views of a dataset (named plots): list, show, create, replace, change, delete.

Reading needs the ``plot`` action (viewer), changing ``views.edit`` (editor); every
change is audited (``view.create``, ``view.update``, ``view.delete``). Channels must be
stored or derived channels of the dataset when the view is saved.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict

from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, require
from stream0d_nb.db.view_tables import ViewRegistry
from stream0d_nb.errors import ValidationError
from stream0d_nb.saved_views import save_view
from stream0d_nb.store import Store
from stream0d_nb.views import PlotKind, ViewSpec

router = APIRouter(tags=["views"])

Read = Annotated[DatasetContext, Depends(require(Action.PLOT))]
Edit = Annotated[DatasetContext, Depends(require(Action.EDIT_VIEWS))]


class ViewPatch(BaseModel):
    """Fields of a view to change (missing: keep); the name cannot change (422)."""

    model_config = ConfigDict(extra="forbid")

    channels: list[str] | None = None
    start: str | None = None
    end: str | None = None
    kind: PlotKind | None = None
    options: dict[str, Any] | None = None
    description: str | None = None


def _save(
    store: Store, ctx: DatasetContext, spec: ViewSpec, create_only: bool
) -> tuple[ViewSpec, bool]:
    """Check the range (not empty now) and the channels, then save (audited); the
    rules are the CLI's too (``stream0d_nb.saved_views``)."""
    return save_view(store, ctx.id, spec, ctx.identity.user, create_only=create_only)


@router.get("/datasets/{dataset_id}/views")
def list_views(ctx: Read, store: StoreDep) -> list[ViewSpec]:
    """The dataset's saved views, oldest first."""
    return ViewRegistry(store.registry).list(ctx.id)


@router.get("/datasets/{dataset_id}/views/{name}")
def show_view(name: str, ctx: Read, store: StoreDep) -> ViewSpec:
    """One saved view."""
    return ViewRegistry(store.registry).get(ctx.id, name)


@router.post("/datasets/{dataset_id}/views", status_code=201)
def create_view(spec: ViewSpec, ctx: Edit, store: StoreDep) -> ViewSpec:
    """Save a new view (editor); 409 if the dataset has one of that name."""
    return _save(store, ctx, spec, create_only=True)[0]


@router.put("/datasets/{dataset_id}/views/{name}")
def put_view(name: str, spec: ViewSpec, ctx: Edit, store: StoreDep, response: Response) -> ViewSpec:
    """Create (201) or replace (200) the view ``name`` with the whole body (editor)."""
    if spec.name != name:
        raise ValidationError(f"name: {spec.name!r} differs from the view in the path ({name!r})")
    saved, created = _save(store, ctx, spec, create_only=False)
    response.status_code = 201 if created else 200
    return saved


@router.patch("/datasets/{dataset_id}/views/{name}")
def patch_view(name: str, patch: ViewPatch, ctx: Edit, store: StoreDep) -> ViewSpec:
    """Change some fields of an existing view (editor); the result is checked as a whole."""
    views = ViewRegistry(store.registry)
    current = views.get(ctx.id, name)
    changes = patch.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None:
            raise ValidationError(f"{field}: may not be null (leave it out to keep it)")
    spec = ViewSpec.model_validate({**current.model_dump(), **changes})
    return _save(store, ctx, spec, create_only=False)[0]


@router.delete("/datasets/{dataset_id}/views/{name}", status_code=204)
def delete_view(name: str, ctx: Edit, store: StoreDep) -> None:
    """Delete a saved view (editor)."""
    ViewRegistry(store.registry).delete(ctx.id, name, store.actor(ctx.identity.user))
