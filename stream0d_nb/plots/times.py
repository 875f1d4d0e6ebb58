"""Times of plots: the client gives naive UTC, axes show the dataset's wall clock.

Bokeh draws datetimes without a zone, so a plot in ``Europe/Madrid`` gets naive local
times on its axis and its label names the zone; positions coming back from the axis
(zoom, pan) are turned into UTC again for the next read. In the hour a clock goes back
the wall clock repeats, so that hour's samples overlap on the axis.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from stream0d_nb.errors import ValidationError

TimeLike = str | datetime | pd.Timestamp | np.datetime64


def utc(t: TimeLike) -> pd.Timestamp:
    """``t`` as an aware UTC timestamp; naive times are UTC, as everywhere in the client."""
    try:
        ts = pd.Timestamp(t)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{t!r} is not a time: {exc}") from None
    if ts is pd.NaT:
        raise ValidationError(f"{t!r} is not a time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_range(start: TimeLike, end: TimeLike) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end)`` in UTC; an empty or reversed range is an error that says so."""
    t0, t1 = utc(start), utc(end)
    if t0 >= t1:
        raise ValidationError(
            f"the time range {t0.isoformat()} .. {t1.isoformat()} is empty: start must be "
            "before end"
        )
    return t0, t1


def to_local(times: Any, tz: str) -> pd.DatetimeIndex:
    """Naive UTC times (a read's ``time``) as naive wall-clock times of ``tz``."""
    idx = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]"))
    if tz == "UTC":
        return idx
    return idx.tz_localize("UTC").tz_convert(tz).tz_localize(None)


def local(t: pd.Timestamp, tz: str) -> pd.Timestamp:
    """One UTC time as the naive wall-clock time of ``tz``."""
    return utc(t).tz_convert(tz).tz_localize(None)


def from_axis(x: Any, tz: str, *, earliest: bool) -> pd.Timestamp:
    """An axis position (naive wall clock of ``tz``: datetime64, datetime, or Bokeh's
    milliseconds) as UTC; a repeated wall-clock time gives its ``earliest`` or latest
    instant, a skipped one the first instant after the gap."""
    if isinstance(x, int | float | np.integer | np.floating):
        ts = pd.Timestamp(int(x), unit="ms")
    else:
        ts = pd.Timestamp(x)
    if ts.tzinfo is not None:
        return ts.tz_convert("UTC")
    return ts.tz_localize(tz, ambiguous=earliest, nonexistent="shift_forward").tz_convert("UTC")


def range_text(start: pd.Timestamp | None, end: pd.Timestamp | None, tz: str) -> str:
    """The range as people read it on the axis: ``2024-05-01 02:00:00 .. 03:00:00 (Europe/Madrid)``."""
    if start is None or end is None:
        return "the range read"
    a, b = local(start, tz), local(end, tz)
    right = b.strftime("%H:%M:%S") if a.date() == b.date() else str(b)
    return f"{a} .. {right} ({tz})"
