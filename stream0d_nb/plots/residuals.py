"""Model predictions beside the measurements, and the residual in a lane below.

The residual is ``measured - predicted`` at each row (the predicted channel converted to
the measured one's units when they differ), drawn around a zero line on the same time
axis as the two channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import holoviews as hv
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.plots import common
from stream0d_nb.plots.common import span
from stream0d_nb.plots.episodes import Episode
from stream0d_nb.plots.series import HEIGHT, WIDTH, lane, stack
from stream0d_nb.plots.times import TimeLike
from stream0d_nb.units import converter

RESIDUAL = "residual"


def with_residual(ds: xr.Dataset, measured: str, predicted: str) -> xr.Dataset:
    """``ds`` with the variable ``residual`` = measured - predicted, in measured's units."""
    common.check_channels(ds, [measured, predicted])
    if measured == predicted:
        raise ValidationError("measured and predicted must be two different channels")
    mu, pu = common.units_of(ds, measured), common.units_of(ds, predicted)
    pred = common.values(ds, predicted)
    try:
        convert = converter(pu, mu)  # None: the same units
    except ValidationError:
        raise ValidationError(
            f"predicted {predicted!r} is in {pu!r}, which does not convert to the "
            f"units {mu!r} of measured {measured!r}"
        ) from None
    if convert is not None:
        pred = convert(pred)
    res = common.values(ds, measured) - pred
    attrs = {"units": mu, "long_name": f"{measured} - {predicted}"}
    out = ds.copy()
    out[predicted] = ("time", pred, {**ds[predicted].attrs, "units": mu})
    out[RESIDUAL] = ("time", res, attrs)
    return out


def prediction_lanes(
    ds: xr.Dataset,
    measured: str,
    predicted: str,
    tz: str,
    start: TimeLike | None,
    end: TimeLike | None,
    episodes: Sequence[Episode] = (),
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
    message: str | None = None,
) -> list[hv.Overlay]:
    """The two lanes: measured and predicted together, then the residual with a zero line."""
    data = with_residual(ds, measured, predicted)
    t0, t1 = span(data, start, end)
    top = lane(
        data,
        [measured, predicted],
        tz,
        t0,
        t1,
        episodes,
        width=width,
        height=height,
        message=message,
    )
    zero = hv.HLine(0.0).opts(color="black", line_width=1, alpha=0.6)
    bottom = lane(
        data,
        [RESIDUAL],
        tz,
        t0,
        t1,
        width=width,
        height=max(height * 2 // 3, 120),
        extra=[zero],
        message=message,
    )
    return [top.opts(title=title), bottom]


def predictions(
    ds: xr.Dataset,
    measured: str,
    predicted: str,
    *,
    tz: str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    episodes: Sequence[Episode] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
) -> hv.Layout:
    """Measured and predicted channels of ``ds`` and their residual, in stacked lanes."""
    zone = common.dataset_tz(ds, tz)
    parts = prediction_lanes(
        ds, measured, predicted, zone, start, end, episodes, width=width, height=height, title=title
    )
    out = stack(parts)
    assert isinstance(out, hv.Layout)
    return out
