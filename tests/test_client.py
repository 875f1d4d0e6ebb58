"""The Python client against the real API served by uvicorn on 127.0.0.1 (a free port),
under the hub service prefix, on a real store: reads, ingest, formulas, alerts, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openpyxl
import pandas as pd
import pytest

from stream0d_nb.api import ApiSettings, create_app
from stream0d_nb.api.deps import UserInfo, get_group_resolver
from stream0d_nb.client import (
    AuthenticationError,
    Client,
    ConnectionFailedError,
    NotFoundError,
    PermissionDeniedError,
    RemoteIngestError,
    RequestValidationError,
)
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.errors import DatasetNotFoundError, IngestError, Stream0dError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec, IngestOptions
from stream0d_nb.store import Store
from tests.api_servers import IDX, N, UvicornThread, partner_spec, seed_partner_datasets
from tests.servers import free_port

ADMIN_SCOPE = frozenset({"custom:stream0d:admin"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, ADMIN_SCOPE),
    "bob": UserInfo(frozenset({"zf"}), False, ADMIN_SCOPE),
}
PREFIX = "/services/stream0d"


def resolve(user: str) -> UserInfo:
    return USERS.get(user, UserInfo())


def spec(ds: str, partner: str) -> DatasetSpec:
    return partner_spec(ds, partner)


class Server:
    """A store with a dataset per partner, served by uvicorn in a thread; tokens per user."""

    def __init__(self, home: Path) -> None:
        self.store = Store(Settings(home=home))
        seed_partner_datasets(
            self.store, {"fersa-press": "fersa", "zf-oven": "zf"}, titled=False, gap=True
        )
        app = create_app(self.store, ApiSettings(max_values=100_000), prefix=PREFIX)
        app.dependency_overrides[get_group_resolver] = lambda: resolve
        self.access = AccessRegistry(self.store.registry)
        self.tokens = {u: self.token(u) for u in USERS}
        self.uvicorn = UvicornThread(app)
        self.url = f"http://127.0.0.1:{self.uvicorn.port}{PREFIX}"

    def token(self, user: str, level: str = "admin") -> str:
        exp = datetime.now(UTC) + timedelta(days=1)
        return self.access.issue_token(user, level=level, expires_at=exp).token

    def client(self, user: str = "alice") -> Client:
        return Client(self.url, self.tokens.get(user, user))

    def stop(self) -> None:
        self.uvicorn.stop()
        self.store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("client") / "home")
    yield s
    s.stop()


@pytest.fixture
def alice(server: Server) -> Iterator[Client]:
    with server.client("alice") as c:
        yield c


def fresh(server: Server, name: str) -> str:
    """A new empty dataset of partner fersa (tests that write use their own)."""
    server.store.create_dataset(spec(name, "fersa"))
    return name


# ----------------------------------------------------------------------------- reads


def test_whoami_and_datasets(alice: Client) -> None:
    me = alice.whoami()
    assert me.user == "alice" and me.groups == ["fersa"]
    assert me.token is not None and me.token.level == "admin" and me.via.startswith("token:")
    assert "fersa-press" in [d.id for d in alice.datasets()]
    assert "zf-oven" not in [d.id for d in alice.datasets()]
    info = alice.dataset("fersa-press")
    assert info.role == "owner" and info.interval == "1s"
    assert info.summary.samples > 0 and info.summary.end is not None
    assert [c.name for c in alice.channels("fersa-press").stored] == ["temp", "p_in"]
    assert alice.history("fersa-press")[0].id


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"channels": ["p_in"], "start": "2024-05-01T00:00:05Z", "end": "2024-05-01T00:01:00Z"},
        {"every": "1min", "how": "max"},
        {"every": "30s", "how": "count", "start": pd.Timestamp("2024-05-01 00:00:10")},
    ],
)
def test_read_round_trip_equals_store_read(server: Server, alice: Client, kw: Any) -> None:
    got = alice.read("fersa-press", **kw)
    want = server.store.read("fersa-press", **kw)
    assert got["time"].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    assert list(got.data_vars) == list(want.data_vars)
    for name, var in want.data_vars.items():
        assert got[name].dtype == np.float64
        np.testing.assert_array_equal(got[name].values, var.values)
        for key in ("units", "long_name", "cell_methods"):
            assert got[name].attrs.get(key) == var.attrs.get(key)
    assert got["time"].attrs == want["time"].attrs
    for key in ("dataset", "interval", "Conventions"):
        assert got.attrs[key] == want.attrs[key]


def test_read_pandas(server: Server, alice: Client) -> None:
    df = alice.read_pandas("fersa-press", "temp", end="2024-05-01T00:00:30Z")
    assert str(df.index.tz) == "UTC" and len(df) == 30
    np.testing.assert_array_equal(
        df["temp"].to_numpy(), server.store.read("fersa-press", ["temp"], end=IDX[30])["temp"]
    )
    assert alice.read_pandas("fersa-press", tz="Europe/Madrid").index[0].hour == 2


def test_as_of_reads_an_older_snapshot(server: Server, alice: Client) -> None:
    ds = fresh(server, "asof-line")
    first = alice.ingest(ds, pd.DataFrame({"temp": [1.0, 2.0]}, index=IDX[:2]))
    alice.ingest(ds, pd.DataFrame({"temp": [5.0, 6.0]}, index=IDX[:2]))
    assert alice.read(ds)["temp"].values.tolist() == [5.0, 6.0]
    assert first.commit is not None
    assert alice.read(ds, as_of=first.commit)["temp"].values.tolist() == [1.0, 2.0]


# ----------------------------------------------------------------------------- ingest


def test_ingest_csv_file_and_read_back(server: Server, alice: Client, tmp_path: Path) -> None:
    ds = fresh(server, "csv-line")
    path = tmp_path / "line.csv"
    path.write_text("time;temp;p_in\n2024-05-02 00:00:00;1,5;3\n2024-05-02 00:00:01;2,5;4\n")
    report = alice.ingest(ds, path, {"tz": "UTC"})
    assert report.values_written == 4 and report.source.endswith("line.csv")
    assert report.detected.get("decimal") == ","
    got = alice.read(ds)
    assert got["temp"].values.tolist() == [1.5, 2.5]
    assert got["time"].values[0] == np.datetime64("2024-05-02T00:00:00", "ns")
    assert alice.history(ds)[0].id == report.commit


def test_ingest_dataframe_and_read_back(server: Server, alice: Client) -> None:
    ds = fresh(server, "df-line")
    df = pd.DataFrame({"temp": np.arange(5.0), "flow": np.arange(5.0) * 2}, index=IDX[:5])
    report = alice.ingest(ds, df, IngestOptions(units={"flow": "l/min"}))
    assert report.new_channels == ["flow"] and report.values_written == 10
    got = alice.read_pandas(ds, ["temp", "flow"])
    pd.testing.assert_frame_equal(got, df, check_names=False, check_freq=False)
    assert alice.read(ds)["flow"].attrs["units"] == "l/min"


def test_bad_csv_is_ingest_error_with_locations(
    server: Server, alice: Client, tmp_path: Path
) -> None:
    ds = fresh(server, "bad-line")
    path = tmp_path / "bad.csv"
    path.write_text("time,temp\n2024-05-01T00:00:00Z,1\n2024-05-01T00:00:01Z,abc\n")
    with pytest.raises(IngestError) as exc:
        alice.ingest(ds, path)
    assert isinstance(exc.value, RemoteIngestError) and exc.value.status == 422
    loc = exc.value.locations[0]
    assert (loc.file, loc.line, loc.column, loc.value) == ("bad.csv", 3, "temp", "abc")
    assert str(tmp_path) not in str(exc.value)
    assert server.store.read(ds)["temp"].size == 0


# ----------------------------------------------------------------------------- formulas, alerts


def test_formulas_and_derived_read(server: Server, alice: Client) -> None:
    saved = alice.add_formula("fersa-press", "dp", "p_in * 2")
    assert isinstance(saved, FormulaSpec) and saved.units == "bar"
    assert [f.name for f in alice.formulas("fersa-press")] == ["dp"]
    got = alice.read("fersa-press", ["p_in", "dp"], end="2024-05-01T00:01:00Z")
    want = server.store.read("fersa-press", ["p_in"], end="2024-05-01T00:01:00Z")
    np.testing.assert_array_equal(got["dp"].values, want["p_in"].values * 2)
    assert got["dp"].attrs["units"] == "bar"
    with pytest.raises(RequestValidationError):
        alice.add_formula("fersa-press", FormulaSpec(name="bad", formula="p_inn * 2"))
    alice.delete_formula("fersa-press", "dp")
    assert alice.formulas("fersa-press") == []
    with pytest.raises(NotFoundError):
        alice.delete_formula("fersa-press", "dp")


def test_alert_rules_and_events(server: Server, alice: Client) -> None:
    ds = fresh(server, "alert-line")
    rule = {"name": "hot", "kind": "threshold", "channels": ["temp"], "op": ">", "value": 80}
    alice.ingest(ds, pd.DataFrame({"temp": [1.0]}, index=IDX[:1]))
    saved = alice.add_alert_rule(ds, {**rule, "for": "2s"})
    assert saved.name == "hot" and saved.for_duration == "2s"
    assert [r.name for r in alice.alert_rules(ds)] == ["hot"]
    hot = pd.DataFrame({"temp": np.full(10, 99.0)}, index=IDX[100:110])
    alice.ingest(ds, hot)
    events = alice.alert_events(ds, rule="hot")
    assert "firing" in {e.to_state for e in events}
    assert alice.alert_events(ds, since=datetime(2100, 1, 1)) == []
    alice.delete_alert_rule(ds, "hot")
    assert alice.alert_rules(ds) == []


# ----------------------------------------------------------------------------- errors


def test_other_partners_dataset_is_not_found(server: Server, alice: Client) -> None:
    for call in (
        lambda: alice.dataset("zf-oven"),
        lambda: alice.read("zf-oven"),
        lambda: alice.ingest("zf-oven", pd.DataFrame({"temp": [1.0]}, index=IDX[:1])),
        lambda: alice.read("no-such-dataset"),
    ):
        with pytest.raises(DatasetNotFoundError) as exc:
            call()
        assert isinstance(exc.value, LookupError) and exc.value.status == 404
        assert exc.value.type == "not_found"


def test_read_only_token_cannot_write(server: Server) -> None:
    ds = fresh(server, "ro-line")
    with Client(server.url, server.token("alice", level="read")) as c:
        assert c.read("fersa-press", "temp", end="2024-05-01T00:00:02Z")["temp"].size == 2
        with pytest.raises(PermissionError) as exc:
            c.ingest(ds, pd.DataFrame({"temp": [1.0]}, index=IDX[:1]))
        assert isinstance(exc.value, PermissionDeniedError) and exc.value.status == 403
        with pytest.raises(PermissionDeniedError):
            c.add_formula(ds, "x", "temp * 2")
    assert server.store.read(ds)["temp"].size == 0


def test_bad_token_is_authentication_error(server: Server) -> None:
    with Client(server.url, "s0d_0123456789abcdef_" + "A" * 43) as c:
        with pytest.raises(AuthenticationError) as exc:
            c.datasets()
        assert exc.value.status == 401 and not isinstance(exc.value, PermissionDeniedError)
        assert isinstance(exc.value, PermissionError) and str(exc.value)


def test_too_large_read_is_validation_error(alice: Client) -> None:
    with pytest.raises(RequestValidationError) as exc:
        alice.read("fersa-press", start="2024-01-01", end="2024-06-01")
    assert exc.value.status == 413 and "limit" in str(exc.value)


def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/stream0d"
    with Client(url, "s0d_x", timeout=2) as c, pytest.raises(ConnectionFailedError) as exc:
        c.whoami()
    assert url in str(exc.value) and isinstance(exc.value, Stream0dError)


def test_token_never_in_url(server: Server, tmp_path: Path) -> None:
    token = server.tokens["alice"]
    seen: list[httpx.Request] = []
    with Client(server.url, token) as c:
        c.http.event_hooks["request"].append(seen.append)
        c.whoami()
        c.read("fersa-press", ["temp"], start="2024-05-01T00:00:00Z", every="1min")
        c.formulas("fersa-press")
        path = tmp_path / "x.csv"
        path.write_text("time,temp\n2024-05-01T00:00:00Z,60\n")
        c.ingest(fresh(server, "url-line"), path)
        with pytest.raises(NotFoundError):
            c.read("zf-oven")
    assert len(seen) == 5
    for req in seen:
        assert token not in str(req.url)
        assert req.headers["authorization"] == f"token {token}"
        assert "token" not in req.url.params


def test_verify_takes_a_ca_bundle(server: Server, tmp_path: Path) -> None:
    import certifi

    with Client(server.url, server.tokens["alice"], verify=certifi.where()) as c:
        assert c.whoami().user == "alice"
    with pytest.raises(ValueError, match="CA bundle"):
        Client(server.url, server.tokens["alice"], verify=str(tmp_path / "nope.pem"))
    with pytest.raises(ValueError, match="one word"):
        Client(server.url, "")


def test_arrow_carries_dataset_attrs_and_tag_lists() -> None:
    """``to_arrow`` -> ``from_arrow`` keeps dataset attributes and list attributes."""
    import numpy as np
    import xarray as xr

    from stream0d_nb.client import from_arrow
    from stream0d_nb.tables import to_arrow

    t = np.array(["2024-01-01T00:00", "2024-01-01T00:01"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"temp": (("time",), [1.0, 2.0], {"units": "degC", "tags": ["a", "b"]})},
        coords={"time": t},
        attrs={"dataset": "d", "snapshot": "S1", "tz": "Europe/Madrid"},
    )
    back = from_arrow(to_arrow(ds))
    assert back.temp.attrs["tags"] == ["a", "b"] and back.temp.attrs["units"] == "degC"
    assert back.attrs["snapshot"] == "S1" and back.attrs["tz"] == "Europe/Madrid"
    assert back.time.values.tolist() == ds.time.values.tolist()


# ----------------------------------------------------------------------------- datasets, channels


def test_create_update_delete_dataset(server: Server, alice: Client) -> None:
    made = alice.create_dataset(spec("fersa-tmp", "fersa"))
    assert made.id == "fersa-tmp" and made.role == "owner"
    assert alice.update_dataset("fersa-tmp", title="Press 2").title == "Press 2"
    assert alice.dataset("fersa-tmp").title == "Press 2"
    with pytest.raises(RequestValidationError) as exc:
        alice.delete_dataset("fersa-tmp", confirm="wrong")
    assert exc.value.status == 400
    assert alice.delete_dataset("fersa-tmp", confirm="fersa-tmp").deleted == "fersa-tmp"
    with pytest.raises(NotFoundError):
        alice.dataset("fersa-tmp")
    with pytest.raises(PermissionDeniedError):  # alice is not in partner zf
        alice.create_dataset(spec("zf-tmp", "zf"))


def test_set_and_delete_channels(server: Server, alice: Client) -> None:
    ds = fresh(server, "chan-line")
    stored = alice.set_channels(ds, [{"name": "flow", "units": "l/min"}])
    assert [c.name for c in stored] == ["temp", "p_in", "flow"]
    stored = alice.set_channels(ds, [ChannelSpec(name="temp", units="degC", description="oil")])
    assert stored[0].description == "oil"
    commit = alice.delete_channel(ds, "flow", confirm="flow")
    assert commit == alice.history(ds)[0].id
    assert [c.name for c in alice.channels(ds).stored] == ["temp", "p_in"]
    assert [c.name for c in alice.channels(ds, as_of=commit).stored] == ["temp", "p_in"]


def test_show_formula_and_alert_rule(server: Server, alice: Client) -> None:
    ds = fresh(server, "show-line")
    alice.add_formula(ds, "twice", "p_in * 2")
    assert alice.formula(ds, "twice").units == "bar"
    alice.add_alert_rule(
        ds, {"name": "hot", "kind": "threshold", "channels": ["temp"], "op": ">", "value": 80}
    )
    assert alice.alert_rule(ds, "hot").value == 80
    for call in (lambda: alice.formula(ds, "nope"), lambda: alice.alert_rule(ds, "nope")):
        with pytest.raises(NotFoundError):
            call()


# ----------------------------------------------------------------------------- export


def _same_as_store(server: Server, got: pd.DataFrame, **kw: Any) -> None:
    from stream0d_nb.tables import to_pandas

    want = to_pandas(server.store.read("fersa-press", **kw))
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got[list(want.columns)].to_numpy(), want.to_numpy(), rtol=1e-15)


@pytest.mark.parametrize("name", ["a.csv", "a.parquet", "a.nc", "a.zarr", "a.zarr.zip"])
def test_export_to_file(server: Server, alice: Client, tmp_path: Path, name: str) -> None:
    import zipfile

    import pyarrow.parquet as pq
    import xarray as xr

    kw: dict[str, Any] = {"start": "2024-05-01T00:01:00Z", "end": "2024-05-01T00:05:00Z"}
    out = alice.export("fersa-press", tmp_path / name, **kw)
    assert out == tmp_path / name and out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left
    if name.endswith(".csv"):
        got = pd.read_csv(out, index_col="time", parse_dates=["time"])
    elif name.endswith(".parquet"):
        got = pq.read_table(out).to_pandas().set_index("time")
    else:
        if name.endswith(".zip"):
            zipfile.ZipFile(out).extractall(tmp_path / "unzipped")
            out = tmp_path / "unzipped"
        ds = xr.open_zarr(out) if out.is_dir() else xr.open_dataset(out, engine="h5netcdf")
        got = ds.load().to_dataframe()
        ds.close()
        got.index = pd.DatetimeIndex(got.index).tz_localize("UTC")
    _same_as_store(server, got, **kw)


def test_export_options_and_errors(server: Server, alice: Client, tmp_path: Path) -> None:
    out = alice.export(
        "fersa-press",
        tmp_path / "agg.csv",
        channels="temp",
        every="1min",
        how="max",
        tz="Europe/Madrid",
        units_in_header=True,
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "time,temp [degC]" and lines[1].endswith("+02:00," + lines[1].split(",")[1])
    assert len(lines) == 1 + N // 60
    with pytest.raises(ValueError, match="exists already"):
        alice.export("fersa-press", out)
    alice.export("fersa-press", out, channels=["p_in"], overwrite=True)
    assert out.read_text().startswith("time,p_in\n")
    with pytest.raises(ValueError, match="format"):
        alice.export("fersa-press", tmp_path / "a.xls")
    alice.export("fersa-press", tmp_path / "a.xlsx", channels=["p_in"], end="2024-05-01T00:01:00Z")
    sheet = openpyxl.load_workbook(tmp_path / "a.xlsx").active
    assert [c.value for c in next(sheet.iter_rows())] == ["time", "p_in"]
    assert sheet.max_row == 61 and isinstance(sheet.cell(2, 2).value, float)
    with pytest.raises(RequestValidationError) as exc:
        alice.export("fersa-press", tmp_path / "big.csv", start="2024-01-01", end="2024-06-01")
    assert exc.value.status == 413
    with pytest.raises(NotFoundError):
        alice.export("zf-oven", tmp_path / "theirs.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xlsx", "agg.csv"]


# ----------------------------------------------------------------------------- access


def test_grants_and_audit(server: Server, alice: Client) -> None:
    ds = fresh(server, "shared-line")
    with server.client("bob") as bob:
        assert ds not in [d.id for d in bob.datasets()]
        g = alice.grant(ds, "group", "zf", "viewer")
        assert (g.dataset, g.principal, g.role.value, g.granted_by) == (ds, "zf", "viewer", "alice")
        assert [x.principal for x in alice.grants(ds)] == ["zf"]
        assert bob.dataset(ds).role == "viewer"
        with pytest.raises(PermissionDeniedError):
            bob.grants(ds)
        with pytest.raises(PermissionDeniedError):
            bob.update_dataset(ds, title="mine")
        alice.revoke_grant(ds, "group", "zf")
        with pytest.raises(NotFoundError):
            bob.dataset(ds)
    entries = alice.audit(ds)
    assert [e.action for e in entries[:2]] == ["grant.remove", "grant.add"]
    token_id = server.tokens["alice"].split("_")[1]
    assert entries[0].via == f"token:{token_id}"
    assert [e.action for e in alice.audit(ds, action="grant.add")] == ["grant.add"]
    assert alice.audit(ds, since=datetime(2100, 1, 1)) == []
    with pytest.raises(NotFoundError):
        alice.revoke_grant(ds, "group", "zf")


def test_list_and_revoke_own_tokens(server: Server) -> None:
    token = server.token("alice", level="read")
    token_id = token.split("_")[1]
    with Client(server.url, token) as c:
        mine = c.tokens()
        assert token_id in [t.id for t in mine] and {t.owner for t in mine} == {"alice"}
        bobs = server.access.list_tokens("bob")[0].id
        with pytest.raises(NotFoundError):
            c.revoke_token(bobs)
        assert not server.access.get_token(bobs).revoked_at
        assert not hasattr(c, "create_token")
        revoked = c.revoke_token(token_id)
        assert revoked.revoked_by == "alice" and revoked.revoked_at is not None
        with pytest.raises(AuthenticationError, match="revoked"):
            c.whoami()
