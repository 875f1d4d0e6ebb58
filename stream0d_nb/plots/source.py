"""Where plots get their data: the client, at screen resolution, with every request kept.

``DatasetFacts`` is what a plot needs to know of a dataset before reading (time zone,
interval, stored extent). ``RangeReader`` reads some channels for a UTC range with
``points=`` (the API's M4 buckets: first, last, min and max per bucket, so no spike is
lost); its ``read`` can be replaced (tests, caches) and ``requests`` lists what it asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.plots.times import TimeLike, check_range, utc
from stream0d_nb.specs import parse_duration

if TYPE_CHECKING:
    from stream0d_nb.client import Client

MAX_POINTS = 20_000  # the API's limit of points= (more than any screen is wide)
ReadFn = Callable[..., xr.Dataset]
"""``client.read``'s signature: ``read(dataset, channels, start=, end=, points=)``."""


@dataclass(frozen=True)
class DatasetFacts:
    """What a plot needs to know of a dataset: zone, interval, stored extent ``[start, end)``."""

    id: str
    tz: str
    interval: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    units: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fetch(cls, client: Client, dataset: str) -> DatasetFacts:
        """Ask the API (one request) for the dataset and what it stores."""
        d = client.dataset(dataset)
        step = pd.Timedelta(parse_duration(d.interval) or 0, "ns")
        first, last = d.summary.start, d.summary.end
        return cls(
            id=dataset,
            tz=d.tz,
            interval=d.interval,
            start=None if first is None else utc(first),
            end=None if last is None else utc(last) + step,
            units={c.name: c.units for c in d.summary.channels or d.channels},
        )

    def range(
        self, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[start, end)`` in UTC, each defaulting to the stored extent's; an empty range,
        or none at all on a dataset without data, is an error saying so."""
        t0 = utc(start) if start is not None else self.start
        t1 = utc(end) if end is not None else self.end
        if t0 is None or t1 is None:
            raise ValidationError(
                f"dataset {self.id!r} holds no data yet: give start= and end= to plot a range"
            )
        return check_range(t0, t1)


@dataclass(frozen=True)
class PlotRequest:
    """One plot-sized read: a UTC range and how many buckets per channel."""

    start: pd.Timestamp
    end: pd.Timestamp
    points: int


class RangeReader:
    """Reads ``channels`` of ``dataset`` over a UTC range at screen resolution.

    ``read`` defaults to ``client.read``; ``requests`` records each read asked and
    ``errors`` each that failed; the same request twice in a row is answered (or
    refused) as the last time (lanes of one live plot ask for the same range together).
    """

    def __init__(
        self,
        client: Client | None,
        dataset: str,
        channels: Sequence[str],
        read: ReadFn | None = None,
    ) -> None:
        if read is None:
            if client is None:
                raise ValidationError("RangeReader needs a client or a read function")
            read = client.read
        self.dataset, self.channels, self._read = dataset, list(channels), read
        self.requests: list[PlotRequest] = []
        self.errors: list[Exception] = []
        self._last: tuple[PlotRequest, xr.Dataset | Exception] | None = None
        self._good: xr.Dataset | None = None

    def __call__(self, start: TimeLike, end: TimeLike, points: int) -> xr.Dataset:
        """The channels over ``[start, end)`` in at most ``points`` buckets each."""
        t0, t1 = check_range(start, end)
        req = PlotRequest(t0, t1, min(max(int(points), 1), MAX_POINTS))
        if self._last is not None and self._last[0] == req:
            if isinstance(self._last[1], Exception):
                raise self._last[1]
            return self._last[1]
        self.requests.append(req)
        try:
            ds = self._read(self.dataset, self.channels, start=t0, end=t1, points=req.points)
        except Exception as exc:
            self.errors.append(exc)
            self._last = (req, exc)
            raise
        self._last, self._good = (req, ds), ds
        return ds

    def empty(self) -> xr.Dataset:
        """The last answer without its rows: the channels and their units, no data."""
        if self._good is None:
            raise ValidationError(f"nothing read yet from {self.dataset!r}")
        return self._good.isel(time=slice(0, 0))
