"""The composition root: the platform opened in-process, as platform code uses it.

``open_platform()`` is the one way platform processes (the CLI, the API service, the
recalibration scheduler and the notebooks it runs, the alert runner) open the store:
settings from ``STREAM0D_*`` (or the ones given), and the write hooks installed once, so
that derived channels, model channels and alert rules follow every write whichever
process wrote. People's code never calls it: it uses ``stream0d_nb.client`` (the API).
"""

from __future__ import annotations

from stream0d_nb.hooks import follow_writes
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store


def open_platform(settings: Settings | None = None) -> Store:
    """The store with the platform's write hooks (close it, or use it as a context)."""
    return follow_writes(Store(settings))


__all__ = ["open_platform"]
