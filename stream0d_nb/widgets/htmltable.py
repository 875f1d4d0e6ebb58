"""Plain HTML tables for the setup screens: escaped text, a caption, header cells with
scope, and states shown as a symbol, a word and a colour (never colour alone).

Read-only tables as HTML rather than Tabulator: screen readers and the keyboard handle
them natively, and Bokeh's event widgets have open bugs inside Voila (DESIGN.md, GUI).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

STATE_COLOURS = {
    "succeeded": "#1a7f37",
    "active": "#1a7f37",
    "enabled": "#1a7f37",
    "queued": "#9a6700",
    "running": "#9a6700",
    "retired": "#57606a",
    "paused": "#57606a",
    "failed": "#cf222e",
    "timed_out": "#cf222e",
    "rejected": "#cf222e",
}
STATE_SYMBOLS = {"#1a7f37": "●", "#9a6700": "…", "#57606a": "○", "#cf222e": "✖"}


class Coloured:
    """A cell shown as a symbol and its text in a colour (a run's or version's state)."""

    def __init__(self, text: str, colour: str | None = None) -> None:
        self.text = text
        self.colour = colour or STATE_COLOURS.get(text, "#24292f")

    def html(self) -> str:
        symbol = STATE_SYMBOLS.get(self.colour, "")
        return (
            f'<span style="color:{self.colour};font-weight:600">'
            f"{symbol} {html.escape(self.text)}</span>"
        )


def cell_text(value: Any) -> str:
    """A value as a table shows it: times in UTC to the second, floats to 4 significant
    digits, mappings as compact JSON, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, separators=(", ", ": "))
    return str(value)


def html_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    caption: str,
    empty: str = "Nothing yet.",
    max_height: int = 320,
) -> str:
    """An HTML table of ``rows`` (``Coloured`` cells keep their colour), or ``empty``."""
    body = []
    for row in rows:
        cells = "".join(
            f"<td>{v.html() if isinstance(v, Coloured) else html.escape(cell_text(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    cap = f'<caption style="text-align:left;font-weight:600">{html.escape(caption)}</caption>'
    if not body:
        return f'<div role="note">{html.escape(caption)}: {html.escape(empty)}</div>'
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in columns)
    style = (
        "<style>.s0d-table{border-collapse:collapse;font-size:13px}"
        ".s0d-table th,.s0d-table td{border:1px solid #d0d7de;padding:2px 6px;"
        "text-align:left;vertical-align:top}.s0d-table th{background:#f6f8fa}</style>"
    )
    return (
        f'{style}<div style="max-height:{max_height}px;overflow:auto">'
        f'<table class="s0d-table">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
