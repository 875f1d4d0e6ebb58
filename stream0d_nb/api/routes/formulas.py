"""Derived channels (formulas) of a dataset: list, show, save (checked), delete, and
evaluate a formula over a range without saving it (read like a derived channel)."""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from stream0d_nb import derived
from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, get_settings, require
from stream0d_nb.api.errors import NotFoundError, PayloadTooLargeError
from stream0d_nb.api.routes.data import MEDIA, check_limits, json_bytes
from stream0d_nb.safetext import Line
from stream0d_nb.specs import FormulaSpec
from stream0d_nb.tables import to_arrow

router = APIRouter(tags=["formulas"])

Read = Annotated[DatasetContext, Depends(require(Action.READ))]
Edit = Annotated[DatasetContext, Depends(require(Action.EDIT_FORMULAS))]


@router.get("/datasets/{dataset_id}/formulas")
def list_formulas(ctx: Read, store: StoreDep) -> list[FormulaSpec]:
    """The dataset's derived channels."""
    return derived.list_formulas(store, ctx.id)


class FormulaEval(BaseModel):
    """A formula to evaluate over ``[start, end)`` without saving it, read like a derived
    channel (``every``/``how`` aggregate as in reads)."""

    model_config = ConfigDict(extra="forbid")

    formula: str = Field(..., description="Text in the formula language (docs/formulas.md).")
    start: Line | None = Field(None, description="Inclusive start (ISO time); default: data.")
    end: Line | None = Field(None, description="Exclusive end (ISO time); default: data.")
    every: Line | None = Field(None, description="Aggregation bin, e.g. '1min'.")
    how: Line = Field("mean", description="mean, min, max, sum, count, first, last...")
    as_of: Line | None = Field(None, description="Snapshot id or time.")
    format: Literal["json", "arrow"] = "json"


EVAL_CHANNEL = "value"  # the result's channel name in the answer (as ``formula eval`` prints)


@router.post("/datasets/{dataset_id}/formulas/eval")
def eval_formula(
    body: FormulaEval,
    ctx: Read,
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
) -> Response:
    """Evaluate a formula without saving it (viewer): a read of one derived channel,
    under the same checks (422, with line/column) and limits (413); nothing stored."""
    snap = store.data(ctx.id).snapshot(body.as_of)
    name = [derived.UNSAVED]
    args = (body.start, body.end)
    # the read's own limits for one channel (range, bins, values scanned and returned) ...
    check_limits(snap, name, *args, body.every, body.how, settings, body.format)
    # ... and, as for saved derived channels, the values held to evaluate it (margins of
    # its windows and shifts, nested derived channels), counted before anything is read
    held = derived.values_held(
        store, ctx.id, name, *args, settings.max_values, as_of=snap, unsaved=body.formula
    )
    if held > settings.max_values:
        raise PayloadTooLargeError(
            f"this formula needs at least {held:,} values in memory to be evaluated (its "
            f"windows and shifts widen the range), over the limit of {settings.max_values:,}: "
            "narrow the range"
        )
    if held > settings.max_scan_values:
        raise PayloadTooLargeError(
            f"this formula scans {held:,} values (windows' margins included), over the limit "
            f"of {settings.max_scan_values:,}: narrow the range"
        )
    ds = derived.read(
        store, ctx.id, name, *args, body.every, body.how, as_of=snap, unsaved=body.formula
    ).rename({derived.UNSAVED: EVAL_CHANNEL})
    if body.format == "json":
        return Response(json_bytes(ds), media_type="application/json")
    table = to_arrow(ds)
    buf = io.BytesIO()
    with pa.ipc.new_stream(buf, table.schema) as writer:
        writer.write_table(table)
    return Response(buf.getbuffer(), media_type=MEDIA["arrow"])


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
