"""Client uploads for the setup screen (issue 14): ``ingest`` and ``preview_ingest`` of a
file's bytes with its name, upload progress, and previews that cut only text files.

Over real HTTP against the API under uvicorn, with alice's (fersa) real token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import Client
from stream0d_nb.errors import IngestError, ValidationError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp

USERS = {"alice": UserInfo(frozenset({"fersa"}), False, frozenset({"custom:stream0d:write"}))}
CSV = "time,temp [degC]\n" + "".join(
    f"2024-05-01T00:{i // 60:02d}:{i % 60:02d}Z,{20 + i / 100}\n" for i in range(3000)
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiOverHttp]:
    store = Store(Settings(home=tmp_path_factory.mktemp("uploads")))
    server = ApiOverHttp(store, USERS)
    yield server
    server.stop()


@pytest.fixture
def alice(srv: ApiOverHttp) -> Iterator[Client]:
    sent: list[httpx.Request] = []
    with srv.client("alice") as c:
        c.http.event_hooks["request"].append(sent.append)
        c.sent = sent  # type: ignore[attr-defined]
        yield c


def fresh(srv: ApiOverHttp, ds: str) -> str:
    srv.store.create_dataset(DatasetSpec(id=ds, interval="1s", partner="fersa"))
    return ds


def test_bytes_with_progress(srv: ApiOverHttp, alice: Client) -> None:
    ds = fresh(srv, "fersa-bytes")
    body = CSV.encode()
    calls: list[tuple[int, int]] = []
    report = alice.ingest(ds, body, name="line.csv", progress=lambda s, t: calls.append((s, t)))
    assert report.rows_read == 3000 and report.source.endswith("line.csv")
    assert calls[-1] == (len(body), len(body)) and len(calls) >= 2
    assert [s for s, _ in calls] == sorted(s for s, _ in calls)  # never backwards
    assert {t for _, t in calls} == {len(body)}
    # sent with its size up front (the API refuses uploads without Content-Length)
    request = alice.sent[-1]  # type: ignore[attr-defined]
    assert int(request.headers["Content-Length"]) > len(body)
    assert "Transfer-Encoding" not in request.headers
    got = alice.read_pandas(ds, ["temp"])
    assert len(got) == 3000 and got["temp"].iloc[-1] == pytest.approx(49.99)


def test_bytes_need_a_name_and_paths_must_exist(alice: Client, tmp_path: Path) -> None:
    before = len(alice.sent)  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="bytes need the file's name"):
        alice.ingest("fersa-any", b"time,x\n")
    with pytest.raises(ValidationError, match="bytes need the file's name"):
        alice.preview_ingest("fersa-any", b"time,x\n")
    with pytest.raises(IngestError, match="no such file"):
        alice.ingest("fersa-any", tmp_path / "missing.csv", progress=print)
    assert len(alice.sent) == before  # type: ignore[attr-defined]  # nothing was sent


def test_progress_of_a_path_and_a_dataframe(
    srv: ApiOverHttp, alice: Client, tmp_path: Path
) -> None:
    ds = fresh(srv, "fersa-progress")
    path = tmp_path / "line.csv"
    path.write_text(CSV)
    calls: list[tuple[int, int]] = []
    alice.ingest(ds, path, progress=lambda s, t: calls.append((s, t)))
    assert calls[-1] == (path.stat().st_size,) * 2
    idx = pd.date_range("2024-06-01", periods=50, freq="1s", tz="UTC")
    frame = pd.DataFrame({"temp": np.arange(50.0)}, index=idx)
    calls.clear()
    report = alice.ingest(
        ds, frame, {"units": {"temp": "degC"}}, progress=lambda *a: calls.append(a)
    )
    assert report.values_new == 50 and calls[-1][0] == calls[-1][1] > 0


def test_previews_cut_only_text_files(srv: ApiOverHttp, alice: Client, tmp_path: Path) -> None:
    ds = fresh(srv, "fersa-preview")
    cut = alice.preview_ingest(ds, CSV.encode(), name="line.csv", max_bytes=5_000, rows=2)
    assert cut.truncated and cut.file == "line.csv" and 0 < cut.summary.rows_read < 3000
    whole = alice.preview_ingest(ds, CSV.encode(), name="line.csv", max_bytes=None)
    assert not whole.truncated and whole.summary.rows_read == 3000
    idx = pd.date_range("2024-05-01", periods=3000, freq="1s", tz="UTC")
    frame = pd.DataFrame({"temp": np.linspace(0, 1, 3000)}, index=idx)
    parquet = tmp_path / "line.parquet"
    frame.to_parquet(parquet)
    assert parquet.stat().st_size > 5_000
    p = alice.preview_ingest(ds, parquet, max_bytes=5_000, units={"temp": "degC"})
    assert not p.truncated and p.summary.rows_read == 3000 and p.problems == []
    # options as an object and as keywords together
    both = alice.preview_ingest(
        ds, parquet.read_bytes(), name="x.parquet", options={"units": {"temp": "K"}}, rows=1
    )
    assert both.options == {"units": {"temp": "K"}} and both.file == "x.parquet"
