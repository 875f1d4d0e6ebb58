"""The recalibration scheduler: fires notebook schedules stored in the registry.

A long-running foreground service (``stream0d recal scheduler``; the hub runs it as a
managed service). Every ``poll_s`` seconds (or sooner, at the next cron time) it looks
at the enabled schedules and, for each cron slot that came due since the schedule last
fired (``last_fired_for``, persisted, so restarts lose nothing), applies the schedule's
**catch-up policy**:

- ``skip``: slots older than ``poll_s * 2 + 60 s`` when noticed are skipped; only a
  slot that is due now runs;
- ``once``: however many slots were missed, run once (for the latest);
- ``all``: run every missed slot, oldest first, at most ``max_catch_up`` of them (older
  ones beyond that bound are skipped).

A run starts only after the schedule's **claim** was taken in the database (one
conditional UPDATE, see ``store.recal_tables``): two scheduler processes, or a
scheduler and ``stream0d recal run --schedule``, never run the same schedule at the same
time; a slot claimed by one is marked fired for all. At most ``max_concurrent`` runs
execute at once in a process (threads; each run's kernel is its own process). SIGTERM
or SIGINT stops firing new runs, waits for the running ones (each bounded by its time
limit) and returns.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter

from stream0d_nb.db.base import utcnow
from stream0d_nb.db.recal_tables import CatchUp, RecalRegistry, RunRecord, ScheduleRecord
from stream0d_nb.errors import ValidationError, WriteConflictError
from stream0d_nb.recalibration.runner import (
    DEFAULT_TIMEOUT_S,
    RunResult,
    check_parameters,
    run_notebook,
)
from stream0d_nb.specs import check_slug
from stream0d_nb.store import Store

log = logging.getLogger(__name__)

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "recalibration_runs"
CATCH_UP = ("skip", "once", "all")


class ScheduleBusyError(WriteConflictError):
    """The schedule is running already (its claim is held): HTTP 409."""


def resolve_notebook(name: str | Path) -> Path:
    """A notebook path, or a name in ``recalibration_runs/`` (``.ipynb`` optional)."""
    p = Path(name).expanduser()
    for cand in (p, NOTEBOOKS_DIR / p, NOTEBOOKS_DIR / f"{p}.ipynb"):
        if cand.is_file() and cand.suffix == ".ipynb":
            return cand.resolve()
    known = ", ".join(sorted(x.name for x in NOTEBOOKS_DIR.glob("*.ipynb"))) or "none"
    raise ValidationError(f"notebook {str(name)!r} not found (in {NOTEBOOKS_DIR}: {known})")


def check_cron(cron: str) -> str:
    """The cron expression if croniter accepts it (5 fields, or 6 with seconds)."""
    if not croniter.is_valid(cron):
        raise ValidationError(f"{cron!r} is not a cron expression (e.g. '0 3 * * *')")
    return cron


def slots_between(
    cron: str, after: datetime, until: datetime, limit: int = 10_000
) -> list[datetime]:
    """Cron times in ``(after, until]`` (UTC), oldest first, at most ``limit`` (the newest)."""
    it = croniter(cron, after)
    out: list[datetime] = []
    while True:
        t = it.get_next(datetime)
        if t > until:
            return out
        out.append(t)
        if len(out) > limit:
            out.pop(0)


def next_slot(cron: str, after: datetime) -> datetime:
    """The first cron time after ``after``."""
    t: datetime = croniter(cron, after).get_next(datetime)
    return t


def add_schedule(
    store: Store,
    name: str,
    cron: str,
    notebook: str | Path,
    parameters: dict[str, Any],
    *,
    catch_up: CatchUp = "once",
    max_catch_up: int = 10,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    actor: str | None = None,
    start_after: datetime | None = None,
) -> ScheduleRecord:
    """Validate (name, cron, notebook, parameters, policy) and store a schedule."""
    try:
        check_slug(name, "schedule name")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    check_cron(cron)
    if catch_up not in CATCH_UP:
        raise ValidationError(f"catch-up policy {catch_up!r} is not one of {', '.join(CATCH_UP)}")
    if max_catch_up < 1:
        raise ValidationError("max_catch_up must be at least 1")
    if not timeout_s > 0:
        raise ValidationError("the time limit must be positive")
    path = resolve_notebook(notebook)
    check_parameters(path, parameters)
    ds = parameters.get("dataset")
    dataset_id = ds if isinstance(ds, str) else None
    if dataset_id is not None:
        store.get_dataset(dataset_id)
    return RecalRegistry(store.registry).add_schedule(
        name,
        cron=cron,
        notebook=str(path),
        parameters=parameters,
        catch_up=catch_up,
        max_catch_up=max_catch_up,
        timeout_s=timeout_s,
        dataset_id=dataset_id,
        actor=store.actor(actor),
        start_after=start_after,
    )


def update_schedule(
    store: Store,
    name: str,
    changes: dict[str, Any],
    actor: str | None = None,
    dataset_id: str | None = None,
) -> ScheduleRecord:
    """Check and apply changes to a schedule (cron, notebook, parameters, catch_up,
    max_catch_up, timeout_s) as ``add_schedule`` checks them; parameters are checked
    against the (new) notebook. Refused while the schedule runs (``ScheduleClaimedError``);
    ``ScheduleNotFoundError`` when there is none of that name (of ``dataset_id`` if given)."""
    table = RecalRegistry(store.registry)
    cur = table.schedule(name, dataset_id)
    out = dict(changes)
    if "cron" in out:
        check_cron(out["cron"])
    if out.get("catch_up", cur.catch_up) not in CATCH_UP:
        raise ValidationError(
            f"catch-up policy {out['catch_up']!r} is not one of {', '.join(CATCH_UP)}"
        )
    if out.get("max_catch_up", 1) < 1:
        raise ValidationError("max_catch_up must be at least 1")
    if not out.get("timeout_s", 1) > 0:
        raise ValidationError("the time limit must be positive")
    path = resolve_notebook(out.get("notebook", cur.notebook))
    if "notebook" in out:
        out["notebook"] = str(path)
    params = out.get("parameters", cur.parameters)
    check_parameters(path, params)
    if params.get("dataset") != cur.parameters.get("dataset"):
        raise ValidationError("a schedule stays on its dataset: parameter 'dataset' cannot change")
    return table.update_schedule(name, out, store.actor(actor), dataset_id)


def create_schedule_run(
    table: RecalRegistry,
    sched: ScheduleRecord,
    owner: str,
    actor: str,
    slot: datetime | None,
    trigger: str,
) -> RunRecord:
    """Record the queued run of a schedule whose claim ``owner`` holds (its notebook,
    parameters and time limit) and attach it to the claim."""
    run = table.create_run(
        notebook=sched.notebook,
        parameters=sched.parameters,
        trigger=trigger,
        actor=actor,
        dataset_id=sched.dataset,
        schedule_id=sched.id,
        scheduled_for=slot,
        timeout_s=sched.timeout_s,
    )
    table.attach_run(sched.name, owner, run.id)
    return run


def start_manual_run(
    table: RecalRegistry, name: str, owner: str, actor: str, dataset_id: str | None = None
) -> tuple[ScheduleRecord, RunRecord]:
    """Claim schedule ``name`` (of ``dataset_id`` if given) for ``owner`` and record its run
    by hand now, trigger ``manual:<name>`` (``stream0d recal run --schedule`` and
    ``POST .../schedules/{name}/run``); its cron slots do not move. The caller executes
    the run and then releases the claim. ``ScheduleNotFoundError``; ``ScheduleBusyError``
    if it is running already."""
    sched = table.schedule(name, dataset_id)
    if not table.claim(name, owner):
        holder = table.schedule(name).claimed_by or sched.claimed_by
        raise ScheduleBusyError(f"schedule {name!r} is running already (claimed by {holder})")
    try:
        run = create_schedule_run(table, sched, owner, actor, None, f"manual:{name}")
    except BaseException:
        table.release(name, owner)
        raise
    return sched, run


class Scheduler:
    """Fires due schedules (see the module docstring); ``tick`` is one pass, ``serve`` loops."""

    def __init__(
        self,
        store: Store,
        *,
        max_concurrent: int = 2,
        poll_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValidationError("max_concurrent must be at least 1")
        self.store = store
        self.table = RecalRegistry(store.registry)
        self.max_concurrent = max_concurrent
        self.poll_s = poll_s
        self.clock = clock
        self.owner = owner or f"scheduler-{uuid.uuid4().hex[:12]}"
        self.stop_event = threading.Event()
        self._pool = ThreadPoolExecutor(max_concurrent, thread_name_prefix="recal-run")
        self._inflight: dict[int, Future[RunResult]] = {}
        self._lock = threading.Lock()

    # ---- one pass ----------------------------------------------------------------------
    @property
    def grace(self) -> timedelta:
        """How late a slot may be noticed and still count as due now (skip policy)."""
        return timedelta(seconds=self.poll_s * 2 + 60)

    def plan(self, sched: ScheduleRecord, now: datetime) -> tuple[list[datetime], datetime | None]:
        """(slots to run, oldest first; new last_fired_for) of one schedule at ``now``."""
        after = sched.last_fired_for or sched.created_at
        due = slots_between(sched.cron, after, now, limit=max(sched.max_catch_up, 1) * 100)
        if not due:
            return [], None
        if sched.catch_up == "skip":
            fresh = [t for t in due if now - t <= self.grace]
            return fresh[-1:], due[-1]
        if sched.catch_up == "once":
            return due[-1:], due[-1]
        return due[-sched.max_catch_up :], due[-1]

    def tick(self, now: datetime | None = None) -> list[int]:
        """Start the runs that are due (within the concurrency limit); returns their ids."""
        now = now or self.clock()
        self._reap()
        started: list[int] = []
        for sched in self.table.schedules(enabled_only=True):
            if self.stop_event.is_set():
                break
            slots, _ = self.plan(sched, now)
            if not slots:
                if sched.catch_up == "skip":
                    self._skip_missed(sched, now)
                continue
            if sched.catch_up == "skip" and len(slots) == 1:
                self._skip_missed(sched, now, keep=slots[0])
                sched = self.table.schedule(sched.name)
            slot = slots[0]  # one run per schedule at a time: later slots on later ticks
            if self._busy():
                log.info("concurrency limit %d reached; %s waits", self.max_concurrent, sched.name)
                break
            if not self.table.claim(
                sched.name,
                self.owner,
                fired_for=slot,
                expected_last=sched.last_fired_for,
                check_last=True,
            ):
                continue  # another scheduler fired it, or it is still running
            run = self._start(sched, slot, trigger=f"schedule:{sched.name}")
            started.append(run.id)
        return started

    def _skip_missed(
        self, sched: ScheduleRecord, now: datetime, keep: datetime | None = None
    ) -> None:
        """Skip policy: advance last_fired_for past slots too old to run."""
        due = slots_between(sched.cron, sched.last_fired_for or sched.created_at, now)
        stale = [t for t in due if keep is None or t < keep]
        if (
            stale
            and (keep is None or stale[-1] < keep)
            and self.table.advance(sched.name, sched.last_fired_for, stale[-1])
        ):
            log.info("%s: skipped %d missed slot(s) up to %s", sched.name, len(stale), stale[-1])

    def _busy(self) -> bool:
        with self._lock:
            return sum(not f.done() for f in self._inflight.values()) >= self.max_concurrent

    def _reap(self) -> None:
        with self._lock:
            for rid in [r for r, f in self._inflight.items() if f.done()]:
                self._inflight.pop(rid)

    def _start(self, sched: ScheduleRecord, slot: datetime | None, trigger: str) -> RunRecord:
        """Create the run of a claimed schedule and execute it in a worker thread."""
        run = create_schedule_run(
            self.table, sched, self.owner, f"scheduler:{self.owner}", slot, trigger
        )
        self._execute(sched, run, slot)
        return run

    def _execute(self, sched: ScheduleRecord, run: RunRecord, slot: datetime | None) -> None:
        """Execute a schedule's recorded run in a worker thread; its claim is released after."""

        def work() -> RunResult:
            try:
                return run_notebook(
                    self.store,
                    sched.notebook,
                    sched.parameters,
                    timeout_s=sched.timeout_s,
                    trigger=run.trigger,
                    actor=f"scheduler:{self.owner}",
                    dataset_id=sched.dataset,
                    run=run,
                )
            except Exception as exc:  # recorded, never lost: a run must end in a final state
                log.exception("run %s of %s crashed", run.id, sched.name)
                return RunResult(self.table.crashed(run.id, exc))
            finally:
                self.table.release(sched.name, self.owner)

        with self._lock:
            self._inflight[run.id] = self._pool.submit(work)
        log.info("run %s of %s started (slot %s)", run.id, sched.name, slot)

    def trigger(self, name: str, wait: bool = True) -> RunRecord:
        """Run a schedule now (``stream0d recal run --schedule``), through its claim.

        ``ScheduleBusyError`` if it is running already. Does not move its cron slots.
        """
        sched, run = start_manual_run(self.table, name, self.owner, f"scheduler:{self.owner}")
        self._execute(sched, run, None)
        if wait:
            self._inflight[run.id].result()
        return self.table.run(run.id)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the runs started by this scheduler."""
        with self._lock:
            futures = list(self._inflight.values())
        for f in futures:
            f.result(timeout=timeout)
        self._reap()

    # ---- service loop ------------------------------------------------------------------
    def sleep_for(self, now: datetime) -> float:
        """Seconds until the next tick: the poll interval or the next cron slot if sooner."""
        soonest = self.poll_s
        for sched in self.table.schedules(enabled_only=True):
            nxt = next_slot(sched.cron, max(now, sched.last_fired_for or now))
            soonest = min(soonest, max((nxt - now).total_seconds(), 0.05))
        return soonest

    def stop(self, *_: Any) -> None:
        """Ask the loop to stop (signal handler)."""
        self.stop_event.set()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Tick until SIGTERM/SIGINT (or ``stop()``), then wait for running runs."""
        log.info(
            "recalibration scheduler %s started (max %d runs)", self.owner, self.max_concurrent
        )
        with self._signals():
            if ready is not None:
                ready()
            while not self.stop_event.is_set():
                try:
                    self.tick()
                except Exception:  # a bad schedule or a database hiccup must not end the service
                    log.exception("scheduler tick failed")
                self.stop_event.wait(self.sleep_for(self.clock()))
        log.info("scheduler %s stopping: waiting for %d run(s)", self.owner, len(self._inflight))
        self._pool.shutdown(wait=True)
        self._reap()
        log.info("scheduler %s stopped", self.owner)

    def close(self) -> None:
        """Stop and wait for running runs."""
        self.stop_event.set()
        self._pool.shutdown(wait=True)
