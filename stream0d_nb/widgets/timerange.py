"""Time range presets of the screens: last hour ... current shift, at the newest data.

Presets end at the newest stored data (for a live line, about now), so that a line that
stopped, or a historic dataset, still shows its last hours instead of an empty plot; the
screen says how old that data is. Shifts start at fixed local hours of the dataset's zone.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

PRESETS: dict[str, pd.Timedelta | None] = {
    "Last hour": pd.Timedelta(hours=1),
    "Last 8 h": pd.Timedelta(hours=8),
    "Last 24 h": pd.Timedelta(hours=24),
    "Last 7 days": pd.Timedelta(days=7),
    "Current shift": None,
    "All data": None,
    "Custom": None,
}
SHIFT_STARTS = (6, 14, 22)
"""Local hours at which shifts start (three 8 h shifts)."""


def shift_start(at: pd.Timestamp, tz: str, starts: Sequence[int] = SHIFT_STARTS) -> pd.Timestamp:
    """UTC start of the shift holding ``at`` (shifts start at ``starts`` local hours)."""
    local = at.tz_convert(tz)
    day = local.normalize()
    candidates = [
        (day + pd.Timedelta(days=d)).replace(hour=h) for d in (-1, 0) for h in sorted(starts)
    ]
    begun = [c for c in candidates if c <= local]
    return max(begun).tz_convert("UTC")


def preset_range(
    preset: str,
    data_start: pd.Timestamp | None,
    data_end: pd.Timestamp | None,
    tz: str,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC ``[start, end)`` of a preset for a dataset holding ``[data_start, data_end)``.

    ValueError for "Custom" (the screen's own pickers) and for a dataset without data.
    """
    if preset not in PRESETS or preset == "Custom":
        raise ValueError(f"{preset!r} is not a preset; choose one of {', '.join(PRESETS)}")
    if data_start is None or data_end is None:
        raise ValueError("the dataset holds no data yet")
    end = data_end
    if preset == "All data":
        return data_start, data_end
    if preset == "Current shift":
        last = end - pd.Timedelta(1, "ns")
        return max(shift_start(last, tz), data_start), end
    length = PRESETS[preset]
    assert length is not None
    return max(end - length, data_start), end
