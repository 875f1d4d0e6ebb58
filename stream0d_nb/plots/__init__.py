"""Plots of datasets (issue 13): HoloViews/Bokeh over xarray results and the client.

Over xarray results (``ds.s0d.plot(kind)`` is a front to these): ``timeseries``
(many channels, one y axis per unit or stacked lanes, in the dataset's time zone),
``scatter`` (Datashader above a size), ``histogram``, ``box``, ``carpet`` (hour of day x
day) and ``predictions`` (with residuals). Through the client, with the caller's rights:
``live_timeseries`` and ``live_predictions`` re-read the visible range at screen
resolution on zoom; ``plot`` and ``plot_view`` pick by kind; ``alert_episodes`` shades
alerts. ``use_inline_resources`` and ``save_html`` keep pages offline.

Names are imported on first use (HoloViews takes a second or two); importing the package
registers ``ds.s0d.plot``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from stream0d_nb.plots.accessor import register as _register

if TYPE_CHECKING:
    from stream0d_nb.plots.accessor import plot_dataset
    from stream0d_nb.plots.distribution import RASTERIZE_ABOVE, box, carpet, histogram, scatter
    from stream0d_nb.plots.dynamic import live_predictions, live_timeseries
    from stream0d_nb.plots.episodes import (
        SEVERITY_COLORS,
        Episode,
        alert_episodes,
        episodes_from_events,
        episodes_from_preview,
    )
    from stream0d_nb.plots.kinds import KINDS
    from stream0d_nb.plots.offline import (
        check_offline_html,
        remote_resources,
        save_html,
        use_inline_resources,
    )
    from stream0d_nb.plots.remote import plot, plot_view
    from stream0d_nb.plots.residuals import predictions
    from stream0d_nb.plots.series import LAYOUTS, timeseries
    from stream0d_nb.plots.source import DatasetFacts, PlotRequest, RangeReader

_LAZY = {
    "KINDS": "kinds",
    "LAYOUTS": "series",
    "RASTERIZE_ABOVE": "distribution",
    "SEVERITY_COLORS": "episodes",
    "DatasetFacts": "source",
    "Episode": "episodes",
    "PlotRequest": "source",
    "RangeReader": "source",
    "alert_episodes": "episodes",
    "box": "distribution",
    "carpet": "distribution",
    "check_offline_html": "offline",
    "episodes_from_events": "episodes",
    "episodes_from_preview": "episodes",
    "histogram": "distribution",
    "live_predictions": "dynamic",
    "live_timeseries": "dynamic",
    "plot": "remote",
    "plot_dataset": "accessor",
    "plot_view": "remote",
    "predictions": "residuals",
    "remote_resources": "offline",
    "save_html": "offline",
    "scatter": "distribution",
    "timeseries": "series",
    "use_inline_resources": "offline",
}
__all__ = [
    "KINDS",
    "LAYOUTS",
    "RASTERIZE_ABOVE",
    "SEVERITY_COLORS",
    "DatasetFacts",
    "Episode",
    "PlotRequest",
    "RangeReader",
    "alert_episodes",
    "box",
    "carpet",
    "check_offline_html",
    "episodes_from_events",
    "episodes_from_preview",
    "histogram",
    "live_predictions",
    "live_timeseries",
    "plot",
    "plot_dataset",
    "plot_view",
    "predictions",
    "remote_resources",
    "save_html",
    "scatter",
    "timeseries",
    "use_inline_resources",
]

_register()


def __getattr__(name: str) -> Any:
    """Import the submodule holding ``name`` on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
