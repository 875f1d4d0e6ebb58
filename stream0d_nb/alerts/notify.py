"""The dispatcher: route a notification to its sinks, retry with backoff, record outcomes.

Each routed sink is tried in its own (daemon) thread, so a slow or hanging sink never
delays the others beyond its own time budget. Every outcome becomes a ``DeliveryResult``
(returned and passed to ``record``) so failures stay visible. With ``already_delivered``
backed by a persistent store, re-dispatching after a restart sends nothing twice.

Delivery is at-least-once: a crash between a sink accepting a message and ``record``
can repeat it, so receivers should de-duplicate on the notification ``key``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stream0d_nb.alerts.routing import RoutingTable
from stream0d_nb.alerts.sinks import Notification, Sink, SinkError
from stream0d_nb.errors import ValidationError

log = logging.getLogger(__name__)

AlreadyDelivered = Callable[[str, str], bool]
Record = Callable[["DeliveryResult"], None]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class RetryPolicy(BaseModel):
    """Exponential backoff: wait ``base_delay * multiplier**(n-1)`` (capped) before retry n.

    ``jitter`` (0..1) removes up to that fraction of each wait at random, so many senders
    do not retry in step; the random source is injectable for deterministic tests.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(3, ge=1, le=20, description="Tries per sink, the first included.")
    base_delay: float = Field(1.0, ge=0, le=3600, description="Seconds before the first retry.")
    multiplier: float = Field(2.0, ge=1, le=10)
    max_delay: float = Field(60.0, ge=0, le=3600, description="Cap on any single wait.")
    jitter: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _cap_ok(self) -> Self:
        if self.max_delay < self.base_delay:
            raise ValueError(f"max_delay {self.max_delay} is below base_delay {self.base_delay}")
        return self

    def delay(self, retry: int, rand: float = 0.0) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the second attempt)."""
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, got {retry}")
        wait = min(self.max_delay, self.base_delay * self.multiplier ** (retry - 1))
        return wait * (1.0 - self.jitter * rand)

    def total_delay(self) -> float:
        """The most time spent waiting between attempts (no jitter)."""
        return sum(self.delay(n) for n in range(1, self.attempts))


class DeliveryResult(BaseModel):
    """What happened when sending one notification to one sink.

    ``skipped`` means it had been delivered before (``already_delivered``): nothing sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    sink: str
    dataset: str
    ok: bool
    attempts: int
    error: str | None = None
    at: datetime
    skipped: bool = False


class InMemoryDeliveryLog:
    """``already_delivered`` and ``record`` kept in memory (tests, notebooks, GUI demos)."""

    def __init__(self) -> None:
        self.results: list[DeliveryResult] = []
        self._ok: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def already_delivered(self, key: str, sink: str) -> bool:
        """Whether ``key`` reached ``sink`` successfully before."""
        with self._lock:
            return (key, sink) in self._ok

    def record(self, result: DeliveryResult) -> None:
        """Keep ``result``; successes mark (key, sink) as delivered."""
        with self._lock:
            self.results.append(result)
            if result.ok and not result.skipped:
                self._ok.add((result.key, result.sink))

    def failures(self) -> list[DeliveryResult]:
        """The recorded failed deliveries, oldest first."""
        with self._lock:
            return [r for r in self.results if not r.ok]


@dataclass
class _Attempt:
    """Progress of one sink's delivery, shared between its thread and the dispatcher."""

    attempts: int = 0
    ok: bool = False
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    at: datetime | None = None


class Dispatcher:
    """Send notifications to the sinks their routes choose, in parallel, with retries.

    ``routes``: one table for all datasets, a mapping dataset id -> table (key ``"*"`` for
    the others), or None for every sink. ``clock``, ``sleep`` and ``rand`` are injectable
    for tests. ``grace`` is added to each attempt's budget (two sink timeouts: connect and
    answer) before a hanging sink is abandoned.
    """

    def __init__(
        self,
        sinks: Iterable[Sink],
        routes: RoutingTable | Mapping[str, RoutingTable] | None = None,
        retry: RetryPolicy | None = None,
        *,
        already_delivered: AlreadyDelivered | None = None,
        record: Record | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        grace: float = 2.0,
        keep: int = 1000,
    ) -> None:
        self.sinks: dict[str, Sink] = {}
        for sink in sinks:
            if sink.name in self.sinks:
                raise ValidationError(f"two sinks are named {sink.name!r}")
            self.sinks[sink.name] = sink
        self.routes = routes
        for table in self._tables():
            table.check_sinks(self.sinks)
        self.retry = retry or RetryPolicy()
        self._own_log: InMemoryDeliveryLog | None = None
        if already_delivered is None:
            self._own_log = InMemoryDeliveryLog()
            already_delivered = self._own_log.already_delivered
        self._already: AlreadyDelivered = already_delivered
        self._record = record
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self.grace = grace
        self._recent: deque[DeliveryResult] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def _tables(self) -> list[RoutingTable]:
        if self.routes is None:
            return []
        if isinstance(self.routes, RoutingTable):
            return [self.routes]
        return list(self.routes.values())

    def sinks_for(self, notification: Notification) -> list[str]:
        """Names of the sinks ``notification`` goes to."""
        routes = self.routes
        if isinstance(routes, Mapping):
            routes = routes.get(notification.dataset, routes.get("*"))
        if routes is None:
            return list(self.sinks)
        return routes.sinks_for(notification)

    def budget(self, sink: Sink) -> float:
        """Seconds after which a sink's delivery (all attempts and waits) is abandoned."""
        per_attempt = 2 * sink.timeout + self.grace
        return self.retry.attempts * per_attempt + self.retry.total_delay()

    def dispatch(self, notification: Notification) -> list[DeliveryResult]:
        """Deliver to every routed sink; one result per sink, in routing order.

        Never raises for a sink's failure: failures are results (``ok=False``, ``error``).
        """
        key = notification.key
        started: list[tuple[str, _Attempt | DeliveryResult, float]] = []
        for name in self.sinks_for(notification):
            sink = self.sinks.get(name)
            if sink is None:
                started.append(
                    (name, self._result(notification, name, False, 0, "unknown sink"), 0)
                )
                continue
            try:
                seen = self._already(key, name)
            except Exception as exc:  # the store is down: better a duplicate than a loss
                log.warning("already_delivered(%r, %r) failed: %s; sending anyway", key, name, exc)
                seen = False
            if seen:
                result = self._result(notification, name, True, 0, None, skipped=True)
                started.append((name, result, 0))
                continue
            progress = _Attempt()
            thread = threading.Thread(
                target=self._deliver,
                args=(sink, notification, progress),
                name=f"stream0d-notify-{name}",
                daemon=True,
            )
            thread.start()
            started.append((name, progress, time.monotonic() + self.budget(sink)))
        results = []
        for name, item, deadline in started:
            if isinstance(item, DeliveryResult):
                results.append(item)
                continue
            finished = item.done.wait(max(0.0, deadline - time.monotonic()))
            if finished:
                result = self._result(
                    notification, name, item.ok, item.attempts, item.error, at=item.at
                )
            else:
                error = (
                    f"no outcome within {self.budget(self.sinks[name]):g} s "
                    f"(attempt {item.attempts} still running, abandoned; it may still arrive)"
                )
                result = self._result(notification, name, False, item.attempts, error)
            results.append(result)
        for result in results:
            self._keep(result)
        return results

    def _deliver(self, sink: Sink, notification: Notification, progress: _Attempt) -> None:
        """Run in a thread: try up to ``retry.attempts`` times, waiting between tries."""
        for attempt in range(1, self.retry.attempts + 1):
            progress.attempts = attempt
            try:
                sink.send(notification)
            except SinkError as exc:
                progress.error = exc.reason
                if not exc.retryable:
                    progress.error += " (not retried)"
                    break
            except Exception as exc:  # a bug in a sink must not kill the dispatcher
                log.exception("sink %r raised unexpectedly", sink.name)
                progress.error = f"unexpected {type(exc).__name__}: {exc} (not retried)"
                break
            else:
                progress.ok, progress.error = True, None
                break
            if attempt < self.retry.attempts:
                self._sleep(self.retry.delay(attempt, self._rand() if self.retry.jitter else 0.0))
        if not progress.ok:
            log.warning(
                "notification %s to sink %r failed after %d attempt(s): %s",
                notification.key,
                sink.name,
                progress.attempts,
                progress.error,
            )
        progress.at = self._clock()
        progress.done.set()

    def _result(
        self,
        notification: Notification,
        sink: str,
        ok: bool,
        attempts: int,
        error: str | None,
        *,
        skipped: bool = False,
        at: datetime | None = None,
    ) -> DeliveryResult:
        return DeliveryResult(
            key=notification.key,
            sink=sink,
            dataset=notification.dataset,
            ok=ok,
            attempts=attempts,
            error=error,
            at=at or self._clock(),
            skipped=skipped,
        )

    def _keep(self, result: DeliveryResult) -> None:
        """Remember the result and pass it to ``record`` (skipped ones were recorded before)."""
        with self._lock:
            self._recent.append(result)
        if result.skipped:
            return
        if self._own_log is not None:
            self._own_log.record(result)
        if self._record is not None:
            try:
                self._record(result)
            except Exception:
                log.exception("recording delivery %s -> %s failed", result.key, result.sink)

    def recent(
        self, *, failed_only: bool = False, limit: int | None = None
    ) -> list[DeliveryResult]:
        """Results of this dispatcher, oldest first (for a GUI or ``alerts run`` output)."""
        with self._lock:
            items = [r for r in self._recent if not failed_only or not r.ok]
        return items[-limit:] if limit else items
