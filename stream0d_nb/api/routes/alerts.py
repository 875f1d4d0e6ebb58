"""Alert rules of a dataset (list, show, save, delete, preview an unsaved one or backfill
saved ones over a window), its alert events (filtered, paged) and its silences (list,
create, end)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from stream0d_nb.access import Action
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.api.deps import AlertsDep, DatasetContext, StoreDep, get_settings, require
from stream0d_nb.api.routes.data import check_limits
from stream0d_nb.errors import ValidationError
from stream0d_nb.records import AlertPreview, AttrView, EventRecord, Silence, SilenceRecord
from stream0d_nb.safetext import Line

router = APIRouter(tags=["alerts"])

View = Annotated[DatasetContext, Depends(require(Action.VIEW_ALERTS))]
Edit = Annotated[DatasetContext, Depends(require(Action.EDIT_ALERT_RULES))]


@router.get("/datasets/{dataset_id}/alerts")
def list_rules(ctx: View, alerts: AlertsDep) -> list[AlertRule]:
    """The dataset's alert rules."""
    return alerts.rules(ctx.id)


NEXT_CURSOR = "X-Next-Cursor"


def _cursor(text: str) -> tuple[datetime, int]:
    """(at, id) of the last event of a page from its cursor ``<at in UTC ns>.<id>``."""
    at, _, last = text.partition(".")
    try:
        return pd.Timestamp(int(at), unit="ns", tz="UTC").to_pydatetime(), int(last)
    except (ValueError, OverflowError):
        raise ValidationError(f"cursor={text!r} is not one this API gave") from None


@router.get("/datasets/{dataset_id}/alerts/events")
def events(
    ctx: View,
    alerts: AlertsDep,
    response: Response,
    rule: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query(description="firing, pending, ok, ...")] = None,
    severity: Annotated[str | None, Query(description="critical, major, ...")] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    cursor: Annotated[str | None, Query(description="X-Next-Cursor of the page before.")] = None,
) -> list[EventRecord]:
    """Alert events, newest first, a page of ``limit``; the ``X-Next-Cursor`` header, when
    present, is the ``cursor`` of the next page."""
    for t in (since, until):
        if t is not None and t.tzinfo is None:
            raise ValidationError(f"{t.isoformat()} needs a time zone (e.g. Z)")
    before = _cursor(cursor) if cursor is not None else None
    found = alerts.table.events(
        ctx.id, rule, state, since, until, limit + 1, severity=severity, before=before
    )
    if len(found) > limit:
        found = found[:limit]
        last = found[-1]
        response.headers[NEXT_CURSOR] = f"{pd.Timestamp(last.at).value}.{last.id}"
    return found


class RulePreview(BaseModel):
    """An unsaved rule (as saved with ``POST /alerts``) and the window to run it over."""

    model_config = ConfigDict(extra="forbid")

    rule: AlertRule
    start: Line | None = Field(None, description="Inclusive start (ISO time); default: data.")
    end: Line | None = Field(None, description="Exclusive end (ISO time); default: data.")


def _iso(ns: int | None) -> str | None:
    return None if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _bounded_backfill(
    alerts: Any,
    store: Any,
    settings: Any,
    dataset_id: str,
    start: str | None,
    end: str | None,
    names: list[str] | None = None,
    rules: list[AlertRule] | None = None,
) -> list[AlertPreview]:
    """``AlertService.backfill`` bounded as a read of its inputs (413) before reading: per
    rule run, its episodes and state changes over ``[lo, hi)``."""
    found, lo, hi, (inputs, read_lo) = alerts.backfill_reads(
        dataset_id, start, end, names=names, rules=rules
    )
    if hi > lo and inputs:
        snap = store.data(dataset_id).snapshot()
        span = (_iso(max(read_lo, 0)), _iso(hi))
        check_limits(snap, inputs, *span, None, "mean", settings, "arrow", store, dataset_id)
    res = alerts.backfill(dataset_id, start, end, names=names, rules=rules)
    return [
        AlertPreview.model_validate(
            AttrView(
                rule=rule.name,
                start=lo,
                end=hi,
                episodes=[e for e in res.episodes if e.rule == rule.name],
                transitions=[  # transitions carry their rule's severity
                    AttrView(t, severity=rule.severity)
                    for t in res.transitions
                    if t.rule == rule.name
                ],
            )
        )
        for rule in found
    ]


@router.post("/datasets/{dataset_id}/alerts/preview")
def preview_rule(
    body: RulePreview,
    ctx: View,
    alerts: AlertsDep,
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
) -> AlertPreview:
    """Run an unsaved rule over a window as ``alerts backfill`` does (viewer): its episodes
    and state changes; checked as on save (422) and bounded as a read of its inputs (413);
    nothing stored, nothing sent."""
    [preview] = _bounded_backfill(
        alerts, store, settings, ctx.id, body.start, body.end, rules=[body.rule]
    )
    return preview


MAX_BACKFILL_RULES = 100


class RuleBackfill(BaseModel):
    """Saved rules (by name; default: all of them) and the window to run them over."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Line] | None = Field(
        None,
        min_length=1,
        max_length=MAX_BACKFILL_RULES,
        description="Names of saved rules; default (null): every saved rule.",
    )
    start: Line | None = Field(None, description="Inclusive start (ISO time); default: data.")
    end: Line | None = Field(None, description="Exclusive end (ISO time); default: data.")


@router.post("/datasets/{dataset_id}/alerts/backfill")
def backfill_rules(
    body: RuleBackfill,
    ctx: View,
    alerts: AlertsDep,
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
) -> list[AlertPreview]:
    """Run the dataset's saved rules (all, or those named) over a window as ``alerts
    backfill`` does (viewer): per rule, in the order they are listed, its episodes and
    state changes; bounded as a read of their inputs (413); nothing stored, nothing sent."""
    names = None if body.rules is None else list(dict.fromkeys(body.rules))
    if names is not None:
        saved = [r.name for r in alerts.rules(ctx.id)]
        unknown = [n for n in names if n not in saved]
        if unknown:  # a value given, not the thing asked for: 422, not 404
            raise ValidationError(
                f"rules: no alert rule {', '.join(map(repr, unknown))} in {ctx.id} "
                f"(its rules: {', '.join(saved) or 'none'})"
            )
    return _bounded_backfill(alerts, store, settings, ctx.id, body.start, body.end, names=names)


class SilenceRequest(Silence):
    """A silence to create: the window (one-off or weekly), for one rule or all (None)."""

    rule: Line | None = None


def _silences(alerts: Any, dataset_id: str) -> list[SilenceRecord]:
    return [
        SilenceRecord.model_validate({"id": sid, "rule": rule, **spec})
        for sid, rule, spec in alerts.table.silences(dataset_id)
    ]


@router.get("/datasets/{dataset_id}/alerts/silences")
def list_silences(ctx: View, alerts: AlertsDep) -> list[SilenceRecord]:
    """The dataset's silences, oldest first."""
    return _silences(alerts, ctx.id)


@router.post("/datasets/{dataset_id}/alerts/silences", status_code=201)
def create_silence(body: SilenceRequest, ctx: Edit, alerts: AlertsDep) -> SilenceRecord:
    """Mute notifications of the dataset or one rule in a window (editor; audited)."""
    window = Silence.model_validate(body.model_dump(exclude={"rule"}))
    sid = alerts.silence(ctx.id, window, body.rule, actor=ctx.identity.user)
    return SilenceRecord.model_validate(AttrView(window, id=sid, rule=body.rule))


@router.delete("/datasets/{dataset_id}/alerts/silences/{silence_id}", status_code=204)
def end_silence(silence_id: int, ctx: Edit, alerts: AlertsDep) -> None:
    """End (remove) a silence (editor; audited)."""
    alerts.table.delete_silence(ctx.id, silence_id, alerts.store.actor(ctx.identity.user))


@router.get("/datasets/{dataset_id}/alerts/{name}")
def show_rule(name: str, ctx: View, alerts: AlertsDep) -> AlertRule:
    """One alert rule."""
    return alerts.rule(ctx.id, name)


@router.post("/datasets/{dataset_id}/alerts", status_code=201)
def save_rule(rule: AlertRule, ctx: Edit, alerts: AlertsDep) -> AlertRule:
    """Check a rule against the dataset and save it (editor)."""
    return alerts.add_rule(ctx.id, rule, actor=ctx.identity.user)


@router.delete("/datasets/{dataset_id}/alerts/{name}", status_code=204)
def delete_rule(name: str, ctx: Edit, alerts: AlertsDep) -> None:
    """Delete a rule and its live state (its events stay)."""
    alerts.delete_rule(ctx.id, name, confirm=name, actor=ctx.identity.user)
