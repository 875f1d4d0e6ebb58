""" "Show code": the client and hvplot calls that reproduce what a screen shows.

So that a person can take a plot from the GUI into their own notebook and go on from there.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

_HVPLOT = {
    "line": "df.hvplot.line(y={names}, responsive=True)",
    "lanes": "df.hvplot.line(y={names}, subplots=True, shared_axes=True).cols(1)",
    "scatter": "df.hvplot.scatter(x={x!r}, y={y!r}, rasterize=len(df) > 50_000)",
    "carpet": (
        "df.assign(day=df.index.date, hour=df.index.hour)"
        ".hvplot.heatmap(x='day', y='hour', C={x!r}, reduce_function=np.mean)"
    ),
    "hist": "df.hvplot.hist(y={names}, bins=50, alpha=0.6)",
    "box": "df.hvplot.box(y={names})",
    "prediction": "(df[{x!r}] - df[{y!r}]).rename('residual').hvplot.line()",
}


def _iso(t: pd.Timestamp) -> str:
    return t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def explorer_code(
    dataset: str,
    channels: Sequence[str],
    kind: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    tz: str,
) -> str:
    """Python that shows ``kind`` of ``channels`` over ``[start, end)`` (UTC) as the
    Explorer does: the platform's plot function, then the data and plain hvplot."""
    names = list(channels)
    x, y = [*names, "", ""][:2]
    hv_line = _HVPLOT[kind].format(names=names, x=x, y=y)
    points = ", points=2000" if kind in ("line", "lanes", "prediction") else ""
    extra = "import numpy as np\n" if kind == "carpet" else ""
    return (
        "from stream0d_nb.client import Client\n"
        "from stream0d_nb.plots import plot\n\n"
        "client = Client.from_env()\n"
        f"start, end = {_iso(start)!r}, {_iso(end)!r}\n"
        "# the same plot as the Explorer (zoom re-reads the visible range)\n"
        f"plot(client, {dataset!r}, {kind!r}, {names!r}, start, end)\n\n"
        "# or the data itself, and plain hvplot\n"
        f"{extra}import hvplot.pandas  # noqa: F401\n\n"
        f"df = client.read_pandas({dataset!r}, {names!r}, start=start, end=end, "
        f"tz={tz!r}{points})\n"
        f"{hv_line}\n"
    )
