"""Derived channels (formulas) of a dataset: list, show, save (checked), delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from stream0d_nb import derived
from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, require
from stream0d_nb.api.errors import NotFoundError
from stream0d_nb.specs import FormulaSpec

router = APIRouter(tags=["formulas"])

Read = Annotated[DatasetContext, Depends(require(Action.READ))]
Edit = Annotated[DatasetContext, Depends(require(Action.EDIT_FORMULAS))]


@router.get("/datasets/{dataset_id}/formulas")
def list_formulas(ctx: Read, store: StoreDep) -> list[FormulaSpec]:
    """The dataset's derived channels."""
    return derived.list_formulas(store, ctx.id)


@router.get("/datasets/{dataset_id}/formulas/{name}")
def show_formula(name: str, ctx: Read, store: StoreDep) -> FormulaSpec:
    """One derived channel."""
    for f in derived.list_formulas(store, ctx.id):
        if f.name == name:
            return f
    raise NotFoundError(f"dataset {ctx.id!r} has no derived channel {name!r}")


@router.post("/datasets/{dataset_id}/formulas", status_code=201)
def save_formula(spec: FormulaSpec, ctx: Edit, store: StoreDep) -> FormulaSpec:
    """Check and save (create or replace) a derived channel (editor)."""
    return derived.save_formula(store, ctx.id, spec, actor=ctx.identity.user)


@router.delete("/datasets/{dataset_id}/formulas/{name}", status_code=204)
def delete_formula(name: str, ctx: Edit, store: StoreDep) -> None:
    """Delete a derived channel (refused while other formulas use it)."""
    derived.delete_formula(store, ctx.id, name, confirm=name, actor=ctx.identity.user)
