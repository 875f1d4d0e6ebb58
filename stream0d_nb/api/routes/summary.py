"""A dataset's summary for overview screens: latest values, their age, good share, last commit.

Read from the last chunks only (``stream0d_nb.store.latest``), so it answers in
milliseconds whatever the length of the history.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, Query

from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, require
from stream0d_nb.errors import ValidationError
from stream0d_nb.store.grid import to_ns
from stream0d_nb.store.latest import summarize
from stream0d_nb.views import DatasetSummary

router = APIRouter(tags=["datasets"])

Read = Annotated[DatasetContext, Depends(require(Action.READ))]


@router.get("/datasets/{dataset_id}/summary")
def dataset_summary(
    ctx: Read,
    store: StoreDep,
    window: Annotated[
        str, Query(description="Good share over this duration before end, e.g. 1h, 15min, 1d.")
    ] = "1h",
    end: Annotated[
        str | None, Query(description="End of the window, ISO time (default: now).")
    ] = None,
) -> DatasetSummary:
    """Per stored channel: last non-NaN value, its time and age, units, good share over the
    window ``[end - window, end)``; and the last commit (viewer)."""
    try:
        at = None if end is None else pd.Timestamp(to_ns(end), unit="ns", tz="UTC")
    except ValidationError as exc:
        raise ValidationError(f"end: {exc}") from None
    return summarize(store.data(ctx.id), ctx.id, ctx.record.spec.interval, window, end=at)
