"""Plots of a dataset through the client: what a person sees, with their own rights.

``plot(client, dataset, kind, channels, start, end)`` reads what each kind needs: line
plots are live (re-read at screen resolution on zoom), scatter, histogram and box read
the samples of the range (``every=`` aggregates them first), a carpet reads hourly bins
(finer where the zone's offset is not whole hours). ``plot_view`` opens a saved view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from stream0d_nb.errors import ValidationError
from stream0d_nb.plots.kinds import check_count, check_kind
from stream0d_nb.plots.source import DatasetFacts, ReadFn
from stream0d_nb.plots.times import TimeLike
from stream0d_nb.specs import format_duration, parse_duration
from stream0d_nb.views import ViewSpec

if TYPE_CHECKING:
    from stream0d_nb.client import Client

VIEW_OPTIONS = ("title", "width", "height", "layout", "bins", "threshold", "how", "every")
"""Options of a saved view that ``plot_view`` applies (others are left to other screens)."""
_BIN_HOW = {"mean": "mean", "min": "min", "max": "max", "sum": "sum", "count": "count"}
_THEN = {"count": "sum"}  # counts of bins add up in a cell


def carpet_every(info: DatasetFacts, start: pd.Timestamp, end: pd.Timestamp) -> str | None:
    """The bin read for a carpet: the longest of 1 h, 30, 15 ... min that the zone's UTC
    offsets over the range are multiples of, when the interval divides it; None: raw."""
    days = max(int((end - start) / pd.Timedelta(days=1)), 1)
    probes = pd.date_range(start, end, periods=min(days + 1, 400)).tz_convert(info.tz)
    minutes = 60
    for t in probes:
        offset = t.utcoffset()
        if offset is not None:
            minutes = math.gcd(minutes, abs(int(offset.total_seconds())) // 60)
    step = parse_duration(info.interval) or 0
    every_ns = max(minutes, 1) * 60 * 10**9
    if step <= 0 or every_ns % step or every_ns == step:
        return None
    return format_duration(every_ns)


def plot(
    client: Client,
    dataset: str,
    kind: str = "line",
    channels: Sequence[str] | str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    every: str | None = None,
    read: ReadFn | None = None,
    facts: DatasetFacts | None = None,
    **options: Any,
) -> Any:
    """A plot of ``kind`` of channels of a dataset over ``[start, end)`` (default: all the
    stored channels and range). ``options`` go to the plot function (``width``,
    ``height``, ``title``; ``layout``, ``episodes``, ``bins``, ``threshold``, ``how``
    where they apply); ``read`` replaces ``client.read`` for live plots; ``facts`` saves
    asking for the dataset again."""
    from stream0d_nb.plots import distribution
    from stream0d_nb.plots.dynamic import live_predictions, live_timeseries

    check_kind(kind)
    info = facts or DatasetFacts.fetch(client, dataset)
    if channels is None:
        names = list(info.units)
    else:
        names = [channels] if isinstance(channels, str) else list(channels)
    names = check_count(kind, names)
    t0, t1 = info.range(start, end)
    if every is not None and kind in ("line", "lanes", "prediction"):
        raise ValidationError(
            f"every= does not apply to a {kind} plot: it reads at screen resolution (points=)"
        )
    if kind in ("line", "lanes"):
        if kind == "lanes":
            options.setdefault("layout", "units")
        return live_timeseries(client, dataset, names, t0, t1, read=read, facts=info, **options)
    if kind == "prediction":
        return live_predictions(
            client, dataset, names[0], names[1], t0, t1, read=read, facts=info, **options
        )
    if kind == "carpet":
        how = str(options.pop("how", "mean"))
        bins = every or (carpet_every(info, t0, t1) if how in _BIN_HOW else None)
        server_how = _BIN_HOW.get(how, "mean")
        data = client.read(dataset, names, start=t0, end=t1, every=bins, how=server_how)
        local_how = _THEN.get(how, how) if bins else how
        return distribution.carpet(data, names[0], tz=info.tz, how=local_how, **options)
    data = client.read(dataset, names, start=t0, end=t1, every=every)
    if kind == "scatter":
        return distribution.scatter(data, names[0], names[1], **options)
    if kind == "hist":
        return distribution.histogram(data, names, **options)
    return distribution.box(data, names, **options)


def plot_view(
    client: Client,
    dataset: str,
    view: ViewSpec | str,
    *,
    now: datetime | pd.Timestamp | None = None,
    kind: str | None = None,
    **overrides: Any,
) -> Any:
    """A saved view (or its name) plotted over its range resolved at ``now`` (default: the
    current time), as its kind (or ``kind``), with the options ``VIEW_OPTIONS`` names."""
    spec = client.view(dataset, view) if isinstance(view, str) else view
    try:
        t0, t1 = spec.resolve(now)
    except ValueError as exc:
        raise ValidationError(f"view {spec.name!r}: {exc}") from None
    options = {k: v for k, v in spec.options.items() if k in VIEW_OPTIONS}
    return plot(client, dataset, kind or spec.kind, spec.channels, t0, t1, **(options | overrides))
