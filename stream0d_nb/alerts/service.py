"""Live alerting: saved rules evaluated on new data and on a timer, with notifications.

``AlertService`` ties the pure engine to the platform: rules are validated against the
dataset (stored and derived channels) and saved; ``run`` continues each rule from its
persisted state over the new data (plus the look-back it needs), stores state changes as
events in the same transaction as the new state, and then delivers notifications for the
events not yet delivered to their routed sinks (an outbox: a crash between storing and
sending loses nothing, and a restart sends nothing twice). ``after_write`` is a store
write hook; ``tick`` runs the rules that must fire without new data (no_data).

Evaluation runs after every append (several a second per dataset), so what it needs of
the registry (rules, silences, derived channels, sinks and routes) is cached per dataset
and checked with one indexed query per run (``db.versions.config_version``: the
dataset's audit entries, which every change of configuration writes, from any process).
A run sends the events it stored; the whole outbox (the newest ``OUTBOX_EVENTS``) is
looked at by a process's first run, after a change of configuration, after a failed
delivery, and at least every ``OUTBOX_SWEEP_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from stream0d_nb import derived
from stream0d_nb.alerts.engine import EvaluationResult, evaluate_rules, lookback_ns
from stream0d_nb.alerts.notify import DeliveryResult, Dispatcher, RetryPolicy
from stream0d_nb.alerts.routing import RoutingTable
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.sinks import LogSink, LogSinkConfig, Notification, sink_from_config
from stream0d_nb.db.alert_tables import AlertRegistry
from stream0d_nb.db.sealed import Sealer
from stream0d_nb.db.versions import config_version
from stream0d_nb.errors import (
    ConfirmationRequiredError,
    Fix,
    RuleNotFoundError,
    ValidationError,
)
from stream0d_nb.records import EventRecord, Silence
from stream0d_nb.specs import FormulaSpec, IngestReport, parse_duration
from stream0d_nb.store import Store
from stream0d_nb.store.grid import to_ns
from stream0d_nb.store.repo import Snapshot

IN_APP = "in-app"
IN_APP_LOGGER = "stream0d_nb.alerts.in_app"
NOTIFY_STATES = ("firing", "resolved")
FIRST_RUN_SPAN = 86_400 * 10**9
OUTBOX_EVENTS = 200  # newest events checked for undelivered notifications on each run
OUTBOX_SWEEP_SECONDS = 60.0  # the outbox is checked at least this often by a dataset's runs


@dataclass(frozen=True)
class _Config:
    """A dataset's rules, derived channels and silences as read at ``version``
    (``config_version``)."""

    version: tuple[int, ...]
    rules: list[AlertRule]
    formulas: list[FormulaSpec]
    silences: list[tuple[str | None, Silence]]


@dataclass
class _Compiled:
    """What evaluating the rules of one configuration on one commit's channels needs."""

    key: tuple[tuple[int, ...], str]
    units: dict[str, str]
    interval: int
    tz: str
    refs: dict[str, list[str]] = field(default_factory=dict)
    lookback: dict[str, int] = field(default_factory=dict)


@dataclass
class _Outbox:
    """When a dataset's outbox was last looked at whole, at which version, and whether a
    delivery failed since (to be retried)."""

    at: float
    version: tuple[int, ...]
    failed: bool


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


class AlertService:
    """Rules, live evaluation, events, silences and notifications of a store's datasets."""

    def __init__(
        self, store: Store, retry: RetryPolicy | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.table = AlertRegistry(store.registry, Sealer.from_settings(store.settings))
        self.retry = retry or RetryPolicy(attempts=3, base_delay=1.0, max_delay=30.0)
        self.clock = clock
        (store.settings.home / "alerts").mkdir(parents=True, exist_ok=True)
        # The in-app list is read by the GUI/CLI; its log lines stay quiet unless configured.
        logging.getLogger(IN_APP_LOGGER).addHandler(logging.NullHandler())
        logging.getLogger(IN_APP_LOGGER).propagate = False
        self.in_app = LogSink.from_config(
            LogSinkConfig(
                logger=IN_APP_LOGGER,
                name=IN_APP,
                path=store.settings.home / "alerts" / "notifications.jsonl",
            )
        )
        self._lock = threading.Lock()
        self._configs: dict[str, _Config] = {}
        self._compiled: dict[str, _Compiled] = {}
        self._outbox: dict[str, _Outbox] = {}
        self._dispatch: dict[str, tuple[tuple[int, ...], list[Any], RoutingTable]] = {}

    # ---- rules -------------------------------------------------------------------
    def _units(self, dataset_id: str) -> tuple[dict[str, str], int, str]:
        ctx = derived.DerivedContext(self.store, dataset_id)
        units = {n: (u or "1") for n, u in ctx.units_map().items()}
        return units, ctx.snap.grid.interval_ns, ctx.tz

    def add_rule(self, dataset_id: str, rule: AlertRule, actor: str | None = None) -> AlertRule:
        """Validate a rule against the dataset (channels exist, units agree) and save it."""
        units, interval, tz = self._units(dataset_id)
        rule.validate_against(units, interval, tz)
        self.table.save_rule(
            dataset_id,
            rule.name,
            rule.model_dump(mode="json", by_alias=False),
            self.store.actor(actor),
        )
        return rule

    def rules(self, dataset_id: str) -> list[AlertRule]:
        """The dataset's saved rules."""
        return [AlertRule.model_validate(spec) for spec in self.table.rules(dataset_id)]

    def rule(self, dataset_id: str, name: str) -> AlertRule:
        """One saved rule (``RuleNotFoundError`` naming the rules there are)."""
        return AlertRule.model_validate(self.table.rule(dataset_id, name))

    def delete_rule(
        self, dataset_id: str, name: str, confirm: str | None, actor: str | None = None
    ) -> None:
        """Delete a rule and its live state (its events stay); ``confirm`` repeats the name."""
        self.rule(dataset_id, name)
        if confirm != name:
            raise ConfirmationRequiredError(
                f"deleting alert rule {name!r}: confirm by repeating its name"
            ).with_fixes([Fix("confirm", name)])
        self.table.delete_rule(dataset_id, name, self.store.actor(actor))

    # ---- cached configuration ------------------------------------------------------------
    def _config(self, dataset_id: str) -> _Config:
        """The dataset's rules and derived channels: cached, read again when its
        configuration version changed (version first: a change committed meanwhile
        gives a newer version next time, so it is never missed)."""
        version = config_version(self.store.registry, dataset_id)
        with self._lock:
            hit = self._configs.get(dataset_id)
        if hit is not None and hit.version == version:
            return hit
        cfg = _Config(
            version,
            [AlertRule.model_validate(spec) for spec in self.table.rules(dataset_id)],
            self.store.registry.list_formulas(dataset_id),
            self.silences(dataset_id),
        )
        with self._lock:
            self._configs[dataset_id] = cfg
        return cfg

    def _compiled_for(self, dataset_id: str, cfg: _Config, snap: Snapshot) -> _Compiled:
        """Units, grid, zone and each rule's channels and look-back, for ``cfg`` on the
        channels of ``snap``'s commit (cached while neither changes)."""
        key = (cfg.version, snap.id)
        with self._lock:
            hit = self._compiled.get(dataset_id)
        if hit is not None and hit.key == key:
            return hit
        ctx = derived.DerivedContext(self.store, dataset_id, as_of=snap, formulas=cfg.formulas)
        units = {n: (u or "1") for n, u in ctx.units_map().items()}
        comp = _Compiled(key, units, snap.grid.interval_ns, ctx.tz)
        for rule in cfg.rules:
            comp.refs[rule.name] = _refs([rule], units, comp.interval, comp.tz)
            comp.lookback[rule.name] = lookback_ns(rule, units, comp.interval, comp.tz)
        with self._lock:
            self._compiled[dataset_id] = comp
        return comp

    def _read(
        self, dataset_id: str, names: list[str], lo: int, hi: int, snap: Snapshot, cfg: _Config
    ) -> Any:
        """The channels a rule reads over ``[lo, hi)`` at ``snap`` (stored ones directly)."""
        start, end = np.datetime64(lo, "ns"), np.datetime64(hi, "ns")
        derived_names = {f.name for f in cfg.formulas}
        if not any(n in derived_names for n in names):
            return self.store.read(dataset_id, names, start, end, as_of=snap)
        return derived.read(self.store, dataset_id, names, start, end, as_of=snap)

    # ---- evaluation ------------------------------------------------------------------
    def _data(
        self,
        dataset_id: str,
        rules: list[AlertRule],
        lo: int,
        hi: int,
        units: dict[str, str],
        interval: int,
        tz: str,
    ) -> Any:
        return derived.read(
            self.store,
            dataset_id,
            _refs(rules, units, interval, tz),
            np.datetime64(lo, "ns"),
            np.datetime64(hi, "ns"),
        )

    def backfill(
        self,
        dataset_id: str,
        start: object | None = None,
        end: object | None = None,
        names: list[str] | None = None,
        rules: list[AlertRule] | None = None,
    ) -> EvaluationResult:
        """Run rules over history (nothing stored, nothing sent): the episodes they would give.

        ``rules`` are unsaved rules to run instead of the saved ones (a preview), checked
        against the dataset as on save.
        """
        units, interval, tz = self._units(dataset_id)
        found, lo, hi, (_, first_ns) = self._plan(
            dataset_id, start, end, names, rules, units, interval, tz
        )
        if not found or hi <= lo:
            return EvaluationResult([], [], {})
        data = self._data(dataset_id, found, first_ns, hi, units, interval, tz)
        return evaluate_rules(found, data, lo, hi, interval, tz)

    def backfill_reads(
        self,
        dataset_id: str,
        start: object | None = None,
        end: object | None = None,
        names: list[str] | None = None,
        rules: list[AlertRule] | None = None,
    ) -> tuple[list[AlertRule], int, int, tuple[list[str], int]]:
        """What ``backfill`` runs and reads, before reading: the rules, ``[lo, hi)`` in UTC
        ns, and the channels it reads from ``lo`` minus the look-back on (to bound it)."""
        return self._plan(dataset_id, start, end, names, rules, *self._units(dataset_id))

    def _plan(
        self,
        dataset_id: str,
        start: object | None,
        end: object | None,
        names: list[str] | None,
        rules: list[AlertRule] | None,
        units: dict[str, str],
        interval: int,
        tz: str,
    ) -> tuple[list[AlertRule], int, int, tuple[list[str], int]]:
        if rules is None:
            rules = [r for r in self.rules(dataset_id) if names is None or r.name in names]
        else:
            for r in rules:
                r.validate_against(units, interval, tz)
        snap = self.store.data(dataset_id).snapshot()
        lo = to_ns(start) if start is not None else (snap.start or 0) * interval
        hi = to_ns(end) if end is not None else (snap.stop or 0) * interval
        if not rules:
            return rules, lo, hi, ([], lo)
        back = max(lookback_ns(r, units, interval, tz) for r in rules)
        return rules, lo, hi, (_refs(rules, units, interval, tz), lo - back)

    def run(
        self,
        dataset_id: str,
        until_ns: int | None = None,
        names: list[str] | None = None,
        notify: bool = True,
    ) -> list[EventRecord]:
        """Continue every rule from its stored state up to ``until_ns``; store and notify.

        ``until_ns`` defaults to the end of stored data for rules on data and to now for
        no_data rules (which must fire exactly when data stops coming). A rule without state
        starts one day before that end (or at the start of data).
        """
        return self._run(dataset_id, self._config(dataset_id), until_ns, names, notify)

    def _run(
        self,
        dataset_id: str,
        cfg: _Config,
        until_ns: int | None,
        names: list[str] | None,
        notify: bool,
    ) -> list[EventRecord]:
        snap = self.store.data(dataset_id).snapshot()  # the buffer, then the head: once
        comp = self._compiled_for(dataset_id, cfg, snap)
        interval, tz = comp.interval, comp.tz
        now = int(self.clock() * 1e9) // interval * interval
        data_end = (snap.stop or 0) * interval
        new_ids: list[int] = []
        for rule in cfg.rules:
            if not rule.enabled or (names is not None and rule.name not in names):
                continue
            end = (
                until_ns if until_ns is not None else (now if rule.kind == "no_data" else data_end)
            )
            states = self.table.states(dataset_id, rule.name)
            starts = [u for _, u in states.values() if u is not None]
            start = (
                min(starts) if starts else max((snap.start or 0) * interval, end - FIRST_RUN_SPAN)
            )
            if end <= start:
                continue
            back = comp.lookback[rule.name]
            data = self._read(dataset_id, comp.refs[rule.name], start - back, end, snap, cfg)
            prev = {rule.name: {s: st for s, (st, _) in states.items()}} if states else None
            res = evaluate_rules([rule], data, start, end, interval, tz, prev)
            episode_start = {(e.series, e.end): e.start for e in res.episodes if e.end is not None}
            events = []
            for t in res.transitions:
                ep = t.at if t.to_state == "firing" else episode_start.get((t.series, t.at), t.at)
                events.append(
                    {
                        "series": t.series,
                        "at": _dt(t.at),
                        "from_state": t.from_state,
                        "to_state": t.to_state,
                        "severity": rule.severity,
                        "value": None if np.isnan(t.value) else float(t.value),
                        "detail": {
                            "episode_start": _dt(ep).isoformat(),
                            "labels": rule.labels,
                            "description": rule.description,
                            "runbook": rule.runbook,
                        },
                    }
                )
            new_state = {s: (st, end) for s, st in res.state.get(rule.name, {}).items()}
            new_ids += self.table.commit_evaluation(dataset_id, rule.name, new_state, events)
        if notify:
            if self._outbox_due(dataset_id, cfg.version):
                self._deliver(dataset_id, cfg)
            elif new_ids:  # the outbox was clean: only what this run stored is to send
                self._deliver(dataset_id, cfg, new_ids)
        return (
            self.table.events(dataset_id, ids=new_ids, limit=max(len(new_ids), 1))
            if new_ids
            else []
        )

    def _outbox_due(self, dataset_id: str, version: tuple[int, ...]) -> bool:
        """Whether a run must look at the whole outbox: this process has not yet (a crash
        may have left events unsent), the configuration changed (a route, a sink, a
        silence removed), a delivery failed, or it is time to (events another process
        stored and could not send)."""
        with self._lock:
            last = self._outbox.get(dataset_id)
        return (
            last is None
            or last.failed
            or last.version != version
            or time.monotonic() - last.at >= OUTBOX_SWEEP_SECONDS
        )

    def _deliver(
        self, dataset_id: str, cfg: _Config, ids: list[int] | None = None
    ) -> list[DeliveryResult]:
        """Send the outbox (``ids``: only those events) with the cached configuration,
        remembering when it was looked at whole and whether a delivery failed."""
        at = time.monotonic()
        events = (
            self.table.events(dataset_id, limit=OUTBOX_EVENTS)
            if ids is None
            else self.table.events(dataset_id, ids=ids, limit=len(ids))
        )
        rules = {r.name: r for r in cfg.rules}
        out = self._send(dataset_id, events, rules, cfg.silences, cfg.version)
        failed = any(not r.ok for r in out)
        with self._lock:
            last = self._outbox.get(dataset_id)
            if ids is None or last is None:
                self._outbox[dataset_id] = _Outbox(at, cfg.version, failed)
            else:
                last.failed = last.failed or failed
        return out

    def raise_event(
        self,
        dataset_id: str,
        name: str,
        message: str,
        severity: str = "major",
        series: str = "",
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
        notify: bool = True,
    ) -> list[EventRecord]:
        """Record a firing event that no rule produced (a failed recalibration run...).

        Stored like rule events (history, ``alerts events``) with ``detail.external`` set,
        and delivered through the dataset's routes unless ``notify`` is False.
        """
        when = at or datetime.now(UTC)
        ev = {
            "series": series,
            "at": when,
            "from_state": "ok",
            "to_state": "firing",
            "severity": severity,
            "value": None,
            "detail": {
                "external": True,
                "episode_start": when.isoformat(),
                "labels": {},
                "description": message,
                "runbook": "",
                **(detail or {}),
            },
        }
        ids = self.table.commit_evaluation(dataset_id, name, {}, [ev])
        if notify:
            self.deliver(dataset_id)
        return self.table.events(dataset_id, ids=ids, limit=max(len(ids), 1)) if ids else []

    def after_write(self, store: Store, dataset_id: str, report: IngestReport) -> None:
        """Store write hook: evaluate the dataset's rules on the data just written (one
        indexed query when it has none)."""
        cfg = self._config(dataset_id)
        if cfg.rules:
            self._run(dataset_id, cfg, None, None, True)

    def tick(self) -> int:
        """Timer step: run no_data rules that are due (``evaluation_interval``) up to now.

        Returns the number of events stored. Rules on data run after each write instead.
        """
        n = 0
        now = int(self.clock() * 1e9)
        for rec in self.store.list_datasets():
            names = [
                r.name
                for r in self._config(rec.spec.id).rules
                if r.kind == "no_data" and r.enabled and self._due(rec.spec.id, r, now)
            ]
            if names:
                n += len(self.run(rec.spec.id, names=names))
        return n

    def _due(self, dataset_id: str, rule: AlertRule, now_ns: int) -> bool:
        """Whether a rule's last evaluation is at least its evaluation interval old."""
        until = [u for _, u in self.table.states(dataset_id, rule.name).values() if u is not None]
        interval = parse_duration(rule.evaluation_interval) or 0
        return not until or now_ns - min(until) >= interval

    # ---- silences and notifications -----------------------------------------------------
    def silence(
        self, dataset_id: str, silence: Silence, rule: str | None = None, actor: str | None = None
    ) -> int:
        """Mute notifications of a dataset (or one rule) in a window; returns its id."""
        if rule is not None:
            try:
                self.rule(dataset_id, rule)
            except RuleNotFoundError as exc:  # a value given, not the thing asked for
                raise ValidationError(str(exc)) from None
        return self.table.add_silence(
            dataset_id, rule, silence.model_dump(mode="json"), self.store.actor(actor)
        )

    def silences(self, dataset_id: str) -> list[tuple[str | None, Silence]]:
        """The dataset's silences as (rule or None for all rules, window)."""
        return [(r, Silence.model_validate(spec)) for _, r, spec in self.table.silences(dataset_id)]

    def silenced(
        self,
        dataset_id: str,
        rule: str,
        at: datetime,
        silences: list[tuple[str | None, Silence]] | None = None,
    ) -> bool:
        """Whether a notification of ``rule`` at ``at`` falls in a silence."""
        found = self.silences(dataset_id) if silences is None else silences
        return any((r is None or r == rule) and sil.covers(at) for r, sil in found)

    def dispatcher(
        self,
        dataset_id: str,
        already_delivered: Callable[[str, str], bool] | None = None,
        version: tuple[int, ...] | None = None,
    ) -> Dispatcher:
        """Sinks and routes of a dataset, with the delivery log as de-duplication store
        (``version``: the dataset's configuration version, to reuse them while it holds)."""
        with self._lock:
            hit = self._dispatch.get(dataset_id)
        if version is not None and hit is not None and hit[0] == version:
            sinks, routes = hit[1], hit[2]
        else:
            sinks = [self.in_app] + [
                sink_from_config({"name": name, "kind": kind, **cfg})
                for name, (kind, cfg) in self.table.sinks().items()
                if name != IN_APP
            ]
            names = [s.name for s in sinks]
            stored = self.table.routes(dataset_id)
            routes = (
                RoutingTable.parse(stored, sink_names=names)
                if stored
                else RoutingTable.everything_to([IN_APP])
            )
            if version is not None:
                with self._lock:
                    self._dispatch[dataset_id] = (version, sinks, routes)

        def record(r: DeliveryResult) -> None:
            self.table.record_delivery(r.key, r.sink, r.dataset, r.ok, r.attempts, r.error, r.at)

        return Dispatcher(
            sinks,
            routes,
            self.retry,
            already_delivered=already_delivered or self.table.delivered,
            record=record,
        )

    def deliver(self, dataset_id: str) -> list[DeliveryResult]:
        """Send notifications of recent events not yet delivered (the outbox)."""
        events = self.table.events(dataset_id, limit=OUTBOX_EVENTS)
        rules = {r.name: r for r in self.rules(dataset_id)}
        return self._send(dataset_id, events, rules, self.silences(dataset_id), None)

    def _send(
        self,
        dataset_id: str,
        events: list[EventRecord],
        rules: dict[str, AlertRule],
        silences: list[tuple[str | None, Silence]],
        version: tuple[int, ...] | None,
    ) -> list[DeliveryResult]:
        """Notify the ``events`` not delivered yet, in order, but those of deleted rules
        and those silenced."""
        pending = [e for e in events if e.to_state in NOTIFY_STATES]
        if not pending:
            return []
        notes: list[Notification] = []
        for ev in sorted(pending, key=lambda e: (e.at, e.id)):
            external = bool(ev.detail.get("external"))
            if ev.rule not in rules and ev.to_state == "firing" and not external:
                continue  # a deleted rule: nothing more to say
            if self.silenced(dataset_id, ev.rule, ev.at, silences):
                continue
            ep = datetime.fromisoformat(str(ev.detail.get("episode_start", ev.at.isoformat())))
            notes.append(
                Notification(
                    dataset=dataset_id,
                    rule=ev.rule,
                    series=ev.series,
                    severity=ev.severity,
                    state=ev.to_state,
                    at=ev.at,
                    value=ev.value,
                    labels=dict(ev.detail.get("labels", {})),
                    description=str(ev.detail.get("description", "")),
                    runbook=str(ev.detail.get("runbook", "")),
                    episode_start=ep,
                    episode_end=ev.at if ev.to_state == "resolved" else None,
                )
            )
        if not notes:
            return []
        # One query for what was delivered already, instead of one per event and sink on
        # every run (events have unique keys, so this run sends each at most once).
        done = self.table.delivered_pairs([n.key for n in notes])
        disp = self.dispatcher(dataset_id, lambda key, sink: (key, sink) in done, version)
        out: list[DeliveryResult] = []
        for n in notes:
            out += disp.dispatch(n)
        return out


def _refs(rules: list[AlertRule], units: dict[str, str], interval: int, tz: str) -> list[str]:
    """Channels (stored or derived) the rules' formulas read, sorted."""
    names: set[str] = set()
    for r in rules:
        for cond, value, clear in r.compile(units, interval, tz).values():
            names |= {n for c in (cond, value, clear) if c is not None for n in c.refs}
    return sorted(names)


def parse_when(text: str | None) -> int | None:
    """A time or a duration ago (``2h`` = two hours before now) in UTC ns."""
    if text is None:
        return None
    ago = parse_duration(text)
    if ago is not None:
        return int(time.time() * 1e9) - ago
    t = pd.Timestamp(text)
    return int((t.tz_localize("UTC") if t.tzinfo is None else t).value)
