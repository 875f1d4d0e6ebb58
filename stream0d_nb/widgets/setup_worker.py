"""Long work (an ingest) off the kernel's event loop, its screen updates made where Panel
can send them.

The job runs in a thread started in a copy of the caller's context, so Panel's current
document (a served session's) is known there. ``in_ui`` hands a screen update to
``pn.state.execute``: in a served app it is queued on the session's event loop (next tick,
the document lock held); in a Jupyter kernel (no served session) it runs at once, and
Panel sends the changed models over the kernel's comm, which ipykernel lets any thread do.
Param changes made in the thread, such as progress, go the same way through Panel itself.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable

import panel as pn


def in_ui(update: Callable[[], None]) -> None:
    """Run ``update`` of the screen where Panel may change its models (see the module)."""
    pn.state.execute(update)


class Background:
    """One job at a time in a daemon thread (a second start is refused while one runs)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the job still runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, job: Callable[[], None]) -> threading.Thread:
        """Start ``job`` in a thread (ValueError while the previous one runs)."""
        if self.running:
            raise ValueError(f"{self.what} is still running: wait for its report")
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
