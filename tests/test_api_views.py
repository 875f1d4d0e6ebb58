"""Saved views (issue 12, point 3) over real HTTP with real API tokens, plus their table and
the shared range resolver.

The app runs under uvicorn on a store with fersa's ``fersa-press`` (derived channel
``dp``) and zf's ``zf-oven``. Seats: alice (fersa, write token: editor through her
partner), alice's read-level token (viewer), carl (a user grant of viewer on
fersa-press, write token) and bob (zf: fersa's views must look like a missing dataset).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from stream0d_nb import derived
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import NotFoundError, PermissionDeniedError
from stream0d_nb.client import RequestValidationError as ClientValidationError
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.db.registry import Registry
from stream0d_nb.db.view_tables import ViewExistsError, ViewNotFoundError, ViewRegistry
from stream0d_nb.errors import DatasetNotFoundError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import FormulaSpec
from stream0d_nb.store import Store
from stream0d_nb.views import ViewSpec, check_time_expr, resolve_range
from tests.api_servers import ApiOverHttp, partner_spec, seed_partner_datasets
from tests.races import at_once

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
    "carl": UserInfo(frozenset(), False, WRITE),
}
DS, OTHER, MISSING = "fersa-press", "zf-oven", "fersa-nothing"
SHIFT = {
    "name": "shift",
    "channels": ["temp", "dp"],
    "start": "now-8h",
    "end": "now",
    "kind": "line",
    "options": {"ylim": [50, 70], "title": "Press, last shift"},
    "description": "what the night shift looks at",
}


class Server(ApiOverHttp):
    """Store, app under uvicorn, tokens per seat."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        seed_partner_datasets(store, {DS: "fersa", OTHER: "zf"})
        derived.save_formula(store, DS, FormulaSpec(name="dp", formula="p_in * 2"), "alice")
        AccessRegistry(store.registry).grant(DS, "user", "carl", "viewer", actor="admin")
        super().__init__(store, USERS)
        self.tokens["alice-ro"] = self.token("alice", "read")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("views") / "home")
    yield s
    s.stop()


def error(r: httpx.Response) -> tuple[int, str]:
    """Status and error message of an answer."""
    return r.status_code, r.json()["error"]["message"]


def views_path(ds: str = DS, name: str | None = None) -> str:
    return f"/datasets/{ds}/views" + ("" if name is None else f"/{name}")


# ----------------------------------------------------------------------------- own partner


def test_create_list_show_replace_patch_delete_audited(srv: Server) -> None:
    before = srv.store.registry.count_audit(DS)
    r = srv.call("alice", "POST", views_path(), json=SHIFT)
    assert r.status_code == 201, r.text
    assert r.json() == SHIFT
    assert srv.call("alice", "GET", views_path()).json() == [SHIFT]
    assert srv.call("alice", "GET", views_path(name="shift")).json() == SHIFT

    # the same name again: 409, nothing written
    assert error(srv.call("alice", "POST", views_path(), json=SHIFT)) == (
        409,
        "dataset 'fersa-press' has a view 'shift' already (PUT .../views/{name} replaces it)",
    )
    # PUT replaces (200) the whole view; an absolute range is kept as ISO UTC
    replaced = {**SHIFT, "start": "2024-05-01T00:00", "end": "2024-05-01 08:10+02:00"}
    r = srv.call("alice", "PUT", views_path(name="shift"), json=replaced)
    assert r.status_code == 200, r.text
    assert r.json()["start"] == "2024-05-01T00:00:00+00:00"
    assert r.json()["end"] == "2024-05-01T06:10:00+00:00"
    # ... and creates (201) a view that does not exist; defaults fill the rest
    r = srv.call(
        "alice",
        "PUT",
        views_path(name="carpet"),
        json={"name": "carpet", "channels": ["p_in"], "kind": "carpet"},
    )
    assert r.status_code == 201, r.text
    assert r.json() == {
        "name": "carpet",
        "channels": ["p_in"],
        "start": "now-1d",
        "end": "now",
        "kind": "carpet",
        "options": {},
        "description": "",
    }
    # PATCH changes some fields; the rest stays
    r = srv.call(
        "alice",
        "PATCH",
        views_path(name="carpet"),
        json={"start": "now - 7d", "options": {"cmap": "viridis"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["start"] == "now-7d" and r.json()["options"] == {"cmap": "viridis"}
    assert r.json()["kind"] == "carpet"
    assert [v["name"] for v in srv.call("alice", "GET", views_path()).json()] == ["shift", "carpet"]
    # an unchanged PUT writes no audit entry
    n = srv.store.registry.count_audit(DS)
    assert srv.call("alice", "PUT", views_path(name="shift"), json=replaced).status_code == 200
    assert srv.store.registry.count_audit(DS) == n

    assert srv.call("alice", "DELETE", views_path(name="carpet")).status_code == 204
    assert error(srv.call("alice", "GET", views_path(name="carpet"))) == (
        404,
        "dataset 'fersa-press' has no view 'carpet'",
    )
    assert error(srv.call("alice", "DELETE", views_path(name="carpet")))[0] == 404

    log = srv.store.registry.audit_log(DS, limit=10)
    mine = [e for e in log if e.action.startswith("view.")][::-1]
    assert [(e.action, e.detail["name"]) for e in mine] == [
        ("view.create", "shift"),
        ("view.update", "shift"),
        ("view.create", "carpet"),
        ("view.update", "carpet"),
        ("view.delete", "carpet"),
    ]
    assert srv.store.registry.count_audit(DS) == before + 5
    token_id = srv.tokens["alice"].split("_")[1]
    assert all(e.actor == "alice" and e.via == f"token:{token_id}" for e in mine)
    assert mine[1].detail["from"]["start"] == "now-8h"
    assert mine[1].detail["view"]["start"] == "2024-05-01T00:00:00+00:00"
    assert mine[4].detail["view"]["options"] == {"cmap": "viridis"}
    srv.call("alice", "DELETE", views_path(name="shift"))


# ----------------------------------------------------------------------------- other seats

ENDPOINTS = [
    ("GET", None, None),
    ("GET", "shift", None),
    ("POST", None, SHIFT),
    ("PUT", "shift", SHIFT),
    ("PATCH", "shift", {"kind": "box"}),
    ("DELETE", "shift", None),
]


@pytest.fixture
def saved(srv: Server) -> Iterator[None]:
    """fersa-press holds the view ``shift`` during the test."""
    assert srv.call("alice", "PUT", views_path(name="shift"), json=SHIFT).status_code == 201
    yield
    srv.call("alice", "DELETE", views_path(name="shift"))


@pytest.mark.parametrize(("method", "name", "body"), ENDPOINTS)
def test_other_partner_gets_exactly_what_a_missing_dataset_gives(
    srv: Server, saved: None, method: str, name: str | None, body: Any
) -> None:
    hidden = srv.call("bob", method, views_path(DS, name), json=body)
    missing = srv.call("bob", method, views_path(MISSING, name), json=body)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"].replace(
        MISSING, DS
    )
    assert hidden.json()["error"]["message"] == "no dataset 'fersa-press' in the registry"
    assert hidden.headers.keys() == missing.headers.keys()
    # bob's own dataset works for him, and nothing of fersa's changed
    assert srv.call("bob", "GET", views_path(OTHER)).json() == []
    assert srv.call("alice", "GET", views_path(name="shift")).json() == SHIFT


@pytest.mark.parametrize("who", ["carl", "alice-ro"])
@pytest.mark.parametrize(("method", "name", "body"), ENDPOINTS)
def test_viewers_read_but_writing_is_403(
    srv: Server, saved: None, who: str, method: str, name: str | None, body: Any
) -> None:
    n = srv.store.registry.count_audit(DS)
    r = srv.call(who, method, views_path(DS, name), json=body)
    if method == "GET":
        assert r.status_code == 200, r.text
        assert r.json() in (SHIFT, [SHIFT])
    else:
        status, message = error(r)
        assert status == 403
        assert "views.edit" in message and "viewer" in message, message
    assert srv.store.registry.count_audit(DS) == n
    assert srv.call("alice", "GET", views_path(name="shift")).json() == SHIFT


# ----------------------------------------------------------------------------- bad input


BAD = [
    (
        {"name": "a\u202eb"},
        "name: Value error, channel name 'a\\u202eb' contains U+202E (bidi override)",
    ),
    ({"name": "__x"}, "name: Value error, channel name '__x' must not start with '.' or '__'"),
    ({"name": "x" * 129}, "name: Value error, channel name"),
    ({"channels": []}, "channels: List should have at least 1 item"),
    ({"channels": ["temp", "temp"]}, "channels: Value error, channels named more than once: temp"),
    (
        {"channels": ["tmep"]},
        "channels: dataset 'fersa-press' has no channel or derived channel 'tmep'",
    ),
    ({"kind": "pie"}, "kind: Input should be 'line', 'scatter', 'carpet', 'hist' or 'box'"),
    ({"start": "yesterday"}, "start: Value error, 'yesterday' is neither a time"),
    ({"start": "today"}, "start: Value error, 'today' is neither a time"),
    ({"end": "now-8 parsecs"}, "end: Value error, 'now-8 parsecs': '8 parsecs' is not a duration"),
    ({"end": "now--8h"}, "end: Value error, 'now--8h': '-8h' is not a duration"),
    ({"start": "now", "end": "now-1h"}, "end: the range 'now' .. 'now-1h' is empty"),
    ({"start": "2024-05-02", "end": "2024-05-01"}, "end: the range '2024-05-02T00:00:00+00:00'"),
    (
        {"options": {"x": "y" * 5000}},
        "options: Value error, options take 5,008 bytes as JSON; at most 4,096",
    ),
    (
        {"options": {"title": "ok\u200b"}},
        "options: options.title: contains U+200B (zero-width character) at position 2",
    ),
    ({"options": [1, 2]}, "options: Input should be a valid dictionary"),
    ({"owner": "bob"}, "owner: Extra inputs are not permitted"),
    ({"description": "a\x00b"}, "description: contains U+0000 (NUL) at position 1"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_views_are_422_naming_the_field(
    srv: Server, change: dict[str, Any], message: str
) -> None:
    n = srv.store.registry.count_audit(DS)
    body = {**SHIFT, **change}
    for method, path in (("POST", views_path()), ("PUT", views_path(name=str(body["name"])))):
        if method == "PUT" and "name" in change:
            continue  # a name that is not one cannot be a path either
        status, got = error(srv.call("alice", method, path, json=body))
        assert status == 422, got
        assert got.startswith(message), got
    assert srv.store.registry.count_audit(DS) == n
    assert srv.call("alice", "GET", views_path()).json() == []


def test_put_and_patch_refuse_changing_the_name(srv: Server, saved: None) -> None:
    assert error(srv.call("alice", "PUT", views_path(name="other"), json=SHIFT)) == (
        422,
        "name: 'shift' differs from the view in the path ('other')",
    )
    status, message = error(
        srv.call("alice", "PATCH", views_path(name="shift"), json={"name": "x"})
    )
    assert (status, message) == (422, "name: Extra inputs are not permitted")
    assert error(srv.call("alice", "PATCH", views_path(name="shift"), json={"kind": None})) == (
        422,
        "kind: may not be null (leave it out to keep it)",
    )
    status, message = error(
        srv.call("alice", "PATCH", views_path(name="shift"), json={"end": "now-9h"})
    )
    assert status == 422 and message.startswith("end: the range 'now-8h' .. 'now-9h' is empty")
    assert error(srv.call("alice", "PATCH", views_path(name="nope"), json={"kind": "box"})) == (
        404,
        "dataset 'fersa-press' has no view 'nope'",
    )
    assert srv.call("alice", "GET", views_path(name="shift")).json() == SHIFT


# ----------------------------------------------------------------------------- client


def test_client_methods(srv: Server) -> None:
    with srv.client("alice") as c:
        assert c.views(DS) == []
        saved = c.save_view(DS, "shift", channels=["temp", "dp"], start="now-8h", kind="scatter")
        assert saved == ViewSpec(
            name="shift", channels=["temp", "dp"], start="now-8h", kind="scatter"
        )
        assert c.view(DS, "shift") == saved
        again = c.save_view(DS, saved, options={"alpha": 0.5})  # replace: same name
        assert again.options == {"alpha": 0.5} and again.kind == "scatter"
        assert c.update_view(DS, "shift", kind="hist").kind == "hist"
        assert [v.name for v in c.views(DS)] == ["shift"]
        # the range the client resolves is the one the server would
        now = pd.Timestamp("2024-05-01T12:00Z")
        assert c.view(DS, "shift").resolve(now) == (pd.Timestamp("2024-05-01T04:00Z"), now)
        with pytest.raises(ClientValidationError, match="channels: dataset 'fersa-press' has no"):
            c.save_view(DS, "bad", channels=["nope"])
        with pytest.raises(NotFoundError, match="has no view 'nope'"):
            c.view(DS, "nope")
        c.delete_view(DS, "shift")
        assert c.views(DS) == []
    with srv.client("carl") as c, pytest.raises(PermissionDeniedError):
        c.save_view(DS, "shift", channels=["temp"])
    with srv.client("bob") as c, pytest.raises(DatasetNotFoundError, match="no dataset 'fers"):
        c.views(DS)


# ----------------------------------------------------------------------------- resolver


NOW = pd.Timestamp("2024-05-01T12:00:00Z")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("now-8h", "now", ("2024-05-01T04:00Z", "2024-05-01T12:00Z")),
        ("now-1d", "now+30min", ("2024-04-30T12:00Z", "2024-05-01T12:30Z")),
        ("now - 1h30min", "now-15s", ("2024-05-01T10:30Z", "2024-05-01T11:59:45Z")),
        ("2024-04-01", "now", ("2024-04-01T00:00Z", "2024-05-01T12:00Z")),
        ("2024-05-01T08:00+02:00", "2024-05-01T09:00Z", ("2024-05-01T06:00Z", "2024-05-01T09:00Z")),
    ],
)
def test_resolve_range(start: str, end: str, expected: tuple[str, str]) -> None:
    assert resolve_range(start, end, now=NOW) == tuple(map(pd.Timestamp, expected))
    # a naive now is UTC, a zoned one is converted
    assert resolve_range(start, end, now=NOW.tz_convert("Europe/Madrid")) == tuple(
        map(pd.Timestamp, expected)
    )
    assert resolve_range(start, end, now=NOW.tz_localize(None)) == tuple(
        map(pd.Timestamp, expected)
    )


def test_resolve_range_refuses_empty_and_unknown() -> None:
    with pytest.raises(ValueError, match="is empty"):
        resolve_range("now", "now", now=NOW)
    with pytest.raises(ValueError, match="is empty"):
        resolve_range("now-1h", "2024-05-01T10:00Z", now=NOW)
    for bad in ("", "now-", "now-x", "nowish", "tomorrow", "now*2", "1e9", "now-" + "1" * 70):
        with pytest.raises(ValueError):
            check_time_expr(bad)
    assert check_time_expr(" now ") == "now"
    assert check_time_expr("now + 2h") == "now+2h"


# ----------------------------------------------------------------------------- the table


@pytest.fixture
def reg(registry_url: str) -> Iterator[Registry]:
    registry = Registry(registry_url)
    try:
        yield registry
    finally:
        registry.close()


def test_view_table_on_each_backend(reg: Registry) -> None:
    reg.create_dataset(partner_spec("fersa-a", "fersa"), "/data/a", actor="alice")
    views = ViewRegistry(reg)
    spec = ViewSpec.model_validate(SHIFT)
    assert views.save("fersa-a", spec, "alice") == (spec, True)
    with pytest.raises(ViewExistsError):
        views.save("fersa-a", spec, "alice", create_only=True)
    changed = spec.model_copy(update={"kind": "box"})
    assert views.save("fersa-a", changed, "bob") == (changed, False)
    assert views.save("fersa-a", changed, "bob") == (changed, False)  # unchanged: no audit
    assert views.list("fersa-a") == [changed] and views.get("fersa-a", "shift") == changed
    with pytest.raises(ViewNotFoundError):
        views.get("fersa-a", "nope")
    with pytest.raises(DatasetNotFoundError):
        views.list("fersa-b")
    views.delete("fersa-a", "shift", "alice")
    assert views.list("fersa-a") == []
    actions = [e.action for e in reg.audit_log("fersa-a")][::-1]
    assert actions == ["dataset.create", "view.create", "view.update", "view.delete"]
    # views go with their dataset (FK cascade), their audit entries stay
    views.save("fersa-a", spec, "alice")
    reg.delete_dataset("fersa-a", actor="alice")
    with reg.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM views")).scalar_one() == 0
    assert reg.count_audit("fersa-a") == 6


def test_view_table_concurrent_first_saves(reg: Registry) -> None:
    """First saves of one view at the same moment: every replace succeeds (one row, one
    creation); of several creates exactly one wins and the others are 409s, never 500s."""
    reg.create_dataset(partner_spec("fersa-a", "fersa"), "/data/a", actor="alice")
    views = ViewRegistry(reg)
    spec = ViewSpec.model_validate(SHIFT)
    saved = at_once(6, lambda i: views.save("fersa-a", spec, f"user{i}"))
    assert sorted(created for _, created in saved) == [False] * 5 + [True]
    assert views.list("fersa-a") == [spec]
    assert [e.action for e in reg.audit_log("fersa-a") if e.action.startswith("view")] == [
        "view.create"
    ]
    other = spec.model_copy(update={"name": "other"})

    def create(i: int) -> str:
        try:
            views.save("fersa-a", other, f"user{i}", create_only=True)
        except ViewExistsError:
            return "exists"
        return "created"

    assert sorted(at_once(6, create)) == ["created"] + ["exists"] * 5
    assert [v.name for v in views.list("fersa-a")] == ["shift", "other"]
