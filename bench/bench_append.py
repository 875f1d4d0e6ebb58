"""Load benchmark of appends (issue 15): many small writes through the API, against the
write path they replace (one ingest commit per push), measured in the same run.

Data: 20 datasets x 20 channels at 1 s, 5 of them (``--rules``) with a threshold alert
rule that a value of every 10th append crosses. The API runs
under uvicorn in a subprocess (one worker, the background folder on, every 5 s) with a
write token. Load: one append per dataset per second (20 a second in all), each of 1 row
(a gateway pushing every second) or of 60 rows (a simulated minute per push), for
``--seconds`` (60 by default); the rows' times start before a UTC midnight so that folds
of complete chunks (days) happen during the run. Every 5th append of each dataset is
read back at once (``GET .../data``) until its value shows. After the load everything
left in the buffer is folded and retention (every commit expired but the head's, garbage
collected) applied; the repositories' bytes are then compared with the same values
written once per dataset (``Store.write``) into fresh datasets.

Baseline (same run, ``--baseline-seconds``, 20 by default): the same pushes as ingests
(``POST .../ingest`` of a small CSV, one commit each), the path gateways had before.

Rows of the table: appends per second held (offered 20/s), append latency p50/p99
(goal p99 <= 50 ms), visible latency p99 (append sent -> value returned by a read; goal
<= 1 s), alert latency p99 (append acknowledged -> rule's firing event listed; goal
<= 1 s), server CPU per append, storage per appended value against the one-shot size
(goal <= 2x). Then a simulated day: 86,400 rows x 20 channels appended in minutes
through ``Store.append`` with the folder's passes as they would run, plus a fold every
simulated hour (a gateway pausing: the worst case for rewriting an open chunk), then
retention: bytes against the one-shot size (goal <= 2x).

Run: ``.venv/bin/python bench/bench_append.py [--seconds 60] [--baseline-seconds 20]``.
The machine this runs on has 2 cores: server, load generator and folder share them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import tree_cpu_seconds, wait_for

from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from stream0d_nb.store.retention import RetentionPolicy, apply_retention
from stream0d_nb.store.storage import location_bytes

N_DS = 20
N_CH = 20
USER = "gateway"
PARTNER = "bench-partner"
CHANNELS = [f"ch{i:02d}" for i in range(N_CH)]
MIDNIGHT = pd.Timestamp("2024-05-02T00:00:00Z")
THRESHOLD = 1000.0  # the alert rule's limit; normal values stay far below


# ----------------------------------------------------------------------------- server side


def app_from_env() -> Any:
    """The API on the store at ``$BENCH_HOME`` (uvicorn factory)."""
    from stream0d_nb.api import ApiSettings, create_app
    from stream0d_nb.api.deps import UserInfo

    info = UserInfo(frozenset({PARTNER}), False, frozenset({"custom:stream0d:write"}))
    store = Store(Settings(home=Path(os.environ["BENCH_HOME"])))
    settings = ApiSettings(fold_seconds=5.0, retention_hours=0)
    return create_app(store, settings, group_resolver=lambda user: info, prefix="")


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(
        "bench_append:app_from_env",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


# ----------------------------------------------------------------------------- setup


def spec(ds: str) -> DatasetSpec:
    return DatasetSpec(
        id=ds,
        interval="1s",
        partner=PARTNER,
        channels=[ChannelSpec(name=c, units="degC") for c in CHANNELS],
    )


def make_datasets(store: Store, prefix: str, rules: int) -> list[str]:
    """``N_DS`` datasets, the first ``rules`` of them with a threshold alert rule."""
    from stream0d_nb.alerts.rules import AlertRule
    from stream0d_nb.alerts.service import AlertService

    names = [f"{prefix}-{i:02d}" for i in range(N_DS)]
    alerts = AlertService(store)
    for i, ds in enumerate(names):
        store.create_dataset(spec(ds))
        if i < rules:
            rule = AlertRule(
                name="hot", kind="threshold", channels=["ch00"], op=">", value=THRESHOLD
            )
            alerts.add_rule(ds, rule)
    return names


def token(store: Store) -> str:
    from stream0d_nb.db.access_tables import AccessRegistry

    exp = datetime.now(UTC) + timedelta(days=1)
    return AccessRegistry(store.registry).issue_token(USER, level="write", expires_at=exp).token


def values_for(ds_index: int, first: int, n: int) -> np.ndarray:
    """Sensor-like values (random walks, 3 decimals) of rows ``first..first+n``."""
    rng = np.random.default_rng(10**7 + 1000 * ds_index + first)
    return np.round(20 + ds_index + np.cumsum(rng.normal(0, 0.05, (n, N_CH)), axis=0), 3)


def repo_bytes(store: Store, names: list[str]) -> int:
    return sum(location_bytes(store.data(ds).loc, store.settings) for ds in names)


# ----------------------------------------------------------------------------- the load


@dataclass
class Run:
    """What one load run measured."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    visible: list[float] = field(default_factory=list)
    alerts: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    values: int = 0
    server_cpu: float = float("nan")
    client_cpu: float = float("nan")
    loadavg: tuple[float, float] = (float("nan"), float("nan"))
    """The machine's 1-minute load average when the load started and when it ended."""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @staticmethod
    def pct(xs: list[float], q: float) -> float:
        return float(np.percentile(xs, q)) if xs else float("nan")

    def cpu_ms(self) -> float:
        return self.server_cpu / len(self.latencies) * 1e3 if self.latencies else float("nan")


def rows_json(ds_index: int, first: int, n: int, start: pd.Timestamp, spike: bool) -> Any:
    vals = values_for(ds_index, first, n)
    if spike:
        vals[-1, 0] = THRESHOLD + 1
    times = pd.date_range(start + pd.Timedelta(seconds=first), periods=n, freq="1s")
    return {
        "rows": [
            {"time": t.isoformat(), **dict(zip(CHANNELS, row.tolist(), strict=True))}
            for t, row in zip(times, vals, strict=True)
        ]
    }, vals


def rows_csv(ds_index: int, first: int, n: int, start: pd.Timestamp) -> tuple[bytes, np.ndarray]:
    vals = values_for(ds_index, first, n)
    times = pd.date_range(start + pd.Timedelta(seconds=first), periods=n, freq="1s")
    df = pd.DataFrame(vals, index=times, columns=CHANNELS)
    buf = io.StringIO()
    df.to_csv(buf, index_label="time", date_format="%Y-%m-%dT%H:%M:%SZ")
    return buf.getvalue().encode(), vals


async def load(
    url: str,
    tok: str,
    names: list[str],
    rows: int,
    seconds: float,
    start: pd.Timestamp,
    server_pid: int,
    ingest: bool = False,
    n_rules: int = 0,
) -> Run:
    """One push per dataset per second (as appends, or as ingests) for ``seconds``."""
    import httpx

    run = Run()
    headers = {"Authorization": f"token {tok}"}
    limits = httpx.Limits(max_connections=3 * N_DS, max_keepalive_connections=3 * N_DS)
    async with httpx.AsyncClient(
        base_url=url + "/api", headers=headers, limits=limits, timeout=120
    ) as http:
        if not ingest:  # one untimed append per dataset: the server's first ones load caches
            warm = [
                http.post(f"datasets/{ds}/append", json=rows_json(i, -rows, rows, start, False)[0])
                for i, ds in enumerate(names)
            ]
            for r in await asyncio.gather(*warm):
                assert r.status_code == 200, r.text
                run.values += rows * N_CH
        t0 = time.perf_counter() + 1.0
        pushes = int(seconds)

        async def push(i: int, ds: str) -> None:
            for k in range(pushes):
                at = t0 + k + i / N_DS  # spread the datasets over each second
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1.0 and not ingest:
                    continue  # fell behind by a whole push: skip it (counted as not held)
                first = k * rows
                spike = not ingest and k % 10 == 9 and i < n_rules  # an alert every 10 s
                sent = time.perf_counter()
                try:
                    if ingest:
                        body, vals = rows_csv(i, first, rows, start)
                        r = await http.post(
                            f"datasets/{ds}/ingest", files={"file": ("push.csv", body)}
                        )
                    else:
                        payload, vals = rows_json(i, first, rows, start, spike)
                        r = await http.post(f"datasets/{ds}/append", json=payload)
                except httpx.HTTPError:
                    run.errors += 1
                    continue
                acked = time.perf_counter()
                run.statuses[r.status_code] = run.statuses.get(r.status_code, 0) + 1
                if r.status_code != 200:
                    run.errors += 1
                    continue
                run.latencies.append(acked - sent)
                run.values += vals.size
                if ingest:
                    continue
                if k % 5 == 4:  # read it back until it shows
                    await visible(http, ds, start + pd.Timedelta(seconds=first + rows - 1),
                                  float(vals[-1, 1]), sent, run)  # fmt: skip
                if spike:
                    await alerted(http, ds, start + pd.Timedelta(seconds=first + rows - 1),
                                  acked, run)  # fmt: skip

        s0, c0 = tree_cpu_seconds(server_pid), time.process_time()
        load0 = os.getloadavg()[0]
        started = time.perf_counter()
        await asyncio.gather(*(push(i, ds) for i, ds in enumerate(names)))
        run.seconds = time.perf_counter() - started - 1.0
        run.server_cpu = tree_cpu_seconds(server_pid) - s0
        run.client_cpu = time.process_time() - c0
        run.loadavg = (load0, os.getloadavg()[0])
    return run


async def visible(
    http: Any, ds: str, at: pd.Timestamp, value: float, sent: float, run: Run
) -> None:
    """Poll a read of ``ds.ch01`` at ``at`` until it returns ``value``."""
    params = {"start": at.isoformat(), "end": (at + pd.Timedelta("1s")).isoformat(),
              "channels": "ch01"}  # fmt: skip
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        r = await http.get(f"datasets/{ds}/data", params=params)
        if r.status_code == 200 and r.json()["channels"]["ch01"]["values"] == [value]:
            run.visible.append(time.perf_counter() - sent)
            return
        await asyncio.sleep(0.05)
    run.errors += 1


async def alerted(http: Any, ds: str, at: pd.Timestamp, acked: float, run: Run) -> None:
    """Poll the rule's events until one fires at ``at``."""
    deadline = time.perf_counter() + 10
    since = at.isoformat()
    while time.perf_counter() < deadline:
        r = await http.get(
            f"datasets/{ds}/alerts/events", params={"rule": "hot", "since": since, "limit": 5}
        )
        if r.status_code == 200 and any(e["to_state"] == "firing" for e in r.json()):
            run.alerts.append(time.perf_counter() - acked)
            return
        await asyncio.sleep(0.1)
    run.errors += 1


# ----------------------------------------------------------------------------- storage


def settle_and_measure(store: Store, names: list[str], retention: bool) -> int:
    """Fold what is buffered; with ``retention``, expire all but the head and collect."""
    for ds in names:
        store.fold(ds)
    if retention:
        policy = RetentionPolicy(timedelta(0), keep_daily=None, gc_margin=timedelta(0))
        for ds in names:
            apply_retention(store.data(ds), policy, now=datetime.now(UTC) + timedelta(seconds=2))
    return repo_bytes(store, names)


def one_shot(store: Store, names: list[str], prefix: str) -> tuple[int, int]:
    """The same data, each dataset written once into a fresh one: bytes added, values."""
    twins = [f"{prefix}-{ds}" for ds in names]
    for ds in twins:
        store.create_dataset(spec(ds))
    before = repo_bytes(store, twins)
    values = 0
    for ds, twin in zip(names, twins, strict=True):
        data = store.read(ds)
        df = data.to_dataframe().tz_localize("UTC")
        values += int(df.notna().to_numpy().sum())
        store.write(twin, df)
    return repo_bytes(store, twins) - before, values


def simulated_day(home: Path) -> tuple[float, float, float, float]:
    """A day of 1 s x 20 channels appended 60 rows at a time, with the folder's passes and
    a fold every simulated hour; returns (bytes before retention, after, one-shot, s)."""
    from stream0d_nb.store.fold import Folder

    t_start = time.perf_counter()
    with Store(Settings(home=home)) as store:
        store.create_dataset(spec("day"))
        store.create_dataset(spec("day-once"))
        base = repo_bytes(store, ["day"])
        folder = Folder(store)
        day = pd.Timestamp("2024-06-01T00:00:00Z")
        vals = values_for(0, 0, 86_400 + 120)
        times = pd.date_range(day, periods=vals.shape[0], freq="1s")
        frame = pd.DataFrame(vals, index=times, columns=CHANNELS)
        for k in range(0, 86_400 + 120, 60):
            store.append("day", frame.iloc[k : k + 60], run_hooks=False)
            if k and k % 3600 == 0 and k < 86_400:
                store.fold("day")  # the gateway paused: its rows are committed
            if k % 600 == 0:
                folder.run_once(now=times[k].to_pydatetime())
        store.fold("day")
        before = repo_bytes(store, ["day"]) - base
        after = settle_and_measure(store, ["day"], retention=True) - base
        once0 = repo_bytes(store, ["day-once"])
        store.write("day-once", frame)
        once = repo_bytes(store, ["day-once"]) - once0
    return before, after, once, time.perf_counter() - t_start


# ----------------------------------------------------------------------------- main


def scenario(
    home: Path, port: int, proc: subprocess.Popen[bytes], tok: str, rows: int, args: Any
) -> list[tuple[str, float, float, str, float | None, str]]:
    """The table rows of one load (appends vs ingests) of ``rows`` rows per push."""
    url = f"http://127.0.0.1:{port}"
    store = Store(Settings(home=home))
    try:
        ours = make_datasets(store, f"app{rows}", rules=args.rules)
        theirs = make_datasets(store, f"ing{rows}", rules=0)
        # rows cross a midnight: 1 row/push from 30 s before; 60 rows/push (an hour a minute)
        # from 30 min before, so the first day folds during the load
        start = MIDNIGHT - pd.Timedelta(seconds=30 if rows == 1 else 1800)
        base_ours, base_theirs = repo_bytes(store, ours), repo_bytes(store, theirs)
        run = asyncio.run(
            load(url, tok, ours, rows, args.seconds, start, proc.pid, n_rules=args.rules)
        )
        before = settle_and_measure(store, ours, retention=False) - base_ours
        after = settle_and_measure(store, ours, retention=True) - base_ours
        once, once_values = one_shot(store, ours, "once")
        base = asyncio.run(
            load(url, tok, theirs, rows, args.baseline_seconds, start, proc.pid, ingest=True)
        )
        grown = repo_bytes(store, theirs) - base_theirs
    finally:
        store.close()
    per_once = once / max(once_values, 1)
    label = f"{rows} row{'s' if rows > 1 else ''}/push"
    report(label, run, base, before / max(run.values, 1), after / max(run.values, 1), per_once,
           grown / max(base.values, 1))  # fmt: skip
    return [
        (f"{label}: appends/s held (offered {N_DS})", run.rate, base.rate, "/s", None, ">= 19"),
        (
            f"{label}: append latency p50",
            run.pct(run.latencies, 50) * 1e3,
            base.pct(base.latencies, 50) * 1e3,
            "ms",
            None,
            "",
        ),
        (
            f"{label}: append latency p99",
            run.pct(run.latencies, 99) * 1e3,
            base.pct(base.latencies, 99) * 1e3,
            "ms",
            50.0,
            "<= 50",
        ),
        (
            f"{label}: visible in a read p99",
            run.pct(run.visible, 99) * 1e3,
            base.pct(base.latencies, 99) * 1e3,
            "ms",
            1000.0,
            "<= 1000",
        ),
        (
            f"{label}: alert after ack p99",
            run.pct(run.alerts, 99) * 1e3,
            float("nan"),
            "ms",
            1000.0,
            "<= 1000",
        ),
        (f"{label}: server CPU per append", run.cpu_ms(), base.cpu_ms(), "ms", None, ""),
        (
            f"{label}: bytes/value, folded + retention",
            after / max(run.values, 1),
            grown / max(base.values, 1),
            "B",
            2 * per_once,
            f"<= 2x once ({per_once:.2f})",
        ),
    ]


def report(label: str, run: Run, base: Run, before: float, after: float, once: float,
           grown: float) -> None:  # fmt: skip
    print(
        f"  {label}: {len(run.latencies):,} appends in {run.seconds:.1f} s, errors {run.errors} "
        f"{run.statuses}; visible samples {len(run.visible)}, alert samples {len(run.alerts)}; "
        f"server CPU {run.server_cpu:.1f} s, load generator CPU {run.client_cpu:.1f} s; "
        f"bytes/value: {before:.2f} folded, {after:.2f} after retention, {once:.2f} one-shot; "
        f"machine load average {run.loadavg[0]:.1f} at the start, {run.loadavg[1]:.1f} at the end",
        flush=True,
    )
    print(
        f"  baseline ({label} as ingests): {len(base.latencies):,} in {base.seconds:.1f} s, "
        f"errors {base.errors} {base.statuses}; server CPU {base.server_cpu:.1f} s; "
        f"bytes/value {grown:.2f} (history keeps every commit)",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--baseline-seconds", type=float, default=20)
    ap.add_argument("--rows", type=int, nargs="*", default=[1, 60])
    ap.add_argument("--no-day", action="store_true", help="skip the simulated day")
    ap.add_argument(
        "--rules", type=int, default=5, help="datasets (of 20) with a threshold alert rule"
    )
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    from tests.servers import free_port

    table: list[tuple[str, float, float, str, float | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="stream0d-bench-append-") as tmp:
        home = Path(tmp) / "home"
        with Store(Settings(home=home)) as store:
            tok = token(store)
        port = free_port()
        env = {**os.environ, "BENCH_HOME": str(home)}
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], env=env, start_new_session=True
        )
        try:
            wait_for(port, proc)
            for rows in args.rows:
                print(
                    f"load: {N_DS} datasets x {N_CH} channels ({args.rules} with an alert "
                    f"rule), {rows} row(s) per push",
                    flush=True,
                )
                table += scenario(home, port, proc, tok, rows, args)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not args.no_day:
            print("simulated day: 86,400 rows x 20 channels in 60-row appends", flush=True)
            before, after, once, took = simulated_day(Path(tmp) / "day")
            print(f"  took {took:.1f} s; bytes {before:,.0f} before retention", flush=True)
            table.append(("simulated day: repository bytes after retention", after, once, "B",
                          2 * once, "<= 2x one-shot"))  # fmt: skip

    width = max(len(r[0]) for r in table)
    print(f"\n{'measure':<{width}}  {'appends':>10}  {'baseline':>10}  {'unit':<4}  "
          f"{'ratio':>8}  goal              ok")  # fmt: skip
    failed = 0
    for name, ours, base, unit, limit, goal in table:
        ratio = ours / base if base and not np.isnan(base) else float("nan")
        if limit is None:
            ok = "yes" if not goal or ours >= float(goal.split()[-1]) else "NO"
        else:
            ok = "yes" if ours <= limit else "NO"
        failed += ok == "NO"
        print(f"{name:<{width}}  {ours:10.2f}  {base:10.2f}  {unit:<4}  {ratio:8.3f}  "
              f"{goal:<16}  {ok if goal else ''}")  # fmt: skip
    print(
        f"\nbaseline: the same pushes as ingests (one commit each, {args.baseline_seconds:g} s "
        f"per load); ratio = appends / baseline; bytes/value: repository growth per value "
        f"appended (after folding all and retention keeping the head only) against the same "
        f"values written once per dataset; load average at the end: {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
