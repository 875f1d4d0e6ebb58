"""``stream0d recal``: models, versions, notebook runs, schedules and the scheduler service.

Shares the ``--home`` / ``--user`` options, the store (with the write hooks, the models'
among them) and the error handling (one line, exit 1) of the other commands.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Annotated, Any

import typer
from rich.table import Table

from stream0d_nb.cli.common import err, out, store
from stream0d_nb.errors import ValidationError

app = typer.Typer(
    help="Recalibration: models, versions, notebook runs and their schedules "
    "(docs/recalibration.md).",
    no_args_is_help=True,
)
schedule_app = typer.Typer(help="Cron schedules of recalibration notebooks.", no_args_is_help=True)
model_app = typer.Typer(help="Models of datasets (what is recalibrated).", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
app.add_typer(model_app, name="model")


def _print(text: str) -> None:
    out.print(text)


def _value(text: str) -> Any:
    """A parameter value: JSON when it parses (numbers, true, lists), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(items: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValidationError(f"parameter {item!r} must look like NAME=VALUE")
        k, v = item.split("=", 1)
        params[k.strip()] = _value(v.strip())
    return params


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.4g}"
    return "" if x is None else str(x)


def _when(ts: Any) -> str:
    return "" if ts is None else f"{ts:%Y-%m-%d %H:%M:%S}"


def _json(obj: Any) -> None:
    _print(json.dumps(obj, indent=1, default=str))


# ---- models -----------------------------------------------------------------------------
@model_app.command("add")
def model_add(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    name: Annotated[
        str, typer.Argument(help="Model name (slug): its channels are NAME.predicted/.residual.")
    ],
    kind: Annotated[
        str, typer.Option(help="Model kind: linear, first_order_thermal, or a registered one.")
    ],
    output: Annotated[str, typer.Option(help="The modelled output channel.")],
    input: Annotated[
        list[str], typer.Option("--input", help="Input channel or formula (repeatable).")
    ],
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="Model option NAME=JSON, e.g. lags=[0,5] or ambient=21."
        ),
    ] = None,
    metric: Annotated[
        str, typer.Option(help="Activation metric: cv_rmse, rmse, mae, abs_nmbe, r2.")
    ] = "cv_rmse",
    margin: Annotated[
        float, typer.Option(help="Relative improvement a candidate needs (0.05 = 5 %).")
    ] = 0.0,
    require_acceptance: Annotated[
        bool, typer.Option(help="Also require the ASHRAE thresholds to activate.")
    ] = False,
) -> None:
    """Define (or redefine) a model of a dataset and its activation rule."""
    from stream0d_nb.recalibration.models import build_model
    from stream0d_nb.recalibration.service import Activation, Recalibration

    model = build_model({"model": kind, "inputs": input, "output": output, **_params(option)})
    with store() as st:
        rec = Recalibration(st).define_model(
            dataset,
            name,
            model,
            Activation(metric, margin, require_acceptance),  # type: ignore[arg-type]
        )
    _print(f"model {rec.name} of {rec.dataset}: {rec.kind} {output} <- {', '.join(input)}")


@model_app.command("list")
def model_list(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset's models.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List models with their active version."""
    from stream0d_nb.db.recal_tables import RecalRegistry

    with store() as st:
        table = RecalRegistry(st.registry)
        rows = [(m, table.active_version(m.dataset, m.name)) for m in table.models(dataset)]
    if as_json:
        _json([m.model_dump() | {"active": a.model_dump() if a else None} for m, a in rows])
        return
    t = Table("dataset", "model", "kind", "output", "active", "hold-out CV(RMSE) %")
    for m, a in rows:
        hold = (a.metrics.get("holdout") or {}) if a else {}
        t.add_row(
            m.dataset,
            m.name,
            m.kind,
            str(m.spec.get("output")),
            f"v{a.version}" if a else "-",
            _fmt(hold.get("cv_rmse")),
        )
    out.print(t)


@app.command("versions")
def versions(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    model: Annotated[str, typer.Argument(help="Model name.")],
    limit: Annotated[int, typer.Option()] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A model's versions, newest first: status, metrics, windows, snapshot, trigger."""
    from stream0d_nb.db.recal_tables import RecalRegistry

    with store() as st:
        vers = RecalRegistry(st.registry).versions(dataset, model, limit)
    if as_json:
        _json([v.model_dump() for v in vers])
        return
    t = Table(
        "version",
        "status",
        "created (UTC)",
        "hold-out CV %",
        "NMBE %",
        "train window",
        "trigger",
        "reason",
    )
    for v in vers:
        hold = v.metrics.get("holdout") or {}
        t.add_row(
            f"v{v.version}",
            v.status,
            _when(v.created_at),
            _fmt(hold.get("cv_rmse")),
            _fmt(hold.get("nmbe")),
            f"{v.train_window[0]:%m-%d %H:%M}..{v.train_window[1]:%m-%d %H:%M}",
            v.trigger,
            v.reason,
        )
    out.print(t)


# ---- runs ---------------------------------------------------------------------------------
@app.command("run")
def run(
    notebook: Annotated[
        str | None,
        typer.Argument(help="Notebook path or name in recalibration_runs/ (default recalibrate)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Notebook parameter NAME=VALUE (JSON values parsed)."),
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="Run this schedule now (its notebook and parameters).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Time limit of the whole run, seconds.")] = 600.0,
) -> None:
    """Run a recalibration notebook now; prints the run and where its report is."""
    from stream0d_nb.recalibration.runner import run_notebook
    from stream0d_nb.recalibration.scheduler import Scheduler, resolve_notebook

    with store() as st:
        if schedule is not None:
            if notebook is not None or param:
                raise ValidationError("--schedule runs the schedule's own notebook and parameters")
            sched = Scheduler(st, max_concurrent=1)
            try:
                rec = sched.trigger(schedule)
            finally:
                sched.close()
        else:
            path = resolve_notebook(notebook or "recalibrate")
            rec = run_notebook(st, path, _params(param), timeout_s=timeout).run
    _print(
        f"run {rec.id}: {rec.status} in {_fmt(rec.duration_s)} s"
        + (f"; model version id {rec.model_version_id}" if rec.model_version_id else "")
    )
    if rec.status != "succeeded":
        where = f" in cell {rec.error_cell}" if rec.error_cell is not None else ""
        err.print(f"error: run {rec.id} {rec.status}{where}: {rec.error_name}: {rec.error_message}")
    for key in ("html", "notebook", "metrics"):
        if key in rec.outputs:
            _print(f"  {key}: {rec.outputs[key]}")
    if rec.status != "succeeded":
        raise typer.Exit(1)


@app.command("runs")
def runs(
    schedule: Annotated[str | None, typer.Option(help="Only this schedule's runs.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only runs on this dataset.")] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed, timed_out.")
    ] = None,
    limit: Annotated[int, typer.Option()] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent runs, newest first."""
    from stream0d_nb.db.recal_tables import RecalRegistry

    with store() as st:
        rows = RecalRegistry(st.registry).runs(schedule, dataset, status, limit)
    if as_json:
        _json([r.model_dump() for r in rows])
        return
    t = Table(
        "run", "status", "started (UTC)", "s", "trigger", "dataset", "version id", "report / error"
    )
    for r in rows:
        t.add_row(
            str(r.id),
            r.status,
            _when(r.started_at),
            _fmt(r.duration_s),
            r.trigger,
            r.dataset or "",
            _fmt(r.model_version_id),
            r.outputs.get("html", "")
            if r.status == "succeeded"
            else f"{r.error_name}: {r.error_message}",
        )
    out.print(t)


@app.command("show")
def show(
    run_id: Annotated[int, typer.Argument(help="Run id (see `stream0d recal runs`).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One run in full: parameters, snapshot, model version, error, outputs, metrics."""
    from stream0d_nb.db.recal_tables import RecalRegistry

    with store() as st:
        rec = RecalRegistry(st.registry).run(run_id)
    if as_json:
        _json(rec.model_dump())
        return
    lines = [
        f"run {rec.id}: {rec.status}",
        f"  notebook:   {rec.notebook}",
        f"  trigger:    {rec.trigger}"
        + (f" (slot {_when(rec.scheduled_for)})" if rec.scheduled_for else ""),
        f"  started:    {_when(rec.started_at)} UTC, {_fmt(rec.duration_s)} s",
        f"  parameters: {json.dumps(rec.parameters)}",
        f"  snapshot:   {rec.snapshot or ''}",
        f"  version id: {_fmt(rec.model_version_id)}",
    ]
    if rec.status != "succeeded":
        lines.append(
            f"  error:      cell {_fmt(rec.error_cell)}: {rec.error_name}: {rec.error_message}"
        )
    lines += [f"  {k + ':':<11} {v}" for k, v in rec.outputs.items()]
    m = rec.metrics
    if m.get("status"):
        lines.append(
            f"  decision:   version {m.get('version')} {m.get('status')}: {m.get('reason')}"
        )
    for line in lines:
        _print(line)


# ---- schedules ------------------------------------------------------------------------------
@schedule_app.command("add")
def schedule_add(
    name: Annotated[str, typer.Argument(help="Schedule name (slug).")],
    cron: Annotated[str, typer.Option(help="Cron expression in UTC, e.g. '0 3 * * *'.")],
    notebook: Annotated[
        str, typer.Option(help="Notebook path or name in recalibration_runs/.")
    ] = "recalibrate",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Notebook parameter NAME=VALUE (JSON values parsed)."),
    ] = None,
    catch_up: Annotated[str, typer.Option(help="Missed slots: skip, once or all.")] = "once",
    max_catch_up: Annotated[int, typer.Option(help="At most this many missed slots (all).")] = 10,
    timeout: Annotated[float, typer.Option(help="Time limit of each run, seconds.")] = 600.0,
) -> None:
    """Schedule a notebook (parameters are checked now, not at 3 am)."""
    from stream0d_nb.recalibration.scheduler import add_schedule, next_slot

    with store() as st:
        rec = add_schedule(
            st,
            name,
            cron,
            notebook,
            _params(param),
            catch_up=catch_up,  # type: ignore[arg-type]
            max_catch_up=max_catch_up,
            timeout_s=timeout,
        )
    nxt = next_slot(rec.cron, rec.last_fired_for or rec.created_at)
    _print(f"schedule {rec.name}: '{rec.cron}' runs {rec.notebook}; next at {_when(nxt)} UTC")


@schedule_app.command("list")
def schedule_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Schedules with their last and next slot."""
    from stream0d_nb.db.recal_tables import RecalRegistry
    from stream0d_nb.recalibration.scheduler import next_slot

    with store() as st:
        rows = RecalRegistry(st.registry).schedules()
    if as_json:
        _json([r.model_dump() for r in rows])
        return
    t = Table(
        "schedule",
        "cron",
        "notebook",
        "dataset",
        "catch-up",
        "enabled",
        "last slot",
        "next slot",
        "running",
    )
    for r in rows:
        t.add_row(
            r.name,
            r.cron,
            r.notebook.rsplit("/", 1)[-1],
            r.dataset or "",
            r.catch_up,
            "yes" if r.enabled else "no",
            _when(r.last_fired_for),
            _when(next_slot(r.cron, r.last_fired_for or r.created_at)),
            f"run {r.claim_run_id}" if r.claimed_by else "",
        )
    out.print(t)


@schedule_app.command("remove")
def schedule_remove(
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    confirm: Annotated[str | None, typer.Option(help="Repeat the name to confirm.")] = None,
) -> None:
    """Delete a schedule (its runs stay)."""
    from stream0d_nb.db.recal_tables import RecalRegistry
    from stream0d_nb.errors import ConfirmationRequiredError, Fix

    with store() as st:
        table = RecalRegistry(st.registry)
        table.schedule(name)
        if confirm != name:
            raise ConfirmationRequiredError(
                f"removing schedule {name!r}: confirm by repeating its name"
            ).with_fixes([Fix("confirm", name)])
        table.remove_schedule(name, st.actor(None))
    _print(f"removed schedule {name}")


# ---- the service ------------------------------------------------------------------------------
@app.command("scheduler")
def scheduler(
    max_concurrent: Annotated[int, typer.Option(help="Runs executing at once.")] = 2,
    poll: Annotated[float, typer.Option(help="Seconds between looks at the schedules.")] = 30.0,
) -> None:
    """Run the scheduler in the foreground until SIGTERM/SIGINT (the hub runs it as a service)."""
    from stream0d_nb.recalibration.scheduler import Scheduler

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per cell otherwise
    with store() as st:
        sched = Scheduler(st, max_concurrent=max_concurrent, poll_s=poll)
        sched.serve(
            ready=lambda: _print(f"scheduler {sched.owner} running (Ctrl-C or SIGTERM stops it)")
        )
    _print("scheduler stopped")


# ---- drift ------------------------------------------------------------------------------------
@app.command("alert")
def alert(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    model: Annotated[str, typer.Argument(help="Model name (its residual channel is watched).")],
    name: Annotated[str, typer.Argument(help="Alert rule name (slug).")],
    window: Annotated[str, typer.Option(help="Rolling window, e.g. 2h.")],
    cv_rmse: Annotated[
        float | None, typer.Option(help="Fire when rolling CV(RMSE) % is above this.")
    ] = None,
    bias: Annotated[
        float | None, typer.Option(help="Fire when |rolling mean residual| is above this.")
    ] = None,
    units: Annotated[
        str | None, typer.Option(help="Units of the level for CV(RMSE), e.g. K for degC data.")
    ] = None,
    for_: Annotated[str, typer.Option("--for", help="How long it must hold.")] = "0s",
    severity: Annotated[str, typer.Option(help="critical, major, minor, warning, info.")] = "major",
) -> None:
    """Add a model_residual alert rule on a model's residuals (drift of the process)."""
    from stream0d_nb.alerts.rules import AlertRule
    from stream0d_nb.alerts.service import AlertService

    rule = AlertRule(
        name=name,
        kind="model_residual",
        model=model,
        window=window,
        cv_rmse=cv_rmse,
        bias=bias,
        units=units,
        for_duration=for_,
        severity=severity,
    )
    with store() as st:
        AlertService(st).add_rule(dataset, rule)
    _print(f"alert rule {name} on {dataset}: {rule.condition_formula(f'{model}.residual')}")


@app.command("drift")
def drift(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    model: Annotated[str, typer.Argument(help="Model name.")],
    window: Annotated[str, typer.Option(help="Rolling CV(RMSE) window.")] = "1h",
    cv_threshold: Annotated[float, typer.Option(help="CV(RMSE) alarm level, %.")] = 30.0,
    delta: Annotated[float, typer.Option(help="Page-Hinkley tolerance (output units).")] = 0.5,
    threshold: Annotated[float, typer.Option(help="Page-Hinkley alarm level.")] = 50.0,
    schedule: Annotated[
        str | None, typer.Option(help="On drift, run this schedule now (recalibration).")
    ] = None,
) -> None:
    """Check the active version's residuals since its hold-out window for drift."""
    from stream0d_nb.recalibration.scheduler import Scheduler
    from stream0d_nb.recalibration.service import Recalibration

    with store() as st:
        rep = Recalibration(st).check_drift(
            dataset,
            model,
            window=window,
            cv_threshold=cv_threshold,
            delta=delta,
            threshold=threshold,
        )
        _print(
            f"{dataset}/{model}: "
            + (f"drift from {rep.first_alarm}" if rep.drifted else "no drift")
            + f" (CV(RMSE) alarm {rep.cv_rmse_alarm or '-'}, Page-Hinkley {rep.sequential_alarm or '-'})"
        )
        if rep.drifted and schedule is not None:
            sched = Scheduler(st, max_concurrent=1)
            try:
                rec = sched.trigger(schedule)
            finally:
                sched.close()
            _print(
                f"run {rec.id} of {schedule}: {rec.status}; report {rec.outputs.get('html', '')}"
            )
