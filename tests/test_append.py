"""Appends through the API (real server over HTTP, real tokens) and the store (local disk
and Azurite): durable buffered rows, visible to every read at once, idempotent re-sends,
last write wins, permissions like ingest, alerts on appended rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import NotFoundError, PermissionDeniedError, RequestValidationError
from stream0d_nb.errors import ValidationError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec, IngestOptions
from stream0d_nb.store import Store
from tests.api_servers import IDX, ApiOverHttp, N, seed_partner_datasets
from tests.test_store import make_settings

DS, OTHER = "fersa-press", "zf-oven"
WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "ana": UserInfo(frozenset({"fersa"}), False, WRITE),
    "zoe": UserInfo(frozenset({"zf"}), False, WRITE),
}
END = IDX[-1] + pd.Timedelta(seconds=1)  # the first time after the seeded rows


def at(seconds: int) -> pd.Timestamp:
    """The time ``seconds`` after the seeded rows end."""
    return END + pd.Timedelta(seconds=seconds)


def iso(seconds: int) -> str:
    return at(seconds).isoformat()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiOverHttp]:
    store = Store(Settings(home=tmp_path / "home"))
    seed_partner_datasets(store, {DS: "fersa", OTHER: "zf"})
    srv = ApiOverHttp(store, USERS)
    try:
        yield srv
    finally:
        srv.stop()
        store.close()


def test_json_rows_are_readable_at_once_without_a_commit(server: ApiOverHttp) -> None:
    ana = server.client("ana")
    commits = len(ana.history(DS))
    rep = ana.append(DS, [{"time": iso(s), "temp": 70.0 + s, "p_in": 5.0} for s in range(3)])
    assert (rep.rows, rep.values, rep.values_new, rep.values_unchanged) == (3, 6, 6, 0)
    assert rep.start == at(0) and rep.end == at(2) and rep.channels == ["temp", "p_in"]
    ds = ana.read(DS, ["temp", "p_in"], start=IDX[-2], end=at(3))
    assert ds.temp.values[2:].tolist() == [70.0, 71.0, 72.0]
    assert ds.p_in.values[2:].tolist() == [5.0] * 3
    assert len(ana.history(DS)) == commits  # buffered: no commit per append


def test_arrow_frames_resend_and_last_write_wins(server: ApiOverHttp) -> None:
    ana = server.client("ana")
    rows = pd.DataFrame({"temp": [1.0, 2.0, np.nan]}, index=[at(0), at(1), at(2)])
    first = ana.append(DS, rows)
    assert (first.values, first.values_new) == (2, 2) and first.sequence is not None
    again = ana.append(DS, rows)  # a gateway retrying: nothing new, nothing stored
    assert (again.values_new, again.values_unchanged, again.sequence) == (0, 2, None)
    fix = ana.append(DS, pd.DataFrame({"temp": [2.5, 3.0]}, index=[at(1), at(2)]))
    assert (fix.values_new, fix.values_unchanged) == (2, 0)
    ds = ana.read(DS, ["temp"], start=at(0), end=at(3))
    assert ds.temp.values.tolist() == [1.0, 2.5, 3.0]  # the later value wins; NaN never erases


def test_columns_json_and_naive_times_in_the_dataset_zone(server: ApiOverHttp) -> None:
    r = server.call(
        "ana",
        "POST",
        f"datasets/{DS}/append",
        json={"time": [at(0).tz_localize(None).isoformat()], "channels": {"temp": [9.0]}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["start"].startswith(at(0).isoformat()[:19])  # the dataset's zone is UTC


def test_permissions_are_those_of_ingest(server: ApiOverHttp) -> None:
    rows = [{"time": iso(0), "temp": 1.0}]
    with pytest.raises(NotFoundError) as hidden:  # another partner's: like a missing one
        server.client("zoe").append(DS, rows)
    with pytest.raises(NotFoundError) as missing:
        server.client("zoe").append("no-such-dataset", rows)
    assert str(hidden.value).replace(DS, "X") == str(missing.value).replace("no-such-dataset", "X")
    server.tokens["reader"] = server.token("ana", "read")
    with pytest.raises(PermissionDeniedError):
        server.client("reader").append(DS, rows)
    r = server.http.post(f"datasets/{DS}/append", json={"rows": rows})
    assert r.status_code == 401
    assert np.isnan(server.client("ana").read(DS, ["temp"], start=at(0), end=at(1)).temp[0])


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"rows": [{"time": iso(0), "nope": 1.0}]}, "no channel 'nope'"),
        ({"rows": [{"time": iso(0) + "x", "temp": 1.0}]}, "ISO 8601"),
        ({"rows": [{"temp": 1.0}]}, "'time'"),
        ({"rows": [{"time": (at(0) + pd.Timedelta("300ms")).isoformat(), "temp": 1.0}]}, "grid"),
        ({"rows": [{"time": iso(0), "temp": 1.0}, {"time": iso(0), "temp": 2.0}]}, "twice"),
        ({"rows": [{"time": iso(0), "temp": "hot"}]}, "numbers"),
        ({"time": [iso(0)], "channels": {"temp": [1.0, 2.0]}}, "2 values for 1 times"),
        ({"rows": [], "time": []}, "either"),
        ({"rows": [{"time": "1960-01-01T00:00:00Z", "temp": 1.0}]}, "1970"),
    ],
)
def test_bad_appends_are_422_and_store_nothing(
    server: ApiOverHttp, body: dict[str, object], needle: str
) -> None:
    r = server.call("ana", "POST", f"datasets/{DS}/append", json=body)
    assert r.status_code == 422 and needle in r.text, r.text
    assert server.store.appends.tables.buffered_values(DS) == 0


def test_off_grid_nearest_and_other_content_types(server: ApiOverHttp) -> None:
    ana = server.client("ana")
    off = pd.DataFrame({"temp": [4.0]}, index=[at(0) + pd.Timedelta("300ms")])
    with pytest.raises(RequestValidationError):
        ana.append(DS, off)
    assert ana.append(DS, off, off_grid="nearest").values_snapped == 1
    assert ana.read(DS, ["temp"], start=at(0), end=at(1)).temp.values.tolist() == [4.0]
    headers = {"Authorization": f"token {server.tokens['ana']}", "Content-Type": "text/csv"}
    r = server.http.post(f"datasets/{DS}/append", content=b"a,b", headers=headers)
    assert r.status_code == 422 and "JSON or" in r.text


def test_every_kind_of_read_sees_buffered_rows(server: ApiOverHttp) -> None:
    ana = server.client("ana")
    ana.add_formula(DS, FormulaSpec(name="hot", formula="p_in * 2", units="bar"))
    ana.append(DS, pd.DataFrame({"temp": [100.0, 102.0], "p_in": [1.0, 2.0]}, index=[at(0), at(1)]))
    agg = ana.read(DS, ["temp"], start=at(0), end=at(2), every="2s", how="mean")
    assert agg.temp.values.tolist() == [101.0]
    plot = ana.read(DS, ["temp"], start=IDX[0], end=at(2), points=10)
    assert 102.0 in plot.temp.values.tolist()
    derived = ana.read(DS, ["hot"], start=at(0), end=at(2))
    assert derived.hot.values.tolist() == [2.0, 4.0]
    whole = ana.read(DS, ["temp"])  # no range: everything, buffered rows included
    assert whole.temp.values[-1] == 102.0 and whole.sizes["time"] == N + 2
    summary = ana.summary(DS, window="1h", end=at(2))
    temp = next(c for c in summary.channels if c.name == "temp")
    assert temp.last_value == 102.0 and temp.good == N + 2


def test_alert_rule_fires_on_appended_rows(server: ApiOverHttp) -> None:
    ana = server.client("ana")
    ana.add_alert_rule(
        DS, {"name": "hot", "kind": "threshold", "channels": ["temp"], "op": ">", "value": 90}
    )
    ana.append(DS, [{"time": iso(s), "temp": 95.0} for s in range(3)])
    deadline = time.monotonic() + 30  # no timed assert: the bench measures the delay
    while not [e for e in ana.alert_events(DS, rule="hot") if e.to_state == "firing"]:
        assert time.monotonic() < deadline, "no alert after the append"
        time.sleep(0.05)


# ---- the store itself, on local disk and on Azurite ------------------------------------------
@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azure)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    st = Store(make_settings(request.param, tmp_path, request))
    st.create_dataset(
        DatasetSpec(
            id="line",
            interval="1s",
            partner="p",
            channels=[ChannelSpec(name="a", units="1"), ChannelSpec(name="b", units="1")],
        )
    )
    yield st
    st.close()


def test_store_append_is_read_by_other_store_objects(store: Store) -> None:
    t0 = pd.Timestamp("2024-05-01", tz="UTC")
    store.write("line", pd.DataFrame({"a": [1.0, 2.0]}, index=[t0, t0 + pd.Timedelta("1s")]))
    head = store.data("line").head()
    rep = store.append(
        "line", pd.DataFrame({"a": [3.0], "b": [4.0]}, index=[t0 + pd.Timedelta("2s")])
    )
    assert rep.values_new == 2 and store.data("line").head() == head
    other = Store(store.settings)  # another process's view: the registry is shared
    try:
        ds = other.read("line")
        assert ds.a.values.tolist() == [1.0, 2.0, 3.0]
        assert np.isnan(ds.b.values[:2]).all() and ds.b.values[2] == 4.0
        committed = other.read("line", as_of=head)  # a commit: without the buffered rows
        assert committed.sizes["time"] == 2
        other.append("line", pd.DataFrame({"a": [5.0]}, index=[t0 + pd.Timedelta("3s")]))
        assert store.read("line").a.values.tolist() == [1.0, 2.0, 3.0, 5.0]
    finally:
        other.close()


def test_store_append_checks_before_storing(store: Store) -> None:
    t0 = pd.Timestamp("2024-05-01", tz="UTC")
    with pytest.raises(ValidationError, match="no channel 'zz'"):
        store.append("line", pd.DataFrame({"zz": [1.0]}, index=[t0]))
    with pytest.raises(ValidationError, match="finite"):
        store.append("line", pd.DataFrame({"a": [np.inf]}, index=[t0]))
    store.set_channels("line", [ChannelSpec(name="zz", units="1")])  # known at once
    assert store.append("line", pd.DataFrame({"zz": [1.0]}, index=[t0])).values_new == 1


def test_store_append_file_goes_through_the_buffer(store: Store, tmp_path: Path) -> None:
    csv = tmp_path / "push.csv"
    csv.write_text("time,a,b\n2024-05-01T00:00:00Z,1.5,2\n2024-05-01T00:00:01Z,2.5,\n")
    commits = len(store.history("line"))
    rep = store.append_file("line", csv)
    assert (rep.rows, rep.values, rep.values_new) == (2, 3, 3)
    assert len(store.history("line")) == commits
    ds = store.read("line", start="2024-05-01", end="2024-05-01T00:00:02Z")
    assert ds.a.values.tolist() == [1.5, 2.5] and ds.b.values[0] == 2.0
    assert store.append_file("line", csv).values_unchanged == 3
    with pytest.raises(ValidationError, match="not for appends"):
        store.append_file("line", csv, IngestOptions(off_grid="mean"))


def test_appends_at_once_all_commit_and_a_bad_one_fails_alone(store: Store) -> None:
    """Appends of many threads at once (group commits): each is stored and acknowledged;
    in one group, an append to a dataset another process deleted fails alone."""
    from stream0d_nb.errors import DatasetNotFoundError
    from stream0d_nb.store.buffer import _Append, prepare
    from tests.races import at_once

    t0 = pd.Timestamp("2024-05-01", tz="UTC")

    def push(i: int) -> int:
        rows = pd.DataFrame({"a": [float(i)]}, index=[t0 + pd.Timedelta(seconds=i)])
        rep = store.append("line", rows)
        assert rep.values_new == 1 and rep.sequence is not None
        return rep.sequence

    seqs = at_once(16, push)
    assert sorted(seqs) == sorted(set(seqs))  # one segment each, numbered apart
    got = store.read("line", ["a"], start=t0, end=t0 + pd.Timedelta(seconds=16)).a.values
    assert got.tolist() == [float(i) for i in range(16)]
    # a group holding an append to a dataset deleted by another process
    spec = DatasetSpec(id="gone", interval="1s", partner="p", channels=[ChannelSpec(name="a")])
    store.create_dataset(spec)
    store.append("gone", pd.DataFrame({"a": [1.0]}, index=[t0]))  # known to this process
    with Store(store.settings) as other:
        other.delete_dataset("gone", confirm="gone")
    grid = store.data("line").committed().grid
    rows = pd.DataFrame({"a": [99.0]}, index=[t0 + pd.Timedelta(seconds=20)])
    group = [_Append(ds, grid, prepare(grid, rows, ["a"]), "ana", 0.0) for ds in ("gone", "line")]
    store.appends._store(group)
    assert isinstance(group[0].error, DatasetNotFoundError) and group[0].report is None
    assert group[1].error is None and group[1].report is not None
    assert group[1].report.values_new == 1 and all(item.done for item in group)
    end = t0 + pd.Timedelta(seconds=21)
    assert store.read("line", ["a"], start=t0, end=end).a.values[-1] == 99.0
