"""Folds of appended rows into Zarr chunks, on local disk and Azurite: one commit per fold
of complete chunks, idempotent after a crash, compaction, ingests landing on top, derived
channels and alert rules alike on buffered and folded rows, and real crashes (``kill -9``
of an appending store process, of the API server, of a fold) compared with what was
acknowledged; two writers and a folder with a reader that must never see a torn state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from stream0d_nb import derived
from stream0d_nb.alerts.notify import RetryPolicy
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.db.buffer_tables import AppendStateRow, BufferTables
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec
from stream0d_nb.store import Store
from stream0d_nb.store.fold import Folder, FoldPolicy, compact, fold
from tests.servers import free_port, port_open, stop_process_group
from tests.test_store import make_settings

ROOT = Path(__file__).resolve().parents[1]
DAY1 = pd.Timestamp("2024-05-01T23:58:00Z")  # two minutes before a chunk (day) ends


def spec(ds: str = "line") -> DatasetSpec:
    return DatasetSpec(
        id=ds,
        interval="1s",
        partner="fersa",
        channels=[ChannelSpec(name="a", units="1"), ChannelSpec(name="b", units="1")],
    )


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azure)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings(request.param, tmp_path, request)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    st = Store(settings)
    st.create_dataset(spec())
    yield st
    st.close()


def rows(start: pd.Timestamp, n: int, base: float = 0.0, col: str = "a") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq="1s")
    return pd.DataFrame({col: base + np.arange(n, dtype=float)}, index=idx)


def values(store: Store, col: str = "a", start: object = DAY1, n: int = 600) -> np.ndarray:
    end = pd.Timestamp(start) + pd.Timedelta(seconds=n)
    return store.read("line", [col], start=start, end=end)[col].values


def fold_commits(store: Store) -> list[dict[str, Any]]:
    return [h.metadata for h in store.history("line") if h.metadata.get("action") == "fold"]


# ---- folding --------------------------------------------------------------------------------
def test_complete_chunks_fold_once_and_reads_never_change(store: Store) -> None:
    for k in range(0, 150, 50):  # 2 minutes of the first day, 30 s of the next
        store.append("line", rows(DAY1 + pd.Timedelta(seconds=k), 50, base=k))
    before = values(store)
    early = fold(store, "line", now=datetime(2024, 5, 1, tzinfo=UTC))
    assert early.chunks == [] and fold_commits(store) == []  # late rows awaited a minute
    res = fold(store, "line", policy=FoldPolicy(grace=timedelta(seconds=30)), now=DAY1)
    assert len(res.chunks) == 1 and res.values == 120 and res.snapshot is not None
    np.testing.assert_array_equal(values(store), before)  # same answer, half from Zarr now
    (meta,) = fold_commits(store)
    assert meta["values_written"] == 120 and list(meta["appends"].values()) == [3]
    audit = store.registry.audit_log("line", action="append.fold")
    assert audit[0].detail["snapshot"] == res.snapshot and audit[0].detail["values"] == 120
    committed = store.read("line", ["a"], as_of=res.snapshot)  # the fold's commit alone
    assert committed.sizes["time"] == 120 and committed.a.values[-1] == 119.0
    rest = fold(store, "line", everything=True)  # what is left: the second day's rows
    assert rest.values == 30 and store.appends.tables.buffered_values("line") == 0
    np.testing.assert_array_equal(values(store), before)
    assert fold(store, "line", everything=True).chunks == []  # nothing left: no commit
    assert len(fold_commits(store)) == 2


def test_a_fold_that_died_before_deleting_is_redone_without_change(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append("line", rows(DAY1, 30))
    real = BufferTables.finish_fold

    def crash(*args: Any, **kw: Any) -> int:
        raise RuntimeError("killed between the commit and the delete")

    monkeypatch.setattr(BufferTables, "finish_fold", crash)
    with pytest.raises(RuntimeError):
        store.fold("line")
    assert len(fold_commits(store)) == 1 and store.appends.tables.buffered_values("line") == 30
    monkeypatch.setattr(BufferTables, "finish_fold", real)
    again = store.fold("line")
    assert again.snapshot is None and again.values == 30 and again.values_written == 0
    assert len(fold_commits(store)) == 1 and store.appends.tables.buffered_values("line") == 0
    np.testing.assert_array_equal(values(store, n=30), np.arange(30.0))


def test_compaction_merges_levels_and_keeps_last_write_wins(store: Store) -> None:
    other = Store(store.settings)  # another process, its view loaded before compaction
    try:
        for i in range(20):
            store.append("line", rows(DAY1 + pd.Timedelta(seconds=i), 1, base=i))
        store.append("line", rows(DAY1 + pd.Timedelta(seconds=5), 1, base=500.0))  # a fix
        assert values(other, n=20)[5] == 500.0
        policy = FoldPolicy(compact_at=4)
        assert compact(store, "line", policy) == 1  # 21 segments of level 0: one of level 1
        _, _, plan = store.appends.tables.plan("line")
        assert (plan[0].segments, plan[0].values, plan[0].levels) == (1, 20, {1: 1})
        store.append("line", rows(DAY1 + pd.Timedelta(seconds=20), 1, base=20.0))
        expected = np.r_[np.arange(20.0), 20.0]
        expected[5] = 500.0
        for st in (store, other, Store(store.settings)):
            np.testing.assert_array_equal(values(st, n=21), expected)
    finally:
        other.close()


def test_writes_land_on_top_of_buffered_appends(store: Store) -> None:
    store.append("line", rows(DAY1, 10, base=1.0))
    rep = store.write("line", rows(DAY1 + pd.Timedelta(seconds=5), 2, base=100.0))
    assert rep.commit is not None
    np.testing.assert_array_equal(
        values(store, n=10), [1.0, 2.0, 3.0, 4.0, 5.0, 100.0, 101.0, 8.0, 9.0, 10.0]
    )
    actions = [h.metadata.get("action") for h in store.history("line", limit=2)]
    assert actions == ["ingest", "fold"]  # the appends first, the ingest on top
    store.append("line", rows(DAY1, 1, base=7.0, col="b"))
    store.delete_channel("line", "b", confirm="b")
    store.set_channels("line", [ChannelSpec(name="b", units="1")])
    assert np.isnan(values(store, col="b", n=1)).all()  # a re-created channel starts empty


def _twin_stores(settings: Settings) -> Store:
    st = Store(settings)
    for ds in ("buf", "fold"):
        st.create_dataset(spec(ds))
        st.registry.save_formula(ds, FormulaSpec(name="twice", formula="a * 2"), "t")
        derived.save_formula(st, ds, FormulaSpec(name="kept", formula="a + b", materialize=True))
    st.add_write_hook(derived.materialize_after_write)
    return st


def test_derived_channels_and_rules_alike_on_buffered_and_folded_rows(settings: Settings) -> None:
    st = _twin_stores(settings)
    try:
        t0 = pd.Timestamp("2024-05-01T10:00:00Z")
        data = pd.DataFrame(
            {"a": np.r_[np.arange(50.0), np.full(20, np.nan), 80 + np.arange(30.0)]},
            index=pd.date_range(t0, periods=100, freq="1s"),
        )
        data["b"] = 1.0
        for ds in ("buf", "fold"):
            for k in range(0, 100, 10):
                st.append(ds, data.iloc[k : k + 10], run_hooks=False)
        st.fold("fold")
        assert st.appends.tables.buffered_values("buf") == 180
        assert st.appends.tables.buffered_values("fold") == 0
        reads = {
            ds: st.read(ds, None, t0, t0 + pd.Timedelta(seconds=100)) for ds in ("buf", "fold")
        }
        names = ["twice", "kept"]
        got = {ds: derived.read(st, ds, names, t0, t0 + pd.Timedelta("100s")) for ds in reads}
        for n in names:
            np.testing.assert_array_equal(got["buf"][n].values, got["fold"][n].values)
        assert got["buf"]["kept"].values[0] == 1.0 and np.isnan(got["buf"]["kept"].values[60])
        events = {}
        for ds in ("buf", "fold"):
            clock = (t0 + pd.Timedelta(minutes=5)).timestamp()
            svc = AlertService(
                st, retry=RetryPolicy(attempts=1, base_delay=0.0), clock=lambda now=clock: now
            )
            svc.add_rule(ds, AlertRule(name="quiet", kind="no_data", channels=["a"], window="10s"))
            svc.add_rule(
                ds, AlertRule(name="high", kind="threshold", channels=["a"], op=">", value=90)
            )
            svc.run(ds, notify=False)
            events[ds] = sorted((e.rule, e.at, e.to_state) for e in svc.table.events(ds, limit=100))
        assert events["buf"] == events["fold"]
        assert {(r, s) for r, _, s in events["buf"]} >= {("quiet", "firing"), ("high", "firing")}
    finally:
        st.close()


# ---- real crashes ---------------------------------------------------------------------------
APPENDER = textwrap.dedent("""
    import json, sys
    import pandas as pd
    from stream0d_nb.settings import Settings
    from stream0d_nb.store import Store
    cfg, col, start, n = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    st = Store(Settings(**cfg))
    t0 = pd.Timestamp("2024-05-01T23:58:00Z")
    for i in range(start, start + n):
        st.append("line", pd.DataFrame({col: [float(i)]}, index=[t0 + pd.Timedelta(seconds=i)]))
        print(i, flush=True)
""")


def _cfg(settings: Settings) -> str:
    return settings.model_dump_json(exclude_none=True)


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _acks(proc: subprocess.Popen[str], until: int, kill: bool = True) -> list[int]:
    """Lines ``proc`` printed (acknowledged rows) until ``until`` of them, then kill -9."""
    assert proc.stdout is not None
    acked = []
    for line in proc.stdout:
        acked.append(int(line))
        if kill and len(acked) >= until:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    return acked


def _check(settings: Settings, acked: dict[str, list[int]]) -> None:
    """Every acknowledged row holds its value (a fresh store, as after a restart); rows
    that were not acknowledged may be there, with their value, or not."""
    fresh = Store(settings)
    try:
        for col, ids in acked.items():
            got = values(fresh, col, n=1000)
            assert ids and got[ids].tolist() == [float(i) for i in ids], col
            present = np.flatnonzero(~np.isnan(got))
            assert (got[present] == present).all()  # nothing else, nothing moved
        _lease_runs_out(fresh)  # a killed folder's lease
        res = fold(fresh, "line", everything=True)
        assert fresh.appends.tables.buffered_values("line") == 0, res
        for col, ids in acked.items():
            assert values(fresh, col, n=1000)[ids].tolist() == [float(i) for i in ids]
    finally:
        fresh.close()


@pytest.mark.slow
def test_kill_9_of_an_appending_process_keeps_every_acknowledged_row(
    store: Store, settings: Settings
) -> None:
    proc = _spawn(APPENDER, _cfg(settings), "a", "0", "400")
    acked = _acks(proc, 60)
    assert len(acked) == 60
    # the killed process held no lock: another one appends and folds right away
    more = _acks(_spawn(APPENDER, _cfg(settings), "b", "0", "150"), 0, kill=False)
    assert len(more) == 150
    _check(settings, {"a": acked, "b": more})


SERVER = textwrap.dedent("""
    import json, sys
    import uvicorn
    from stream0d_nb.api import ApiSettings, create_app
    from stream0d_nb.api.deps import UserInfo, get_group_resolver
    from stream0d_nb.settings import Settings
    from stream0d_nb.store import Store
    cfg, port, every = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    app = create_app(Store(Settings(**cfg)), ApiSettings(fold_seconds=every))
    info = UserInfo(frozenset({"fersa"}), False, frozenset({"custom:stream0d:write"}))
    app.dependency_overrides[get_group_resolver] = lambda: (lambda user: info)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
""")


def _server(settings: Settings, every: float) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = _spawn(SERVER, _cfg(settings), str(port), str(every))
    deadline = time.monotonic() + 60
    while not port_open(port):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/api"


def _post_rows(url: str, token: str, first: int, n: int, stop: threading.Event) -> list[int]:
    """Append rows ``first..`` one per request; the ones answered 200 are acknowledged."""
    acked = []
    with httpx.Client(base_url=url, headers={"Authorization": f"token {token}"}) as http:
        for i in range(first, first + n):
            if stop.is_set():
                break
            t = (DAY1 + pd.Timedelta(seconds=i)).isoformat()
            try:
                r = http.post("datasets/line/append", json={"rows": [{"time": t, "a": float(i)}]})
            except httpx.HTTPError:
                break
            if r.status_code != 200:
                break
            acked.append(i)
    return acked


@pytest.mark.slow
def test_kill_9_of_the_api_server_during_appends_and_folds(
    store: Store, settings: Settings
) -> None:
    token = AccessRegistry(store.registry).issue_token(
        "ana", level="write", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    proc, url = _server(settings, every=0.05)  # folds the first day once rows pass midnight
    stop = threading.Event()
    box: dict[str, list[int]] = {}
    worker = threading.Thread(
        target=lambda: box.update(a=_post_rows(url, token.token, 0, 400, stop))
    )
    worker.start()
    deadline = time.monotonic() + 120
    while store.appends.tables.state("line") is None or not fold_commits(store):
        assert time.monotonic() < deadline and worker.is_alive(), "no fold happened"
        time.sleep(0.02)
    time.sleep(0.3)
    stop_process_group(proc, signal.SIGKILL)
    stop.set()
    worker.join(60)
    first = box["a"]
    assert len(first) > 180  # past midnight plus the grace: a fold ran before the kill
    proc, url = _server(settings, every=0.05)  # restart: the next acks continue the series
    try:
        more = _post_rows(url, token.token, first[-1] + 1, 30, threading.Event())
        assert len(more) == 30
    finally:
        stop_process_group(proc, signal.SIGTERM)
    _check(settings, {"a": first + more})


FOLDER = textwrap.dedent("""
    import json, sys, time
    from stream0d_nb.settings import Settings
    from stream0d_nb.store import Store
    from stream0d_nb.store import repo
    from stream0d_nb.db.buffer_tables import BufferTables
    cfg, where = json.loads(sys.argv[1]), sys.argv[2]
    if where == "write":
        real = repo.WriteView.write_many
        def slow(self, start, columns):
            real(self, start, columns)
            print("wrote", flush=True)
            time.sleep(60)
        repo.WriteView.write_many = slow
    else:
        def stuck(self, *args, **kw):
            print("committed", flush=True)
            time.sleep(60)
        BufferTables.finish_fold = stuck
    Store(Settings(**cfg)).fold("line")
""")


def _lease_runs_out(store: Store) -> None:
    """What waiting ``FoldPolicy.lease`` after a folder died does."""
    with store.registry.write_session() as s:
        s.execute(
            update(AppendStateRow).values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )


@pytest.mark.slow
def test_kill_9_during_a_fold(store: Store, settings: Settings) -> None:
    store.append("line", rows(DAY1, 200))
    store.append("line", rows(DAY1, 100, base=0.0, col="b"))
    head = store.data("line").head()
    for where, said in (("write", "wrote"), ("commit", "committed")):
        proc = _spawn(FOLDER, _cfg(settings), where)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == said, proc.stderr.read() if proc.stderr else ""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _lease_runs_out(store)
        fresh = Store(settings)
        try:
            if where == "write":  # killed before its commit: nothing stored, all buffered
                assert fresh.data("line").head() == head
            else:  # killed after its commit, before deleting: in both, read once
                assert len(fold_commits(fresh)) == 1
            assert fresh.appends.tables.buffered_values("line") == 300
            np.testing.assert_array_equal(values(fresh, n=200), np.arange(200.0))
        finally:
            fresh.close()
    # the dead folder's lease ran out: the next fold writes nothing new and empties it
    res = fold(store, "line", everything=True, wait=0)
    assert res.values == 300 and res.values_written == 0 and res.snapshot is None
    assert len(fold_commits(store)) == 1 and store.appends.tables.buffered_values("line") == 0
    np.testing.assert_array_equal(values(store, "b", n=100), np.arange(100.0))


@pytest.mark.slow
def test_two_writers_a_folder_and_reads_that_never_tear(store: Store, settings: Settings) -> None:
    writers = [_spawn(APPENDER, _cfg(settings), col, "0", "150") for col in ("a", "b")]
    folder = Folder(store, policy=FoldPolicy(grace=timedelta(0), compact_at=4))
    torn: list[str] = []
    reads = 0
    busy = True

    def fold_often() -> None:
        while busy:
            for ds in store.appends.tables.datasets():
                fold(store, ds, everything=True)
            folder.run_once()

    def check(got: np.ndarray, col: str) -> None:
        present = ~np.isnan(got)
        k = int(present.sum())  # each writer appends in order: a prefix, never a hole
        if not present[:k].all() or (got[:k] != np.arange(k)).any():
            torn.append(f"{col}: {got[: k + 2]}")

    folding = threading.Thread(target=fold_often)
    folding.start()
    try:
        while any(w.poll() is None for w in writers):
            ds = store.read("line", ["a", "b"], start=DAY1, end=DAY1 + pd.Timedelta("200s"))
            check(ds.a.values, "a")
            check(ds.b.values, "b")
            reads += 1
    finally:
        busy = False
        folding.join(120)
    acked = {c: _acks(w, 0, kill=False) for c, w in zip("ab", writers, strict=True)}
    assert not torn, torn[:3]
    assert reads > 5 and len(fold_commits(store)) > 1
    _check(settings, acked)


def test_the_api_folds_in_the_background(settings: Settings) -> None:
    from stream0d_nb.api import ApiSettings
    from stream0d_nb.api.deps import UserInfo
    from tests.api_servers import ApiOverHttp

    st = Store(settings)
    st.create_dataset(spec())
    users = {"ana": UserInfo(frozenset({"fersa"}), False, frozenset({"custom:stream0d:write"}))}
    srv = ApiOverHttp(st, users, settings=ApiSettings(fold_seconds=0.05))
    try:
        ana = srv.client("ana")
        ana.append("line", rows(DAY1, 200))  # crosses midnight by more than the grace
        deadline = time.monotonic() + 60
        while not fold_commits(st):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        np.testing.assert_array_equal(
            ana.read("line", ["a"], DAY1, DAY1 + pd.Timedelta("200s")).a.values, np.arange(200.0)
        )
        assert json.dumps(ana.history("line")[0].metadata["appends"]).startswith('{"ana via token:')
    finally:
        srv.stop()
        st.close()
