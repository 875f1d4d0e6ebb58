"""The records the API returns (stream0d_nb.records): read from rows and domain objects by
attribute, read back from JSON by the client, and the only models the routes answer with."""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

import stream0d_nb.api.routes as routes
from stream0d_nb.access import Identity, Level, TokenRestriction
from stream0d_nb.records import (
    AlertPreview,
    AlertRoutes,
    AttrView,
    DatasetDetail,
    RunInfo,
    ScheduleInfo,
    SinkRecord,
    WhoAmI,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)
NS = 1_714_521_600 * 10**9  # T0 in UTC nanoseconds


def test_whoami_reads_an_identity_sorted() -> None:
    token = TokenRestriction(Level.READ, "fersa", frozenset({"fersa-b", "fersa-a"}), "t1")
    me = Identity("ana", frozenset({"zf", "fersa"}), scopes=frozenset({"b", "a"}), token=token)
    who = WhoAmI.model_validate(me)
    assert who.groups == ["fersa", "zf"] and who.scopes == ["a", "b"] and who.via == "token:t1"
    assert who.token is not None and who.token.id == "t1"
    assert who.token.datasets == ["fersa-a", "fersa-b"]
    # the JSON keeps the API's names and reads back the same
    data = who.model_dump(mode="json")
    assert data["token"] == {
        "id": "t1",
        "level": "read",
        "partner": "fersa",
        "datasets": ["fersa-a", "fersa-b"],
    }
    assert WhoAmI.model_validate(data) == who


@dataclass
class _Run:
    """A run as the registry holds it (server paths, runner outputs)."""

    id: int = 7
    dataset_id: str = "fersa-oven"
    schedule_id: int | None = None
    notebook: str = "/srv/platform/recalibration_runs/recalibrate.ipynb"
    status: str = "succeeded"
    trigger: str = "api"
    scheduled_for: datetime | None = None
    queued_at: datetime = T0
    started_at: datetime | None = T0
    ended_at: datetime | None = T0
    duration_s: float | None = 1.5
    parameters: dict[str, Any] | None = None
    snapshot: str | None = None
    model_version_id: int | None = None
    error_cell: int | None = None
    error_name: str | None = None
    error_message: str | None = None
    outputs: dict[str, str] | None = None
    metrics: dict[str, Any] | None = None
    created_by: str = "ana"


def test_a_run_shows_no_server_path() -> None:
    outputs = {"kernel_log": "/srv/runs/7/log.txt", "html": "/srv/runs/7/report.html"}
    run = RunInfo.model_validate(_Run(parameters={}, metrics={}, outputs=outputs))
    assert run.notebook == "recalibrate.ipynb" and run.dataset == "fersa-oven"
    assert run.files == ["log", "report"]
    assert "/srv" not in run.model_dump_json()
    assert RunInfo.model_validate_json(run.model_dump_json()) == run


def test_a_schedule_adds_what_its_row_lacks() -> None:
    row = types.SimpleNamespace(
        name="fersa-oven-nightly",
        dataset_id="fersa-oven",
        cron="0 3 * * *",
        notebook="/srv/recalibrate.ipynb",
        parameters={"model": "zone"},
        catch_up="once",
        max_catch_up=10,
        timeout_s=600.0,
        enabled=True,
        last_fired_for=None,
        claim_run_id=12,
        created_at=T0,
        created_by="ana",
    )
    s = ScheduleInfo.model_validate(AttrView(row, next_slot=T0))
    assert (s.next_slot, s.running_run, s.notebook) == (T0, 12, "recalibrate.ipynb")
    assert ScheduleInfo.model_validate(s.model_dump(mode="json")) == s


def test_attr_view_prefers_values_then_objects_in_order() -> None:
    a, b = types.SimpleNamespace(x=1, y=2), types.SimpleNamespace(y=3, z=4)
    view = AttrView(a, b, z=5)
    assert (view.x, view.y, view.z) == (1, 2, 5)
    with pytest.raises(AttributeError):
        _ = view.nope


def test_preview_times_from_nanoseconds_and_no_nan() -> None:
    episode = types.SimpleNamespace(
        series="temp",
        start=NS,
        end=None,
        severity="major",
        peak_value=float("nan"),
        peak_time=NS + 1_500_000,  # 1.5 ms later
        labels={},
    )
    p = AlertPreview.model_validate(
        AttrView(rule="hot", start=NS, end=NS + 10**9, episodes=[episode], transitions=[])
    )
    assert p.start == T0 and p.episodes[0].end is None and p.episodes[0].peak_value is None
    assert (p.episodes[0].peak_time - T0).total_seconds() == 0.0015
    assert '"start":"2024-05-01T00:00:00Z"' in p.model_dump_json()


def test_sink_settings_are_extra_fields_and_routes_keep_continue() -> None:
    sink = SinkRecord.model_validate(
        {"name": "ops", "kind": "webhook", "url": "https://x", "secret": "**********"}
    )
    assert sink.settings == {"url": "https://x", "secret": "**********"} and not sink.built_in
    assert sink.model_dump(mode="json")["secret"] == "**********"
    table = {"routes": [{"sinks": ["ops"], "continue": True}], "default_sinks": ["in-app"]}
    routes_ = AlertRoutes.model_validate(table)
    assert routes_.routes[0].continue_ is True
    assert routes_.model_dump(mode="json", by_alias=True)["routes"][0]["continue"] is True


def test_records_ignore_fields_a_newer_server_adds() -> None:
    detail = {
        "id": "fersa-press",
        "interval": "1s",
        "created_at": "2024-05-01T00:00:00Z",
        "created_by": "ana",
        "updated_at": "2024-05-01T00:00:00Z",
        "role": "owner",
        "colour": "blue",
        "summary": {
            "snapshot": "ABC",
            "start": None,
            "end": None,
            "samples": 0,
            "chunk": "1D",
            "channels": [],
            "commits": 1,
            "shiny": True,
        },
    }
    d = DatasetDetail.model_validate(detail)
    assert d.role == "owner" and d.summary.end is None and not hasattr(d, "colour")


# ----------------------------------------------------------------------------- routes

# what a JSON answer may be: a record, or a spec one writes and reads back as written
ALLOWED = ("stream0d_nb.records", "stream0d_nb.specs", "stream0d_nb.views")
SPECS = {"AlertRule"}  # alerts.rules: a spec the client may import (tests/test_layers.py)


def _models(annotation: Any) -> list[Any]:
    """The models inside ``list[X]``, ``X | None``..."""
    args = typing.get_args(annotation)
    return [m for a in args for m in _models(a)] if args else [annotation]


def _json_routes() -> list[tuple[str, APIRoute]]:
    """Every route answering JSON (raw answers, typed ``Any`` or ``Response``, aside)."""
    found = []
    for info in pkgutil.iter_modules(routes.__path__):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        for route in module.router.routes:
            if isinstance(route, APIRoute) and route.response_model not in (None, Any):
                found.append((f"{sorted(route.methods)[0]} {route.path}", route))
    return found


ROUTES = _json_routes()


@pytest.mark.parametrize("route", [r for _, r in ROUTES], ids=[n for n, _ in ROUTES])
def test_routes_answer_with_records(route: APIRoute) -> None:
    for model in _models(route.response_model):
        assert isinstance(model, type) and issubclass(model, BaseModel), (
            f"{route.path} answers {model!r}, not a record of stream0d_nb.records"
        )
        assert model.__module__.startswith(ALLOWED) or model.__name__ in SPECS, model
