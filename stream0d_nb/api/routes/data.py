"""Reads: a time range of channels (stored or derived), optionally aggregated, as
JSON, CSV (streamed by time windows), Parquet or Arrow, under hard limits (413)."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xarray as xr
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from stream0d_nb import derived
from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, get_settings, require
from stream0d_nb.api.errors import PayloadTooLargeError
from stream0d_nb.errors import ValidationError
from stream0d_nb.safetext import spreadsheet_safe
from stream0d_nb.specs import format_duration
from stream0d_nb.store import Store, reader
from stream0d_nb.store.reader import MAX_POINTS, bin_steps, index_range
from stream0d_nb.store.repo import Snapshot
from stream0d_nb.tables import to_arrow, to_pandas

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
    return json.loads(json_bytes(ds))


def _number_list(values: np.ndarray) -> str:
    """A JSON array of float64 values (NaN and +-inf as null: strict JSON), by Arrow."""
    if values.size == 0:
        return "[]"
    if np.isinf(values).any():
        values = np.where(np.isinf(values), np.nan, values)
    text = pa.array(values, type=pa.float64(), from_pandas=True).cast(pa.string())
    items = pa.ListArray.from_arrays(pa.array([0, len(text)], pa.int32()), text.fill_null("null"))
    return "[" + str(pc.binary_join(items, ",")[0].as_py()) + "]"


def iso_times(values: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC strings in the coarsest unit that keeps every time exact.

    ``2024-01-01T00:00:00Z`` rather than ``2024-01-01T00:00:00.000000000Z`` on grids of
    whole seconds: a third less JSON to send and parse, and faster to format.
    """
    ns = values.astype("datetime64[ns]")
    ints = ns.view(np.int64)
    unit = next((u for u, k in _UNITS if not np.any(ints % k)), "ns")
    return np.datetime_as_string(ns.astype(f"datetime64[{unit}]"), timezone="UTC")


_UNITS = (("s", 10**9), ("ms", 10**6), ("us", 10**3))


def json_bytes(ds: xr.Dataset) -> bytes:
    """The JSON answer of a read: dataset, snapshot, interval, ``time`` and ``channels``.

    Built as text rather than through ``json.dumps`` of Python lists: formatting floats
    one by one in Python was most of a JSON read's cost.
    """
    times = iso_times(ds["time"].values)
    head = {k: ds.attrs.get(k) for k in ("dataset", "snapshot", "interval")}
    if "bucket" in ds.attrs:  # a plot-sized read (points=)
        head.update(bucket=ds.attrs["bucket"], points=int(ds.attrs["points"]))
    parts = [json.dumps(head)[:-1], ',"time":']
    parts.append('["' + '","'.join(times.tolist()) + '"]' if times.size else "[]")
    parts.append(',"channels":{')
    for i, (name, var) in enumerate(ds.data_vars.items()):
        units = json.dumps(str(var.attrs.get("units", "")))
        values = _number_list(np.asarray(var.values, dtype=np.float64))
        parts.append(
            f'{"," if i else ""}{json.dumps(str(name))}:{{"units":{units},"values":{values}}}'
        )
    parts.append("}}")
    return "".join(parts).encode()


def check_limits(
    snap: Snapshot,
    names: list[str] | None,
    start: str | None,
    end: str | None,
    every: str | None,
    how: str,
    settings: Any,
    format: str,
    store: Store | None = None,
    dataset_id: str = "",
    points: int | None = None,
) -> tuple[int, int, int, int]:
    """Grid range ``[i0, i1)``, bin steps and channel count of a read; 413 over the limits.

    Decided from the request alone, before anything is read (docs/api.md, "Bounded
    reads"): values held to evaluate derived channels (margins and nested windows
    included; needs ``store``) against ``max_values``, values scanned (range x channels,
    before aggregation, which goes window by window) and values returned (rows x
    channels; JSON has its own, smaller limit; ``points`` bounds the rows). Exports use
    the same.
    """
    if points is not None and every is not None:
        raise ValidationError(
            "points= and every= cannot be combined: points= already reduces each bucket "
            "to its first, last, min and max; use one or the other"
        )
    k = bin_steps(snap.grid, every, how)
    try:
        i0, i1 = index_range(snap, start, end)
    except ValidationError:
        raise
    except (ValueError, OverflowError) as exc:  # e.g. year 1 or 9999: beyond ns timestamps
        raise ValidationError(f"start/end out of range: {exc}") from None
    if i1 > i0 and k > i1 - i0:
        raise ValidationError(
            f"every={every!r} is longer than the range read "
            f"({format_duration((i1 - i0) * snap.grid.interval_ns)}): choose a shorter "
            "every= or a longer range"
        )
    n_channels = len(names) if names is not None else max(len(snap.channels), 1)
    scanned = (i1 - i0) * n_channels
    rows = -(-(i1 - i0) // k) + (1 if k > 1 else 0)
    if points is not None:  # at most first, min, max and last per bucket and channel
        rows = min(i1 - i0, 4 * points * n_channels)
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
    to_derive = [n for n in names or [] if n not in snap.channels]
    if to_derive and store is not None and i1 > i0:
        step = snap.grid.interval_ns
        held = derived.values_held(
            store,
            dataset_id,
            to_derive,
            np.datetime64(i0 * step, "ns"),
            np.datetime64(i1 * step, "ns"),
            settings.max_values,
            as_of=snap,
        )
        if held > settings.max_values:
            raise PayloadTooLargeError(
                f"this read needs at least {held:,} values in memory to evaluate the derived "
                f"channels {', '.join(to_derive)} (their windows and shifts widen the range), "
                f"over the limit of {settings.max_values:,}: narrow the range, read fewer "
                "derived channels, or materialise them"
            )
        scanned += held - (i1 - i0) * len(to_derive)
        if scanned > settings.max_scan_values:
            raise PayloadTooLargeError(
                f"this read scans {scanned:,} values (derived channels' margins included), "
                f"over the limit of {settings.max_scan_values:,}: narrow the range or the "
                "channels"
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
    points: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_POINTS,
            description="Plot-sized read: at most this many buckets per channel, each "
            "keeping its first, last, min and max samples (not with every=).",
        ),
    ] = None,
) -> Any:
    """Channels over ``[start, end)``; derived channels allowed; limits give 413."""
    names = parse_channels(channels)
    snap = store.data(ctx.id).snapshot(as_of)
    i0, i1, k, n_channels = check_limits(
        snap, names, start, end, every, how, settings, format, store, ctx.id, points
    )
    tz = ctx.record.spec.tz
    if points is not None:  # small answers (4 x points rows per channel at most): whole
        ds = read_points(store, ctx.id, snap, tz, names, start, end, points)
        if format == "csv":
            return Response(b"".join(_csv_parts(iter([ds]))), media_type=MEDIA["csv"])
        return _whole(ds, format, compression="zstd")
    window_rows = max(settings.csv_window_values // n_channels // k, 1) * k
    stored = names is None or all(n in snap.channels for n in names)
    if format == "csv" or (format in ("arrow", "parquet") and stored and i1 - i0 > window_rows):
        # by windows, so that memory follows the window, not the range (derived channels
        # are evaluated whole: each window would read their margins again)
        parts = _windows(store, ctx.id, snap, tz, names, (i0, i1), window_rows, every, how)
        body = _csv_parts(parts) if format == "csv" else _table_parts(parts, format)
        return StreamingResponse(body, media_type=MEDIA[format])
    ds = read_snapshot(store, ctx.id, snap, tz, names, start, end, every, how)
    return _whole(ds, format)


def _whole(ds: xr.Dataset, format: str, compression: str | None = None) -> Response:
    """A read's answer built at once (JSON, Parquet or Arrow, the latter's buffers
    optionally compressed: zstd takes a plot-sized read from 16 to about 10 bytes a point)."""
    if format == "json":
        return Response(json_bytes(ds), media_type="application/json")
    table = to_arrow(ds)
    buf = io.BytesIO()
    if format == "parquet":
        pq.write_table(table, buf)
    else:
        options = pa.ipc.IpcWriteOptions(compression=compression)
        with pa.ipc.new_stream(buf, table.schema, options=options) as writer:
            writer.write_table(table)
    return Response(buf.getbuffer(), media_type=MEDIA[format])


def read_snapshot(
    store: Store,
    dataset_id: str,
    snap: Snapshot,
    tz: str,
    names: list[str] | None,
    start: object | None,
    end: object | None,
    every: str | None,
    how: str,
) -> xr.Dataset:
    """``derived.read`` at a pinned snapshot, with a fast path for stored channels.

    When every channel asked for is stored (the usual read), the arrays are read straight
    from the snapshot already opened for the limit check: no second snapshot lookup and
    no formula query, which are most of a small read's cost. Anything else (derived
    channels, unknown names and their hints) goes through ``derived.read``.
    """
    if names is None or all(n in snap.channels for n in names):
        return reader.read(snap, dataset_id, names, start, end, every, how, tz)
    return derived.read(store, dataset_id, names, start, end, every, how, as_of=snap)


def read_points(
    store: Store,
    dataset_id: str,
    snap: Snapshot,
    tz: str,
    names: list[str] | None,
    start: object | None,
    end: object | None,
    points: int,
) -> xr.Dataset:
    """A plot-sized read at a pinned snapshot: stored channels reduced window by window
    from the snapshot; derived ones evaluated as a regular read, then reduced."""
    if names is None or all(n in snap.channels for n in names):
        return reader.read_points(snap, dataset_id, names, start, end, points, tz)
    ds = derived.read(store, dataset_id, names, start, end, as_of=snap)
    return reader.to_points(ds, points, snap.grid.chunk_len)


def _windows(
    store: Store,
    dataset_id: str,
    snap: Snapshot,
    tz: str,
    names: list[str] | None,
    bounds: tuple[int, int],
    window_rows: int,
    every: str | None,
    how: str,
) -> Iterator[xr.Dataset]:
    """The read by windows of whole bins; the first is read at once so that errors get
    their status before the answer starts."""
    i0, i1 = bounds
    step = snap.grid.interval_ns

    def window(a: int, b: int) -> xr.Dataset:
        return read_snapshot(
            store,
            dataset_id,
            snap,
            tz,
            names,
            np.datetime64(a * step, "ns"),
            np.datetime64(b * step, "ns"),
            every,
            how,
        )

    # windows start on bin boundaries so that no aggregation bin is split
    edges = [i0]
    nxt = (i0 // window_rows + 1) * window_rows
    while nxt < i1:
        edges.append(nxt)
        nxt += window_rows
    edges.append(i1)
    first = window(edges[0], edges[1])

    def rest() -> Iterator[xr.Dataset]:
        yield first
        for a, b in itertools.pairwise(edges[1:]):
            yield window(a, b)

    return rest()


def _csv_parts(parts: Iterator[xr.Dataset]) -> Iterator[bytes]:
    """CSV text by window: the header (neutralised against formula injection) once."""
    head = to_pandas(next(parts))
    yield head.rename(columns=lambda c: spreadsheet_safe(str(c))).to_csv().encode()
    for ds in parts:
        yield to_pandas(ds).to_csv(header=False).encode()


class _Chunks(io.RawIOBase):
    """A write-only file whose written bytes are taken out as they come (for streaming)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.parts.append(bytes(b))
        return len(self.parts[-1])

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _table_parts(parts: Iterator[xr.Dataset], format: str) -> Iterator[bytes]:
    """An Arrow IPC stream (one record batch per window) or a Parquet file (one row group
    per window), written as the windows are read."""
    first = to_arrow(next(parts))
    schema = first.schema
    sink = _Chunks()
    writer: Any = (
        pq.ParquetWriter(sink, schema) if format == "parquet" else pa.ipc.new_stream(sink, schema)
    )
    with writer:
        writer.write_table(first)
        del first
        yield sink.take()
        for ds in parts:
            writer.write_table(pa.Table.from_arrays(to_arrow(ds).columns, schema=schema))
            yield sink.take()
    yield sink.take()
