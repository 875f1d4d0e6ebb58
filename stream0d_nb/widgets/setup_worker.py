"""Long work (an ingest) off the kernel's event loop, its screen updates made where Panel
can send them.

The job runs in a thread started in a copy of the caller's context, so Panel's current
document (a served session's) is known there. ``Background.ui`` hands a screen update
over: in a served app to ``pn.state.execute`` (queued on the session's event loop, the
document lock held); in a Jupyter kernel to the kernel's own event loop, where comm
messages keep their order (sent from the worker thread, some were seen lost or out of
order in Chromium: a report shown under a stale "Uploading" line); with no loop running
(screens driven from plain Python) at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import panel as pn


def _served() -> bool:
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


class Background:
    """One job at a time in a daemon thread (a second start is refused while one runs)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        """Whether the job still runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, job: Callable[[], None]) -> threading.Thread:
        """Start ``job`` in a thread (ValueError while the previous one runs)."""
        if self.running:
            raise ValueError(f"{self.what} is still running: wait for its report")
        try:
            self._loop = asyncio.get_running_loop()  # a kernel's (or server's) loop
        except RuntimeError:
            self._loop = None
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(job,), name=self.what, daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job (at most ``timeout`` s); True when none runs any more."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def ui(self, update: Callable[[], None]) -> None:
        """Run ``update`` of the screen where Panel may change its models (see the module)."""
        if _served():
            pn.state.execute(update)
        elif self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(update)
        else:
            update()
