"""Peak memory of reads at and beyond the API's read bounds (docs/api.md, "Bounded reads").

Data: 6 years of one 1 s channel (189 M samples, one commit, 2,190 day chunks) plus a
60-value dataset, and on the big one the derived channels ``w0 = x * 2``,
``w1 = rolling_mean(x, "400d")`` and ``w2 = rolling_mean(w1, "400d")`` (nested windows:
800 days of margin). Every request runs in its own child process against the API app
(under uvicorn in a thread of the child, with an API token, the answer consumed as it streams); the child warms up with
a tiny read, resets its peak RSS (``/proc/self/clear_refs``), sends the request and
reports the peak RSS above its RSS just before (``VmHWM`` - ``VmRSS``).

Rows: the requests that the bounds refuse (their status and message) and the largest
requests the bounds still allow, each with its peak RSS above the child's baseline, the
baseline itself (the process after imports, app and warm-up) and the bound that applies,
as values of float64 (``ratio`` = peak / bound's bytes: below 1 means the read holds less
than the values its bound allows).

Run: ``.venv/bin/python bench/bench_bounds.py [--years 6]`` (about 1-2 minutes here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream0d_nb.settings import Settings
from stream0d_nb.store import Store

BIG, SMALL, PARTNER, USER = "bench-line", "bench-small", "bench", "bench-user"
MiB = 2**20


def seed(home: Path, years: int) -> str:
    """Both datasets, the formulas and a read token; returns the token."""
    from stream0d_nb import derived
    from stream0d_nb.db.access_tables import AccessRegistry
    from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec
    from stream0d_nb.store.repo import WriteView

    with Store(Settings(home=home)) as store:
        x = ChannelSpec(name="x", units="bar")
        store.create_dataset(DatasetSpec(id=BIG, interval="1s", partner=PARTNER, channels=[x]))
        store.create_dataset(DatasetSpec(id=SMALL, interval="1s", partner=PARTNER, channels=[x]))
        day = 86_400
        first = 19_358 * day  # 2023-01-01
        days = years * 365
        t = np.arange(day, dtype=np.float64)

        def work(view: WriteView) -> int:
            view.ensure_stop(first + days * day)
            for d in range(days):
                block = np.round(50 + 10 * np.sin(t / 3600 + d), 1)
                view.write_many(first + d * day, {"x": block})
            view.extend_extent(first, first + days * day)
            return days * day

        store.data(BIG).transact(work, lambda n: f"bench: {n:,} values", lambda n: {})
        idx = pd.date_range("2024-01-01", periods=60, freq="1s", tz="UTC")
        store.write(SMALL, pd.DataFrame({"x": np.arange(60.0)}, index=idx))
        for name, text in (
            ("w0", "x * 2"),
            ("w1", 'rolling_mean(x, "400d")'),
            ("w2", 'rolling_mean(w1, "400d")'),
        ):
            derived.save_formula(store, BIG, FormulaSpec(name=name, formula=text), USER)
        access = AccessRegistry(store.registry)
        exp = datetime.now(UTC) + timedelta(days=1)
        return access.issue_token(USER, level="read", expires_at=exp, note="bench").token


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


@contextlib.contextmanager
def _served(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread of this process."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def child(home: str, token: str, dataset: str, query: str) -> None:
    """One request in this process; prints status, message, baseline and peak as JSON."""
    from stream0d_nb.api import create_app
    from stream0d_nb.api.deps import UserInfo

    info = UserInfo(frozenset({PARTNER}), False, frozenset({"custom:stream0d:read"}))
    store = Store(Settings(home=Path(home)))
    app = create_app(store, group_resolver=lambda user: info, prefix="")
    headers = {"Authorization": f"token {token}"}
    with _served(app) as base_url, httpx.Client(base_url=base_url, timeout=600) as client:
        warm = client.get(f"/api/datasets/{SMALL}/data?format=arrow", headers=headers)
        assert warm.status_code == 200, warm.text
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        base = _status("VmRSS")
        t0 = time.perf_counter()
        # the answer is consumed as it streams in: the peak is the server's, not a copy of
        # the whole answer on the client side
        size, head = 0, b""
        url = f"/api/datasets/{dataset}/data?{query}"
        with client.stream("GET", url, headers=headers) as r:
            for chunk in r.iter_bytes():
                size += len(chunk)
                if len(head) < 1 << 20:
                    head += chunk
        seconds = time.perf_counter() - t0
        peak = _status("VmHWM")
    body: dict[str, Any] = {}
    if r.headers.get("content-type", "").startswith("application/json"):
        body = json.loads(head) if size == len(head) else {}
    message = body.get("error", {}).get("message", "") if r.status_code >= 400 else ""
    values = sum(len(c["values"]) for c in body.get("channels", {}).values()) if body else None
    if r.status_code == 200 and values is None:
        values = size
    print(
        json.dumps(
            {
                "status": r.status_code,
                "message": message,
                "base": base,
                "peak": peak - base,
                "seconds": seconds,
                "answer": values,
            }
        ),
        flush=True,
    )


def run(home: Path, token: str, dataset: str, query: str) -> dict[str, Any]:
    """The child's JSON line for one request."""
    cmd = [sys.executable, __file__, "--child", str(home), token, dataset, query]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"status": "crash", "message": out.stderr.strip()[-300:], "base": 0, "peak": 0}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=6)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from stream0d_nb.api import ApiSettings

    limits = ApiSettings()
    with tempfile.TemporaryDirectory(prefix="s0d-bounds-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        token = seed(home, args.years)
        print(f"seeded {args.years} years of 1 s in {time.perf_counter() - t0:.0f} s")
        span = f"start=2023-01-01&end={2023 + args.years}-01-01"
        # the largest raw reads the bounds allow: max_values values (arrow)
        raw_end = np.datetime64("2023-01-01T00:00:00") + np.timedelta64(limits.max_values, "s")
        derived_end = np.datetime64("2024-01-01T00:00:00") + np.timedelta64(
            limits.max_values // 2, "s"
        )
        cases: list[tuple[str, str, str, int | None]] = [
            ("every=1000d over 60 values", SMALL, "every=1000d", None),
            ("every=999999999999d", SMALL, "every=999999999999d", None),
            (
                "nested 400 d windows, 1 minute",
                BIG,
                "channels=w2&start=2028-06-01&end=2028-06-01T00:01",
                limits.max_values,
            ),
            (
                f"{args.years} y of 1 s, every=1d (allowed)",
                BIG,
                f"{span}&every=1d",
                limits.max_scan_values,
            ),
            (
                f"{args.years} y of 1 s, every=30d how=last (allowed)",
                BIG,
                f"{span}&every=30d&how=last",
                limits.max_scan_values,
            ),
            (
                "raw read of max_values, arrow (allowed)",
                BIG,
                f"start=2023-01-01&end={raw_end}&format=arrow",
                limits.max_values,
            ),
            (
                "derived x*2 at the bound, arrow (allowed)",
                BIG,
                f"channels=w0&start=2024-01-01&end={derived_end}&format=arrow",
                limits.max_values,
            ),
        ]
        print(
            f"\n{'request':<44} {'status':>6} {'peak MiB':>9} {'base MiB':>9} "
            f"{'bound values':>13} {'ratio':>6} {'s':>6}  message"
        )
        for label, ds, query, bound in cases:
            m = run(home, token, ds, query)
            ratio = f"{m['peak'] / (bound * 8):.2f}" if bound else "-"
            print(
                f"{label:<44} {m['status']!s:>6} {m['peak'] / MiB:>9.0f} {m['base'] / MiB:>9.0f} "
                f"{bound or 0:>13,} {ratio:>6} {m.get('seconds', 0):>6.2f}  {m['message'][:150]}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
