"""Formula evaluation without saving, alert rule previews, event filters and paging, and
silences, over real HTTP with real tokens (issue 12, point 1).

The app runs under uvicorn on a store with two partners' datasets (10 minutes of 1 s data
each, from ``tests.api_servers``) and small limits. ``alice`` (fersa) owns
``fersa-press``, ``vera`` is a viewer of it, ``bob`` (zf) sees only ``zf-oven``. Results
are checked against the in-process functions they must equal (``derived.read``,
``AlertService.backfill``), and what must not change (formulas, rules, events, audit,
data history) is compared before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from stream0d_nb import derived
from stream0d_nb.alerts.rules import AlertRule
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.api import ApiSettings
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import (
    NotFoundError,
    PermissionDeniedError,
    RequestValidationError,
)
from stream0d_nb.settings import Settings
from stream0d_nb.specs import FormulaSpec
from stream0d_nb.store import Store
from stream0d_nb.store.grid import to_ns
from tests.api_servers import IDX, ApiOverHttp, seed_partner_datasets

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
    "vera": UserInfo(frozenset(), False, WRITE),  # a viewer grant on fersa-press only
}
DS, OTHER = "fersa-press", "zf-oven"
T0 = "2024-05-01T00:00:00Z"
T100 = "2024-05-01T00:01:40Z"
MAX_VALUES, MAX_JSON, MAX_SCAN = 5_000, 2_000, 6_000
HOT = {"name": "hot", "kind": "threshold", "channels": ["temp"], "op": ">", "value": 61.0}


class Server(ApiOverHttp):
    """Store, app under uvicorn, one token per user."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        seed_partner_datasets(store, {DS: "fersa", OTHER: "zf"})
        derived.save_formula(store, DS, FormulaSpec(name="dp", formula="p_in * 2"), "alice")
        settings = ApiSettings(
            max_values=MAX_VALUES, max_json_values=MAX_JSON, max_scan_values=MAX_SCAN
        )
        super().__init__(store, USERS, settings=settings)
        self.access.grant(DS, "user", "vera", "viewer", actor="alice")
        self.alerts = AlertService(self.store)

    def state(self) -> tuple[Any, ...]:
        """What previews and evaluations must not change."""
        reg = self.store.registry
        return (
            [f.model_dump() for f in reg.list_formulas(DS)],
            self.alerts.table.rules(DS),
            [e.model_dump() for e in self.alerts.table.events(DS, limit=10_000)],
            self.alerts.table.silences(DS),
            [a.model_dump() for a in reg.audit_log(limit=10_000)],
            [c.id for c in self.store.history(DS)],
        )


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("previews") / "home")
    yield s
    s.stop()


def error(r: httpx.Response) -> tuple[int, str]:
    """Status and error message of an answer."""
    return r.status_code, r.json()["error"]["message"]


def hidden(srv: Server, method: str, path: str, **kw: Any) -> None:
    """bob gets on fersa's dataset exactly what he gets on a dataset that does not exist."""
    theirs = srv.call("bob", method, path.format(ds=DS), **kw)
    missing = srv.call("bob", method, path.format(ds="no-such-ds"), **kw)
    assert theirs.status_code == missing.status_code == 404
    message = missing.json()["error"]["message"]
    assert "no-such-ds" in message
    assert theirs.json() == {
        "error": {"type": "not_found", "message": message.replace("no-such-ds", DS)}
    }


# ----------------------------------------------------------------------------- formula eval


def evaluate(srv: Server, who: str, **body: Any) -> httpx.Response:
    return srv.call(who, "POST", f"/datasets/{DS}/formulas/eval", json=body)


def test_eval_reads_like_a_saved_derived_channel(srv: Server) -> None:
    before = srv.state()
    for extra in ({}, {"every": "10s", "how": "max"}):
        r = evaluate(srv, "vera", formula="p_in * 2", start=T0, end=T100, **extra)
        assert r.status_code == 200, r.text
        query = {"channels": "dp", "start": T0, "end": T100, **extra}
        saved = srv.call("alice", "GET", f"/datasets/{DS}/data", params=query).json()
        saved["channels"] = {"value": saved["channels"].pop("dp")}
        assert r.json() == saved
    got = r.json()
    assert got["channels"]["value"]["units"] == "bar"
    assert got["interval"] == "10s" and len(got["time"]) == 10
    # the values: each 10 s bin's max of p_in * 2 as seeded
    expected = derived.read(srv.store, DS, ["p_in"], T0, T100)["p_in"].values * 2
    np.testing.assert_allclose(got["channels"]["value"]["values"], expected.reshape(10, 10).max(1))
    # arrow: the same values, units in the field metadata
    r = evaluate(srv, "alice", formula="temp - 60", start=T0, end=T100, format="arrow")
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.schema.field("value").metadata[b"units"] == b"degC"
    temp = derived.read(srv.store, DS, ["temp"], T0, T100)["temp"].values
    np.testing.assert_array_equal(table.column("value").to_numpy(), temp - 60)
    assert srv.state() == before  # nothing saved, audited or written


def test_eval_other_partner_is_hidden_like_a_missing_dataset(srv: Server) -> None:
    hidden(srv, "POST", "/datasets/{ds}/formulas/eval", json={"formula": "temp", "end": T100})


def test_eval_compile_errors_are_422_with_line_and_column(srv: Server) -> None:
    r = evaluate(srv, "vera", formula="temp +\n  * 2", start=T0, end=T100)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "invalid" and "(line 2, column 3)" in err["message"]
    assert err["locations"][0]["line"] == 2 and err["locations"][0]["column"] == 3
    assert err["locations"][0]["expected"]  # what would fit there, for the editor
    r = evaluate(srv, "vera", formula="temp + tmep", start=T0, end=T100)
    err = r.json()["error"]
    assert r.status_code == 422 and "tmep" in err["message"]
    assert err["locations"] == [{"line": 1, "column": 8}]
    r = evaluate(srv, "vera", formula="temp + p_in", start=T0, end=T100)
    assert r.status_code == 422 and "degC" in r.json()["error"]["message"]
    # the saved-formula route reports the same position
    r = srv.call("alice", "POST", f"/datasets/{DS}/formulas", json={"name": "x", "formula": "1 +"})
    assert r.status_code == 422 and r.json()["error"]["locations"][0]["line"] == 1
    with pytest.raises(RequestValidationError, match="tmep"):
        srv.client("vera").eval_formula(DS, "temp + tmep", start=T0, end=T100)


def test_eval_limits_are_413(srv: Server) -> None:
    before = srv.state()
    # values returned as JSON (2,400 rows of one channel > 2,000), as a read says it
    end = "2024-05-01T00:40:00Z"
    assert error(evaluate(srv, "vera", formula="temp", start=T0, end=end)) == (
        413,
        f"this read returns 2,400 values, over the limit of {MAX_JSON:,} per request for "
        "format=json: narrow the range or the channels, or aggregate with every=",
    )
    assert evaluate(srv, "vera", formula="temp", start=T0, end=end, format="arrow").is_success
    # 2,600 s held twice (input and result) is over 5,000 values even as Arrow
    later = "2024-05-01T00:43:20Z"
    assert error(evaluate(srv, "vera", formula="temp", start=T0, end=later, format="arrow")) == (
        413,
        f"this formula needs at least 5,200 values in memory to be evaluated (its windows "
        f"and shifts widen the range), over the limit of {MAX_VALUES:,}: narrow the range",
    )
    # values held: a 400-day window needs its margin in memory, counted before any read
    status, msg = error(
        evaluate(srv, "vera", formula='rolling_mean(p_in, "400d")', start=T0, end=T100)
    )
    assert status == 413 and "to be evaluated" in msg and f"{MAX_VALUES:,}" in msg
    # the same count as for a saved derived channel (derived.values_held)
    held = derived.values_held(
        srv.store, DS, [derived.UNSAVED], T0, T100, 10**12, unsaved='rolling_mean(p_in, "400d")'
    )
    assert f"at least {held:,} values" in msg
    assert srv.state() == before


# ----------------------------------------------------------------------------- rule preview


def preview(srv: Server, who: str, rule: dict[str, Any], **window: Any) -> httpx.Response:
    return srv.call(who, "POST", f"/datasets/{DS}/alerts/preview", json={"rule": rule, **window})


def ns(text: str | None) -> int | None:
    return None if text is None else to_ns(text)


def test_preview_equals_backfill_and_stores_nothing(srv: Server) -> None:
    before = srv.state()
    rule = {**HOT, "name": "hot-preview", "for": "1s", "severity": "major"}
    r = preview(srv, "vera", rule, start=T0, end="2024-05-01T00:05:00Z")
    assert r.status_code == 200, r.text
    got = r.json()
    assert srv.state() == before  # no rule, event, state or audit entry
    res = srv.alerts.backfill(
        DS, T0, "2024-05-01T00:05:00Z", rules=[AlertRule.model_validate(rule)]
    )
    assert len(res.episodes) >= 2  # temp ~ N(60, 1) above 61 for 2 samples: a few episodes
    assert [
        (ns(e["start"]), ns(e["end"]), e["series"], e["peak_value"], ns(e["peak_time"]))
        for e in got["episodes"]
    ] == [(e.start, e.end, e.series, e.peak_value, e.peak_time) for e in res.episodes]
    assert {e["severity"] for e in got["episodes"]} == {"major"}
    assert [
        (ns(t["at"]), t["series"], t["from_state"], t["to_state"], t["value"])
        for t in got["transitions"]
    ] == [(t.at, t.series, t.from_state, t.to_state, t.value) for t in res.transitions]
    assert {t["severity"] for t in got["transitions"]} == {"major"}
    assert {t["series"] for t in got["transitions"]} == {"temp"}
    assert got["start"] == "2024-05-01T00:00:00Z" and got["rule"] == "hot-preview"
    # the same episodes as the backfill of that rule once saved
    svc = AlertService(srv.store)
    svc.add_rule(DS, AlertRule.model_validate(rule), actor="alice")
    try:
        saved = svc.backfill(DS, T0, "2024-05-01T00:05:00Z", names=["hot-preview"])
        assert saved.episodes == res.episodes and saved.transitions == res.transitions
    finally:
        svc.delete_rule(DS, "hot-preview", confirm="hot-preview", actor="alice")


def test_preview_checks_limits_and_access(srv: Server) -> None:
    before = srv.state()
    hidden(srv, "POST", "/datasets/{ds}/alerts/preview", json={"rule": HOT})
    r = preview(srv, "vera", {**HOT, "channels": ["tmep"]}, start=T0, end=T100)
    assert r.status_code == 422 and "tmep" in r.json()["error"]["message"]
    r = preview(srv, "vera", {**HOT, "op": "?"}, start=T0, end=T100)
    assert r.status_code == 422
    formula_rule = {"name": "f", "kind": "formula", "formula": "temp >\n> 1"}
    err = preview(srv, "vera", formula_rule, start=T0, end=T100).json()["error"]
    assert err["locations"][0]["line"] == 2
    # both channels over 3,100 s (window and the rule's look-back) scan > 6,000 values
    wide = {**HOT, "channels": ["*"]}
    status, msg = error(preview(srv, "vera", wide, start="2024-04-30T23:10:00Z", end=T100))
    assert status == 413 and f"over the limit of {MAX_SCAN:,}" in msg
    # a rule on a derived channel with a huge window: its margin counted as for reads
    slow = {"name": "slow", "kind": "formula", "formula": 'rolling_mean(dp, "400d") > 100'}
    status, msg = error(preview(srv, "vera", slow, start=T0, end=T100))
    assert status == 413
    assert srv.state() == before


# ----------------------------------------------------------------------------- events


@pytest.fixture(scope="module")
def events(srv: Server) -> list[dict[str, Any]]:
    """Events of two saved rules of different severities, stored by a real run."""
    for rule in (
        {**HOT, "severity": "major"},
        {**HOT, "name": "cold", "op": "<", "value": 59.0, "severity": "minor"},
    ):
        srv.alerts.add_rule(DS, AlertRule.model_validate(rule), actor="alice")
    srv.alerts.run(DS, notify=False)
    rows = srv.call("vera", "GET", f"/datasets/{DS}/alerts/events?limit=10000").json()
    assert len(rows) > 20 and {e["severity"] for e in rows} == {"major", "minor"}
    return list(rows)


def test_events_filters(srv: Server, events: list[dict[str, Any]]) -> None:
    def get(**q: Any) -> list[dict[str, Any]]:
        r = srv.call("vera", "GET", f"/datasets/{DS}/alerts/events", params={"limit": 10000, **q})
        assert r.status_code == 200, r.text
        return list(r.json())

    assert get(severity="minor") == [e for e in events if e["severity"] == "minor"]
    assert get(rule="hot") == [e for e in events if e["rule"] == "hot"]
    assert get(state="firing", rule="cold") == [
        e for e in events if e["to_state"] == "firing" and e["rule"] == "cold"
    ]
    since, until = "2024-05-01T00:02:00Z", "2024-05-01T00:04:00Z"
    window = get(since=since, until=until)
    assert window and window == [e for e in events if to_ns(since) <= to_ns(e["at"]) < to_ns(until)]
    assert (
        error(srv.call("vera", "GET", f"/datasets/{DS}/alerts/events?since=2024-05-01"))[0] == 422
    )
    hidden(srv, "GET", "/datasets/{ds}/alerts/events?severity=major")


def test_events_pages_by_cursor(srv: Server, events: list[dict[str, Any]]) -> None:
    pages: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": 7}
    while True:
        r = srv.call("vera", "GET", f"/datasets/{DS}/alerts/events", params=params)
        assert r.status_code == 200
        pages.append(r.json())
        if "X-Next-Cursor" not in r.headers:
            break
        params["cursor"] = r.headers["X-Next-Cursor"]
    assert [e for p in pages for e in p] == events  # every event once, newest first
    assert all(len(p) == 7 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 7
    # a page of exactly the rest says there is no next one
    last = srv.call("vera", "GET", f"/datasets/{DS}/alerts/events?limit={len(events)}")
    assert "X-Next-Cursor" not in last.headers
    bad = srv.call("vera", "GET", f"/datasets/{DS}/alerts/events?cursor=x.y")
    assert error(bad) == (422, "cursor='x.y' is not one this API gave")
    # the client: filters and pages
    c = srv.client("vera")
    page = c.alert_events(DS, severity="minor", limit=3)
    assert [e.model_dump(mode="json") for e in page] == [
        e for e in events if e["severity"] == "minor"
    ][:3]
    seen = list(page)
    while page.next_cursor is not None:
        page = c.alert_events(DS, severity="minor", limit=3, cursor=page.next_cursor)
        seen += page
    assert [e.id for e in seen] == [e["id"] for e in events if e["severity"] == "minor"]


# ----------------------------------------------------------------------------- silences


def test_silences_create_list_end(srv: Server, events: list[dict[str, Any]]) -> None:
    path = f"/datasets/{DS}/alerts/silences"
    body = {
        "rule": "hot",
        "days": [5, 6],
        "from_time": "22:00",
        "to_time": "06:00",
        "tz": "Europe/Madrid",
    }
    assert srv.call("vera", "POST", path, json=body).status_code == 403
    hidden(srv, "POST", "/datasets/{ds}/alerts/silences", json=body)
    hidden(srv, "GET", "/datasets/{ds}/alerts/silences")
    r = srv.call("alice", "POST", path, json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made == {
        "id": made["id"],
        "rule": "hot",
        "start": None,
        "end": None,
        "days": [5, 6],
        "from_time": "22:00",
        "to_time": "06:00",
        "tz": "Europe/Madrid",
        "comment": "",
    }
    assert srv.call("vera", "GET", path).json() == [made]
    # the same model as the CLI's: stored and read back by AlertService
    [(rule, sil)] = srv.alerts.silences(DS)
    assert rule == "hot" and sil.days == [5, 6] and sil.tz == "Europe/Madrid"
    [entry] = srv.store.registry.audit_log(DS, action="alert.silence", limit=1)
    assert entry.actor.startswith("alice") and entry.detail["silence"] == made["id"]
    # invalid windows and rules
    assert srv.call("alice", "POST", path, json={"days": [1]}).status_code == 422
    r = srv.call("alice", "POST", path, json={**body, "rule": "nope"})
    assert r.status_code == 422 and "nope" in r.json()["error"]["message"]
    # ending: editor only; hidden for bob; gone once ended
    one = f"{path}/{made['id']}"
    assert srv.call("vera", "DELETE", one).status_code == 403
    hidden(srv, "DELETE", "/datasets/{ds}/alerts/silences/" + str(made["id"]))
    assert srv.call("alice", "DELETE", one).status_code == 204
    assert srv.call("vera", "GET", path).json() == []
    assert error(srv.call("alice", "DELETE", one)) == (
        404,
        f"dataset {DS!r} has no silence {made['id']}",
    )
    [entry] = srv.store.registry.audit_log(DS, action="alert.unsilence", limit=1)
    assert entry.detail == {"silence": made["id"]}


def test_client_silences_and_preview(srv: Server, events: list[dict[str, Any]]) -> None:
    alice, vera, bob = srv.client("alice"), srv.client("vera"), srv.client("bob")
    made = alice.silence(
        DS, start=datetime(2024, 5, 1, tzinfo=UTC), end="2024-05-02T00:00:00Z", comment="works"
    )
    assert made.rule is None and made.comment == "works"
    assert made.start == datetime(2024, 5, 1, tzinfo=UTC)
    assert vera.silences(DS) == [made]
    with pytest.raises(PermissionDeniedError):
        vera.silence(DS, start=T0, end=T100)
    with pytest.raises(PermissionDeniedError):
        vera.end_silence(DS, made.id)
    with pytest.raises(NotFoundError):
        bob.silences(DS)
    alice.end_silence(DS, made.id)
    assert vera.silences(DS) == []
    # preview through the client, from a rule model or a mapping
    got = vera.preview_alert_rule(DS, AlertRule.model_validate(HOT), start=T0, end=T100)
    direct = vera.preview_alert_rule(DS, HOT, start=T0, end=T100)
    assert got == direct and got.rule == "hot"
    res = srv.alerts.backfill(DS, T0, T100, rules=[AlertRule.model_validate(HOT)])
    assert [ns(e.start.isoformat()) for e in got.episodes] == [e.start for e in res.episodes]
    assert len(got.transitions) == len(res.transitions) > 0
    assert {t.severity for t in got.transitions} == {"warning"}  # the rule's default
    with pytest.raises(NotFoundError):
        bob.preview_alert_rule(DS, HOT, start=T0, end=T100)
    # formula evaluation through the client: an xarray Dataset like read()
    ds = vera.eval_formula(DS, "p_in * 2", start=T0, end=T100, every="10s")
    ref = vera.read(DS, ["dp"], start=T0, end=T100, every="10s")
    np.testing.assert_array_equal(ds["value"].values, ref["dp"].values)
    np.testing.assert_array_equal(ds["time"].values, ref["time"].values)
    assert ds["value"].attrs["units"] == "bar" and ds.attrs["interval"] == "10s"
    assert ds.attrs["dataset"] == DS
    assert ds["time"].values[0] == IDX[0].tz_convert(None).to_datetime64()
