"""The curves of time-series lanes: a ``Curve`` whose Bokeh plot never guesses a category axis.

With ``multi_y``, HoloViews 1.23 asks every curve of an extra y axis for its axis
factors on every draw, and a plain Curve answers by formatting each of its values as
text (half a million ``pprint_value`` calls for 20 channels of a month), in case the
axis turns out to be categorical. Lanes only draw numbers, so their curves use a plot
class that skips those implicit categories (as HoloViews' own annotation plots do). The
element keeps the name ``Curve``, so ``opts.Curve`` options and styles apply to it as to
any curve; only its type, registered with the Bokeh backend, picks the plot class.
"""

from __future__ import annotations

import holoviews as hv
from holoviews.plotting.bokeh.chart import CurvePlot as BokehCurvePlot

from stream0d_nb.plots import common  # noqa: F401  (the Bokeh backend, registered first)


class Curve(hv.Curve):
    """A numeric curve of a lane (``hv.Curve`` in all but its Bokeh plot class)."""


class NumericCurvePlot(BokehCurvePlot):
    """A Bokeh curve plot whose y axis is numeric: no categorical factors are computed."""

    _allow_implicit_categories = False


hv.Store.registry["bokeh"][Curve] = NumericCurvePlot
