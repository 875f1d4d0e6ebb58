"""The formula editor's preview: a short window sized to the screen, and where errors point.

``preview_every`` picks the aggregation bin that gives at most ``points`` values (a
round duration, a multiple of the dataset's interval); ``evaluate`` asks the API for an
unsaved formula over that window; ``error_marks`` turns the compiler's line and column
(``RemoteFormulaError``) into the code editor's error marks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import xarray as xr

from stream0d_nb.client import Client, RemoteFormulaError, RequestValidationError
from stream0d_nb.specs import format_duration, parse_duration

_BINS = "1s 2s 5s 10s 15s 30s 1min 2min 5min 10min 15min 30min 1h 2h 3h 6h 12h 1D"
NICE_BINS = tuple(parse_duration(t) or 0 for t in _BINS.split(" "))
"""Round bin sizes (ns) a preview picks from, finest first."""


def preview_every(start: pd.Timestamp, end: pd.Timestamp, interval: str, points: int) -> str | None:
    """The bin (``every=``) that shows ``[start, end)`` in at most ``points`` values; None
    when the raw samples fit. A round duration if one is a multiple of ``interval``."""
    step = parse_duration(interval) or 0
    span = int((end - start).value)
    if step <= 0 or span <= step * points:
        return None
    for size in NICE_BINS:
        if size % step == 0 and span <= size * points:
            return format_duration(size)
    return format_duration(step * math.ceil(span / (step * points)))


@dataclass(frozen=True)
class PreviewRequest:
    """One preview to ask for: a formula over a UTC window of a dataset, in bins ``every``."""

    dataset: str
    formula: str
    start: pd.Timestamp
    end: pd.Timestamp
    every: str | None
    generation: int = 0
    """The screen's dataset generation when asked (a late answer for another is dropped)."""


def evaluate(client: Client, req: PreviewRequest) -> xr.Dataset:
    """The formula over the window, through the API. A formula on its own coarser grid
    (ending in ``resample``) cannot be binned finer: it is then read on its own grid."""
    args = (req.dataset, req.formula)
    try:
        return client.eval_formula(*args, start=req.start, end=req.end, every=req.every)
    except RequestValidationError as exc:
        if req.every is None or isinstance(exc, RemoteFormulaError) or exc.status != 422:
            raise
        return client.eval_formula(*args, start=req.start, end=req.end)


def error_marks(exc: BaseException) -> list[dict[str, Any]]:
    """The code editor's marks for an error: one at the compiler's caret (Ace counts rows
    and columns from 0), none when the error has no place in the text."""
    if not isinstance(exc, RemoteFormulaError) or exc.line is None or exc.column is None:
        return []
    first = str(exc.problem).splitlines()[0] if exc.problem else "error"
    return [{"row": exc.line - 1, "column": exc.column - 1, "text": first, "type": "error"}]
