"""``stream0d alerts``: alert rules, their evaluation, events, silences, sinks and routes."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from stream0d_nb.cli.common import fail, out, pairs, store
from stream0d_nb.store import Store

app = typer.Typer(help="Alert rules, their evaluation, events and silences.", no_args_is_help=True)


def _utc(ns: int) -> str:
    """A UTC time in ns as text to the second."""
    return str(np.datetime64(ns, "ns").astype("datetime64[s]"))


def _alerts(st: Store) -> Any:
    from stream0d_nb.alerts.service import AlertService

    return AlertService(st)


@app.command("add")
def alerts_add(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument(help="Rule name (slug).")],
    kind: Annotated[
        str,
        typer.Option(
            help="threshold, rate_of_change, no_data, flatline, spike, missing_share, formula."
        ),
    ],
    channel: Annotated[
        list[str] | None, typer.Option(help="Watched channel (repeatable; '*' = all).")
    ] = None,
    formula: Annotated[
        str | None, typer.Option(help="Watched value, or the condition of kind formula.")
    ] = None,
    op: Annotated[str | None, typer.Option(help="Threshold: > < >= <= outside inside.")] = None,
    value: Annotated[float | None, typer.Option(help="Threshold value.")] = None,
    low: Annotated[float | None, typer.Option(help="Range low end (outside/inside).")] = None,
    high: Annotated[float | None, typer.Option(help="Range high end (outside/inside).")] = None,
    units: Annotated[str | None, typer.Option(help="Units of value/low/high.")] = None,
    limit: Annotated[float | None, typer.Option(help="Rate of change limit.")] = None,
    per: Annotated[str | None, typer.Option(help="Rate per s or min.")] = None,
    direction: Annotated[str | None, typer.Option(help="both, up, down.")] = None,
    window: Annotated[
        str | None, typer.Option(help="Window of no_data, flatline, spike, missing_share.")
    ] = None,
    tolerance: Annotated[float | None, typer.Option(help="Flatline tolerance.")] = None,
    method: Annotated[str | None, typer.Option(help="Spike: zscore or mad.")] = None,
    k: Annotated[float | None, typer.Option(help="Spike score limit.")] = None,
    min_good: Annotated[
        float | None, typer.Option(help="Missing share: percent of good samples.")
    ] = None,
    for_duration: Annotated[
        str, typer.Option("--for", help="How long the condition must hold.")
    ] = "0s",
    clear_below: Annotated[float | None, typer.Option(help="Hysteresis: clear below.")] = None,
    clear_above: Annotated[float | None, typer.Option(help="Hysteresis: clear above.")] = None,
    clear_formula: Annotated[
        str | None, typer.Option(help="Clear when this formula is true.")
    ] = None,
    severity: Annotated[
        str, typer.Option(help="critical, major, minor, warning, info.")
    ] = "warning",
    label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    description: Annotated[str, typer.Option()] = "",
    runbook: Annotated[str, typer.Option()] = "",
    evaluation_interval: Annotated[
        str, typer.Option(help="How often live evaluation runs.")
    ] = "1min",
    replace: Annotated[bool, typer.Option(help="Replace a rule of that name.")] = False,
) -> None:
    """Save an alert rule after checking it against the dataset (channels, units)."""
    from stream0d_nb.alerts.rules import AlertRule

    fields = {
        "name": name,
        "kind": kind,
        "channels": channel or [],
        "formula": formula,
        "op": op,
        "value": value,
        "low": low,
        "high": high,
        "units": units,
        "limit": limit,
        "per": per,
        "direction": direction,
        "window": window,
        "tolerance": tolerance,
        "method": method,
        "k": k,
        "min_good": min_good,
        "for_duration": for_duration,
        "clear_below": clear_below,
        "clear_above": clear_above,
        "clear_formula": clear_formula,
        "severity": severity,
        "labels": pairs(label, "--label"),
        "description": description,
        "runbook": runbook,
        "evaluation_interval": evaluation_interval,
    }
    rule = AlertRule.model_validate({k_: v for k_, v in fields.items() if v is not None})
    with store() as st:
        svc = _alerts(st)
        if not replace and any(r.name == name for r in svc.rules(dataset_id)):
            fail(f"alert rule {name!r} exists; pass --replace to change it")
        svc.add_rule(dataset_id, rule)
    out.print(
        f"saved alert rule {name} ({kind}, {severity}): {rule.condition_formula(rule.series_names(None)[0])}"
    )


@app.command("list")
def alerts_list(dataset_id: Annotated[str, typer.Argument(metavar="DATASET")]) -> None:
    """List a dataset's alert rules."""
    with store() as st:
        rules = _alerts(st).rules(dataset_id)
    if not rules:
        out.print(f"no alert rules in {dataset_id}: add one with `stream0d alerts add`")
        return
    t = Table("name", "kind", "severity", "for", "series", "condition", "enabled")
    for r in rules:
        series = r.series_names(None)
        t.add_row(
            r.name,
            r.kind,
            r.severity,
            r.for_duration,
            ", ".join(s or "(formula)" for s in series),
            r.condition_formula(series[0]),
            "yes" if r.enabled else "no",
        )
    out.print(t)


@app.command("show")
def alerts_show(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Show a rule, its live state and its latest events."""
    with store() as st:
        svc = _alerts(st)
        rule = svc.rule(dataset_id, name)
        states = svc.table.states(dataset_id, name)
        events = svc.table.events(dataset_id, rule=name, limit=10)
    out.print_json(rule.model_dump_json(exclude_defaults=True))
    for series, (state, until) in states.items():
        when = "" if until is None else f" (evaluated until {np.datetime64(until, 'ns')} UTC)"
        out.print(f"  series {series or '(formula)'}: {state.get('state', state)}{when}")
    for e in events:
        out.print(
            f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.series or '(formula)'}  {e.from_state} -> {e.to_state}  value {e.value}"
        )


@app.command("delete")
def alerts_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    confirm: Annotated[str | None, typer.Option(help="Repeat the rule name to confirm.")] = None,
) -> None:
    """Delete a rule and its live state (its events stay in the history)."""
    with store() as st:
        _alerts(st).delete_rule(dataset_id, name, confirm)
    out.print(f"deleted alert rule {name} of {dataset_id}")


@app.command("backfill")
def alerts_backfill(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    start: Annotated[str | None, typer.Option(help="From (default: start of data).")] = None,
    end: Annotated[str | None, typer.Option(help="To (default: end of data).")] = None,
    rule: Annotated[list[str] | None, typer.Option(help="Only these rules (repeatable).")] = None,
) -> None:
    """Run rules over history and list the episodes they give (nothing stored or sent)."""
    with store() as st:
        res = _alerts(st).backfill(dataset_id, start, end, rule)
    if not res.episodes:
        out.print("no episodes")
        return
    t = Table("rule", "series", "start (UTC)", "end (UTC)", "peak", "severity")
    for e in res.episodes:
        t.add_row(
            e.rule,
            e.series or "(formula)",
            _utc(e.start),
            "open" if e.end is None else _utc(e.end),
            f"{e.peak_value:.6g}",
            e.severity,
        )
    out.print(t)
    out.print(f"{len(res.episodes)} episodes")


@app.command("run")
def alerts_run(
    dataset_id: Annotated[str | None, typer.Argument(metavar="[DATASET]")] = None,
    every: Annotated[
        str | None, typer.Option(help="Keep running, once per interval (e.g. 1min).")
    ] = None,
) -> None:
    """Evaluate rules on new data (and no_data rules up to now), store events, notify."""
    from stream0d_nb.specs import parse_duration_ns

    with store() as st:
        svc = _alerts(st)
        while True:
            ids = [dataset_id] if dataset_id else [r.spec.id for r in st.list_datasets()]
            for ds_id in ids:
                for e in svc.run(ds_id):
                    out.print(
                        f"{ds_id}: {e.rule} {e.series or '(formula)'} {e.from_state} -> {e.to_state} at {e.at:%Y-%m-%d %H:%M:%S}"
                    )
            if every is None:
                break
            time.sleep(parse_duration_ns(every, what="--every") / 1e9)


@app.command("events")
def alerts_events(
    dataset_id: Annotated[str | None, typer.Argument(metavar="[DATASET]")] = None,
    rule: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option(help="pending, firing, resolved, ok ...")] = None,
    severity: Annotated[
        str | None, typer.Option(help="Only this severity: critical, major, minor, warning, info.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="A time, or a duration ago such as 2h.")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alert events (state changes), newest first."""
    from datetime import UTC, datetime
    from typing import get_args

    from stream0d_nb.alerts.rules import Severity
    from stream0d_nb.alerts.service import parse_when

    if severity is not None and severity not in get_args(Severity):
        fail(f"unknown --severity {severity!r}: use {', '.join(get_args(Severity))}")
    when = parse_when(since)
    with store() as st:
        events = _alerts(st).table.events(
            dataset_id,
            rule,
            state,
            None if when is None else datetime.fromtimestamp(when / 1e9, tz=UTC),
            None,
            limit,
            severity=severity,
        )
    if as_json:
        out.print_json(json.dumps([e.model_dump(mode="json") for e in events]))
        return
    t = Table("at (UTC)", "dataset", "rule", "series", "from", "to", "severity", "value")
    for e in events:
        t.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.dataset,
            e.rule,
            e.series or "(formula)",
            e.from_state,
            e.to_state,
            e.severity,
            "" if e.value is None else f"{e.value:.6g}",
        )
    out.print(t)


@app.command("silence")
def alerts_silence(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    rule: Annotated[str | None, typer.Option(help="Only this rule (default: all rules).")] = None,
    start: Annotated[str | None, typer.Option(help="One-off window start.")] = None,
    end: Annotated[str | None, typer.Option(help="One-off window end.")] = None,
    days: Annotated[str | None, typer.Option(help="Weekly: days 0-6 (Monday=0), e.g. 5,6.")] = None,
    from_time: Annotated[
        str | None, typer.Option("--from", help="Weekly: from HH:MM local.")
    ] = None,
    to_time: Annotated[str | None, typer.Option("--to", help="Weekly: to HH:MM local.")] = None,
    tz: Annotated[str, typer.Option(help="Zone of the weekly times.")] = "UTC",
    comment: Annotated[str, typer.Option()] = "",
    remove: Annotated[int | None, typer.Option(help="Remove the silence with this id.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List silences.")] = False,
) -> None:
    """Mute notifications of a dataset or rule: one-off or weekly windows."""
    from stream0d_nb.alerts.service import Silence

    with store() as st:
        svc = _alerts(st)
        if list_:
            for sid, r, spec in svc.table.silences(dataset_id):
                out.print(f"{sid}  {r or '(all rules)'}  {json.dumps(spec)}")
            return
        if remove is not None:
            svc.table.delete_silence(dataset_id, remove, st.actor(None))
            out.print(f"removed silence {remove}")
            return
        sil = Silence.model_validate(
            {
                k_: v
                for k_, v in {
                    "start": start,
                    "end": end,
                    "from_time": from_time,
                    "to_time": to_time,
                    "tz": tz,
                    "comment": comment,
                    "days": [int(d) for d in days.split(",")] if days else None,
                }.items()
                if v is not None
            }
        )
        sid = svc.silence(dataset_id, sil, rule)
    out.print(f"silence {sid} saved for {rule or 'all rules'} of {dataset_id}")


@app.command("sink")
def alerts_sink(
    name: Annotated[str | None, typer.Argument(help="Sink name (omit to list sinks).")] = None,
    kind: Annotated[str | None, typer.Option(help="email, webhook or log.")] = None,
    config: Annotated[
        str | None,
        typer.Option(help='JSON settings, e.g. \'{"url": "https://...", "secret": "..."}\'.'),
    ] = None,
) -> None:
    """Add or replace a notification sink (secrets are never printed), or list sinks."""
    from stream0d_nb.alerts.sinks import sink_from_config

    with store() as st:
        svc = _alerts(st)
        if name is None:
            for sink_name, (sink_kind, _) in svc.table.sinks().items():
                out.print(f"{sink_name}  {sink_kind}")
            out.print("in-app  log (built in: <home>/alerts/notifications.jsonl)")
            return
        if kind is None or config is None:
            fail("give --kind and --config to add a sink")
        try:
            settings_json = json.loads(config)
        except json.JSONDecodeError as exc:
            fail(f"--config is not JSON: {exc}")
        sink = sink_from_config({"name": name, "kind": kind, **settings_json})  # validates
        svc.table.save_sink(
            name, kind, sink.config.dump_with_secrets() | {"kind": kind}, st.actor(None)
        )
    out.print(f"saved {kind} sink {name}: {sink.config!r}")


@app.command("routes")
def alerts_routes(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    set_json: Annotated[
        str | None,
        typer.Option(
            "--set",
            help='Routing table JSON: {"routes": [{"min_severity": "major", "sinks": ["ops"]}], "default_sinks": ["in-app"]}',
        ),
    ] = None,
) -> None:
    """Show or set which sinks a dataset's alerts go to, by severity and labels."""
    from stream0d_nb.alerts.routing import RoutingTable

    with store() as st:
        svc = _alerts(st)
        if set_json is not None:
            names = [*svc.table.sinks(), "in-app"]
            try:
                data = json.loads(set_json)
            except json.JSONDecodeError as exc:
                fail(f"--set is not JSON: {exc}")
            table = RoutingTable.parse(data, sink_names=names)
            svc.table.set_routes(
                dataset_id, table.model_dump(mode="json", by_alias=True), st.actor(None)
            )
        current = svc.table.routes(dataset_id)
    out.print_json(json.dumps(current or {"default_sinks": ["in-app"]}))


@app.command("deliveries")
def alerts_deliveries(
    dataset_id: Annotated[str | None, typer.Argument(metavar="[DATASET]")] = None,
    failed: Annotated[bool, typer.Option(help="Only failed deliveries.")] = False,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Notification deliveries and failures, newest first."""
    with store() as st:
        rows = _alerts(st).table.deliveries(dataset_id, failed, limit)
    t = Table("at (UTC)", "sink", "ok", "attempts", "notification", "error")
    for d in rows:
        t.add_row(
            f"{d.at:%Y-%m-%d %H:%M:%S}",
            d.sink,
            "yes" if d.ok else "NO",
            str(d.attempts),
            d.key,
            d.error or "",
        )
    out.print(t)
