"""Retention with Icechunk's snapshot expiry and garbage collection, on local disk and
Azurite: recent commits kept, then each day's last, time travel to what is kept, and a
day of appends (folded now and then on top) back within twice the one-shot size."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream0d_nb.errors import SnapshotNotFoundError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from stream0d_nb.store.fold import Folder
from stream0d_nb.store.retention import RetentionPolicy, RetentionSchedule, apply_retention
from stream0d_nb.store.storage import location_bytes
from tests.test_store import make_settings

DAY = pd.Timestamp("2024-05-01T00:00:00Z")


def spec(ds: str) -> DatasetSpec:
    return DatasetSpec(
        id=ds,
        interval="1s",
        partner="p",
        channels=[ChannelSpec(name=c, units="1") for c in ("a", "b", "c", "d")],
    )


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azure)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings(request.param, tmp_path, request)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    st = Store(settings)
    yield st
    st.close()


def day_of_data(n: int = 86_400, seed: int = 0) -> pd.DataFrame:
    """Random walks with 3 decimals, as sensors give (compressible like real data)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.05, (n, 4)), axis=0).round(3) + 20
    return pd.DataFrame(walk, columns=list("abcd"), index=pd.date_range(DAY, periods=n, freq="1s"))


def size(store: Store, ds: str) -> int:
    return location_bytes(store.data(ds).loc, store.settings)


def test_recent_commits_then_each_days_last_and_time_travel(store: Store) -> None:
    store.create_dataset(spec("line"))
    commits = []
    for k in range(5):
        rep = store.write("line", pd.DataFrame({"a": [float(k)]}, index=[DAY]))
        commits.append(store.history("line", limit=1)[0])
        assert rep.commit == commits[-1].id
        time.sleep(1.1)  # Azurite dates objects to the second: keep the commits apart
    data = store.data("line")
    policy = RetentionPolicy(keep_all=timedelta(0), keep_daily=None, gc_margin=timedelta(0))
    res = apply_retention(data, policy, now=commits[3].written_at)  # keeps 3 and 4 as they are
    assert res.tagged == [] and res.expired >= 3 and res.deleted_objects > 0  # the day goes on
    kept = [c.id for c in store.history("line")]
    assert kept[:2] == [commits[4].id, commits[3].id] and commits[2].id not in kept
    assert store.read("line", ["a"], as_of=commits[3].id).a.values.tolist() == [3.0]
    with pytest.raises(SnapshotNotFoundError):  # before the oldest kept commit
        store.read("line", ["a"], as_of=commits[2].written_at)
    again = apply_retention(data, policy, now=commits[3].written_at)  # nothing more to do
    assert again.tagged == [] and again.expired == 0 and again.deleted_objects == 0
    later = commits[4].written_at + timedelta(days=2)  # the day is over: its last is kept
    res = apply_retention(data, policy, now=later)
    today = commits[4].written_at.date().isoformat()
    assert res.tagged == [f"daily-{today}"] and commits[3].id not in store.history("line")
    assert store.history("line")[0].id == commits[4].id
    when = commits[4].written_at + timedelta(hours=1)
    assert store.read("line", ["a"], as_of=when).a.values.tolist() == [4.0]
    shorter = RetentionPolicy(timedelta(0), keep_daily=timedelta(days=1), gc_margin=timedelta(0))
    assert apply_retention(data, shorter, now=later).untagged == [f"daily-{today}"]
    assert store.read("line", ["a"]).a.values.tolist() == [4.0]  # the head always stays


def test_a_day_of_appends_stays_within_twice_the_one_shot_size(store: Store) -> None:
    data = day_of_data()
    store.create_dataset(spec("once"))
    store.write("once", data)
    store.create_dataset(spec("live"))
    folder = Folder(store)
    for k in range(0, len(data), 600):  # 144 appends of 10 minutes
        store.append("live", data.iloc[k : k + 600])
        if k % 7200 == 0 and k:  # every 2 h the gateway pauses: its rows are folded
            store.fold("live")
        if k % 6000 == 0:
            folder.run_once(now=(DAY + pd.Timedelta(seconds=k)).to_pydatetime())
    tomorrow = data.iloc[:120].set_axis(data.index[:120] + pd.Timedelta("1D"))
    store.append("live", tomorrow)  # the day is complete: the folder folds it
    folder.run_once(now=(DAY + pd.Timedelta("1D")).to_pydatetime())
    assert store.appends.tables.buffered_values("live") == 120 * 4
    store.fold("live")
    got = store.read("live", None, DAY, DAY + pd.Timedelta("1D"))
    np.testing.assert_array_equal(got.to_dataframe()[list("abcd")].to_numpy(), data.to_numpy())
    before = size(store, "live")
    policy = RetentionPolicy(keep_all=timedelta(0), keep_daily=None, gc_margin=timedelta(0))
    # Azurite dates objects to the second: a little ahead, the last fold's objects are old
    res = apply_retention(store.data("live"), policy, now=datetime.now(UTC) + timedelta(seconds=2))
    after, once = size(store, "live"), size(store, "once")
    assert res.deleted_bytes > 0 and after < before
    assert after <= 2 * once * (1 + 120 / 86_400) + 64_000, (before, after, once)
    np.testing.assert_array_equal(
        store.read("live", None, DAY, DAY + pd.Timedelta("1D")).to_dataframe().to_numpy(),
        got.to_dataframe().to_numpy(),
    )


def test_retention_runs_from_the_folder_on_its_schedule(store: Store) -> None:
    store.create_dataset(spec("line"))
    store.write("line", pd.DataFrame({"a": [1.0]}, index=[DAY]))
    schedule = RetentionSchedule(RetentionPolicy(keep_all=timedelta(days=1)), every=timedelta(0))
    assert [r.dataset for r in Folder(store, after_pass=schedule).run_once() or schedule(store)]
    late = RetentionSchedule(every=timedelta(hours=1))
    assert late(store) == []  # the first run waits for its interval
