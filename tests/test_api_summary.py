"""Dataset summaries (issue 12, point 1) over real HTTP with real API tokens.

``fersa-line`` holds 10 days of 1 s data ending 2 minutes before the test started: ``temp``
with a 10-minute gap in the last hour and its last 5 samples missing, ``p_in`` complete,
``stale`` only on the first day, ``empty`` never written. Every number of the summary is
checked against that frame; the chunks the summary reads are counted (at most the ones
overlapping the window plus the newest, never the 10 days).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from icechunk.store import IcechunkStore

from stream0d_nb.api import create_app
from stream0d_nb.api.deps import UserInfo, get_group_resolver
from stream0d_nb.client import Client, NotFoundError
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from tests.api_servers import UvicornThread, seed_partner_datasets

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
    "carl": UserInfo(frozenset(), False, WRITE),
}
DS, EMPTY, OTHER = "fersa-line", "fersa-new", "zf-oven"
DAY = 86_400
T_END = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta("120s")  # exclusive end of data
IDX = pd.date_range(end=T_END - pd.Timedelta("1s"), periods=10 * DAY, freq="1s").as_unit("ns")


def frame() -> pd.DataFrame:
    """What ``fersa-line`` holds (see the module docstring)."""
    n = len(IDX)
    df = pd.DataFrame(
        {
            "temp": 20 + np.arange(n) * 1e-3,
            "p_in": 5 + np.sin(np.arange(n) / 100.0),
            "stale": np.where(np.arange(n) < DAY, np.arange(n) % 7, np.nan),
        },
        index=IDX,
    )
    idx = df.index
    gap = (idx >= T_END - pd.Timedelta("30min")) & (idx < T_END - pd.Timedelta("20min"))
    df.loc[gap, "temp"] = np.nan
    df.iloc[-5:, 0] = np.nan
    return df


class Server:
    """Store, app under uvicorn, one token per user."""

    def __init__(self, home: Path) -> None:
        self.store = Store(Settings(home=home))
        seed_partner_datasets(self.store, {OTHER: "zf"})
        channels = [
            ChannelSpec(name="temp", units="degC"),
            ChannelSpec(name="p_in", units="bar"),
            ChannelSpec(name="stale", units="rpm"),
            ChannelSpec(name="empty"),
        ]
        for ds in (DS, EMPTY):
            self.store.create_dataset(
                DatasetSpec(id=ds, interval="1s", partner="fersa", channels=channels),
                actor="alice",
            )
        self.frame = frame()
        self.store.write(DS, self.frame, actor="alice", source="line.csv")
        access = AccessRegistry(self.store.registry)
        access.grant(DS, "user", "carl", "viewer", actor="admin")
        app = create_app(self.store)
        app.dependency_overrides[get_group_resolver] = lambda: lambda u: USERS.get(u, UserInfo())
        exp = datetime.now(UTC) + timedelta(days=1)
        self.tokens = {u: access.issue_token(u, level="read", expires_at=exp).token for u in USERS}
        self.uvicorn = UvicornThread(app)
        self.url = f"http://127.0.0.1:{self.uvicorn.port}"
        self.http = httpx.Client(base_url=self.url + "/api", timeout=60)

    def call(self, who: str, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"token {self.tokens[who]}"}
        return self.http.get(path, headers=headers, params=params)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("summary") / "home")
    yield s
    s.http.close()
    s.uvicorn.stop()


def expected(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """Per channel: (last value, last time, good samples in [start, end)) from the frame."""
    out: dict[str, Any] = {}
    inside = (df.index >= start) & (df.index < end)
    for name in ("temp", "p_in", "stale", "empty"):
        col = df[name].dropna() if name in df else pd.Series(dtype=float)
        last = (float(col.iloc[-1]), col.index[-1]) if len(col) else (None, None)
        good = int(df.loc[inside, name].notna().sum()) if name in df else 0
        out[name] = (*last, good)
    return out


def check(summary: dict[str, Any], df: pd.DataFrame) -> None:
    """Every channel's numbers equal what the frame says over the summary's own window."""
    now = pd.Timestamp(summary["now"])
    w0, w1 = pd.Timestamp(summary["window_start"]), pd.Timestamp(summary["window_end"])
    samples = int((w1 - w0) / pd.Timedelta("1s"))
    assert summary["samples"] == samples
    want = expected(df, w0, w1)
    units = {"temp": "degC", "p_in": "bar", "stale": "rpm", "empty": ""}
    assert [c["name"] for c in summary["channels"]] == list(units)
    for c in summary["channels"]:
        value, at, good = want[c["name"]]
        assert c["units"] == units[c["name"]]
        assert c["last_value"] == value, c
        assert (None if c["last_time"] is None else pd.Timestamp(c["last_time"])) == at
        if at is None:
            assert c["age_seconds"] is None
        else:
            assert c["age_seconds"] == pytest.approx((now - at).total_seconds(), abs=1e-6)
        assert c["good"] == good
        assert c["good_share"] == pytest.approx(good / samples, abs=1e-15)


def test_summary_pinned_window_exact(srv: Server) -> None:
    r = srv.call("alice", f"/datasets/{DS}/summary", window="1h", end=T_END.isoformat())
    assert r.status_code == 200, r.text
    s = r.json()
    check(s, srv.frame)
    by = {c["name"]: c for c in s["channels"]}
    # spelled out: 3600 samples; temp misses 600 (gap) + 5 (tail); stale and empty none
    assert s["samples"] == 3600
    assert [by[n]["good"] for n in ("temp", "p_in", "stale", "empty")] == [2995, 3600, 0, 0]
    assert by["temp"]["last_time"] == (T_END - pd.Timedelta("6s")).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by["stale"]["last_time"] == (IDX[DAY - 1]).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by["stale"]["last_value"] == float((DAY - 1) % 7)
    assert by["stale"]["age_seconds"] > 9 * DAY  # stale: its age shows it
    assert s["window"] == "1h" and pd.Timestamp(s["window_end"]) == T_END
    assert pd.Timestamp(s["end"]) == IDX[-1]
    head = srv.store.history(DS, limit=1)[0]
    assert s["snapshot"] == head.id
    assert s["last_commit"] == {
        "id": head.id,
        "written_at": head.written_at.isoformat().replace("+00:00", "Z"),
        "actor": "alice",
        "message": head.message,
    }
    assert "line.csv" in s["last_commit"]["message"]


def test_summary_window_ends_now_by_default(srv: Server) -> None:
    before = pd.Timestamp.now(tz="UTC")
    s = srv.call("alice", f"/datasets/{DS}/summary", window="15min").json()
    assert before <= pd.Timestamp(s["now"]) <= pd.Timestamp.now(tz="UTC")
    assert s["window_end"] == s["now"]
    check(s, srv.frame)
    # the last two minutes before now hold nothing: the share shows it
    assert {c["name"]: c["good"] for c in s["channels"]}["p_in"] < s["samples"]
    # a 1-day window crosses the chunk boundary of the last midnight
    check(srv.call("alice", f"/datasets/{DS}/summary", window="1d").json(), srv.frame)


def test_summary_reads_the_last_chunks_only(srv: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks fetched from storage: the newest of each channel (none for ``empty``), plus
    the one before when the window crosses midnight, out of 11 day chunks stored."""
    fetched: list[str] = []
    real = IcechunkStore.get

    async def counting(self: IcechunkStore, key: str, *args: Any, **kw: Any) -> Any:
        if "/c/" in key:
            fetched.append(key)
        return await real(self, key, *args, **kw)

    monkeypatch.setattr(IcechunkStore, "get", counting)
    r = srv.call("alice", f"/datasets/{DS}/summary", window="1h", end=T_END.isoformat())
    assert r.status_code == 200, r.text
    check(r.json(), srv.frame)
    per_channel = Counter(key.split("/c/")[0] for key in fetched)
    last = (T_END - pd.Timedelta("1s")).value // 10**9 // DAY
    crosses = (T_END - pd.Timedelta("1h")).value // 10**9 // DAY != last
    assert per_channel == {"temp": 1 + crosses, "p_in": 1 + crosses, "stale": 1}, fetched
    assert (
        f"temp/c/{last}" in fetched and f"stale/c/{IDX[DAY - 1].value // 10**9 // DAY}" in fetched
    )


def test_summary_of_a_dataset_without_data(srv: Server) -> None:
    s = srv.call("alice", f"/datasets/{EMPTY}/summary").json()
    assert s["end"] is None and s["samples"] == 3600 and s["window"] == "1h"
    assert all(
        (c["last_value"], c["last_time"], c["age_seconds"], c["good"], c["good_share"])
        == (None, None, None, 0, 0.0)
        for c in s["channels"]
    )
    assert s["last_commit"]["actor"] == "alice"
    assert s["last_commit"]["message"] == "set channels +temp, +p_in, +stale, +empty by alice"


def test_summary_seats(srv: Server) -> None:
    assert srv.call("carl", f"/datasets/{DS}/summary").status_code == 200  # viewer by grant
    hidden = srv.call("bob", f"/datasets/{DS}/summary")
    missing = srv.call("bob", "/datasets/fersa-nothing/summary")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == "no dataset 'fersa-line' in the registry"
    assert missing.json()["error"]["message"] == hidden.json()["error"]["message"].replace(
        "fersa-line", "fersa-nothing"
    )
    assert srv.call("bob", f"/datasets/{OTHER}/summary").status_code == 200
    assert srv.http.get(f"/datasets/{DS}/summary").status_code == 401


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": "soon"}, "window 'soon' is not a duration (try '1s', '5min', '1h', '1d')"),
        ({"window": "-1h"}, "window '-1h' must be positive"),
        (
            {"window": "47d"},
            "window '47d' spans 4,060,800 samples of 1s; at most 4,000,000 are summarised "
            "(choose a shorter window)",
        ),
        (
            {"end": "yesterday"},
            "end: 'yesterday' is not a time (use ISO 8601, e.g. 2024-01-31T12:00)",
        ),
    ],
)
def test_summary_bad_input_is_422(srv: Server, params: dict[str, str], message: str) -> None:
    r = srv.call("alice", f"/datasets/{DS}/summary", **params)
    assert (r.status_code, r.json()["error"]["message"]) == (422, message)


def test_client_summary(srv: Server) -> None:
    with Client(srv.url, srv.tokens["alice"]) as c:
        s = c.summary(DS, window="1h", end=T_END)
        over_http = srv.call("alice", f"/datasets/{DS}/summary", window="1h", end=T_END.isoformat())
        got, want = s.model_dump(mode="json"), over_http.json()
        for d in (got, want):  # the two calls ran at different times
            d.pop("now")
            for ch in d["channels"]:
                ch.pop("age_seconds")
        assert got == want
        by = {ch.name: ch for ch in s.channels}
        assert (by["temp"].good, by["p_in"].good_share) == (2995, 1.0)
        assert by["temp"].last_time == (T_END - pd.Timedelta("6s")).to_pydatetime()
        assert s.last_commit is not None and s.last_commit.actor == "alice"
        assert c.summary(EMPTY).end is None
    with Client(srv.url, srv.tokens["bob"]) as c, pytest.raises(NotFoundError):
        c.summary(DS)
