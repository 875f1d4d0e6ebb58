"""The formula editor's layout, built once: controls on the left, editor and preview right.

Every control carries a visible label; lists are native selects (keyboard and screen
readers work); buttons that need the editor role are disabled for viewers, whose reason
stands in words above them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import panel as pn

if TYPE_CHECKING:
    from stream0d_nb.widgets.formulas import FormulaEditor


def _button(
    label: str, action: Callable[[], None], width: int = 76, **kw: Any
) -> pn.widgets.Button:
    button = pn.widgets.Button(label=label, width=width, **kw)
    button.on_click(lambda _: action())
    return button


def _heading(text: str) -> pn.pane.Markdown:
    return pn.pane.Markdown(f"### {text}", margin=(0, 10))


def formula_layout(ed: FormulaEditor) -> pn.viewable.Viewable:
    """The screen of ``ed``, bound to its params (named "Formulas", as a Studio tab)."""
    w = pn.widgets
    viewer = ed.param.can_edit.rx().rx.not_()
    access = pn.pane.Alert(
        ed.param.access_note,
        alert_type="warning",
        visible=ed.param.access_note.rx().rx.bool(),
        width=270,
    )
    confirm = pn.Row(
        _button("Yes, delete", ed.confirm_delete, color="danger", disabled=viewer),
        _button("Cancel", ed.cancel_delete),
        visible=ed.param.confirming.rx().rx.bool(),
    )
    custom = w.DatetimeRangePicker.from_param(
        ed.param.custom_range,
        label="Custom range (dataset's local time)",
        width=260,
        visible=ed.param.window.rx() == "Custom",
    )
    controls = pn.Column(
        _heading("Dataset"),
        w.Select.from_param(ed.param.dataset, width=260),
        access,
        _heading("Formulas of this dataset"),
        w.Select.from_param(ed.param.saved, width=260, size=6),
        pn.Row(
            _button("Open", ed.open_formula),
            _button("New", ed.new_formula),
            _button("Delete", ed.delete_formula, color="danger", disabled=viewer),
        ),
        confirm,
        _heading("Channels"),
        w.Select.from_param(ed.param.insert, width=260, size=8),
        _button("Insert channel", ed.insert_channel, width=140),
        _heading("Preview"),
        w.Select.from_param(ed.param.window, width=260),
        custom,
        _button("Preview now", ed.preview_now, width=140),
        width=290,
    )
    save = _button("Save as derived channel", ed.save, width=200, color="primary", disabled=viewer)
    main = pn.Column(
        ed.status.panel(),
        pn.pane.HTML(
            "<label>Formula (channels by name or in {braces}; see docs/formulas.md)</label>",
            margin=(5, 10, 0, 10),
        ),
        w.Toggle.from_param(ed.param.plain_text),
        ed.editor,
        ed.plain,
        ed.problem,
        pn.Row(
            w.TextInput.from_param(ed.param.channel_name, placeholder="e.g. power"),
            w.TextInput.from_param(ed.param.units, disabled=True),
            sizing_mode="stretch_width",
        ),
        w.TextAreaInput.from_param(ed.param.description, height=60),
        pn.Row(w.Toggle.from_param(ed.param.materialize), save),
        ed.figure,
        _heading("Derived channels of the dataset"),
        ed.table,
        w.Toggle.from_param(ed.param.show_code, width=120),
        ed.code,
        sizing_mode="stretch_width",
    )
    ed.figure.loading = ed.param.previewing.rx() | ed.status.param.busy.rx()
    return pn.Row(controls, main, sizing_mode="stretch_width", name="Formulas")
