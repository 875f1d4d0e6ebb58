"""In-memory data (pandas DataFrame) as a ``Source``, so programmatic writes share the ingest path."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stream0d_nb.errors import IngestError, Location
from stream0d_nb.ingest.types import Counters, RawBatch, Source, SourceInfo

BATCH_ROWS = 1_000_000


def frame_source(
    df: pd.DataFrame, name: str = "dataframe", tz: str = "UTC", units: dict[str, str] | None = None
) -> Source:
    """Wrap a DataFrame indexed by time (naive times are in ``tz``); rows are numbered from 1."""
    if not isinstance(df.index, pd.DatetimeIndex):
        raise IngestError(
            f"{name}: the index must hold times (a DatetimeIndex), not {type(df.index).__name__}"
        )
    idx = df.index
    if idx.hasnans:
        k = int(np.argmax(idx.isna()))
        raise IngestError(f"{name}: missing time in the index", [Location(name, k + 1, "time")])
    idx = idx.tz_localize(tz) if idx.tz is None else idx
    times = idx.tz_convert("UTC").as_unit("ns").asi8
    values: dict[str, np.ndarray] = {}
    for col in df.columns:
        try:
            values[str(col)] = pd.to_numeric(df[col], errors="raise").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        except (ValueError, TypeError) as exc:
            raise IngestError(
                f"{name}: column {col!r} is not numeric ({exc})", [Location(name, None, str(col))]
            ) from None
    channels = [str(c) for c in df.columns]
    info = SourceInfo(
        file=name,
        format="dataframe",
        channels=channels,
        columns={c: c for c in channels},
        units={c: (units or {}).get(c) for c in channels},
        time_columns=["index"],
    )
    counters = Counters()

    def batches():  # type: ignore[no-untyped-def]
        for a in range(0, len(times), BATCH_ROWS):
            b = min(a + BATCH_ROWS, len(times))
            counters.rows_read += b - a
            yield RawBatch(
                times[a:b],
                {c: v[a:b] for c, v in values.items()},
                np.arange(a + 1, b + 1, dtype=np.int64),
            )

    return Source(info, batches(), counters)
