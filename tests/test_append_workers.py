"""Two API worker processes appending to one dataset, each folding in the background, a
command-line ingest into the same dataset meanwhile, and reads through both workers that
must never tear (on local disk and Azurite): every acknowledged row ends up stored once,
and no read shows a hole, a changed value or fewer rows than a read before it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from tests.servers import stop_process_group
from tests.test_append_fold import DAY1, _check, _server, fold_commits
from tests.test_store import make_settings

N = 240  # rows per writer: past midnight by more than the fold's grace (DAY1 is 23:58)
INGESTED = range(100, 160)  # rows of channel c the command line ingests meanwhile


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azure)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings(request.param, tmp_path, request)


def _env(settings: Settings) -> dict[str, str]:
    """The environment that gives a ``stream0d`` process these settings."""
    cfg = settings.model_dump(mode="json", exclude_none=True)
    return {**os.environ, **{f"STREAM0D_{k.upper()}": str(v) for k, v in cfg.items()}}


def _ingest_c(settings: Settings, folder: Path) -> subprocess.CompletedProcess[str]:
    """``stream0d ingest`` of channel c at rows ``INGESTED`` (value = row), its own process."""
    times = [DAY1 + pd.Timedelta(seconds=i) for i in INGESTED]
    csv = folder / "c.csv"
    pd.DataFrame({"c": [float(i) for i in INGESTED]}, index=pd.DatetimeIndex(times)).to_csv(
        csv, index_label="time", date_format="%Y-%m-%dT%H:%M:%SZ"
    )
    exe = Path(sys.executable).parent / "stream0d"
    return subprocess.run(
        [str(exe), "ingest", "line", str(csv), "--unit", "c=1", "--no-progress"],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _post(url: str, token: str, col: str, stop: threading.Event) -> list[int]:
    """Append rows 0..N-1 of ``col`` (value = row) one per request; returns those answered
    200 (acknowledged)."""
    acked = []
    with httpx.Client(base_url=url, headers={"Authorization": f"token {token}"}) as http:
        for i in range(N):
            if stop.is_set():
                break
            t = (DAY1 + pd.Timedelta(seconds=i)).isoformat()
            r = http.post("datasets/line/append", json={"rows": [{"time": t, col: float(i)}]})
            if r.status_code != 200:
                break
            acked.append(i)
    return acked


class Reader:
    """Reads channels a, b and c through the workers in turn until stopped, recording any
    read that tears: a hole in a writer's rows, a wrong value, or fewer rows than before."""

    def __init__(self, urls: list[str], token: str) -> None:
        self.urls = urls
        self.token = token
        self.stop = threading.Event()
        self.torn: list[str] = []
        self.reads = 0
        self.seen = {"a": 0, "b": 0}
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        params = {
            "start": DAY1.isoformat(),
            "end": (DAY1 + pd.Timedelta(seconds=N)).isoformat(),
            "channels": "a,b,c",
        }
        clients = [
            httpx.Client(base_url=u, headers={"Authorization": f"token {self.token}"}, timeout=60)
            for u in self.urls
        ]
        try:
            while not self.stop.is_set():
                http = clients[self.reads % len(clients)]
                r = http.get("datasets/line/data", params=params)
                assert r.status_code == 200, r.text
                got = r.json()["channels"]
                for col in ("a", "b"):
                    self._check(col, got[col]["values"])
                c = [v for v in got["c"]["values"] if v is not None]
                if c and c != [float(i) for i in INGESTED]:  # the ingest is one commit
                    self.torn.append(f"c: {c}")
                self.reads += 1
        finally:
            for http in clients:
                http.close()

    def _check(self, col: str, values: list[float | None]) -> None:
        k = sum(v is not None for v in values)  # each writer appends in order: a prefix
        if values[:k] != [float(i) for i in range(k)] or k < self.seen[col]:
            self.torn.append(f"{col} (read {self.reads}, {self.seen[col]} seen): {values[: k + 2]}")
        self.seen[col] = max(self.seen[col], k)


@pytest.mark.slow
def test_two_api_workers_and_an_ingest_never_lose_or_tear(
    settings: Settings, tmp_path: Path
) -> None:
    with Store(settings) as st:
        st.create_dataset(
            DatasetSpec(
                id="line",
                interval="1s",
                partner="fersa",
                channels=[ChannelSpec(name=n, units="1") for n in "abc"],
            )
        )
        token = (
            AccessRegistry(st.registry)
            .issue_token("ana", level="write", expires_at=datetime.now(UTC) + timedelta(hours=1))
            .token
        )
    workers = [_server(settings, every=0.05) for _ in range(2)]  # both fold, by turns
    reader = Reader([url for _, url in workers], token)
    stop = threading.Event()
    acked: dict[str, list[int]] = {}
    writers = [
        threading.Thread(target=lambda c=col, u=url: acked.update({c: _post(u, token, c, stop)}))
        for col, (_, url) in zip("ab", workers, strict=True)
    ]
    try:
        reader.thread.start()
        for w in writers:
            w.start()
        with Store(settings) as st:  # the ingest once some rows are buffered, some folded
            deadline = time.monotonic() + 120
            while st.appends.tables.buffered_values("line") < 100:
                assert time.monotonic() < deadline, "the workers appended nothing"
                time.sleep(0.05)
        ingest = _ingest_c(settings, tmp_path)
        for w in writers:
            w.join(300)
        assert ingest.returncode == 0, ingest.stderr
    finally:
        stop.set()
        reader.stop.set()
        reader.thread.join(60)
        for proc, _ in workers:
            stop_process_group(proc, signal.SIGTERM)
    assert (len(acked["a"]), len(acked["b"])) == (N, N)
    assert not reader.torn, reader.torn[:3]
    assert reader.reads > 10
    with Store(settings) as st:
        folds = fold_commits(st)
        assert len(folds) > 1  # the workers folded during the appends
        ingests = [h for h in st.history("line") if h.metadata.get("action") == "ingest"]
        assert len(ingests) == 1
        got = st.read("line", ["c"], start=DAY1, end=DAY1 + pd.Timedelta(seconds=N)).c.values
        np.testing.assert_array_equal(np.flatnonzero(~np.isnan(got)), np.array(INGESTED))
    _check(settings, {"a": acked["a"], "b": acked["b"], "c": list(INGESTED)})
