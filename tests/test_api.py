"""The HTTP API on a real store: identity, visibility, reads, ingest, formulas, alerts,
grants, tokens, and attacks (each asserting the status and that nothing changed)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stream0d_nb.access import Identity
from stream0d_nb.api import ApiSettings, create_app
from stream0d_nb.api.deps import UserInfo, get_group_resolver, session_only
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store
from tests.api_servers import N, seed_partner_datasets

ADMIN_SCOPE = frozenset({"custom:stream0d:admin"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, ADMIN_SCOPE),
    "bob": UserInfo(frozenset({"zf"}), False, ADMIN_SCOPE),
    "root": UserInfo(frozenset(), True, ADMIN_SCOPE),
    "nobody": UserInfo(frozenset(), False, ADMIN_SCOPE),
}


def resolve(user: str) -> UserInfo:
    return USERS.get(user, UserInfo())


class Env:
    """A store with a dataset per partner, an app, a client and tokens per user."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(Settings(home=tmp_path / "home"))
        seed_partner_datasets(self.store, {"fersa-press": "fersa", "zf-oven": "zf"}, gap=True)
        self.settings = ApiSettings(
            max_values=5_000,
            max_json_values=2_000,
            csv_window_values=250,
            max_upload_bytes=20_000,
        )
        self.app: FastAPI = create_app(self.store, self.settings)
        self.app.dependency_overrides[get_group_resolver] = lambda: resolve
        self.client = TestClient(self.app)
        self.access = AccessRegistry(self.store.registry)
        self.tokens = {u: self.token(u) for u in USERS}

    def token(self, user: str, level: str = "admin", **kw: Any) -> str:
        exp = kw.pop("expires_at", datetime.now(UTC) + timedelta(days=1))
        return self.access.issue_token(user, level=level, expires_at=exp, **kw).token

    def h(self, user_or_token: str) -> dict[str, str]:
        tok = self.tokens.get(user_or_token, user_or_token)
        return {"Authorization": f"token {tok}"}

    def get(self, user: str, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.h(user), **kw)

    def snapshot(self) -> tuple[Any, ...]:
        """What must not change after a refused request."""
        st = self.store
        return (
            [(d.id, d.spec.title) for d in st.list_datasets()],
            {d.id: st.data(d.id).head() for d in st.list_datasets()},
            st.registry.count_audit(),
            {d.id: [f.name for f in st.registry.list_formulas(d.id)] for d in st.list_datasets()},
            self.access.list_grants(),
        )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.client.close()
    e.store.close()


# ----------------------------------------------------------------------------- identity


def test_whoami_with_api_token(env: Env) -> None:
    r = env.get("alice", "/api/whoami")
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "alice" and body["groups"] == ["fersa"]
    assert body["token"]["level"] == "admin" and body["via"].startswith("token:")
    r = env.client.get("/api/whoami", headers={"Authorization": f"Bearer {env.tokens['bob']}"})
    assert r.json()["user"] == "bob"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "token",
        "Basic YWxpY2U6eA==",
        "token s0d_nothex_x",
        "token s0d_0123456789abcdef_" + "A" * 43,
        "token abc def",
        "token not-ours-and-no-hub",
    ],
)
def test_bad_credentials_are_401(env: Env, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = env.client.get("/api/datasets", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "unauthorized"
    assert "Traceback" not in r.text


def test_revoked_and_expired_tokens_are_401(env: Env) -> None:
    tok = env.token("alice", note="ci")
    assert env.get(tok, "/api/datasets").status_code == 200
    token_id = tok.split("_")[1]
    env.access.revoke_token(token_id, "alice")
    old = env.token("alice")
    before = env.snapshot()
    r = env.client.patch("/api/datasets/fersa-press", json={"title": "x"}, headers=env.h(tok))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    row_id = old.split("_")[1]
    from sqlalchemy import update

    from stream0d_nb.db.access_tables import ApiTokenRow

    with env.store.registry.write_session() as s:
        s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == row_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = env.client.patch("/api/datasets/fersa-press", json={"title": "x"}, headers=env.h(old))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert env.snapshot() == before


def test_token_in_query_string_is_refused(env: Env) -> None:
    before = env.snapshot()
    for name in ("token", "access_token"):
        r = env.client.get(f"/api/datasets?{name}={env.tokens['alice']}")
        assert r.status_code == 401
        assert "URL" in r.json()["error"]["message"]
        # even alongside a good header
        r = env.client.patch(
            f"/api/datasets/fersa-press?{name}=x", json={"title": "y"}, headers=env.h("alice")
        )
        assert r.status_code == 401
    assert env.snapshot() == before


def test_without_group_resolver_tokens_get_503(env: Env) -> None:
    del env.app.dependency_overrides[get_group_resolver]
    r = env.get("alice", "/api/datasets")
    assert r.status_code == 503 and "resolver" in r.json()["error"]["message"]


# ----------------------------------------------------------------------------- datasets


def test_list_shows_only_visible_datasets(env: Env) -> None:
    ids = lambda u: [d["id"] for d in env.get(u, "/api/datasets").json()]  # noqa: E731
    assert ids("alice") == ["fersa-press"]
    assert ids("bob") == ["zf-oven"]
    assert ids("root") == ["fersa-press", "zf-oven"]
    assert ids("nobody") == []
    assert env.get("alice", "/api/datasets").json()[0]["role"] == "owner"


def test_show_channels_history(env: Env) -> None:
    r = env.get("alice", "/api/datasets/fersa-press")
    assert r.status_code == 200
    assert r.json()["summary"]["samples"] == N
    ch = env.get("alice", "/api/datasets/fersa-press/channels").json()
    assert [c["name"] for c in ch["stored"]] == ["temp", "p_in"] and ch["derived"] == []
    hist = env.get("alice", "/api/datasets/fersa-press/history").json()
    assert len(hist) >= 2 and hist[0]["id"] == env.store.data("fersa-press").head()


def test_other_partner_cannot_tell_a_dataset_exists(env: Env) -> None:
    before = env.snapshot()
    hidden = env.get("bob", "/api/datasets/fersa-press")
    missing = env.get("bob", "/api/datasets/no-such")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"].replace("fersa-press", "X") == missing.json()["error"][
        "message"
    ].replace("no-such", "X")
    assert hidden.json()["error"]["type"] == "not_found"
    h = env.h("bob")
    calls = [
        env.client.get("/api/datasets/fersa-press/data", headers=h),
        env.client.get("/api/datasets/fersa-press/channels", headers=h),
        env.client.patch("/api/datasets/fersa-press", json={"title": "pwn"}, headers=h),
        env.client.delete("/api/datasets/fersa-press?confirm=fersa-press", headers=h),
        env.client.post(
            "/api/datasets/fersa-press/formulas",
            json={"name": "x", "formula": "temp * 2"},
            headers=h,
        ),
        env.client.post(
            "/api/datasets/fersa-press/grants",
            json={"kind": "group", "principal": "zf", "role": "owner"},
            headers=h,
        ),
        env.client.post(
            "/api/datasets/fersa-press/ingest",
            files={"file": ("a.csv", b"time,temp\n2024-05-01T00:00:00Z,1\n")},
            headers=h,
        ),
        env.client.get("/api/datasets/fersa-press/audit", headers=h),
    ]
    assert [c.status_code for c in calls] == [404] * len(calls)
    assert env.get("nobody", "/api/datasets/fersa-press").status_code == 404
    assert env.snapshot() == before


def test_create_update_delete(env: Env) -> None:
    spec = {"id": "fersa-new", "interval": "1min", "partner": "fersa", "title": "New"}
    r = env.client.post("/api/datasets", json=spec, headers=env.h("alice"))
    assert r.status_code == 201 and r.json()["id"] == "fersa-new"
    assert r.json()["compression"] == "lz4"
    r = env.client.post(
        "/api/datasets",
        json={**spec, "id": "fersa-archive", "compression": "zstd"},
        headers=env.h("alice"),
    )
    assert r.status_code == 201 and r.json()["compression"] == "zstd"
    r = env.client.post(
        "/api/datasets",
        json={**spec, "id": "fersa-gz", "compression": "gzip"},
        headers=env.h("alice"),
    )
    assert r.status_code == 422 and "compression" in r.text
    assert env.client.post("/api/datasets", json=spec, headers=env.h("alice")).status_code == 409
    # bob may not create fersa datasets; nobody may create any
    before = env.snapshot()
    assert (
        env.client.post(
            "/api/datasets", json={**spec, "id": "x2"}, headers=env.h("bob")
        ).status_code
        == 403
    )
    assert (
        env.client.post(
            "/api/datasets", json={"id": "x3", "interval": "1s"}, headers=env.h("nobody")
        ).status_code
        == 403
    )
    assert (
        env.client.post(
            "/api/datasets",
            json={"id": "Bad Id", "interval": "1s", "partner": "fersa"},
            headers=env.h("alice"),
        ).status_code
        == 422
    )
    assert env.snapshot() == before
    r = env.client.patch(
        "/api/datasets/fersa-new", json={"title": "Renamed"}, headers=env.h("alice")
    )
    assert r.status_code == 200 and r.json()["title"] == "Renamed"
    audit = env.get("alice", "/api/datasets/fersa-new/audit").json()
    assert audit[0]["action"] == "dataset.update" and audit[0]["via"].startswith("token:")
    r = env.client.delete("/api/datasets/fersa-new", headers=env.h("alice"))
    assert r.status_code == 400 and "confirm" in r.json()["error"]["message"]
    r = env.client.delete("/api/datasets/fersa-new?confirm=fersa-new", headers=env.h("alice"))
    assert r.status_code == 200
    assert env.get("alice", "/api/datasets/fersa-new").status_code == 404


def test_viewer_grant_and_read_token_cannot_write(env: Env) -> None:
    r = env.client.post(
        "/api/datasets/fersa-press/grants",
        json={"kind": "group", "principal": "zf", "role": "viewer"},
        headers=env.h("alice"),
    )
    assert r.status_code == 201
    assert [d["id"] for d in env.get("bob", "/api/datasets").json()] == ["fersa-press", "zf-oven"]
    assert (
        env.get("bob", "/api/datasets/fersa-press/data?end=2024-05-01T00:00:10Z").status_code == 200
    )
    read_tok = env.token("alice", level="read")
    before = env.snapshot()
    for who in ("bob", read_tok):
        h = env.h(who)
        calls = [
            env.client.patch("/api/datasets/fersa-press", json={"title": "x"}, headers=h),
            env.client.post(
                "/api/datasets/fersa-press/formulas",
                json={"name": "x", "formula": "temp*2"},
                headers=h,
            ),
            env.client.post(
                "/api/datasets/fersa-press/ingest",
                files={"file": ("a.csv", b"time,temp\n2024-05-01T00:00:00Z,1\n")},
                headers=h,
            ),
            env.client.post(
                "/api/datasets/fersa-press/grants",
                json={"kind": "user", "principal": "bob", "role": "owner"},
                headers=h,
            ),
            env.client.delete("/api/datasets/fersa-press?confirm=fersa-press", headers=h),
        ]
        assert [c.status_code for c in calls] == [403] * len(calls), who
        assert all(c.json()["error"]["type"] == "forbidden" for c in calls)
    assert env.snapshot() == before
    grants = env.get("alice", "/api/datasets/fersa-press/grants").json()
    assert [(g["principal"], g["role"]) for g in grants] == [("zf", "viewer")]
    assert env.get("bob", "/api/datasets/fersa-press/grants").status_code == 403
    r = env.client.delete("/api/datasets/fersa-press/grants/group/zf", headers=env.h("alice"))
    assert r.status_code == 204
    assert env.get("bob", "/api/datasets/fersa-press").status_code == 404


# ----------------------------------------------------------------------------- reads


def _expected(env: Env, **kw: Any) -> pd.DataFrame:
    from stream0d_nb.tables import to_pandas

    return to_pandas(env.store.read("fersa-press", **kw))


def test_read_json_csv_parquet_arrow_round_trip(env: Env) -> None:
    q = "start=2024-05-01T00:00:05Z&end=2024-05-01T00:01:40Z"
    exp = _expected(env, start="2024-05-01T00:00:05Z", end="2024-05-01T00:01:40Z")
    body = env.get("alice", f"/api/datasets/fersa-press/data?{q}").json()
    assert pd.DatetimeIndex(body["time"]).equals(exp.index)
    assert body["time"][0] == "2024-05-01T00:00:05Z"  # whole seconds: no ".000000000"
    assert body["channels"]["temp"]["units"] == "degC"
    got = np.array([np.nan if v is None else v for v in body["channels"]["p_in"]["values"]])
    np.testing.assert_array_equal(got, exp["p_in"].to_numpy())
    r = env.get("alice", f"/api/datasets/fersa-press/data?{q}&format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    csv = pd.read_csv(io.StringIO(r.text), index_col="time", parse_dates=["time"])
    assert csv.index.equals(exp.index)
    np.testing.assert_allclose(csv.to_numpy(), exp.to_numpy(), rtol=1e-15)
    r = env.get("alice", f"/api/datasets/fersa-press/data?{q}&format=parquet")
    pdf = pq.read_table(io.BytesIO(r.content)).to_pandas().set_index("time")
    pd.testing.assert_frame_equal(pdf, exp, check_freq=False, check_index_type=False)
    r = env.get("alice", f"/api/datasets/fersa-press/data?{q}&format=arrow")
    tab = pa.ipc.open_stream(r.content).read_all().to_pandas().set_index("time")
    pd.testing.assert_frame_equal(tab, exp, check_freq=False, check_index_type=False)


def test_json_times_keep_the_precision_they_need() -> None:
    """Times are exact in the coarsest ISO unit: s, ms, us or ns, before 1970 too."""
    from stream0d_nb.api.routes.data import iso_times

    cases = {
        ("2024-01-01T00:00:00", "2024-01-01T00:00:01"): "2024-01-01T00:00:01Z",
        ("2024-01-01T00:00:00", "2024-01-01T00:00:00.25"): "2024-01-01T00:00:00.250Z",
        ("2024-01-01T00:00:00", "2024-01-01T00:00:00.000002"): "2024-01-01T00:00:00.000002Z",
        ("1969-12-31T23:59:59.5", "2024-01-01T00:00:00.000000001"): (
            "2024-01-01T00:00:00.000000001Z"
        ),
    }
    for times, last in cases.items():
        values = np.array(times, dtype="datetime64[ns]")
        got = iso_times(values)
        assert got[-1] == last
        assert (pd.DatetimeIndex(got).tz_convert(None).to_numpy() == values).all()
    assert iso_times(np.array([], dtype="datetime64[ns]")).size == 0


def test_csv_streams_by_windows_and_aggregates(env: Env) -> None:
    # 600 rows x 2 channels with 250 values per window: several windows, same result
    r = env.get("alice", "/api/datasets/fersa-press/data?format=csv")
    csv = pd.read_csv(io.StringIO(r.text), index_col="time", parse_dates=["time"])
    exp = _expected(env)
    assert csv.index.equals(exp.index)
    np.testing.assert_allclose(csv.to_numpy(), exp.to_numpy(), rtol=1e-15)
    r = env.get("alice", "/api/datasets/fersa-press/data?format=csv&every=1min&how=max")
    csv = pd.read_csv(io.StringIO(r.text), index_col="time", parse_dates=["time"])
    exp = _expected(env, every="1min", how="max")
    np.testing.assert_allclose(csv.to_numpy(), exp.to_numpy(), rtol=1e-15)


def test_derived_channel_read(env: Env) -> None:
    r = env.client.post(
        "/api/datasets/fersa-press/formulas",
        json={"name": "double", "formula": "p_in * 2"},
        headers=env.h("alice"),
    )
    assert r.status_code == 201 and r.json()["units"] == "bar"
    body = env.get(
        "alice", "/api/datasets/fersa-press/data?channels=p_in,double&end=2024-05-01T00:00:30Z"
    ).json()
    p_in = np.array(body["channels"]["p_in"]["values"], dtype=float)
    double = np.array(body["channels"]["double"]["values"], dtype=float)
    np.testing.assert_allclose(double, p_in * 2)
    assert np.isnan(double[10:20]).all()


def test_read_limits_and_bad_arguments(env: Env) -> None:
    r = env.get("alice", "/api/datasets/fersa-press/data")  # 1,200 values: under 2,000
    assert r.status_code == 200
    r = env.get("alice", "/api/datasets/fersa-press/data?end=2024-05-02T00:00:00Z")
    assert r.status_code == 413 and "2,000" in r.json()["error"]["message"]
    r = env.get("alice", "/api/datasets/fersa-press/data?end=2024-05-02T00:00:00Z&format=parquet")
    assert r.status_code == 413 and "5,000" in r.json()["error"]["message"]
    r = env.get("alice", "/api/datasets/fersa-press/data?end=2024-05-02T00:00:00Z&every=1h")
    assert r.status_code == 200
    for q, code in [
        ("channels=tmp", 404),
        ("every=7x", 422),
        ("every=1500ms", 422),
        ("how=median-ish", 422),
        ("start=yesterday-ish", 422),
        ("format=xml", 422),
        ("channels=temp,,p_in", 422),
    ]:
        r = env.get("alice", f"/api/datasets/fersa-press/data?{q}")
        assert r.status_code == code, (q, r.text)
        assert "Traceback" not in r.text
    r = env.get("alice", "/api/datasets/fersa-press/data?channels=tmp")
    assert "did you mean 'temp'" in r.json()["error"]["message"]


# ----------------------------------------------------------------------------- ingest


CSV_OK = b"time,temp,p_in\n2024-05-02T00:00:00Z,61.5,5.1\n2024-05-02T00:00:01Z,61.7,5.2\n"


def test_ingest_small_csv(env: Env) -> None:
    r = env.client.post(
        "/api/datasets/fersa-press/ingest",
        files={"file": ("more.csv", CSV_OK, "text/csv")},
        data={"duplicates": "error"},
        headers=env.h("alice"),
    )
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["values_written"] == 4 and rep["source"] == "more.csv"
    assert rep["commit"] == env.store.data("fersa-press").head()
    body = env.get(
        "alice",
        "/api/datasets/fersa-press/data?start=2024-05-02T00:00:00Z&end=2024-05-02T00:00:02Z",
    ).json()
    assert body["channels"]["temp"]["values"] == [61.5, 61.7]
    assert not list((env.store.settings.home / "uploads").iterdir())
    # the audit entry says who and through which token, though the store was not told
    entry = env.store.registry.audit_log("fersa-press", action="ingest")[0]
    token_id = env.tokens["alice"].split("_")[1]
    assert entry.actor == "alice" and entry.via == f"token:{token_id}"


def test_ingest_options_as_json_field(env: Env) -> None:
    text = b"zeit;temp\n2024-05-02 00:00:00;1,5\n"
    r = env.client.post(
        "/api/datasets/fersa-press/ingest",
        files={"file": ("de.csv", text)},
        data={"options": '{"delimiter": ";", "decimal": ",", "tz": "UTC"}'},
        headers=env.h("alice"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["values_written"] == 1


def test_ingest_bad_file_is_422_with_locations(env: Env) -> None:
    before = env.snapshot()
    bad = b"time,temp\n2024-05-02T00:00:00Z,1.0\n2024-05-02T00:00:01Z,hot\n"
    r = env.client.post(
        "/api/datasets/fersa-press/ingest", files={"file": ("bad.csv", bad)}, headers=env.h("alice")
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["locations"][0]["line"] == 3 and err["locations"][0]["column"] == "temp"
    assert err["locations"][0]["file"] == "bad.csv"
    assert str(env.store.settings.home) not in r.text
    for data in ({"options": "{nope"}, {"no_such_option": "1"}, {"duplicates": "maybe"}):
        r = env.client.post(
            "/api/datasets/fersa-press/ingest",
            files={"file": ("a.csv", CSV_OK)},
            data=data,
            headers=env.h("alice"),
        )
        assert r.status_code == 422, data
    r = env.client.post(
        "/api/datasets/fersa-press/ingest", data={"tz": "UTC"}, headers=env.h("alice")
    )
    assert r.status_code == 422
    assert env.snapshot() == before


def test_oversized_upload_is_413(env: Env) -> None:
    before = env.snapshot()
    big = CSV_OK + b"2024-05-02T00:00:02Z,1,1\n" * 2000
    r = env.client.post(
        "/api/datasets/fersa-press/ingest", files={"file": ("big.csv", big)}, headers=env.h("alice")
    )
    assert r.status_code == 413 and "20,000" in r.json()["error"]["message"]
    assert env.snapshot() == before


# ----------------------------------------------------------------------------- formulas, alerts


def test_formulas_crud(env: Env) -> None:
    h = env.h("alice")
    r = env.client.post(
        "/api/datasets/fersa-press/formulas", json={"name": "dp", "formula": "p_in * 2"}, headers=h
    )
    assert r.status_code == 201
    assert [f["name"] for f in env.get("alice", "/api/datasets/fersa-press/formulas").json()] == [
        "dp"
    ]
    assert env.get("alice", "/api/datasets/fersa-press/formulas/dp").json()["units"] == "bar"
    assert env.get("alice", "/api/datasets/fersa-press/formulas/nope").status_code == 404
    r = env.client.post(
        "/api/datasets/fersa-press/formulas",
        json={"name": "bad", "formula": "p_inn * 2"},
        headers=h,
    )
    assert r.status_code == 422 and "p_in" in r.json()["error"]["message"]
    assert env.client.delete("/api/datasets/fersa-press/formulas/dp", headers=h).status_code == 204
    assert env.client.delete("/api/datasets/fersa-press/formulas/dp", headers=h).status_code == 404
    assert env.get("alice", "/api/datasets/fersa-press/formulas").json() == []


def test_alert_rules_crud_and_events(env: Env) -> None:
    h = env.h("alice")
    rule = {
        "name": "hot",
        "kind": "threshold",
        "channels": ["temp"],
        "op": ">",
        "value": 80,
        "for": "2s",
    }
    r = env.client.post("/api/datasets/fersa-press/alerts", json=rule, headers=h)
    assert r.status_code == 201, r.text
    assert [x["name"] for x in env.get("alice", "/api/datasets/fersa-press/alerts").json()] == [
        "hot"
    ]
    assert env.get("alice", "/api/datasets/fersa-press/alerts/hot").json()["for_duration"] == "2s"
    assert env.get("alice", "/api/datasets/fersa-press/alerts/nope").status_code == 404
    bad = {**rule, "name": "bad", "channels": ["tmp"]}
    r = env.client.post("/api/datasets/fersa-press/alerts", json=bad, headers=h)
    assert r.status_code == 422 and "did you mean 'temp'" in r.text, r.text
    hot = b"time,temp\n" + b"".join(f"2024-05-03T00:00:{s:02d}Z,99\n".encode() for s in range(10))
    r = env.client.post(
        "/api/datasets/fersa-press/ingest", files={"file": ("hot.csv", hot)}, headers=h
    )
    assert r.status_code == 200, r.text
    events = env.get("alice", "/api/datasets/fersa-press/alerts/events?rule=hot").json()
    assert "firing" in {e["to_state"] for e in events}
    assert env.get("bob", "/api/datasets/fersa-press/alerts/events").status_code == 404
    assert env.client.delete("/api/datasets/fersa-press/alerts/hot", headers=h).status_code == 204
    assert env.get("alice", "/api/datasets/fersa-press/alerts").json() == []


# ----------------------------------------------------------------------------- tokens


def test_tokens_list_and_revoke(env: Env) -> None:
    mine = env.get("alice", "/api/tokens").json()
    assert [t["owner"] for t in mine] == ["alice"] and "secret_hash" not in mine[0]
    extra = env.token("alice", note="script")
    extra_id = extra.split("_")[1]
    assert len(env.get("alice", "/api/tokens").json()) == 2
    bobs = env.get("bob", "/api/tokens").json()[0]["id"]
    assert env.client.delete(f"/api/tokens/{bobs}", headers=env.h("alice")).status_code == 404
    r = env.client.delete(f"/api/tokens/{extra_id}", headers=env.h("alice"))
    assert r.status_code == 200 and r.json()["revoked_by"] == "alice"
    assert env.get(extra, "/api/whoami").status_code == 401


def test_token_creation_refused_with_a_token(env: Env) -> None:
    exp = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    count = len(env.access.list_tokens("alice"))
    r = env.client.post(
        "/api/tokens", json={"level": "read", "expires_at": exp}, headers=env.h("alice")
    )
    assert r.status_code == 403 and "browser session" in r.json()["error"]["message"]
    assert len(env.access.list_tokens("alice")) == count
    # a hub browser session (the hub work provides it) may create one
    env.app.dependency_overrides[session_only] = lambda: Identity(
        "alice", frozenset({"fersa"}), scopes=ADMIN_SCOPE
    )
    r = env.client.post("/api/tokens", json={"level": "read", "expires_at": exp, "note": "nb"})
    assert r.status_code == 201
    tok = r.json()["token"]
    assert env.get(tok, "/api/whoami").json()["token"]["level"] == "read"
    r = env.client.post("/api/tokens", json={"level": "root", "expires_at": exp})
    assert r.status_code == 422


# ----------------------------------------------------------------------------- app


def test_openapi_and_docs(env: Env) -> None:
    schema = env.client.get("/openapi.json").json()
    assert "/api/datasets/{dataset_id}/data" in schema["paths"]
    assert env.client.get("/docs").status_code == 200


def test_service_prefix(env: Env) -> None:
    app = create_app(env.store, env.settings, prefix="/services/stream0d/")
    app.dependency_overrides[get_group_resolver] = lambda: resolve
    with TestClient(app) as c:
        r = c.get("/services/stream0d/api/whoami", headers=env.h("alice"))
        assert r.status_code == 200 and r.json()["user"] == "alice"
        assert c.get("/api/whoami", headers=env.h("alice")).status_code == 200
        assert c.get("/services/stream0d/openapi.json").status_code == 200


# ----------------------------------------------------------------------------- export, channels


@pytest.mark.parametrize("fmt", ["csv", "parquet", "netcdf", "zarr"])
def test_export_formats_match_store_read(env: Env, fmt: str, tmp_path: Path) -> None:
    import zipfile

    import xarray as xr

    q = f"format={fmt}&start=2024-05-01T00:00:05Z&end=2024-05-01T00:01:40Z&channels=temp,p_in"
    r = env.get("alice", f"/api/datasets/fersa-press/export?{q}")
    assert r.status_code == 200, r.text
    assert r.headers["x-stream0d-rows"] == "95"
    assert r.headers["x-stream0d-snapshot"] == env.store.data("fersa-press").head()
    assert "attachment" in r.headers["content-disposition"]
    exp = _expected(env, start="2024-05-01T00:00:05Z", end="2024-05-01T00:01:40Z")
    if fmt == "csv":
        got = pd.read_csv(io.StringIO(r.text), index_col="time", parse_dates=["time"])
    elif fmt == "parquet":
        got = pq.read_table(io.BytesIO(r.content)).to_pandas().set_index("time")
    else:
        path = tmp_path / "out"
        if fmt == "zarr":
            zipfile.ZipFile(io.BytesIO(r.content)).extractall(path)
            ds = xr.open_zarr(path, consolidated=True).load()
        else:
            path.write_bytes(r.content)
            ds = xr.open_dataset(path, engine="h5netcdf").load()
        got = ds.to_dataframe()
        got.index = pd.DatetimeIndex(got.index).tz_localize("UTC")
    assert got.index.equals(exp.index)
    np.testing.assert_allclose(got[["temp", "p_in"]].to_numpy(), exp.to_numpy(), rtol=1e-15)
    assert not list((env.store.settings.home / "exports").iterdir())


def test_export_limits_and_errors(env: Env) -> None:
    r = env.get("alice", "/api/datasets/fersa-press/export?end=2024-05-02T00:00:00Z")
    assert r.status_code == 413 and "5,000" in r.json()["error"]["message"]
    assert env.get("alice", "/api/datasets/fersa-press/export?format=xls").status_code == 422
    assert env.get("alice", "/api/datasets/fersa-press/export?channels=tmp").status_code == 404
    r = env.get("alice", "/api/datasets/fersa-press/export?format=zarr&tz=Europe/Madrid")
    assert r.status_code == 422
    assert env.get("bob", "/api/datasets/fersa-press/export").status_code == 404
    r = env.get("alice", "/api/datasets/fersa-press/export?every=1min&how=max&tz=Europe/Madrid")
    assert r.status_code == 200 and "+02:00" in r.text.splitlines()[1]
    assert not list((env.store.settings.home / "exports").iterdir())


def test_channels_set_and_delete(env: Env) -> None:
    h = env.h("alice")
    r = env.client.put(
        "/api/datasets/fersa-press/channels",
        json=[
            {"name": "flow", "units": "l/min", "description": "coolant"},
            {"name": "temp", "units": "degC", "long_name": "Oil temperature"},
        ],
        headers=h,
    )
    assert r.status_code == 200, r.text
    stored = {c["name"]: c for c in r.json()["stored"]}
    assert stored["flow"]["units"] == "l/min" and stored["temp"]["long_name"] == "Oil temperature"
    assert r.json()["commit"] == env.store.data("fersa-press").head()
    before = env.snapshot()
    r = env.client.put(
        "/api/datasets/fersa-press/channels", json=[{"name": "temp", "units": "K"}], headers=h
    )
    assert r.status_code == 422 and "units" in r.json()["error"]["message"]
    assert (
        env.client.put("/api/datasets/fersa-press/channels", json=[], headers=h).status_code == 422
    )
    r = env.client.delete("/api/datasets/fersa-press/channels/flow", headers=h)
    assert r.status_code == 400
    assert env.snapshot() == before
    r = env.client.delete("/api/datasets/fersa-press/channels/flow?confirm=flow", headers=h)
    assert r.status_code == 200 and r.json()["deleted"] == "flow"
    names = [
        c["name"] for c in env.get("alice", "/api/datasets/fersa-press/channels").json()["stored"]
    ]
    assert names == ["temp", "p_in"]
    r = env.client.delete("/api/datasets/fersa-press/channels/nope?confirm=nope", headers=h)
    assert r.status_code == 404


def test_update_refuses_unknown_fields(env: Env) -> None:
    before = env.snapshot()
    for body in ({"partner": "zf"}, {"title": "x", "id": "other"}, {"created_by": "root"}):
        r = env.client.patch("/api/datasets/fersa-press", json=body, headers=env.h("alice"))
        assert r.status_code == 422, body
    assert env.snapshot() == before


def test_json_answer_is_strict_json() -> None:
    import json

    import xarray as xr

    from stream0d_nb.api.routes.data import json_bytes

    t = np.array(["2024-01-01T00:00", "2024-01-01T00:00:01"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {
            'a"b': (("time",), [1.5, np.nan], {"units": "degC"}),
            "c": (("time",), [np.inf, 0.1], {"units": "1"}),
        },
        coords={"time": t},
        attrs={"dataset": "d", "snapshot": "S", "interval": "1s"},
    )

    def strict(token: str) -> None:
        raise ValueError(token)

    body = json.loads(json_bytes(ds), parse_constant=strict)
    assert body["channels"]['a"b'] == {"units": "degC", "values": [1.5, None]}
    assert body["channels"]["c"]["values"] == [None, 0.1]
    assert pd.DatetimeIndex(body["time"]).equals(pd.DatetimeIndex(t).tz_localize("UTC"))
    empty = json.loads(json_bytes(ds.isel(time=slice(0, 0))))
    assert empty["time"] == [] and empty["channels"]["c"]["values"] == []


def test_ttl_cache_reuses_then_reloads_and_clears() -> None:
    from stream0d_nb.api.deps import TtlCache

    calls: list[int] = []

    def load() -> int:
        calls.append(1)
        return len(calls)

    cache = TtlCache(ttl=60)
    assert cache.get("k", load) == 1 and cache.get("k", load) == 1  # reused
    cache.clear()
    assert cache.get("k", load) == 2  # reloaded after a change
    stale = TtlCache(ttl=0)
    assert stale.get("k", load) == 3 and stale.get("k", load) == 4  # ttl 0: never reused

    def boom() -> int:
        raise PermissionError("invalid API token")

    with pytest.raises(PermissionError):
        cache.get("bad", boom)
    assert cache.get("bad", load) == 5  # failures are never cached
