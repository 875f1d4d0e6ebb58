"""Follow something in the background (a notebook run) without freezing the notebook.

``Follower(fetch, apply, on_error)`` calls ``fetch`` (blocking: an API call) every
``period_s`` off the event loop, then ``apply`` with its result, until ``apply`` returns
False. In JupyterLab and Voila (a kernel's event loop) and under ``panel serve`` it is a
panel periodic callback whose blocking call runs in a worker thread, so the screen is
updated on the loop, where panel expects it; with no event loop (a plain script) it is a
daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import panel as pn
from panel.io.callbacks import PeriodicCallback

from stream0d_nb.widgets.state import EXPECTED


def _loop_running() -> bool:
    """Whether an event loop runs here (a kernel, a panel server): else a thread follows."""
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        return True
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Follower[T]:
    """``apply(fetch())`` every ``period_s`` in the background while ``apply`` says so.

    An expected error (the API's answer, a lost connection) goes to ``on_error`` and ends
    the following; ``start`` again resumes it.
    """

    def __init__(
        self,
        fetch: Callable[[], T],
        apply: Callable[[T], bool],
        on_error: Callable[[BaseException], None],
        period_s: float = 1.0,
    ) -> None:
        self.fetch, self.apply, self.on_error = fetch, apply, on_error
        self.period_s = period_s
        self._callback: PeriodicCallback | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ticks = 0
        self.mode = ""

    @property
    def running(self) -> bool:
        """Whether it still follows."""
        if self._callback is not None:
            return bool(self._callback.running)
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        """Begin following (no-op while it already does)."""
        if self.running:
            return
        self.stop()
        self._stop = threading.Event()
        if _loop_running():
            self.mode = "periodic callback"
            self._callback = PeriodicCallback(
                callback=self._tick, period=int(self.period_s * 1000), log=False, background=True
            )
            self._callback.start()
        else:
            self.mode = "thread"
            self._thread = threading.Thread(target=self._loop, name="s0d-follower", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        if self._callback is not None:
            callback, self._callback = self._callback, None
            callback.stop()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (thread mode; for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _step(self, result: T) -> bool:
        """Apply a result; an expected error there ends the following too."""
        self.ticks += 1
        try:
            return self.apply(result)
        except EXPECTED as exc:
            self.on_error(exc)
            return False

    async def _tick(self) -> None:
        """One round on the event loop: the blocking fetch in a worker thread."""
        stop = self._stop
        try:
            result = await asyncio.to_thread(self.fetch)
        except EXPECTED as exc:
            self.stop()
            self.on_error(exc)
            return
        if stop.is_set():  # stopped (or restarted) meanwhile: this result is stale
            return
        if not self._step(result):
            self.stop()

    def _loop(self) -> None:
        """Thread mode: fetch and apply until told to stop."""
        stop = self._stop
        while not stop.wait(self.period_s):
            try:
                result = self.fetch()
            except EXPECTED as exc:
                stop.set()
                self.on_error(exc)
                return
            if stop.is_set() or not self._step(result):
                stop.set()
                return
