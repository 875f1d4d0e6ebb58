"""The GUI: panel screens over the client, acting as the person using them.

``Studio()`` opens every screen in one place; each screen also works alone
(``Explorer()``, ``DatasetSetup()``, ``FormulaEditor()``, ``AlertEditor()``,
``AccessManager()``, ``Recalibration()``). Screens reach the platform only through
``stream0d_nb.client``.
Names are imported on first use (panel and HoloViews take a second or two).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream0d_nb.widgets.access import AccessManager
    from stream0d_nb.widgets.alerts import AlertEditor
    from stream0d_nb.widgets.explorer import Explorer
    from stream0d_nb.widgets.formulas import FormulaEditor
    from stream0d_nb.widgets.recalibration import Recalibration
    from stream0d_nb.widgets.setup import DatasetSetup
    from stream0d_nb.widgets.studio import Studio

_LAZY = {
    "AccessManager": "access",
    "AlertEditor": "alerts",
    "DatasetSetup": "setup",
    "Explorer": "explorer",
    "FormulaEditor": "formulas",
    "Recalibration": "recalibration",
    "Studio": "studio",
}
__all__ = [
    "AccessManager",
    "AlertEditor",
    "DatasetSetup",
    "Explorer",
    "FormulaEditor",
    "Recalibration",
    "Studio",
]


def __getattr__(name: str) -> Any:
    """The screens on first access (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
