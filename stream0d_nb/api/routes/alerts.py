"""Alert rules of a dataset (list, show, save, delete) and its alert events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from stream0d_nb.access import Action
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.api.deps import AlertsDep, DatasetContext, require
from stream0d_nb.api.errors import NotFoundError
from stream0d_nb.errors import ValidationError
from stream0d_nb.records import EventRecord

router = APIRouter(tags=["alerts"])

View = Annotated[DatasetContext, Depends(require(Action.VIEW_ALERTS))]
Edit = Annotated[DatasetContext, Depends(require(Action.EDIT_ALERT_RULES))]


def _rule_json(rule: AlertRule) -> dict[str, Any]:
    return rule.model_dump(mode="json", by_alias=False)


@router.get("/datasets/{dataset_id}/alerts")
def list_rules(ctx: View, alerts: AlertsDep) -> list[dict[str, Any]]:
    """The dataset's alert rules."""
    return [_rule_json(r) for r in alerts.rules(ctx.id)]


@router.get("/datasets/{dataset_id}/alerts/events")
def events(
    ctx: View,
    alerts: AlertsDep,
    rule: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query(description="firing, pending, ok, ...")] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[EventRecord]:
    """Alert events, newest first."""
    for t in (since, until):
        if t is not None and t.tzinfo is None:
            raise ValidationError(f"{t.isoformat()} needs a time zone (e.g. Z)")
    return alerts.table.events(ctx.id, rule, state, since, until, limit)


@router.get("/datasets/{dataset_id}/alerts/{name}")
def show_rule(name: str, ctx: View, alerts: AlertsDep) -> dict[str, Any]:
    """One alert rule."""
    for r in alerts.rules(ctx.id):
        if r.name == name:
            return _rule_json(r)
    raise NotFoundError(f"dataset {ctx.id!r} has no alert rule {name!r}")


@router.post("/datasets/{dataset_id}/alerts", status_code=201)
def save_rule(rule: AlertRule, ctx: Edit, alerts: AlertsDep) -> dict[str, Any]:
    """Check a rule against the dataset and save it (editor)."""
    return _rule_json(alerts.add_rule(ctx.id, rule, actor=ctx.identity.user))


@router.delete("/datasets/{dataset_id}/alerts/{name}", status_code=204)
def delete_rule(name: str, ctx: Edit, alerts: AlertsDep) -> None:
    """Delete a rule and its live state (its events stay)."""
    if name not in {r.name for r in alerts.rules(ctx.id)}:
        raise NotFoundError(f"dataset {ctx.id!r} has no alert rule {name!r}")
    alerts.delete_rule(ctx.id, name, confirm=name, actor=ctx.identity.user)
