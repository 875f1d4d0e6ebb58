"""The scheduler: cron slots, catch-up policies after a restart, one run per schedule at a
time across processes (the database claim), the concurrency limit, SIGTERM.

Clocks are injected (``Scheduler(clock=...)``, ``tick(now)``) so nothing waits for real
cron times; runs are real Papermill runs of ``tests/notebooks/probe.ipynb``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stream0d_nb.db.recal_tables import RecalRegistry
from stream0d_nb.errors import ScheduleExistsError, ValidationError, WriteConflictError
from stream0d_nb.recalibration.scheduler import (
    ScheduleBusyError,
    Scheduler,
    add_schedule,
    slots_between,
)
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec
from stream0d_nb.store import Store

PROBE = Path(__file__).with_name("notebooks") / "probe.ipynb"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
HOURLY = "0 * * * *"


def _store(home: Path) -> Store:
    st = Store(Settings(home=home))
    if not st.list_datasets():
        st.create_dataset(DatasetSpec(id="probe-line", interval="1s"))
    return st


def _add(st: Store, name: str, catch_up: str = "once", sleep: float = 0.0, **kw: object) -> None:
    add_schedule(
        st,
        name,
        HOURLY,
        PROBE,
        {"dataset": "probe-line", "sleep": sleep},
        catch_up=catch_up,  # type: ignore[arg-type]
        start_after=T0,
        timeout_s=60,
        **kw,  # type: ignore[arg-type]
    )


def test_slots_and_plans_of_each_catch_up_policy(tmp_path: Path) -> None:
    assert slots_between(HOURLY, T0, T0 + timedelta(hours=3, minutes=30)) == [
        T0 + timedelta(hours=h) for h in (1, 2, 3)
    ]
    st = _store(tmp_path)
    _add(st, "skip-me", "skip")
    _add(st, "once", "once")
    _add(st, "all-of-them", "all", max_catch_up=2)
    sched = Scheduler(st, poll_s=30)
    table = RecalRegistry(st.registry)
    late = T0 + timedelta(hours=3, minutes=30)  # 3 slots missed, the last 30 min ago
    plans = {s.name: sched.plan(s, late) for s in table.schedules()}
    last = T0 + timedelta(hours=3)
    assert plans["skip-me"] == ([], last)  # too late for any: skipped
    assert plans["once"] == ([last], last)
    assert plans["all-of-them"] == ([last - timedelta(hours=1), last], last)  # bounded to 2
    on_time = T0 + timedelta(hours=1, seconds=20)
    assert sched.plan(table.schedule("skip-me"), on_time)[0] == [T0 + timedelta(hours=1)]
    with pytest.raises(ValidationError, match="not a cron expression"):
        add_schedule(st, "bad", "every hour", PROBE, {"dataset": "probe-line"})
    with pytest.raises(ValidationError, match="missing required parameter 'dataset'"):
        add_schedule(st, "bad", HOURLY, PROBE, {})
    with pytest.raises(ValidationError, match="catch-up policy"):
        add_schedule(st, "bad", HOURLY, PROBE, {"dataset": "probe-line"}, catch_up="some")  # type: ignore[arg-type]
    with pytest.raises(ScheduleExistsError, match="a schedule named 'once' exists already"):
        _add(st, "once")
    st.close()


def test_restart_with_missed_slots_follows_the_policy(tmp_path: Path) -> None:
    st = _store(tmp_path)
    _add(st, "nightly", "once")
    _add(st, "skipper", "skip")
    table = RecalRegistry(st.registry)
    first = Scheduler(st, clock=lambda: T0 + timedelta(hours=1, seconds=5))
    assert len(first.tick()) == 2  # both on time
    first.wait()
    first.close()  # "stopped" for three hours
    assert table.schedule("nightly").last_fired_for == T0 + timedelta(hours=1)
    # a new process (new store) after a restart: 3 slots missed
    st2 = _store(tmp_path)
    late = T0 + timedelta(hours=4, minutes=10)
    second = Scheduler(st2, clock=lambda: late)
    started = second.tick()
    second.wait()
    runs = {r.id: r for r in RecalRegistry(st2.registry).runs()}
    assert len(started) == 1  # once: one run for the latest slot; skip: nothing
    assert runs[started[0]].scheduled_for == T0 + timedelta(hours=4)
    assert runs[started[0]].trigger == "schedule:nightly" and runs[started[0]].status == "succeeded"
    assert table.schedule("skipper").last_fired_for == T0 + timedelta(hours=4)  # skipped
    assert second.tick() == []  # nothing more is due
    second.close()
    assert len(RecalRegistry(st2.registry).runs()) == 3
    st.close()
    st2.close()


def test_same_schedule_never_runs_twice_at_once(tmp_path: Path) -> None:
    stores = [_store(tmp_path), _store(tmp_path)]  # two "processes" on one registry
    _add(stores[0], "busy", "once", sleep=2.0)
    now = T0 + timedelta(hours=1, seconds=1)
    scheds = [Scheduler(s, clock=lambda: now) for s in stores]
    barrier = threading.Barrier(2)
    started: list[list[int]] = [[], []]

    def fire(i: int) -> None:
        barrier.wait()
        started[i] = scheds[i].tick()

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(s) for s in started) == [0, 1]
    # while it runs, a manual trigger of the same schedule is refused by the claim
    with pytest.raises(ScheduleBusyError, match="running already") as busy:
        scheds[1].trigger("busy", wait=False)
    assert isinstance(busy.value, WriteConflictError)  # a conflict (409), not a bad value
    for s in scheds:
        s.wait()
        s.close()
    table = RecalRegistry(stores[0].registry)
    assert [r.status for r in table.runs()] == ["succeeded"]
    assert table.schedule("busy").claimed_by is None  # released
    for st in stores:
        st.close()


def test_concurrency_limit(tmp_path: Path) -> None:
    st = _store(tmp_path)
    for name in ("a", "b", "c"):
        _add(st, name, "once", sleep=1.0)
    sched = Scheduler(st, max_concurrent=2, clock=lambda: T0 + timedelta(hours=1, seconds=1))
    first = sched.tick()
    assert len(first) == 2  # the third waits for a free slot
    assert RecalRegistry(st.registry).schedule("c").last_fired_for == T0
    sched.wait()
    assert len(sched.tick()) == 1  # now it runs (its slot is still due)
    sched.wait()
    sched.close()
    assert sorted(r.status for r in RecalRegistry(st.registry).runs()) == ["succeeded"] * 3
    st.close()


@pytest.mark.slow
def test_scheduler_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "STREAM0D_HOME": str(tmp_path)}
    env.pop("STREAM0D_DATABASE_URL", None)
    env.pop("STREAM0D_STORAGE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream0d_nb.cli", "recal", "scheduler", "--poll", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "running" not in line:
            line = proc.stdout.readline()
        assert "running" in line, line
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert "scheduler stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
