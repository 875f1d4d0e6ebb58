"""Debounce with one request in flight: what a live preview asks of the API while typing.

``Throttle`` holds only the newest value submitted; it is ready to run once ``delay``
seconds passed without a newer one, and never while the previous run is unfinished.
Times are given by the caller (``now``), so the logic is tested without waiting.
"""

from __future__ import annotations


class Throttle[T]:
    """The newest submitted value, handed out after ``delay`` s of quiet, one at a time."""

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError(f"delay must be at least 0 s, not {delay}")
        self.delay = delay
        self._value: T | None = None
        self._has = False
        self._due = 0.0
        self.in_flight = False
        self.started = 0
        """How many values were handed out (runs started)."""

    @property
    def pending(self) -> bool:
        """Whether a value waits to be run."""
        return self._has

    def submit(self, value: T, now: float) -> None:
        """A new value (replacing any waiting one); due ``delay`` after ``now``."""
        self._value, self._has, self._due = value, True, now + self.delay

    def cancel(self) -> None:
        """Drop the waiting value (a run in flight goes on)."""
        self._value, self._has = None, False

    def wait(self, now: float) -> float | None:
        """Seconds until the waiting value is due (0: now); None when nothing waits or a
        run is in flight (``finish`` says when to ask again)."""
        if not self._has or self.in_flight:
            return None
        return max(self._due - now, 0.0)

    def take(self, now: float) -> T | None:
        """The value to run now, marking a run in flight; None if nothing waits, it is not
        due yet, or a run is in flight."""
        if self.wait(now) != 0.0:
            return None
        value, self._value, self._has = self._value, None, False
        self.in_flight = True
        self.started += 1
        return value

    def finish(self) -> None:
        """The run in flight ended (answer or error): the next may start."""
        self.in_flight = False
