"""Routing tables and the dispatcher that follows them (retries, isolation, idempotency).

Routing is pure; the dispatcher runs against scripted fake sinks for exact retry and
timing behaviour, and against real local SMTP/HTTP servers (tests/alert_servers.py) for
hanging receivers and restarts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import pytest

from stream0d_nb.alerts.notify import (
    DeliveryResult,
    Dispatcher,
    InMemoryDeliveryLog,
    RetryPolicy,
)
from stream0d_nb.alerts.routing import Route, RoutingTable
from stream0d_nb.alerts.sinks import (
    SEVERITIES,
    LogSink,
    Notification,
    Sink,
    SinkConfig,
    SinkError,
    sink_from_config,
)
from stream0d_nb.errors import ValidationError
from tests.alert_servers import WebhookServer, mail_server, make_notification, webhook_server

# ----------------------------------------------------------------------------- routing


def table(data: dict[str, Any]) -> RoutingTable:
    return RoutingTable.parse(data)


class TestRouting:
    def test_no_route_matches_uses_default_sinks(self) -> None:
        t = table({"routes": [{"match_labels": {"team": "qa"}, "sinks": ["qa-mail"]}],
                   "default_sinks": ["log", "ops-mail"]})  # fmt: skip
        assert t.sinks_for(make_notification()) == ["log", "ops-mail"]
        assert t.matching_routes(make_notification()) == []
        assert RoutingTable().sinks_for(make_notification()) == []

    def test_first_match_wins(self) -> None:
        t = table(
            {
                "routes": [
                    {"match_severity": ["critical"], "sinks": ["pager"]},
                    {"match_labels": {"team": "ops"}, "sinks": ["ops-mail"]},
                ],
                "default_sinks": ["log"],
            }
        )
        assert t.sinks_for(make_notification()) == ["pager"]
        assert t.sinks_for(make_notification(severity="minor")) == ["ops-mail"]
        assert t.sinks_for(make_notification(severity="minor", labels={})) == ["log"]

    def test_continue_collects_later_routes_without_duplicates(self) -> None:
        t = table(
            {
                "routes": [
                    {"sinks": ["log", "hook"], "continue": True},
                    {"match_severity": ["critical"], "sinks": ["pager", "hook"], "continue": True},
                    {"match_labels": {"team": "ops"}, "sinks": ["ops-mail"]},
                    {"sinks": ["never"]},
                ],
                "default_sinks": ["fallback"],
            }
        )
        assert t.matching_routes(make_notification()) == [0, 1, 2]
        assert t.sinks_for(make_notification()) == ["log", "hook", "pager", "ops-mail"]
        assert t.sinks_for(make_notification(severity="info", labels={})) == [
            "log",
            "hook",
            "never",
        ]

    @pytest.mark.parametrize(
        ("severity", "matched"),
        [
            ("critical", True),
            ("major", True),
            ("minor", False),
            ("warning", False),
            ("info", False),
        ],
    )
    def test_min_severity(self, severity: str, matched: bool) -> None:
        t = table(
            {"routes": [{"min_severity": "major", "sinks": ["pager"]}], "default_sinks": ["log"]}
        )
        assert t.sinks_for(make_notification(severity=severity)) == (
            ["pager"] if matched else ["log"]
        )

    def test_severity_list_and_minimum_combine(self) -> None:
        route = Route(match_severity=["critical", "warning"], min_severity="minor")
        assert [s for s in SEVERITIES if route.matches(make_notification(severity=s))] == [
            "critical"
        ]

    def test_exact_labels_all_must_hold_and_absent_is_empty(self) -> None:
        route = Route.model_validate({"match_labels": {"team": "ops", "shift": ""}})
        assert route.matches(make_notification())  # no 'shift' label: matches ""
        assert not route.matches(make_notification(labels={"team": "ops", "shift": "night"}))
        assert not route.matches(make_notification(labels={"team": "Ops"}))

    def test_builtin_labels(self) -> None:
        t = table(
            {
                "routes": [
                    {"match_labels": {"dataset": "oven-2"}, "sinks": ["oven"]},
                    {"match_labels": {"state": "resolved"}, "sinks": ["quiet"]},
                    {"match_labels": {"rule": "no_data", "series": "temp"}, "sinks": ["deadman"]},
                ]
            }
        )
        assert t.sinks_for(make_notification(dataset="oven-2")) == ["oven"]
        # a label named like a built-in does not hide the real dataset
        assert t.sinks_for(make_notification(labels={"dataset": "oven-2"})) == []
        assert t.sinks_for(make_notification(state="resolved")) == ["quiet"]
        assert t.sinks_for(make_notification(rule="no_data", series="temp")) == ["deadman"]

    def test_regex_labels_match_the_whole_value(self) -> None:
        route = Route.model_validate(
            {"match_labels_regex": {"dataset": r"line-[12]", "area": "press|weld"}}
        )
        assert route.matches(make_notification(dataset="line-1"))
        assert route.matches(make_notification(dataset="line-2", labels={"area": "weld"}))
        assert not route.matches(make_notification(dataset="line-10"))
        assert not route.matches(make_notification(labels={"area": "pressing"}))
        assert not route.matches(make_notification(labels={}))  # absent: "" does not match

    def test_empty_sinks_drop(self) -> None:
        t = table({"routes": [{"match_severity": ["info"], "sinks": []}], "default_sinks": ["log"]})
        assert t.sinks_for(make_notification(severity="info")) == []
        assert t.sinks_for(make_notification(severity="minor")) == ["log"]

    def test_unknown_sinks_refused_against_known_names(self) -> None:
        data = {
            "routes": [{"sinks": ["ops-mail", "pagr"]}, {"sinks": ["hook"]}],
            "default_sinks": ["log", "gone"],
        }
        with pytest.raises(ValidationError) as info:
            RoutingTable.parse(data, sink_names={"ops-mail", "hook", "log"})
        assert str(info.value) == (
            "routing refers to sinks that do not exist (known: hook, log, ops-mail):\n"
            "  route 1: unknown sink 'pagr'\n"
            "  default_sinks: unknown sink 'gone'"
        )
        with pytest.raises(ValueError, match="unknown sink 'pagr'"):
            RoutingTable.model_validate(data, context={"sink_names": {"ops-mail", "hook", "log"}})
        assert RoutingTable.parse(data).sink_names() == ["ops-mail", "pagr", "hook", "log", "gone"]

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"routes": [{"match_labels_regex": {"a": "("}}]}, "regex '\\(' for label 'a'"),
            ({"routes": [{"min_severity": "fatal"}]}, "routes.0.min_severity"),
            ({"routes": [{"sinks": ["a", "a"]}]}, "sinks listed twice: \\['a'\\]"),
            ({"routes": [{"snks": ["a"]}]}, "routes.0.snks: Extra inputs"),
            ({"default": ["a"]}, "default: Extra inputs"),
        ],
    )
    def test_invalid_tables(self, data: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            RoutingTable.parse(data)

    def test_round_trip_with_continue_alias(self) -> None:
        data = {
            "routes": [
                {"match_labels_regex": {"rule": "temp_.*"}, "sinks": ["a"], "continue": True},
                {"min_severity": "warning", "sinks": ["b"]},
            ],
            "default_sinks": ["c"],
        }
        t = RoutingTable.parse(data)
        assert t.routes[0].continue_ is True
        dumped = t.model_dump(by_alias=True, exclude_defaults=True)
        assert dumped == data
        assert RoutingTable.parse(dumped) == t
        assert Route(continue_=True).continue_ is True


# ----------------------------------------------------------------------------- fake sinks

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class FakeConfig(SinkConfig):
    kind: Literal["fake"] = "fake"


class FakeSink(Sink):
    """Follows a script: each entry is None (success), an exception to raise, or an Event
    to block on (a hanging destination). After the script, succeeds."""

    kind = "fake"
    config_model: ClassVar[type[SinkConfig]] = FakeConfig

    def __init__(self, name: str, script: list[Any] | None = None, timeout: float = 1.0) -> None:
        super().__init__(FakeConfig(name=name, timeout=timeout))
        self.script = list(script or [])
        self.sent: list[str] = []
        self.calls = 0

    def send(self, notification: Notification) -> None:
        self.calls += 1
        step = self.script.pop(0) if self.script else None
        if isinstance(step, threading.Event):
            step.wait(10)
            return
        if isinstance(step, BaseException):
            raise step
        self.sent.append(notification.key)


def temporary(name: str) -> SinkError:
    return SinkError(name, "503 busy")


class Sleeps(list[float]):
    """An injectable ``sleep`` that records waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def dispatcher(sinks: list[Sink], **kwargs: Any) -> Dispatcher:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("clock", lambda: AT)
    return Dispatcher(sinks, **kwargs)


# ----------------------------------------------------------------------------- retry policy


class TestRetryPolicy:
    def test_exponential_and_capped(self) -> None:
        p = RetryPolicy(attempts=6, base_delay=1, multiplier=2, max_delay=5)
        assert [p.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
        assert p.total_delay() == 17

    def test_jitter_is_deterministic_with_an_injected_random(self) -> None:
        p = RetryPolicy(attempts=3, base_delay=1, jitter=0.5)
        assert [p.delay(n, rand=0.5) for n in (1, 2)] == [0.75, 1.5]
        assert [p.delay(n, rand=0.0) for n in (1, 2)] == [1.0, 2.0]

    def test_invalid(self) -> None:
        with pytest.raises(ValueError, match=r"max_delay 1\.0 is below base_delay 2\.0"):
            RetryPolicy(base_delay=2, max_delay=1)
        with pytest.raises(ValueError, match="attempts"):
            RetryPolicy(attempts=0)
        with pytest.raises(ValueError, match="retry numbers start at 1"):
            RetryPolicy().delay(0)


# ----------------------------------------------------------------------------- dispatcher


class TestDispatcher:
    def test_sends_to_every_routed_sink_and_records(self) -> None:
        a, b, c = FakeSink("a"), FakeSink("b"), FakeSink("c")
        recorded: list[DeliveryResult] = []
        routes = RoutingTable.parse({"routes": [{"sinks": ["b", "a"]}], "default_sinks": ["c"]})
        d = dispatcher([a, b, c], routes=routes, record=recorded.append)
        n = make_notification()
        results = d.dispatch(n)
        assert results == [
            DeliveryResult(key=n.key, sink="b", dataset="line-1", ok=True, attempts=1, at=AT),
            DeliveryResult(key=n.key, sink="a", dataset="line-1", ok=True, attempts=1, at=AT),
        ]
        assert recorded == results
        assert (a.sent, b.sent, c.sent) == ([n.key], [n.key], [])

    def test_without_routes_every_sink(self) -> None:
        a, b = FakeSink("a"), FakeSink("b")
        assert [r.sink for r in dispatcher([a, b]).dispatch(make_notification())] == ["a", "b"]

    def test_routes_per_dataset_with_a_fallback(self) -> None:
        a, b = FakeSink("a"), FakeSink("b")
        routes = {
            "line-1": RoutingTable.everything_to(["a"]),
            "*": RoutingTable.everything_to(["b"]),
        }
        d = dispatcher([a, b], routes=routes)
        assert [r.sink for r in d.dispatch(make_notification())] == ["a"]
        assert [r.sink for r in d.dispatch(make_notification(dataset="oven-2"))] == ["b"]
        d2 = dispatcher([a, b], routes={"line-1": RoutingTable.everything_to(["a"])})
        assert [r.sink for r in d2.dispatch(make_notification(dataset="oven-3"))] == ["a", "b"]

    def test_unknown_or_duplicate_sink_names_refused(self) -> None:
        with pytest.raises(ValidationError, match="unknown sink 'b'"):
            Dispatcher([FakeSink("a")], routes=RoutingTable.everything_to(["a", "b"]))
        with pytest.raises(ValidationError, match="two sinks are named 'a'"):
            Dispatcher([FakeSink("a"), FakeSink("a")])

    def test_retries_with_exponential_backoff(self) -> None:
        sink = FakeSink("a", [temporary("a"), temporary("a"), None])
        sleeps = Sleeps()
        d = dispatcher([sink], retry=RetryPolicy(attempts=4, base_delay=0.5), sleep=sleeps)
        (result,) = d.dispatch(make_notification())
        assert (result.ok, result.attempts, result.error) == (True, 3, None)
        assert sleeps == [0.5, 1.0]
        assert sink.calls == 3 and len(sink.sent) == 1

    def test_jitter_uses_the_injected_random(self) -> None:
        sink = FakeSink("a", [temporary("a"), temporary("a")])
        sleeps = Sleeps()
        policy = RetryPolicy(attempts=3, base_delay=2, jitter=0.25)
        dispatcher([sink], retry=policy, sleep=sleeps, rand=lambda: 1.0).dispatch(
            make_notification()
        )
        assert sleeps == [1.5, 3.0]

    def test_gives_up_after_the_last_attempt(self) -> None:
        sink = FakeSink("a", [temporary("a")] * 5)
        sleeps = Sleeps()
        log = InMemoryDeliveryLog()
        d = dispatcher(
            [sink],
            retry=RetryPolicy(attempts=3, base_delay=1, max_delay=1.5),
            sleep=sleeps,
            already_delivered=log.already_delivered,
            record=log.record,
        )
        (result,) = d.dispatch(make_notification())
        assert (result.ok, result.attempts, result.error) == (False, 3, "503 busy")
        assert sleeps == [1.0, 1.5]  # no wait after the last attempt
        assert log.failures() == [result]
        assert d.recent(failed_only=True) == [result]

    def test_permanent_errors_are_not_retried(self) -> None:
        sink = FakeSink("a", [SinkError("a", "HTTP 404 Not Found", retryable=False)])
        sleeps = Sleeps()
        (result,) = dispatcher([sink], sleep=sleeps).dispatch(make_notification())
        assert (result.ok, result.attempts) == (False, 1)
        assert result.error == "HTTP 404 Not Found (not retried)"
        assert sleeps == []

    def test_a_buggy_sink_is_contained(self) -> None:
        bad, good = FakeSink("bad", [KeyError("oops")]), FakeSink("good")
        results = dispatcher([bad, good]).dispatch(make_notification())
        assert [(r.sink, r.ok, r.attempts, r.error) for r in results] == [
            ("bad", False, 1, "unexpected KeyError: 'oops' (not retried)"),
            ("good", True, 1, None),
        ]

    def test_a_sink_hanging_past_its_budget_is_abandoned(self) -> None:
        hang = threading.Event()
        try:
            slow = FakeSink("slow", [hang], timeout=0.1)
            fast = FakeSink("fast")
            d = dispatcher([slow, fast], retry=RetryPolicy(attempts=1), grace=0.2)
            assert d.budget(slow) == pytest.approx(0.4)
            start = time.monotonic()
            results = d.dispatch(make_notification())
            elapsed = time.monotonic() - start
        finally:
            hang.set()
        assert elapsed < 3.0
        assert [(r.sink, r.ok, r.attempts) for r in results] == [
            ("slow", False, 1),
            ("fast", True, 1),
        ]
        assert results[0].error == (
            "no outcome within 0.4 s (attempt 1 still running, abandoned; it may still arrive)"
        )

    def test_same_notification_twice_is_sent_once(self) -> None:
        sink = FakeSink("a")
        d = dispatcher([sink])
        n = make_notification()
        first, second = d.dispatch(n), d.dispatch(n)
        assert (first[0].ok, first[0].skipped) == (True, False)
        assert second == [
            DeliveryResult(
                key=n.key, sink="a", dataset="line-1", ok=True, attempts=0, at=AT, skipped=True
            )
        ]
        assert sink.sent == [n.key]
        # another state of the same episode is another notification
        d.dispatch(n.model_copy(update={"state": "resolved"}))
        assert len(sink.sent) == 2

    def test_store_errors_do_not_lose_notifications(self) -> None:
        def broken_lookup(key: str, sink: str) -> bool:
            raise OSError("database is locked")

        def broken_record(result: DeliveryResult) -> None:
            raise OSError("disk full")

        sink = FakeSink("a")
        d = dispatcher([sink], already_delivered=broken_lookup, record=broken_record)
        (result,) = d.dispatch(make_notification())
        assert result.ok and len(sink.sent) == 1

    def test_at_comes_from_the_clock(self) -> None:
        times = iter([AT, AT + timedelta(seconds=5)])
        d = dispatcher([FakeSink("a")], clock=lambda: next(times))
        (result,) = d.dispatch(make_notification())
        assert result.at == AT


# ----------------------------------------------------------------------------- real servers


@pytest.fixture
def hooks() -> Iterator[tuple[WebhookServer, WebhookServer]]:
    with webhook_server() as good, webhook_server() as bad:
        yield good, bad


def hook(name: str, server: WebhookServer, timeout: float = 5.0) -> Sink:
    return sink_from_config(
        {
            "kind": "webhook",
            "name": name,
            "url": server.url,
            "secret": server.secret,
            "timeout": timeout,
            "use_env_proxy": False,
        }
    )


class TestDispatchToRealServers:
    def test_webhook_500s_are_retried(self, hooks: tuple[WebhookServer, WebhookServer]) -> None:
        good, _ = hooks
        good.fail_next(500, 502)
        d = Dispatcher([hook("hook", good)], retry=RetryPolicy(attempts=3, base_delay=0.01))
        (result,) = d.dispatch(make_notification())
        assert (result.ok, result.attempts, result.error) == (True, 3, None)
        assert [r.status for r in good.requests] == [500, 502, 200]
        assert len(good.received) == 1

    def test_hanging_webhook_does_not_block_the_others(
        self, hooks: tuple[WebhookServer, WebhookServer]
    ) -> None:
        good, bad = hooks
        bad.delay = 5.0  # answers after 5 s; the sink gives up after 0.5 s per attempt
        with mail_server() as smtp:
            mail = sink_from_config(
                {
                    "kind": "email",
                    "name": "mail",
                    "host": smtp.host,
                    "port": smtp.port,
                    "security": "none",
                    "from": "a@plant.example.com",
                    "to": ["b@plant.example.com"],
                    "timeout": 5,
                }
            )
            in_app = LogSink.from_config({"name": "in-app"})
            sinks = [hook("slow-hook", bad, timeout=0.5), hook("hook", good), mail, in_app]
            d = Dispatcher(sinks, retry=RetryPolicy(attempts=2, base_delay=0.05))
            n = make_notification()
            start = time.monotonic()
            results = d.dispatch(n)
            elapsed = time.monotonic() - start
            assert [m.message["X-Stream0d-Key"] for m in smtp.received] == [n.key]
        assert elapsed < 4.0  # well under the 5 s the slow receiver sleeps
        assert [(r.sink, r.ok, r.attempts) for r in results] == [
            ("slow-hook", False, 2),
            ("hook", True, 1),
            ("mail", True, 1),
            ("in-app", True, 1),
        ]
        assert "timed out" in (results[0].error or "")
        assert len(good.received) == 1
        assert in_app.recent() == [n]  # type: ignore[attr-defined]

    def test_no_duplicates_after_a_restart(
        self, hooks: tuple[WebhookServer, WebhookServer]
    ) -> None:
        good, flaky = hooks
        store = InMemoryDeliveryLog()  # stands for the persistent deliveries table
        retry = RetryPolicy(attempts=2, base_delay=0.01)

        def start() -> Dispatcher:
            return Dispatcher(
                [hook("hook", good), hook("flaky", flaky)],
                retry=retry,
                already_delivered=store.already_delivered,
                record=store.record,
            )

        n = make_notification()
        flaky.fail_next(500, 500)
        first = start().dispatch(n)
        assert [(r.sink, r.ok) for r in first] == [("hook", True), ("flaky", False)]
        # "restart": a new dispatcher, same store; only the failed delivery is sent again
        second = start().dispatch(n)
        assert [(r.sink, r.ok, r.skipped, r.attempts) for r in second] == [
            ("hook", True, True, 0),
            ("flaky", True, False, 1),
        ]
        third = start().dispatch(n)
        assert all(r.skipped for r in third)
        assert len(good.received) == 1
        assert len(flaky.received) == 1
        assert [(r.sink, r.ok) for r in store.results] == [
            ("hook", True),
            ("flaky", False),
            ("flaky", True),
        ]
