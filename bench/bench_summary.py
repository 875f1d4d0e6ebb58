"""Latency of ``GET /datasets/{id}/summary`` on months of 1 s data (docs/api.md, "Summary").

Data: ``--days`` (default 90) of 1 s samples ending now in 4 channels (``a``, ``b``, ``c``
complete; ``stale`` stopped 60 days ago), written 10 days per commit. Measured: the
summary function on the store (``summarize``) and the endpoint over a real socket under
uvicorn with an API token, windows 1h and 1d; medians and 95th percentiles of ``--n``
calls after a warm-up. The summary reads the newest chunk of each channel and the chunks
overlapping the window, so the figures do not grow with ``--days``.

Run: ``.venv/bin/python bench/bench_summary.py [--days 90] [--n 50]``.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream0d_nb.api import create_app
from stream0d_nb.api.deps import UserInfo, get_group_resolver
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from stream0d_nb.store.latest import summarize
from tests.api_servers import UvicornThread

DS = "bench-line"
DAY = 86_400


def fill(store: Store, days: int) -> None:
    """``days`` of 1 s data ending now, 10 days per commit."""
    end = pd.Timestamp.now(tz="UTC").floor("s")
    start = end - pd.Timedelta(days=days)
    stale_end = end - pd.Timedelta(days=60)
    t = start
    while t < end:
        t1 = min(t + pd.Timedelta(days=10), end)
        idx = pd.date_range(t, t1, freq="1s", inclusive="left")
        n = len(idx)
        x = np.random.default_rng(0).normal(size=n)
        df = pd.DataFrame({"a": x, "b": x + 1, "c": x * 2, "stale": x}, index=idx)
        df.loc[df.index >= stale_end, "stale"] = np.nan
        store.write(DS, df, actor="bench")
        t = t1


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """Median and 95th percentile of ``fn``'s wall time in ms over ``n`` calls (1 warm-up)."""
    fn()
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def main() -> None:
    """Build the data, then print one line per measurement."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Settings(home=Path(tmp)))
        channels = [ChannelSpec(name=c, units="u") for c in ("a", "b", "c", "stale")]
        store.create_dataset(DatasetSpec(id=DS, interval="1s", channels=channels))
        t0 = time.perf_counter()
        fill(store, args.days)
        print(f"wrote {args.days} days x 4 channels of 1 s in {time.perf_counter() - t0:.0f} s")
        data = store.data(DS)
        for window in ("1h", "1d"):

            def local(w: str = window) -> None:
                summarize(data, DS, "1s", w)

            med, p95 = timed(local, args.n)
            print(f"summarize(window={window}): median {med:.1f} ms, p95 {p95:.1f} ms")
        app = create_app(store)
        app.dependency_overrides[get_group_resolver] = lambda: (
            lambda u: UserInfo(frozenset(), True, frozenset({"custom:stream0d:read"}))
        )
        exp = datetime.now(UTC) + timedelta(days=1)
        token = AccessRegistry(store.registry).issue_token("bench", level="read", expires_at=exp)
        server = UvicornThread(app)
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{server.port}/api",
                headers={"Authorization": f"token {token.token}"},
            ) as http:
                for window in ("1h", "1d"):

                    def call(w: str = window) -> None:
                        r = http.get(f"/datasets/{DS}/summary", params={"window": w})
                        r.raise_for_status()

                    med, p95 = timed(call, args.n)
                    print(f"GET .../summary?window={window}: median {med:.1f} ms, p95 {p95:.1f} ms")
        finally:
            server.stop()
            store.close()


if __name__ == "__main__":
    main()
