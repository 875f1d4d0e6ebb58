"""Plot-sized reads (``GET .../data?points=N``, issue 12 point 2) over real HTTP.

The app runs under uvicorn on a free 127.0.0.1 port on a store holding fersa's 3 days of
1 s data (3 daily chunks) with spikes and NaN gaps, its derived channel ``dp = p_in * 2``,
and zf's dataset. The window of the reduction is cut to one chunk, so buckets span
windows. Every answer is compared exactly with a pandas reference of the M4 rule: per
channel and bucket the first and last valid sample, the minimum and maximum (earliest on
ties), a bucket without a valid sample kept as one NaN at its start; the rows are the
union over channels, each channel with its stored value there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from stream0d_nb import derived
from stream0d_nb.api import ApiSettings, create_app
from stream0d_nb.api.deps import UserInfo, get_group_resolver
from stream0d_nb.client import Client
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec
from stream0d_nb.store import Store, reader
from stream0d_nb.store.reader import PlotBuckets
from tests.api_servers import UvicornThread, seed_partner_datasets

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
}
DS, OTHER = "fersa-line", "zf-oven"
N = 3 * 86_400
IDX = pd.date_range("2024-05-01", periods=N, freq="1s", tz="UTC").as_unit("ns")


def make_frame() -> pd.DataFrame:
    """Noisy waves with single-sample spikes, scattered NaNs, a 2-hour gap and a gap
    across the first chunk boundary (``p_in`` only), values rounded so ties occur."""
    rng = np.random.default_rng(7)
    t = np.arange(N)
    temp = (60 + 5 * np.sin(t / 5_000) + rng.normal(0, 0.5, N)).round(1)
    p_in = (5 + np.cos(t / 3_000) + rng.normal(0, 0.1, N)).round(2)
    spikes = rng.choice(N, 40, replace=False)
    temp[spikes[:20]] += 300
    temp[spikes[20:]] -= 300
    temp[rng.random(N) < 0.01] = np.nan
    temp[40_000:47_200] = np.nan
    p_in[86_000:87_000] = np.nan
    return pd.DataFrame({"temp": temp, "p_in": p_in}, index=IDX)


DATA = make_frame()


def span(start: str, end: str) -> pd.DataFrame:
    """The stored rows over ``[start, end)`` (naive times are UTC, as in the API)."""
    t0, t1 = (pd.Timestamp(t) for t in (start, end))
    t0, t1 = (t if t.tzinfo else t.tz_localize("UTC") for t in (t0, t1))
    return DATA[(DATA.index >= t0) & (DATA.index < t1)]


def reference(df: pd.DataFrame, points: int) -> pd.DataFrame:
    """The M4 rule with pandas on rows ``df`` (the range read): kept rows of all channels."""
    n = len(df)
    k = max(-(-n // points), 1)
    bucket = np.arange(n) // k
    keep: set[int] = set()
    for col in df.columns:
        s = pd.Series(df[col].to_numpy(), index=np.arange(n))
        for _, part in s.groupby(bucket):
            valid = part.dropna()
            if valid.empty:
                keep.add(int(part.index[0]))
            else:
                found = (valid.index[0], valid.index[-1], valid.idxmin(), valid.idxmax())
                keep |= {int(str(i)) for i in found}
    return df.iloc[sorted(keep)]


class Server:
    """Store, app under uvicorn, one token per user."""

    def __init__(self, home: Path) -> None:
        self.store = Store(Settings(home=home))
        seed_partner_datasets(self.store, {OTHER: "zf"})
        self.store.create_dataset(
            DatasetSpec(
                id=DS,
                interval="1s",
                partner="fersa",
                channels=[
                    ChannelSpec(name="temp", units="degC"),
                    ChannelSpec(name="p_in", units="bar"),
                ],
            )
        )
        self.store.write(DS, DATA)
        derived.save_formula(self.store, DS, FormulaSpec(name="dp", formula="p_in * 2"), "alice")
        app = create_app(self.store, ApiSettings())
        app.dependency_overrides[get_group_resolver] = lambda: lambda u: USERS.get(u, UserInfo())
        access = AccessRegistry(self.store.registry)
        exp = datetime.now(UTC) + timedelta(days=1)
        self.tokens = {u: access.issue_token(u, level="write", expires_at=exp).token for u in USERS}
        self.uvicorn = UvicornThread(app)
        self.url = f"http://127.0.0.1:{self.uvicorn.port}"
        self.http = httpx.Client(base_url=f"{self.url}/api", timeout=60)

    def data(self, query: str, who: str = "alice", ds: str = DS) -> httpx.Response:
        headers = {"Authorization": f"token {self.tokens[who]}"}
        return self.http.get(f"/datasets/{ds}/data?{query}", headers=headers)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reader, "AGGREGATE_WINDOW", 1)  # one chunk (1 day) per window
        s = Server(tmp_path_factory.mktemp("points") / "home")
        yield s
        s.http.close()
        s.uvicorn.stop()


def arrow_frame(r: httpx.Response) -> pd.DataFrame:
    assert r.status_code == 200, r.text[:300]
    table = pa.ipc.open_stream(r.content).read_all()
    return table.to_pandas().set_index("time")


def error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["message"]


def same(got: pd.DataFrame, expect: pd.DataFrame) -> None:
    """Identical times and values (NaN where NaN), channel by channel."""
    assert got.index.equals(expect.index)
    for col in expect.columns:
        assert np.array_equal(got[col].to_numpy(), expect[col].to_numpy(), equal_nan=True), col


RANGES = [  # (start, end, points): whole data, an odd range across chunks, one bucket
    ("2024-05-01", "2024-05-04", 2_000),
    ("2024-05-01T13:07:11Z", "2024-05-03T02:00:03Z", 997),
    ("2024-05-01T10:00:00Z", "2024-05-01T14:00:00Z", 1),
    ("2024-05-01T23:00:00Z", "2024-05-02T01:00:00Z", 7),
]


@pytest.mark.parametrize(("start", "end", "points"), RANGES)
def test_arrow_answer_is_the_m4_reference(srv: Server, start: str, end: str, points: int) -> None:
    got = arrow_frame(srv.data(f"start={start}&end={end}&points={points}&format=arrow"))
    rows = span(start, end)
    same(got, reference(rows, points))


def test_no_spike_lost_and_at_most_4_points_per_bucket(srv: Server) -> None:
    """Per channel read alone: every bucket's min and max with their times, the first and
    last sample, at most 4 points per bucket, at most ``points`` buckets."""
    points = 1_500
    k = -(-N // points)
    for ch in ("temp", "p_in"):
        got = arrow_frame(srv.data(f"channels={ch}&points={points}&format=arrow"))[ch]
        assert got.index[0] == DATA.index[0] and got.index[-1] == DATA.index[-1]
        bucket = (pd.DatetimeIndex(got.index) - IDX[0]) // pd.Timedelta(seconds=k)
        assert bucket.nunique() <= points and got.groupby(bucket).size().max() <= 4
        full = DATA[ch].groupby(np.arange(N) // k)
        empty = full.count() == 0  # the 2-hour gap: NaN points, so the line breaks
        valid = DATA[ch].dropna().groupby((np.arange(N) // k)[DATA[ch].notna().to_numpy()])
        for idx, val in ((valid.idxmin(), valid.min()), (valid.idxmax(), valid.max())):
            assert len(idx) == (~empty).sum()
            assert (got.loc[idx.to_numpy()].to_numpy() == val.to_numpy()).all()
        assert empty.any()  # both channels have gaps longer than a bucket
        starts = IDX[np.flatnonzero(empty.to_numpy()) * k]
        assert got.loc[starts].isna().all()
    assert DATA["temp"].max() > 300 and DATA["temp"].min() < -200  # the spikes are there


def test_json_answer(srv: Server) -> None:
    r = srv.data("start=2024-05-01T13:07:11Z&end=2024-05-03T02:00:03Z&points=997")
    assert r.status_code == 200
    body = r.json()
    assert (body["interval"], body["bucket"], body["points"]) == ("1s", "134s", 997)
    rows = span("2024-05-01T13:07:11Z", "2024-05-03T02:00:03Z")
    expect = reference(rows, 997)
    assert body["time"] == [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in expect.index]
    for ch in ("temp", "p_in"):
        values = [None if np.isnan(v) else v for v in expect[ch]]
        assert body["channels"][ch]["values"] == values
    assert body["channels"]["temp"]["units"] == "degC"


def test_fewer_samples_than_buckets_is_the_raw_read(srv: Server) -> None:
    query = "start=2024-05-01T11:06:00Z&end=2024-05-01T11:08:00Z"
    got = arrow_frame(srv.data(f"{query}&points=500&format=arrow"))
    raw = arrow_frame(srv.data(f"{query}&format=arrow"))
    same(got, raw)
    assert len(got) == 120 and got["temp"].isna().any()


def test_derived_channel_is_evaluated_then_reduced(srv: Server) -> None:
    got = arrow_frame(srv.data("channels=dp,temp&points=800&format=arrow"))
    frame = pd.DataFrame({"dp": DATA["p_in"] * 2, "temp": DATA["temp"]})
    same(got, reference(frame, 800))


BAD = [
    ("points=0", "query.points: Input should be greater than or equal to 1"),
    ("points=20001", "query.points: Input should be less than or equal to 20000"),
    (
        "points=many",
        "query.points: Input should be a valid integer, unable to parse string as an integer",
    ),
    (
        "points=100&every=1min",
        "points= and every= cannot be combined: points= already reduces each bucket to its "
        "first, last, min and max; use one or the other",
    ),
]


@pytest.mark.parametrize(("query", "message"), BAD)
def test_bad_points_are_422(srv: Server, query: str, message: str) -> None:
    assert error(srv.data(query)) == (422, message)


def test_largest_points_is_accepted(srv: Server) -> None:
    got = arrow_frame(srv.data("channels=temp&points=20000&format=arrow"))
    same(got, reference(DATA[["temp"]], 20_000))


def test_other_partners_dataset_is_404_as_without_points(srv: Server) -> None:
    with_points = srv.data("points=100", who="bob")
    assert with_points.status_code == 404
    assert with_points.json() == srv.data("", who="bob").json()
    assert srv.data("points=100", who="bob", ds=OTHER).status_code == 200


def test_client_read_points(srv: Server) -> None:
    with Client(srv.url, srv.tokens["alice"]) as c:
        ds = c.read(DS, "temp", start="2024-05-01T13:07:11Z", end="2024-05-03", points=300)
        df = c.read_pandas(DS, ["temp", "p_in"], points=300, tz="Europe/Madrid")
    rows = span("2024-05-01T13:07:11Z", "2024-05-03")
    expect = reference(rows[["temp"]], 300)
    times = pd.DatetimeIndex(expect.index).tz_convert(None)
    assert np.array_equal(ds["time"].values, times.to_numpy())
    assert np.array_equal(ds["temp"].values, expect["temp"].to_numpy(), equal_nan=True)
    assert ds.attrs["interval"] == "1s" and ds.attrs["bucket"] == "419s"
    assert ds["temp"].attrs["units"] == "degC"
    assert str(pd.DatetimeIndex(df.index).tz) == "Europe/Madrid"
    same(df.tz_convert("UTC"), reference(DATA, 300))


def brute(vals: np.ndarray, i0: int, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept indices and values by the M4 rule, bucket by bucket in plain numpy."""
    n = vals.shape[1]
    k = max(-(-n // points), 1)
    keep: set[int] = set()
    for row in vals:
        for s in range(0, n, k):
            seg = row[s : s + k]
            pos = np.flatnonzero(~np.isnan(seg))
            if pos.size == 0:
                keep.add(i0 + s)
                continue
            found = (pos[0], pos[-1], np.nanargmin(seg), np.nanargmax(seg))
            keep |= {i0 + s + int(p) for p in found}
    idx = np.array(sorted(keep), dtype=np.int64)
    return idx, vals[:, idx - i0]


def test_buckets_across_any_windows_match_the_rule() -> None:
    """``PlotBuckets`` fed random windows (buckets spanning several, gaps, ties)."""
    rng = np.random.default_rng(0)
    for _ in range(600):
        c, n = int(rng.integers(1, 4)), int(rng.integers(0, 200))
        i0, points = int(rng.integers(0, 50)), int(rng.integers(1, 60))
        vals = rng.normal(size=(c, n)).round(1)
        vals[rng.random((c, n)) < rng.random() * 0.7] = np.nan
        if n > 10:
            a = int(rng.integers(0, n - 5))
            vals[:, a : a + int(rng.integers(1, 40))] = np.nan
        pb = PlotBuckets(i0, i0 + n, points, c)
        a = 0
        while a < n:
            b = min(n, a + int(rng.integers(1, 30)))
            pb.add(vals[:, a:b], i0 + a)
            a = b
        idx, got = pb.result()
        want_idx, want = brute(vals, i0, points)
        assert np.array_equal(idx, want_idx)
        assert np.array_equal(got, want, equal_nan=True)


def test_no_channels_or_empty_range(srv: Server) -> None:
    body: Any = srv.data("start=2024-06-01&end=2024-06-02&points=10&channels=temp").json()
    assert len(body["time"]) == 10 and body["channels"]["temp"]["values"] == [None] * 10
