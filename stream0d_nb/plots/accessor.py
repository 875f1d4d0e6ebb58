"""``ds.s0d.plot(kind, ...)`` on xarray results: a thin front over the plot functions.

The ``s0d`` accessor lives with the formulas (``ds.s0d.formula``), a lower layer that may
not import the plots; importing ``stream0d_nb.plots`` registers ``plot_dataset`` as the
function behind its ``plot`` method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xarray as xr

from stream0d_nb.plots.kinds import check_count, check_kind


def plot_dataset(
    ds: xr.Dataset,
    kind: str = "line",
    channels: Sequence[str] | str | None = None,
    **options: Any,
) -> Any:
    """A plot of ``kind`` of ``channels`` of ``ds`` (default: all; for ``scatter`` x then
    y, for ``prediction`` measured then predicted); ``options`` go to the plot function
    (``tz``, ``width``, ``height``, ``title``, and ``layout``, ``bins``, ``threshold``,
    ``how``, ``episodes`` where they apply)."""
    check_kind(kind)
    from stream0d_nb.plots import common

    names = common.check_channels(ds, channels)
    names = check_count(kind, names)
    if kind in ("line", "lanes"):
        from stream0d_nb.plots.series import timeseries

        if kind == "lanes":
            options.setdefault("layout", "units")
        return timeseries(ds, names, **options)
    if kind == "prediction":
        from stream0d_nb.plots.residuals import predictions

        return predictions(ds, names[0], names[1], **options)
    from stream0d_nb.plots import distribution

    if kind == "scatter":
        return distribution.scatter(ds, names[0], names[1], **options)
    if kind == "carpet":
        return distribution.carpet(ds, names[0], **options)
    if kind == "hist":
        return distribution.histogram(ds, names, **options)
    return distribution.box(ds, names, **options)


def register() -> None:
    """Serve ``ds.s0d.plot`` with ``plot_dataset`` (done when ``stream0d_nb.plots`` is imported)."""
    from stream0d_nb.formulas.accessor import register_plot_front

    register_plot_front(plot_dataset)
