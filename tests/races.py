"""Run one call from several threads at the same moment (a barrier releases them together)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def at_once[T](n: int, call: Callable[[int], T]) -> list[T]:
    """``call(i)`` for i in 0..n-1, each in its own thread, all released at once; their
    results in order (the first exception of any is raised)."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait(timeout=60)
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n), timeout=120))
