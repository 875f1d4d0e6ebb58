"""Scores of backfilled episodes against labelled anomaly windows (e.g. NAB's).

An episode is a true positive when it overlaps a window; a window is detected when an
episode overlaps it. Open episodes count until ``horizon_ns``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream0d_nb.alerts.engine import Episode


@dataclass(frozen=True)
class Scores:
    """Episode precision and window recall, with the counts behind them."""

    episodes: int
    true_positives: int
    windows: int
    detected: int

    @property
    def precision(self) -> float:
        """Share of episodes overlapping a labelled window (1.0 when no episode)."""
        return self.true_positives / self.episodes if self.episodes else 1.0

    @property
    def recall(self) -> float:
        """Share of labelled windows overlapped by an episode."""
        return self.detected / self.windows if self.windows else 1.0


def nab_scores(
    episodes: Sequence[Episode], windows: Sequence[tuple[int, int]], horizon_ns: int
) -> Scores:
    """Precision and recall of ``episodes`` vs ``[start, end]`` windows (UTC ns)."""
    spans = [(e.start, e.end if e.end is not None else horizon_ns) for e in episodes]

    def overlaps(a: tuple[int, int], w: tuple[int, int]) -> bool:
        return a[0] <= w[1] and w[0] < max(a[1], a[0] + 1)

    tp = sum(any(overlaps(s, w) for w in windows) for s in spans)
    det = sum(any(overlaps(s, w) for s in spans) for w in windows)
    return Scores(len(spans), tp, len(windows), det)
