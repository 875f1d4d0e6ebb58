"""Plots without a network: JavaScript and CSS inlined, never loaded from a CDN.

Partners' plants may be offline and tests reach no CDN. ``use_inline_resources`` sets
up a notebook in the order that left no CDN reference (HoloViews' flag, then panel's
extension, then hvplot). ``save_html`` writes a standalone page: a HoloViews plot as
its Bokeh model with BokehJS inlined; a panel object through panel's inline save, its
stylesheets (which panel links from its CDN even then) inlined from the installed
package and its CDN favicons dropped. ``remote_resources`` lists what a page would
still fetch from elsewhere.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

from stream0d_nb.errors import ValidationError

# what a page fetches: <script src>, <link href>, import(), and the url of a Bokeh
# ImportedStyleSheet in the document's JSON; BokehJS's own lazy addresses (MathJax, icon
# fonts used only by some widgets) are strings in its code, not fetched by a plot
_REMOTE = re.compile(
    r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)["']"""
    r"""|\bimport\(\s*["']((?:https?:)?//[^"']+)["']"""
    r"""|"name":"ImportedStyleSheet","id":"[^"]*","attributes":\{"url":"((?:https?:)?//[^"]+)\"""",
    re.IGNORECASE,
)
_ICON_LINK = re.compile(
    r"""<link\b[^>]*\brel=["'](?:apple-touch-icon|icon)["'][^>]*\bhref=["']https?://[^>]*>\s*""",
    re.IGNORECASE,
)


def use_inline_resources() -> None:
    """Load HoloViews and panel with inline BokehJS (call once, first, in a notebook)."""
    import holoviews as hv
    import panel as pn

    ext: Any = hv.extension
    if "inline" in ext.param:  # the notebook extension (inside IPython)
        ext.inline = True
    # Everything is inlined, so Panel's Jupyter server extension is not needed. Panel 1.10
    # probes it at "/panel-preview/" whatever the server's base URL, which under a hub
    # (/user/<name>/) fails and prints "could not load resources" in red over every cell.
    # "cdn" only turns that probe off: no page here loads anything from a CDN.
    pn.extension(inline=True, notebook_resources="cdn")
    import hvplot.xarray  # noqa: F401  (after panel, as the order matters)

    hv.extension("bokeh")


def remote_resources(html: str) -> list[str]:
    """The addresses a page loads code or styles from (``<script src>``, ``<link href>``,
    ``import()``, Bokeh stylesheets by URL): empty for a page that works offline."""
    return sorted({next(g for g in m.groups() if g) for m in _REMOTE.finditer(html)})


def check_offline_html(path: str | Path) -> Path:
    """``path`` if the saved page loads nothing from elsewhere; else an error listing what."""
    p = Path(path)
    remote = remote_resources(p.read_text(encoding="utf-8"))
    if remote:
        shown = ", ".join(remote[:5]) + (" ..." if len(remote) > 5 else "")
        raise ValidationError(f"{p.name} loads {len(remote)} remote resources: {shown}")
    return p


def _inline_panel_stylesheets(doc: Any) -> None:
    """Replace the stylesheets panel links from its CDN by their text from the package."""
    from bokeh.models import ImportedStyleSheet, InlineStyleSheet
    from panel.io.resources import CDN_DIST, DIST_DIR

    cache: dict[str, InlineStyleSheet] = {}

    def local(sheet: Any) -> Any:
        if not isinstance(sheet, ImportedStyleSheet) or not sheet.url.startswith(CDN_DIST):
            return sheet
        if sheet.url not in cache:
            file = Path(DIST_DIR) / sheet.url[len(CDN_DIST) :].split("?")[0]
            if not file.is_file():
                return sheet
            cache[sheet.url] = InlineStyleSheet(css=file.read_text(encoding="utf-8"))
        return cache[sheet.url]

    for model in list(doc.models):
        if "stylesheets" in model.properties():
            model.stylesheets = [local(s) for s in model.stylesheets]


def _panel_html(obj: Any, title: str) -> str:
    """A panel object as a standalone page with inline resources."""
    from bokeh.document import Document
    from bokeh.resources import INLINE
    from panel.io.resources import set_resource_mode
    from panel.io.save import save
    from pyviz_comms import Comm

    doc = Document()
    with set_resource_mode("inline"):
        doc.add_root(obj.get_root(doc, Comm()))
    _inline_panel_stylesheets(doc)
    buf = io.StringIO()
    save(doc, buf, resources=INLINE, title=title)
    return _ICON_LINK.sub("", buf.getvalue())


def _holoviews_html(obj: Any, title: str) -> str:
    """A HoloViews object as a standalone page: its current frame's Bokeh model."""
    import holoviews as hv
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    model = hv.render(obj, backend="bokeh")
    quiet = logging.getLogger("bokeh.embed.util")  # live plots' Python callbacks: the page is
    level = quiet.level  # a static picture of the current frame, as intended
    quiet.setLevel(logging.ERROR)
    try:
        return str(file_html(model, INLINE, title))
    finally:
        quiet.setLevel(level)


def save_html(obj: Any, path: str | Path, title: str = "stream0d plot") -> Path:
    """Save a plot (HoloViews object, or panel object) as one standalone HTML page with
    every script and style inline, checked to load nothing from elsewhere. A live plot
    is saved as it shows now (zooming it again needs the kernel)."""
    p = Path(path)
    if p.suffix.lower() != ".html":
        raise ValidationError(f"{p.name}: save plots as .html")
    import holoviews as hv

    html = _holoviews_html(obj, title) if isinstance(obj, hv.core.Dimensioned) else None
    if html is None:
        html = _panel_html(obj, title)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(html, encoding="utf-8")
    return check_offline_html(p)
