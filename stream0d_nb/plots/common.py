"""What every plot shares: channel checks, units as y dimensions, the "No data" element.

HoloViews is imported here with its Bokeh plotting options, so that Bokeh options
(``tools``, ``multi_y``) validate wherever a plot is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import holoviews as hv
import holoviews.plotting.bokeh  # registers the Bokeh options
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from stream0d_nb.errors import ChannelNotFoundError, ValidationError
from stream0d_nb.plots.times import TimeLike, check_range, range_text, utc
from stream0d_nb.specs import parse_duration

if hv.Store.current_backend != "bokeh":
    hv.Store.set_current_backend("bokeh")

F8 = npt.NDArray[np.float64]
DIMENSIONLESS = "1"


def series_names(ds: xr.Dataset) -> list[str]:
    """The channels of ``ds``: its variables along ``time``."""
    return [str(k) for k, v in ds.data_vars.items() if v.dims == ("time",)]


def check_channels(
    ds: xr.Dataset, channels: Sequence[str] | str | None, *, least: int = 1
) -> list[str]:
    """``channels`` (default: all of ``ds``) after checking each is a channel of ``ds``."""
    have = series_names(ds)
    names = [channels] if isinstance(channels, str) else list(channels or have)
    for name in names:
        if name not in have:
            raise ChannelNotFoundError(
                f"no channel {name!r} in the data; it has {', '.join(have) or 'no channels'}"
            )
    if len(names) < least:
        raise ValidationError(f"this plot needs {least} channels, got {len(names)}")
    return names


def units_of(ds: xr.Dataset, name: str) -> str:
    """A channel's units as written ("1" for dimensionless or unknown)."""
    text = str(ds[name].attrs.get("units", "")).strip()
    return text if text not in ("", "-") else DIMENSIONLESS


def by_units(ds: xr.Dataset, names: Iterable[str]) -> dict[str, list[str]]:
    """Channels grouped by their units, in first-seen order."""
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(units_of(ds, n), []).append(n)
    return out


def value_name(units: str) -> str:
    """A column name for the values of a unit, one per unit and a plain identifier: ``value_``
    then the units with each character other than an ASCII letter or digit written as
    ``_<hex>_`` (``L/min``: ``value_L_2f_min``). HoloViews copies a column whose name is
    not an identifier under a cleaned-up name for the hover tool: the data would go to the
    browser twice."""
    code = "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):x}_" for c in units)
    return f"value_{code}"


def value_dim(units: str) -> hv.Dimension:
    """The y dimension of a unit, labelled with the units: plots overlaid with ``multi_y``
    get one axis per unit."""
    return hv.Dimension(value_name(units), label=units)


def channel_dim(name: str, units: str) -> hv.Dimension:
    """A dimension for one channel's values, labelled ``name [units]``."""
    return hv.Dimension(name, label=f"{name} [{units}]")


def values(ds: xr.Dataset, name: str) -> F8:
    """A channel's values as float64 (NaN for missing)."""
    return np.asarray(ds[name].values, dtype=np.float64)


def dataset_tz(ds: xr.Dataset, tz: str | None = None) -> str:
    """The time zone to show ``ds`` in: ``tz``, else the dataset's (``attrs["tz"]``, which
    reads from the client carry), else UTC."""
    return tz or str(ds.attrs.get("tz") or "UTC")


def span(
    ds: xr.Dataset, start: TimeLike | None = None, end: TimeLike | None = None
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The UTC range a plot of ``ds`` covers: ``start``/``end`` if given, else the times
    of ``ds`` (to the end of its last sample); None when neither tells."""
    times = np.asarray(ds["time"].values, dtype="datetime64[ns]") if "time" in ds else None
    if start is not None and end is not None:
        return check_range(start, end)
    if times is None or times.size == 0:
        return (None if start is None else utc(start)), (None if end is None else utc(end))
    step = parse_duration(str(ds.attrs.get("interval", "")) or "0s") or 0
    t0 = utc(start) if start is not None else utc(times[0])
    t1 = utc(end) if end is not None else utc(times[-1]) + pd.Timedelta(max(step, 1), "ns")
    return check_range(t0, t1)


def no_data_text(start: pd.Timestamp | None, end: pd.Timestamp | None, tz: str) -> str:
    """The message shown instead of an empty axis."""
    return f"No data in {range_text(start, end, tz)}"


def no_data(ds: xr.Dataset, tz: str) -> hv.Text:
    """A text element saying there is nothing to draw in the range of ``ds`` (its times:
    reads give one empty row per bucket or bin), instead of an empty axis."""
    text = no_data_text(*span(ds), tz)
    return hv.Text(0.5, 0.5, text, kdims=["x", "y"]).opts(
        xaxis=None, yaxis=None, text_font_size="14pt", title=text
    )
