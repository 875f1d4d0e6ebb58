"""What a screen is doing, as text and colour: ready, working, or the error to read.

Every action of a screen runs in ``Status.task``: a spinner and "Working: ..." while it
runs; on failure the error's message stays in a red banner (until the next action
succeeds) instead of a traceback, since the person at the screen is not debugging.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import panel as pn
import param
import pydantic

from stream0d_nb.errors import Stream0dError

_PREPARED_AT: int | None = None


def prepare_notebook() -> None:
    """Panel and HoloViews with inline resources, once per notebook cell run.

    Once per kernel is not enough: a page reloaded onto a running kernel has lost the
    JavaScript, and a screen shown without it is an empty output. Screens built later
    in the same run (a Studio tab opened) need nothing more.
    """
    global _PREPARED_AT
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    run = getattr(shell, "execution_count", 0) if shell is not None else 0
    if run != _PREPARED_AT:
        from stream0d_nb.plots import use_inline_resources

        use_inline_resources()
        _PREPARED_AT = run


NUMBER_INPUT_CSS = [".bk-spin-btn-group, .bk-spin-btn { display: none !important; }"]
"""For Panel's IntInput/FloatInput: their spin buttons have no accessible name (axe
"button-name", critical); the arrow keys still step the number."""

COLOURS = {"ready": "#1a7f37", "busy": "#9a6700", "error": "#cf222e"}
SYMBOLS = {"ready": "●", "busy": "…", "error": "✖"}
EXPECTED = (Stream0dError, ValueError, LookupError, PermissionError, ConnectionError)
"""Errors a person can act on (the API's answers, bad input); others are bugs and raise."""


class Status(param.Parameterized):
    """The state of one screen: ``ready``/``busy``/``error``, a message and the last error."""

    state: param.Selector[Any] = param.Selector(default="ready", objects=list(COLOURS))
    message = param.String(default="")
    error = param.String(default="")
    busy = param.Boolean(default=False)

    @contextmanager
    def task(self, label: str) -> Iterator[None]:
        """Run a step of an action: busy meanwhile; an expected error ends in the banner."""
        outer = self.busy
        self.busy, self.state, self.message = True, "busy", f"{label}..."
        try:
            yield
        except EXPECTED as exc:
            self.error = f"{label} failed: {_readable(exc)}"
            self.state, self.message = "error", f"{label} failed (see the message above)."
        else:
            if self.state == "busy":
                self.done(f"{label}: done.")
        finally:
            self.busy = outer

    def done(self, message: str) -> None:
        """The action succeeded: say what is shown now, and clear the banner."""
        self.state, self.message, self.error = "ready", message, ""

    def text(self) -> str:
        """The state in words (what a screen reader and the tests read)."""
        word = {"ready": "Ready", "busy": "Working", "error": "Error"}[self.state]
        return f"{SYMBOLS[self.state]} {word}: {self.message}" if self.message else word

    def panel(self) -> pn.viewable.Viewable:
        """Spinner, coloured status line and the error banner, bound to this state."""
        spinner = pn.indicators.LoadingSpinner(value=self.param.busy, size=22, width=30, height=30)

        @param.depends(self.param.state, self.param.message)
        def line(state: str, message: str) -> pn.pane.HTML:
            colour = COLOURS[state]
            text = html.escape(self.text())
            return pn.pane.HTML(
                f'<div role="status" aria-live="polite" style="color:{colour};'
                f'font-weight:600">{text}</div>',
                sizing_mode="stretch_width",
            )

        banner = pn.pane.Alert(
            self.param.error,
            alert_type="danger",
            visible=self.param.error.rx().rx.bool(),
            sizing_mode="stretch_width",
        )
        return pn.Column(banner, pn.Row(spinner, line), sizing_mode="stretch_width")


def _readable(exc: BaseException) -> str:
    """The error as a person reads it (pydantic's field errors without their URLs)."""
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)
