"""The Studio: every screen of the GUI in one place, as tabs, for the notebook owner.

Screens are ``(title, factory)`` pairs given the one client they share; a factory is a
callable or ``"module:Class"`` under ``stream0d_nb.widgets``. Each screen also works
alone. A screen is built when its tab is first opened, so that opening the Studio costs
one screen's API calls, not six.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import panel as pn

from stream0d_nb.widgets.state import prepare_notebook

Factory = Callable[[Any], Any] | str
Screen = tuple[str, Factory]
SCREENS: tuple[Screen, ...] = (
    ("Explore", "explorer:Explorer"),
    ("Datasets", "setup:DatasetSetup"),
    ("Formulas", "formulas:FormulaEditor"),
    ("Alerts", "alerts:AlertEditor"),
    ("Access", "access:AccessManager"),
    ("Recalibration", "recalibration:Recalibration"),
)


def _resolve(factory: Factory) -> Callable[[Any], Any]:
    if callable(factory):
        return factory
    module, _, name = factory.partition(":")
    made: Callable[[Any], Any] = getattr(
        importlib.import_module(f"stream0d_nb.widgets.{module}"), name
    )
    return made


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
        self.factories: dict[str, Factory] = dict(screens)
        self.screens: dict[str, Any] = {}
        """The screens built so far, by title (the first tab's at once)."""
        self._slots = {t: pn.Column(sizing_mode="stretch_width", name=t) for t in self.factories}
        self._layout: pn.viewable.Viewable | None = None
        self.screen(next(iter(self.factories)))

    def screen(self, title: str) -> Any:
        """The screen of a tab, built on first use."""
        if title not in self.screens:
            made = _resolve(self.factories[title])(self.client)
            self.screens[title] = made
            self._slots[title].objects = [made]
        return self.screens[title]

    def _opened(self, event: Any) -> None:
        self.screen(list(self.factories)[event.new])

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            name = self.client.whoami().user
            header = pn.pane.Markdown(
                f"## stream0d Studio\nSigned in as **{name}**: you see what your grants allow.",
                sizing_mode="stretch_width",
            )
            tabs = pn.Tabs(*self._slots.items(), dynamic=True, sizing_mode="stretch_width")
            tabs.param.watch(self._opened, "active")
            self.tabs = tabs
            self._layout = pn.Column(header, tabs, sizing_mode="stretch_width")
        return self._layout
