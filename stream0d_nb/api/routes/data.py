"""Reads: a time range of channels (stored or derived), optionally aggregated, as
JSON, CSV (streamed by time windows), Parquet or Arrow, under hard limits (413)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from stream0d_nb import derived
from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, get_settings, require
from stream0d_nb.api.errors import PayloadTooLargeError
from stream0d_nb.errors import ValidationError
from stream0d_nb.store import Store
from stream0d_nb.store.reader import bin_steps, index_range, to_arrow, to_pandas
from stream0d_nb.store.repo import Snapshot

router = APIRouter(tags=["data"])

Format = Literal["json", "csv", "parquet", "arrow"]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}


def parse_channels(text: str | None) -> list[str] | None:
    if text is None or not text.strip():
        return None
    names = [c.strip() for c in text.split(",")]
    if any(not n for n in names):
        raise ValidationError(f"channels={text!r} has an empty name")
    if len(set(names)) != len(names):
        raise ValidationError(f"channels={text!r} names a channel twice")
    return names


def to_json(ds: xr.Dataset) -> dict[str, Any]:
    """Times as ISO UTC text; per channel its units and values (NaN as null)."""
    times = np.datetime_as_string(ds["time"].values.astype("datetime64[ns]"), timezone="UTC")
    channels = {}
    for name, var in ds.data_vars.items():
        vals = var.values.astype(np.float64)
        out: list[float | None] = vals.tolist()
        for i in np.flatnonzero(np.isnan(vals)):
            out[i] = None
        channels[str(name)] = {"units": str(var.attrs.get("units", "")), "values": out}
    return {
        "dataset": ds.attrs.get("dataset"),
        "snapshot": ds.attrs.get("snapshot"),
        "interval": ds.attrs.get("interval"),
        "time": times.tolist(),
        "channels": channels,
    }


def check_limits(
    snap: Snapshot,
    names: list[str] | None,
    start: str | None,
    end: str | None,
    every: str | None,
    how: str,
    settings: Any,
    format: str,
) -> tuple[int, int, int, int]:
    """Grid range ``[i0, i1)``, bin steps and channel count of a read; 413 over the limits.

    Two limits: values scanned (range x channels, before aggregation) and values returned
    (rows x channels; JSON has its own, smaller one). Exports use the same.
    """
    k = bin_steps(snap.grid, every, how)
    try:
        i0, i1 = index_range(snap, start, end)
    except ValidationError:
        raise
    except (ValueError, OverflowError) as exc:  # e.g. year 1 or 9999: beyond ns timestamps
        raise ValidationError(f"start/end out of range: {exc}") from None
    n_channels = len(names) if names is not None else max(len(snap.channels), 1)
    scanned = (i1 - i0) * n_channels
    rows = -(-(i1 - i0) // k) + (1 if k > 1 else 0)
    values = rows * n_channels
    limit = settings.max_json_values if format == "json" else settings.max_values
    if scanned > settings.max_scan_values:
        raise PayloadTooLargeError(
            f"this read scans {scanned:,} values, over the limit of "
            f"{settings.max_scan_values:,}: narrow the range or the channels"
        )
    if values > limit:
        raise PayloadTooLargeError(
            f"this read returns {values:,} values, over the limit of {limit:,} per request "
            f"for format={format}: narrow the range or the channels, or aggregate with every="
        )
    return i0, i1, k, n_channels


@router.get("/datasets/{dataset_id}/data")
def read(
    ctx: Annotated[DatasetContext, Depends(require(Action.READ))],
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
    start: Annotated[str | None, Query(description="Inclusive start (ISO time).")] = None,
    end: Annotated[str | None, Query(description="Exclusive end (ISO time).")] = None,
    channels: Annotated[str | None, Query(description="Comma-separated; default all.")] = None,
    every: Annotated[str | None, Query(description="Aggregation bin, e.g. '1min'.")] = None,
    how: Annotated[str, Query(description="mean, min, max, sum, count, first, last...")] = "mean",
    as_of: Annotated[str | None, Query(description="Snapshot id or time.")] = None,
    format: Annotated[Format, Query()] = "json",
) -> Any:
    """Channels over ``[start, end)``; derived channels allowed; limits give 413."""
    names = parse_channels(channels)
    snap = store.data(ctx.id).snapshot(as_of)
    i0, i1, k, n_channels = check_limits(snap, names, start, end, every, how, settings, format)
    step = snap.grid.interval_ns
    if format == "csv":
        window_rows = max(settings.csv_window_values // n_channels // k, 1) * k
        return _stream_csv(store, ctx.id, names, (i0, i1), step, window_rows, every, how, snap.id)
    ds = derived.read(store, ctx.id, names, start, end, every, how, as_of=snap.id)
    if format == "json":
        return to_json(ds)
    table = to_arrow(ds)
    buf = io.BytesIO()
    if format == "parquet":
        pq.write_table(table, buf)
    else:
        with pa.ipc.new_stream(buf, table.schema) as writer:
            writer.write_table(table)
    return Response(buf.getvalue(), media_type=MEDIA[format])


def _stream_csv(
    store: Store,
    dataset_id: str,
    names: list[str] | None,
    bounds: tuple[int, int],
    step: int,
    window_rows: int,
    every: str | None,
    how: str,
    snapshot: str,
) -> StreamingResponse:
    """CSV by windows of whole bins; the first is read here so errors get their status."""
    i0, i1 = bounds

    def window(a: int, b: int) -> xr.Dataset:
        return derived.read(
            store,
            dataset_id,
            names,
            np.datetime64(a * step, "ns"),
            np.datetime64(b * step, "ns"),
            every,
            how,
            as_of=snapshot,
        )

    # windows start on bin boundaries so that no aggregation bin is split
    edges = [i0]
    nxt = (i0 // window_rows + 1) * window_rows
    while nxt < i1:
        edges.append(nxt)
        nxt += window_rows
    edges.append(i1)
    first = window(edges[0], edges[1])

    def body() -> Iterator[bytes]:
        yield to_pandas(first).to_csv().encode()
        for a, b in itertools.pairwise(edges[1:]):
            yield to_pandas(window(a, b)).to_csv(header=False).encode()

    return StreamingResponse(body(), media_type=MEDIA["csv"])
