"""Plot-sized reads (``GET .../data?points=N``, docs/api.md "Plot-sized reads") against
a local read of the same range in the same run.

Data: 1 month of one 1 Hz float64 channel (2,592,000 samples, 30 day chunks), a noisy
wave with spikes and gaps. The API runs under uvicorn in a thread of this process on a
free loopback port, with an API token; the client asks for the whole month reduced to
2,000 points as Arrow (the client's format) and parses the answer.

Rows (median of ``--repeat`` runs, interleaved; ``ratio`` = row / baseline; goal: the
Arrow row within 1.5x and under 100 kB on the wire):

- ``local Store.read + numpy min/max``: the baseline, all samples read in this process
  and reduced to their minimum and maximum (``np.nanmin``/``np.nanmax``);
- ``HTTP points=2000 arrow``: the plot-sized read over loopback, answer parsed;
- ``HTTP points=2000 json``: the same as JSON (for comparison);
- ``local M4 (reduce_points)``: the server's reduction alone, in this process.

Run: ``.venv/bin/python bench/bench_points.py [--repeat 7]`` (about half a minute here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_bounds import _served
from stream0d_nb.api import create_app
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from stream0d_nb.store.reader import index_range, reduce_points

DATASET, PARTNER, USER = "bench-month", "bench", "bench-user"
START, END, POINTS = "2024-01-01", "2024-01-31", 2_000
GOAL_RATIO, GOAL_BYTES = 1.5, 100_000


def seed(store: Store) -> str:
    """The month of data and a read token."""
    n = 30 * 86_400
    rng = np.random.default_rng(3)
    t = np.arange(n)
    x = np.round(50 + 10 * np.sin(t / 7_200) + rng.normal(0, 0.5, n), 2)
    x[rng.choice(n, 50, replace=False)] += 100  # spikes
    x[rng.random(n) < 0.001] = np.nan
    x[500_000:520_000] = np.nan  # a gap of 5.5 hours
    idx = pd.date_range(START, periods=n, freq="1s", tz="UTC")
    spec = DatasetSpec(
        id=DATASET, interval="1s", partner=PARTNER, channels=[ChannelSpec(name="x", units="bar")]
    )
    store.create_dataset(spec)
    store.write(DATASET, pd.DataFrame({"x": x}, index=idx))
    exp = datetime.now(UTC) + timedelta(days=1)
    access = AccessRegistry(store.registry)
    return access.issue_token(USER, level="read", expires_at=exp, note="bench").token


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Settings(home=Path(tmp)))
        token = seed(store)
        info = UserInfo(frozenset({PARTNER}), False, frozenset({"custom:stream0d:read"}))
        app = create_app(store, group_resolver=lambda user: info, prefix="")
        headers = {"Authorization": f"token {token}"}
        query = f"/api/datasets/{DATASET}/data?start={START}&end={END}&points={POINTS}"
        sizes: dict[str, int] = {}

        def local() -> object:
            values = store.read(DATASET, ["x"], START, END)["x"].values
            return np.nanmin(values), np.nanmax(values)

        def m4() -> object:
            snap = store.data(DATASET).snapshot()
            i0, i1 = index_range(snap, START, END)
            return reduce_points([snap.array("x")], i0, i1, POINTS, snap.grid.chunk_len)

        with _served(app) as url, httpx.Client(base_url=url, timeout=120) as client:

            def http(fmt: str) -> Callable[[], object]:
                def call() -> object:
                    r = client.get(f"{query}&format={fmt}", headers=headers)
                    assert r.status_code == 200, r.text[:300]
                    sizes[fmt] = len(r.content)
                    if fmt == "arrow":
                        return pa.ipc.open_stream(r.content).read_all()
                    return r.json()

                return call

            rows = {
                "local Store.read + numpy min/max": local,
                f"HTTP points={POINTS} arrow": http("arrow"),
                f"HTTP points={POINTS} json": http("json"),
                "local M4 (reduce_points)": m4,
            }
            times = {name: median_time(fn, args.repeat) for name, fn in rows.items()}
            kept = pa.ipc.open_stream(
                client.get(f"{query}&format=arrow", headers=headers).content
            ).read_all()
    base = times["local Store.read + numpy min/max"]
    print(f"1 channel x 30 days at 1 Hz (2,592,000 samples) -> {POINTS:,} buckets")
    print(f"{'row':38} {'time ms':>9} {'ratio':>6} {'bytes':>9}")
    for name, t in times.items():
        size = sizes.get(name.rsplit(" ", 1)[-1], 0) if name.startswith("HTTP") else 0
        print(f"{name:38} {t * 1e3:9.1f} {t / base:6.2f} {size or '':>9}")
    ratio, size = times[f"HTTP points={POINTS} arrow"] / base, sizes["arrow"]
    ok = ratio <= GOAL_RATIO and size < GOAL_BYTES
    print(
        f"arrow answer: {kept.num_rows:,} points; goal ratio <= {GOAL_RATIO} and < "
        f"{GOAL_BYTES:,} bytes: {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
