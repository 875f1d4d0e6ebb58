"""The Studio: every screen of the GUI in one place, as tabs, for the notebook owner.

Screens are ``(title, factory)`` pairs given the one client they share; each also works
alone. The setup screens (datasets and ingest, formulas, alerts, access, recalibration)
join ``SCREENS`` as they are built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import panel as pn

from stream0d_nb.widgets.explorer import Explorer
from stream0d_nb.widgets.state import prepare_notebook

Screen = tuple[str, Callable[[Any], Any]]
SCREENS: tuple[Screen, ...] = (("Explore", Explorer),)


class Studio(pn.viewable.Viewer):
    """The GUI's screens as tabs over one client (the notebook owner's identity)."""

    def __init__(
        self, client: Any = None, screens: Sequence[Screen] = SCREENS, **params: Any
    ) -> None:
        prepare_notebook()
        if client is None:
            from stream0d_nb.client import Client

            client = Client.from_env()
        super().__init__(**params)
        self.client = client
        self.screens = {title: make(client) for title, make in screens}
        self._layout: pn.viewable.Viewable | None = None

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            name = self.client.whoami().user
            header = pn.pane.Markdown(
                f"## stream0d Studio\nSigned in as **{name}**: you see what your grants allow.",
                sizing_mode="stretch_width",
            )
            tabs = pn.Tabs(*[(t, s) for t, s in self.screens.items()], dynamic=True)
            self._layout = pn.Column(header, tabs, sizing_mode="stretch_width")
        return self._layout
