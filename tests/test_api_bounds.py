"""Bounded reads and dataset ids from the attacker's seat, over real HTTP (issue 11, 6 and 9).

The app runs under uvicorn on a free 127.0.0.1 port on a store with two partners'
datasets (10 minutes of 1 s data each, from ``tests.api_servers``), small limits, and on
fersa's dataset the derived channels ``dp = p_in * 2`` and nested 400-day windows ``w1``,
``w2``. Every refused request is pinned to its exact status and message, next to a
positive control at the bound that returns the right values. The memory these bounds
keep is measured by ``bench/bench_bounds.py``, not here.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream0d_nb import derived
from stream0d_nb.api import ApiSettings
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.settings import Settings
from stream0d_nb.specs import FormulaSpec
from stream0d_nb.store import Store
from tests.api_servers import IDX, ApiOverHttp, N, seed_partner_datasets

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
}
DS, OTHER = "fersa-press", "zf-oven"
MAX_VALUES, MAX_SCAN = 5_000, 6_000  # 6,000 = 3,000 s of both stored channels
T0 = "2024-05-01T00:00:00Z"
WINDOW_VALUES = 70  # streamed answers in windows of 35 rows of both channels


class Server(ApiOverHttp):
    """Store, app under uvicorn, one token per user."""

    def __init__(self, home: Path) -> None:
        self.store = Store(Settings(home=home))
        seed_partner_datasets(self.store, {DS: "fersa", OTHER: "zf"})
        for name, text in (
            ("dp", "p_in * 2"),
            ("w1", 'rolling_mean(p_in, "400d")'),
            ("w2", 'rolling_mean(w1, "400d")'),
        ):
            derived.save_formula(self.store, DS, FormulaSpec(name=name, formula=text), "alice")
        settings = ApiSettings(
            max_values=MAX_VALUES,
            max_json_values=2_000,
            max_scan_values=MAX_SCAN,
            csv_window_values=WINDOW_VALUES,
        )
        super().__init__(self.store, USERS, settings=settings)

    def data(self, query: str, endpoint: str = "data") -> httpx.Response:
        return self.call("alice", "GET", f"/datasets/{DS}/{endpoint}?{query}")

    def state(self) -> list[Any]:
        """What creating datasets must not change: every dataset's spec, head, history."""
        return [
            (r.spec.model_dump(), self.store.data(r.id).head(), len(self.store.history(r.id)))
            for r in self.store.list_datasets()
        ]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("bounds") / "home")
    yield s
    s.stop()


def error(r: httpx.Response) -> tuple[int, str]:
    """Status and error message of an answer."""
    return r.status_code, r.json()["error"]["message"]


def stored(channel: str) -> pd.Series:
    """The seeded values of a channel (``seed_partner_datasets``)."""
    rng = np.random.default_rng(1)
    temp, p_in = 60 + rng.normal(0, 1, N), 5 + rng.normal(0, 0.1, N)
    return pd.Series(temp if channel == "temp" else p_in, index=IDX)


def arrow(r: httpx.Response) -> pa.Table:
    assert r.status_code == 200, r.text[:300]
    return pa.ipc.open_stream(r.content).read_all()


# ----------------------------------------------------------------------------- every=


EVERY_CASES = [
    (  # was +741 MiB: one bin of 86 M samples padded with NaN
        f"start={T0}&end=2024-05-01T00:01:00Z&every=1000d",
        "every='1000d' is longer than the range read (1min): choose a shorter every= or a "
        "longer range",
    ),
    (  # was a 500
        f"start={T0}&end=2024-05-01T00:01:00Z&every=999999999999d",
        "every='999999999999d' is longer than any time range that can be read (about 292 "
        "years): choose a shorter every=",
    ),
    (  # beyond int64 nanoseconds even without a range
        "every=999999999999w",
        "every='999999999999w' is longer than any time range that can be read "
        "(about 292 years): choose a shorter every=",
    ),
    (
        "every=99999999999999999999999d",
        "every '99999999999999999999999d' is not a duration (try '1s', '5min', '1h', '1d')",
    ),
    (
        f"start={T0}&end=2024-05-01T00:00:30Z&every=31s",
        "every='31s' is longer than the range read (30s): choose a shorter every= or a "
        "longer range",
    ),
]


@pytest.mark.parametrize(("query", "message"), EVERY_CASES)
@pytest.mark.parametrize("endpoint", ["data", "export"])
def test_every_longer_than_the_range_or_absurd_is_422(
    srv: Server, query: str, message: str, endpoint: str
) -> None:
    assert error(srv.data(query, endpoint)) == (422, message)


def test_every_equal_to_the_range_is_one_bin(srv: Server) -> None:
    r = srv.data(f"start={T0}&end=2024-05-01T00:01:00Z&every=1min&channels=temp")
    assert r.status_code == 200
    assert r.json()["channels"]["temp"]["values"] == pytest.approx([stored("temp")[:60].mean()])


# ----------------------------------------------------------------------------- scans


@pytest.mark.parametrize("how", ["mean", "min", "max", "sum", "count", "first", "last"])
def test_largest_allowed_aggregated_read_is_right(srv: Server, how: str) -> None:
    """Exactly max_scan_values scanned (3,000 s x 2 channels; data in the first 600 s)."""
    r = srv.data(f"start={T0}&end=2024-05-01T00:50:00Z&every=7min&how={how}&format=arrow")
    table = arrow(r)
    for ch in ("temp", "p_in"):
        s = stored(ch).reindex(pd.date_range(IDX[0], periods=3_000, freq="1s"))
        bins = s.resample("7min", origin="epoch")
        if how == "sum":
            expect = bins.sum(min_count=1)
        elif how == "count":
            expect = bins.count().astype(float)
        else:
            expect = getattr(bins, how)()
        got = table.column(ch).to_numpy(zero_copy_only=False)
        assert got == pytest.approx(expect.to_numpy(), nan_ok=True)


def test_one_value_over_the_scan_bound_is_413(srv: Server) -> None:
    r = srv.data(f"start={T0}&end=2024-05-01T00:50:01Z&every=7min&format=arrow")
    assert error(r) == (
        413,
        "this read scans 6,002 values, over the limit of 6,000: narrow the range or the channels",
    )


# ----------------------------------------------------------------------------- derived


def test_nested_400_day_windows_are_refused_before_reading(srv: Server) -> None:
    """Was 2.8 GiB of reads before the formula's own limit refused it."""
    r = srv.data(f"channels=w2&start={T0}&end=2024-05-01T00:01:00Z")
    # 60 results of w2, then w1 over the minute widened by 400 days (cut short there)
    widened = 60 + 400 * 86_400 - 1
    assert error(r) == (
        413,
        f"this read needs at least {60 + widened:,} values in memory to evaluate the derived "
        "channels w2 (their windows and shifts widen the range), over the limit of 5,000: "
        "narrow the range, read fewer derived channels, or materialise them",
    )


def test_largest_allowed_derived_read_is_right(srv: Server) -> None:
    """dp over 2,500 s holds 2,500 inputs + 2,500 results = max_values: allowed."""
    end = (IDX[0] + pd.Timedelta(seconds=2_500)).strftime("%Y-%m-%dT%H:%M:%SZ")
    table = arrow(srv.data(f"channels=dp&start={T0}&end={end}&format=arrow"))
    values = table.column("dp").to_numpy(zero_copy_only=False)
    assert values.size == 2_500
    assert values[:N] == pytest.approx(2 * stored("p_in").to_numpy())
    assert np.isnan(values[N:]).all()
    end = (IDX[0] + pd.Timedelta(seconds=2_501)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error(srv.data(f"channels=dp&start={T0}&end={end}&format=arrow")) == (
        413,
        "this read needs at least 5,002 values in memory to evaluate the derived channels dp "
        "(their windows and shifts widen the range), over the limit of 5,000: narrow the "
        "range, read fewer derived channels, or materialise them",
    )


# ----------------------------------------------------------------------------- ids


def test_creating_another_partners_id_answers_as_for_a_missing_one(srv: Server) -> None:
    """bob (zf) asks for fersa's ids and for ids nobody has: the same answer for both."""
    before = srv.state()
    for partner in ("zf", "fersa"):
        answers = []
        for ds in (DS, "fersa-nosuch"):  # fersa's dataset, and an id that does not exist
            body = {"id": ds, "interval": "1s", "partner": partner}
            r = srv.call("bob", "POST", "/datasets", json=body)
            answers.append((r.status_code, r.text.replace(ds, "<id>")))
        assert answers[0] == answers[1], answers
        assert answers[0][0] == (422 if partner == "zf" else 403)
    assert error(
        srv.call("bob", "POST", "/datasets", json={"id": DS, "interval": "1s", "partner": "zf"})
    ) == (
        422,
        "dataset id 'fersa-press': ids of partner 'zf' begin with 'zf-' (e.g. 'zf-press-2')",
    )
    assert srv.state() == before  # fersa's dataset (and everything else) unchanged


@pytest.mark.parametrize("ds", ["zf", "zfx-press", "zf_press", "fersa-zf-press"])
def test_ids_outside_the_partners_namespace_are_422(srv: Server, ds: str) -> None:
    r = srv.call("bob", "POST", "/datasets", json={"id": ds, "interval": "1s", "partner": "zf"})
    assert r.status_code == 422 and "ids of partner 'zf' begin with 'zf-'" in r.text


def test_ids_in_ones_own_namespace_are_created_then_409(srv: Server) -> None:
    body = {"id": "zf-press-2", "interval": "1s", "partner": "zf"}
    r = srv.call("bob", "POST", "/datasets", json=body)
    assert r.status_code == 201 and r.json()["id"] == "zf-press-2"
    # taken in bob's own namespace: a dataset he sees anyway, so 409 tells him nothing new
    again = srv.call("bob", "POST", "/datasets", json=body)
    assert error(again) == (409, "dataset 'zf-press-2' exists already")
    assert srv.call("bob", "GET", "/datasets/zf-press-2").status_code == 200


# ----------------------------------------------------------------------------- streamed windows


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv"])
@pytest.mark.parametrize("every", [None, "7s"])
def test_long_reads_stream_by_windows_with_the_same_values(
    srv: Server, fmt: str, every: str | None
) -> None:
    """Stored channels over many windows (an Arrow batch or Parquet row group each): the
    same values as pandas on the stored data, bins never split across windows."""
    query = f"channels=temp,p_in&start={T0}&format={fmt}" + (f"&every={every}" if every else "")
    r = srv.data(query)
    assert r.status_code == 200, r.text[:300]
    assert "content-length" not in r.headers  # streamed, not built whole
    if fmt == "arrow":
        reader = pa.ipc.open_stream(r.content)
        batches = list(reader)
        table = pa.Table.from_batches(batches)
        assert len(batches) > 10
    elif fmt == "parquet":
        pf = pq.ParquetFile(io.BytesIO(r.content))
        assert pf.metadata.num_row_groups > 10
        table = pf.read()
    else:
        frame = pd.read_csv(io.StringIO(r.text), index_col=0)
        table = pa.table({"temp": frame["temp"].to_numpy(), "p_in": frame["p_in"].to_numpy()})
    for name in ("temp", "p_in"):
        want = stored(name)
        if every:
            want = want.resample(every, origin="epoch").mean()  # bins from the epoch
        got = table.column(name).to_numpy(zero_copy_only=False)
        np.testing.assert_allclose(got, want.to_numpy(), rtol=1e-12)
