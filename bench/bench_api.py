"""Load benchmark of the HTTP API: concurrent clients reading random ranges on loopback,
against local reads of the same ranges measured in the same run.

Data: one week of 1 Hz x 10 float64 channels (604,800 rows, 6 M values) in a local store.
The API runs under uvicorn in a subprocess on a free 127.0.0.1 port with one API token;
each request reads 1 hour of 2 random channels (7,200 values) at a random offset, as Arrow
or as JSON, with the token in the ``Authorization`` header.

Rows of the table (``ratio`` = ours / baseline; goal: HTTP within 2x of local):

- ``1 client``: one client in sequence, p50 latency of the HTTP request (to the last byte,
  Arrow answers parsed into a table) vs p50 of ``Store.read`` + ``to_arrow`` of the same
  ranges in this process: the per-request cost of going through the API;
- ``N clients``: N concurrent clients (httpx.AsyncClient) for a bounded time; throughput
  vs the same local read from N threads for the same time (ratio = local req/s / HTTP
  req/s, so > 1 means HTTP is slower), with p50/p99 latency under load. Errors must be 0
  and no answer may be 5xx.

Run: ``.venv/bin/python bench/bench_api.py [--clients 50] [--seconds 20] [--workers 1]``.
The machine this runs on has 2 cores: server, clients and local threads share them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store

N_CH = 10
ROWS = 7 * 86_400
START = pd.Timestamp("2024-01-01", tz="UTC")
DATASET = "bench-line"
USER = "bench"
PARTNER = "bench-partner"
WINDOW = pd.Timedelta(hours=1)


# ----------------------------------------------------------------------------- server side


def app_from_env() -> Any:
    """The API on the store at ``$BENCH_API_HOME`` (uvicorn factory, one per worker)."""
    from stream0d_nb.api import create_app
    from stream0d_nb.api.deps import UserInfo

    info = UserInfo(frozenset({PARTNER}), False, frozenset({"custom:stream0d:read"}))
    store = Store(Settings(home=Path(os.environ["BENCH_API_HOME"])))
    return create_app(store, group_resolver=lambda user: info, prefix="")


def serve(port: int, workers: int) -> None:
    """Run uvicorn (blocking); the parent process stops it."""
    import uvicorn

    uvicorn.run(
        "bench_api:app_from_env",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


# ----------------------------------------------------------------------------- setup


def make_store(home: Path) -> str:
    """The dataset and a read token of its partner's user; returns the token."""
    from stream0d_nb.db.access_tables import AccessRegistry

    rng = np.random.default_rng(7)
    idx = pd.date_range(START, periods=ROWS, freq="1s")
    walks = 50 + np.cumsum(rng.normal(0, 0.05, (ROWS, N_CH)), axis=0)
    df = pd.DataFrame(np.round(walks, 3), index=idx, columns=[f"ch{i}" for i in range(N_CH)])
    with Store(Settings(home=home)) as store:
        store.create_dataset(
            DatasetSpec(
                id=DATASET,
                interval="1s",
                partner=PARTNER,
                channels=[ChannelSpec(name=c, units="degC") for c in df.columns],
            )
        )
        store.write(DATASET, df)
        access = AccessRegistry(store.registry)
        exp = datetime.now(UTC) + timedelta(days=1)
        return access.issue_token(USER, level="read", expires_at=exp, note="bench").token


def ranges(n: int, seed: int) -> list[tuple[pd.Timestamp, pd.Timestamp, list[str]]]:
    """``n`` random 1-hour windows of 2 distinct channels (whole seconds)."""
    rng = np.random.default_rng(seed)
    span = ROWS - int(WINDOW.total_seconds())
    out = []
    for _ in range(n):
        t0 = START + pd.Timedelta(seconds=int(rng.integers(0, span)))
        chans = [f"ch{i}" for i in sorted(rng.choice(N_CH, 2, replace=False))]
        out.append((t0, t0 + WINDOW, chans))
    return out


def params(r: tuple[pd.Timestamp, pd.Timestamp, list[str]], fmt: str) -> dict[str, str]:
    t0, t1, chans = r
    return {
        "start": t0.isoformat(),
        "end": t1.isoformat(),
        "channels": ",".join(chans),
        "format": fmt,
    }


# ----------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """Latencies (s) of one load run, with counts."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    server_errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu: float = float("nan")
    """CPU seconds the server (or, locally, this process) used during the run."""
    client_cpu: float = float("nan")
    """CPU seconds the HTTP clients' process used during the run."""

    def cpu_ms(self, seconds: float) -> float:
        """CPU milliseconds per successful request."""
        return seconds / len(self.latencies) * 1e3 if self.latencies else float("nan")

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def check_answer(fmt: str, content: bytes, r: tuple[pd.Timestamp, pd.Timestamp, list[str]]) -> None:
    """The answer holds the hour asked for (parsed as a client would)."""
    if fmt == "arrow":
        import pyarrow as pa

        table = pa.ipc.open_stream(content).read_all()
        assert table.num_rows == 3600 and table.column_names == ["time", *r[2]], table.schema
    else:
        import json

        body = json.loads(content)
        assert len(body["time"]) == 3600 and list(body["channels"]) == r[2]


async def http_load(
    url: str, token: str, fmt: str, clients: int, seconds: float, seed: int, server_pid: int = 0
) -> Run:
    """``clients`` concurrent clients reading random ranges for ``seconds``."""
    import httpx

    run = Run()
    work = ranges(200_000, seed)
    position = iter(range(len(work)))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        # one warm-up request per connection: not timed
        await asyncio.gather(
            *(
                http.get(f"/api/datasets/{DATASET}/data", params=params(work[0], fmt))
                for _ in range(clients)
            )
        )
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                r = work[next(position)]
                t0 = time.perf_counter()
                try:
                    resp = await http.get(f"/api/datasets/{DATASET}/data", params=params(r, fmt))
                    content = resp.content
                    if resp.status_code == 200:
                        check_answer(fmt, content, r)
                except Exception:
                    run.errors += 1
                    continue
                run.statuses[resp.status_code] = run.statuses.get(resp.status_code, 0) + 1
                if resp.status_code != 200:
                    run.errors += 1
                    run.server_errors += resp.status_code >= 500
                    continue
                run.latencies.append(time.perf_counter() - t0)

        t_start, c0 = time.perf_counter(), time.process_time()
        s0 = tree_cpu_seconds(server_pid) if server_pid else 0.0
        await asyncio.gather(*(client() for _ in range(clients)))
        run.seconds = time.perf_counter() - t_start
        run.client_cpu = time.process_time() - c0
        if server_pid:
            run.server_cpu = tree_cpu_seconds(server_pid) - s0
    return run


def local_load(read: Callable[[Any], Any], threads: int, seconds: float, seed: int) -> Run:
    """The same kind of reads from ``threads`` threads in this process for ``seconds``."""
    run = Run()
    work = ranges(200_000, seed)
    position = iter(range(len(work)))
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                r = work[next(position)]
            t0 = time.perf_counter()
            read(r)
            dt = time.perf_counter() - t0
            with lock:
                run.latencies.append(dt)

    t_start, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker) for _ in range(threads)]:
            f.result()
    run.seconds = time.perf_counter() - t_start
    run.server_cpu = time.process_time() - c0
    return run


def sequential(fn: Callable[[Any], Any], n: int, seed: int) -> list[float]:
    """Latencies of ``n`` calls of ``fn`` on random ranges, one after the other."""
    out = []
    for r in ranges(n, seed):
        t0 = time.perf_counter()
        fn(r)
        out.append(time.perf_counter() - t0)
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [c for c, (parent, _) in stats.items() if parent == p]
    return total


def wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the API server did not start")


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--sequential", type=int, default=300, help="requests of the 1-client rows")
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.workers)
        return 0

    import httpx

    from stream0d_nb.api.routes.data import json_bytes
    from stream0d_nb.tables import to_arrow
    from tests.servers import free_port

    with tempfile.TemporaryDirectory(prefix="stream0d-bench-api-") as tmp:
        home = Path(tmp) / "home"
        t0 = time.perf_counter()
        token = make_store(home)
        print(
            f"data: {ROWS:,} rows x {N_CH} channels (1 week at 1 Hz) written in "
            f"{time.perf_counter() - t0:.1f} s; reads of 1 h x 2 channels (7,200 values)",
            flush=True,
        )
        port = free_port()
        env = {**os.environ, "BENCH_API_HOME": str(home)}
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--workers", str(args.workers)],
            env=env,
            start_new_session=True,
        )
        rows: list[tuple[str, float, str, float, str, float]] = []
        runs: dict[str, Run] = {}
        try:
            wait_for(port, proc)
            url = f"http://127.0.0.1:{port}"
            store = Store(Settings(home=home))

            def local(r: tuple[pd.Timestamp, pd.Timestamp, list[str]]) -> Any:
                return to_arrow(store.read(DATASET, r[2], r[0], r[1]))

            def local_json(r: tuple[pd.Timestamp, pd.Timestamp, list[str]]) -> Any:
                return json_bytes(store.read(DATASET, r[2], r[0], r[1]))

            sequential(local, 50, 99)  # warm caches
            loc = statistics.median(sequential(local, args.sequential, 1))
            loc_json = statistics.median(sequential(local_json, args.sequential, 1))
            with httpx.Client(base_url=url, headers={"Authorization": f"token {token}"}) as http:
                for fmt in ("arrow", "json"):

                    def one(r: tuple[pd.Timestamp, pd.Timestamp, list[str]], f: str = fmt) -> None:
                        resp = http.get(f"/api/datasets/{DATASET}/data", params=params(r, f))
                        assert resp.status_code == 200, resp.text[:300]
                        check_answer(f, resp.content, r)

                    sequential(one, 30, 98)
                    p50 = statistics.median(sequential(one, args.sequential, 1))
                    rows.append(
                        (
                            f"1 client, {fmt}: p50 latency",
                            p50 * 1e3,
                            "local read + to_arrow p50",
                            loc * 1e3,
                            "ms",
                            p50 / loc,
                        )
                    )
                    if fmt == "json":
                        rows.append(
                            (
                                "1 client, json: p50 latency",
                                p50 * 1e3,
                                "local read + JSON encoding p50",
                                loc_json * 1e3,
                                "ms",
                                p50 / loc_json,
                            )
                        )
            lrun = local_load(local, args.clients, args.seconds, 2)
            runs["local"] = lrun
            for fmt in ("arrow", "json"):
                run = asyncio.run(
                    http_load(url, token, fmt, args.clients, args.seconds, 3, proc.pid)
                )
                runs[fmt] = run
                rows.append(
                    (
                        f"{args.clients} clients, {fmt}: throughput",
                        run.rate,
                        f"{args.clients} threads local read + to_arrow",
                        lrun.rate,
                        "req/s",
                        lrun.rate / run.rate if run.rate else float("inf"),
                    )
                )
                srv, loc_cpu = run.cpu_ms(run.server_cpu), lrun.cpu_ms(lrun.server_cpu)
                rows.append(
                    (
                        f"{args.clients} clients, {fmt}: server CPU/request",
                        srv,
                        "local CPU/request (threads)",
                        loc_cpu,
                        "ms",
                        srv / loc_cpu,
                    )
                )
            store.close()
        finally:
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    width = max(len(r[0]) for r in rows)
    bw = max(len(r[2]) for r in rows)
    print(
        f"\n{'operation':<{width}}  {'ours':>9}  {'baseline':<{bw}}  {'base':>9}  {'unit':<5}  "
        f"{'ratio':>6}  goal  ok"
    )
    failed = 0
    for name, ours, base_name, base, unit, ratio in rows:
        ok = ratio <= 2.0
        failed += not ok
        print(
            f"{name:<{width}}  {ours:9.2f}  {base_name:<{bw}}  {base:9.2f}  {unit:<5}  "
            f"{ratio:6.2f}  <=2   {'yes' if ok else 'NO'}"
        )
    print(
        f"\n{'load run':<26}  {'requests':>8}  {'errors':>6}  {'5xx':>4}  {'req/s':>7}  "
        f"{'p50 ms':>7}  {'p99 ms':>7}  {'server CPU ms/req':>17}  {'client CPU ms/req':>17}"
    )
    for name, run in runs.items():
        label = f"{args.clients} {'threads local' if name == 'local' else 'clients HTTP ' + name}"
        print(
            f"{label:<26}  {run.requests:8,}  {run.errors:6}  {run.server_errors:4}  "
            f"{run.rate:7.1f}  {run.pct(50) * 1e3:7.1f}  {run.pct(99) * 1e3:7.1f}  "
            f"{run.cpu_ms(run.server_cpu):17.2f}  {run.cpu_ms(run.client_cpu):17.2f}"
        )
    errors = sum(r.errors for r in runs.values())
    print(
        f"\nratio: 1-client rows = HTTP p50 / local p50 (same ranges, sequential); N-client "
        f"rows = local req/s / HTTP req/s ({args.clients} threads vs {args.clients} clients, "
        f"{args.seconds:g} s each); CPU/request rows = server process CPU seconds per HTTP "
        f"request / this process's CPU seconds per local read in the same load runs (less "
        f"sensitive to other work on the machine); uvicorn workers: {args.workers}; "
        f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if errors:
        print(
            f"FAILED: {errors} errors under load (statuses: {[r.statuses for r in runs.values()]})"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
