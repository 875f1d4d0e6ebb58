""" "Show code" of the formula editor: the client calls that preview, save and list a formula.

So that what was tried in the GUI can go on in a notebook (or a script) as is.
"""

from __future__ import annotations

import pandas as pd


def _iso(t: pd.Timestamp) -> str:
    return t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def formula_code(
    dataset: str,
    formula: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    every: str | None,
    name: str = "",
    description: str = "",
    materialize: bool = False,
) -> str:
    """Python that evaluates ``formula`` over ``[start, end)`` (UTC) as the preview does,
    plots it, and saves it as the derived channel ``name`` (deleting it is commented out)."""
    channel = name or "my_channel"
    spec = f"name={channel!r}, formula={formula!r}"
    if description:
        spec += f", description={description!r}"
    if materialize:
        spec += ", materialize=True"
    return (
        "from stream0d_nb.client import Client\n"
        "from stream0d_nb.plots import timeseries\n"
        "from stream0d_nb.specs import FormulaSpec\n\n"
        "client = Client.from_env()\n"
        f"start, end = {_iso(start)!r}, {_iso(end)!r}\n"
        "# the preview: evaluated without saving, as the channel 'value' (units in its attrs)\n"
        f"ds = client.eval_formula({dataset!r}, {formula!r}, start=start, end=end, "
        f"every={every!r})\n"
        "print(ds['value'].attrs['units'])\n"
        "timeseries(ds, ['value'])\n\n"
        "# save it as a derived channel (editor role), then read it like a stored one\n"
        f"saved = client.add_formula({dataset!r}, FormulaSpec({spec}))\n"
        f"data = client.read({dataset!r}, [saved.name], start=start, end=end, every={every!r})\n"
        f"client.formulas({dataset!r})  # name, formula, units of each\n"
        f"# client.delete_formula({dataset!r}, saved.name)  # deletes it\n"
    )
