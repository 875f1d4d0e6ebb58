"""A dataset's latest state, read from its last chunks only: the summary overviews show.

Per stored channel: the last non-NaN sample (time, value, age), and how many samples of a
window ending now are good (non-NaN). Chunks that hold no value are never stored (Zarr's
fill value is NaN), so the newest chunk a channel *has* is found by asking the snapshot's
manifest (no data read); only it and the part of the window up to the last value are read:
the cost depends on the window and the number of channels, not on the history's length.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
from zarr.core.sync import sync as zsync

from stream0d_nb.errors import ValidationError
from stream0d_nb.specs import format_duration, parse_duration_ns
from stream0d_nb.store.repo import DatasetData, Snapshot
from stream0d_nb.views import ChannelSummary, CommitSummary, DatasetSummary

__all__ = ["MAX_WINDOW_SAMPLES", "last_stored_chunk", "summarize"]

MAX_WINDOW_SAMPLES = 4_000_000
"""Grid points a summary window may span per channel (1 s data: 46 days; 1 ms: 66 min)."""


async def last_stored_chunk(snap: Snapshot, name: str, below: int, lowest: int) -> int | None:
    """The highest chunk index under ``below`` (down to ``lowest``) that ``name`` has stored.

    Asks the snapshot's manifest whether chunks exist (no data read, ~0.05 ms each when
    batched), newest first, in batches of 1, 8, 64... so a live channel costs one probe
    and a channel stale for a year of daily chunks a few hundred.
    """
    arr = snap.array(name)
    store: Any = snap.group.store
    size, hi = 1, below
    while hi > lowest:
        lo = max(lowest, hi - size)
        keys = [f"{arr.path}/{arr.metadata.encode_chunk_key((i,))}" for i in range(lo, hi)]
        exists = await asyncio.gather(*(store.exists(k) for k in keys))
        found = [lo + k for k, ok in enumerate(exists) if ok]
        if found:
            return found[-1]
        hi, size = lo, size * 8
    return None


def _ns(t: pd.Timestamp) -> int:
    return int(t.tz_convert("UTC").as_unit("ns").value)


def summarize(
    data: DatasetData,
    dataset_id: str,
    interval: str,
    window: str = "1h",
    end: pd.Timestamp | None = None,
    now: pd.Timestamp | None = None,
) -> DatasetSummary:
    """Last value, age and good share over ``[end - window, end)`` of every stored channel.

    ``end`` defaults to ``now`` (the current time): a channel that stopped an hour ago
    has a share of 0 over the last hour, which is what an overview must show. Ages are
    counted against ``now``. Windows longer than ``MAX_WINDOW_SAMPLES`` grid points are
    refused (ValidationError naming ``window``).
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    end = now if end is None else end
    try:
        window_ns = parse_duration_ns(window, what="window")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    snap = data.snapshot()
    g = snap.grid
    dt = g.interval_ns
    if window_ns // dt > MAX_WINDOW_SAMPLES:
        raise ValidationError(
            f"window {window!r} spans {window_ns // dt:,} samples of {format_duration(dt)}; "
            f"at most {MAX_WINDOW_SAMPLES:,} are summarised (choose a shorter window)"
        )
    end_ns = _ns(end)
    w0 = -(-(end_ns - window_ns) // dt)  # first grid index at or after the window start
    w1 = -(-end_ns // dt)  # first grid index at or after its end (exclusive)
    stop = snap.stop
    now_ns = _ns(now)

    async def every_channel() -> list[ChannelSummary]:
        # all channels at once, in one trip to zarr's event loop
        return list(
            await asyncio.gather(
                *(_channel(snap, n, a, w0, w1, now_ns) for n, a in snap.channels.items())
            )
        )

    channels = zsync(every_channel())
    commit = data.history(limit=1)
    last = commit[0] if commit else None
    return DatasetSummary(
        dataset=dataset_id,
        snapshot=snap.id,
        interval=interval,
        now=now.to_pydatetime(warn=False),
        window=format_duration(window_ns),
        window_start=pd.Timestamp(end_ns - window_ns, unit="ns", tz="UTC").to_pydatetime(
            warn=False
        ),
        window_end=pd.Timestamp(end_ns, unit="ns", tz="UTC").to_pydatetime(warn=False),
        samples=max(0, w1 - w0),
        end=None if stop is None else g.time_of(stop - 1).to_pydatetime(warn=False),
        channels=channels,
        last_commit=None
        if last is None
        else CommitSummary(
            id=last.id,
            written_at=last.written_at,
            actor=None if last.metadata.get("actor") is None else str(last.metadata["actor"]),
            message=last.message,
        ),
    )


async def _read(snap: Snapshot, name: str, lo: int, hi: int) -> np.ndarray:
    """Values ``[lo, hi)`` of a channel (within the array)."""
    out = await snap.array(name)._async_array.getitem(slice(lo, hi))
    return np.asarray(out, dtype="float64")


async def _channel(
    snap: Snapshot, name: str, attrs: dict[str, Any], w0: int, w1: int, now_ns: int
) -> ChannelSummary:
    """One channel's summary: its newest stored chunk, then the window up to its last value;
    on a live view, appended rows not folded yet count too (``_buffered``)."""
    view = getattr(snap, "buffer", None)
    if view is not None and name in view.extent:
        return await _buffered(snap, view, name, attrs, w0, w1, now_ns)
    g = snap.grid
    length = g.chunk_len
    size = snap.array(name).shape[0]
    last_i: int | None = None
    last_value: float | None = None
    block = np.empty(0)
    if snap.start is not None and snap.stop is not None:
        below, lowest = g.chunk_of(snap.stop - 1) + 1, g.chunk_of(snap.start)
        while (c := await last_stored_chunk(snap, name, below, lowest)) is not None:
            block = await _read(snap, name, c * length, min((c + 1) * length, size))
            good_at = np.flatnonzero(~np.isnan(block))
            if good_at.size:
                last_i = c * length + int(good_at[-1])
                last_value = float(block[good_at[-1]])
                break
            below = c  # a stored chunk without values (rare): keep going back
    good = 0
    if last_i is not None:
        # No good value lies after last_i, so the window is read up to it only (not at all
        # for a channel that went quiet before the window), from the block read already.
        lo, hi = max(w0, snap.start or 0), min(w1, last_i + 1)
        first = last_i - last_i % length
        if lo < hi:
            good = int(np.count_nonzero(~np.isnan(block[max(lo, first) - first : hi - first])))
            if lo < first:  # the window reaches into earlier chunks: read those only
                earlier = await _read(snap, name, lo, first)
                good += int(np.count_nonzero(~np.isnan(earlier)))
    return _summary(name, attrs, g, last_i, last_value, good, w0, w1, now_ns)


async def _buffered(
    snap: Snapshot, view: Any, name: str, attrs: dict[str, Any], w0: int, w1: int, now_ns: int
) -> ChannelSummary:
    """A channel with buffered rows: the committed summary, then the buffer over it (its
    last value is the later of the two; the window is counted on both merged)."""
    base: Snapshot = snap.base  # type: ignore[attr-defined]
    g = snap.grid
    last_i = view.extent[name][1] - 1
    last_value: float | None = float(view.values(name, np.array([last_i]))[0])
    if name in base.channels:
        committed = await _channel(base, name, attrs, w0, w1, now_ns)
        if committed.last_time is not None:
            at = int(pd.Timestamp(committed.last_time).value) // g.interval_ns
            if at > last_i:
                last_i, last_value = at, committed.last_value
    lo, hi = max(w0, snap.start or 0), min(w1, last_i + 1)
    good = 0
    if lo < hi:
        block = np.full(hi - lo, np.nan)
        if name in base.channels:
            top = min(hi, base.array(name).shape[0])
            if top > lo:
                block[: top - lo] = await _read(base, name, lo, top)
        view.apply(name, lo, block)
        good = int(np.count_nonzero(~np.isnan(block)))
    return _summary(name, attrs, g, last_i, last_value, good, w0, w1, now_ns)


def _summary(
    name: str,
    attrs: dict[str, Any],
    g: Any,
    last_i: int | None,
    last_value: float | None,
    good: int,
    w0: int,
    w1: int,
    now_ns: int,
) -> ChannelSummary:
    return ChannelSummary(
        name=name,
        units=str(attrs.get("units", "")),
        last_value=last_value,
        last_time=None if last_i is None else g.time_of(last_i).to_pydatetime(warn=False),
        age_seconds=None if last_i is None else (now_ns - last_i * g.interval_ns) / 1e9,
        good=good,
        good_share=good / (w1 - w0) if w1 > w0 else 0.0,
    )
