"""``stream0d views``: a dataset's saved views (named plots): list, show, save, delete.

The same rules as the API (``stream0d_nb.saved_views``): the range must not be empty
now and every channel must be a stored or derived channel; every change is audited.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from stream0d_nb.cli.common import fail, out, pairs, store
from stream0d_nb.errors import ConfirmationRequiredError, Fix
from stream0d_nb.views import PlotKind, ViewSpec

app = typer.Typer(
    help="Saved views: a dataset's named plots (channels, time range, kind, options).",
    no_args_is_help=True,
)


def _option_values(items: list[str] | None) -> dict[str, Any]:
    """``--option KEY=VALUE`` as a dict: JSON values (numbers, true, lists) parsed, else text."""
    parsed: dict[str, Any] = {}
    for key, text in pairs(items, "--option").items():
        try:
            parsed[key] = json.loads(text)
        except ValueError:
            parsed[key] = text
    return parsed


@app.command("list")
def views_list(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List a dataset's saved views, oldest first."""
    from stream0d_nb.db.view_tables import ViewRegistry

    with store() as st:
        views = ViewRegistry(st.registry).list(dataset_id)
    if as_json:
        out.print_json(json.dumps([v.model_dump(mode="json") for v in views]))
        return
    if not views:
        out.print(f"no saved views in {dataset_id}: add one with `stream0d views save`")
        return
    t = Table("name", "kind", "channels", "range", "description")
    for v in views:
        t.add_row(v.name, v.kind, ", ".join(v.channels), f"{v.start} .. {v.end}", v.description)
    out.print(t)


@app.command("show")
def views_show(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Show one saved view as JSON, and the UTC range it covers now."""
    from stream0d_nb.db.view_tables import ViewRegistry

    with store() as st:
        view = ViewRegistry(st.registry).get(dataset_id, name)
    out.print_json(view.model_dump_json())
    try:
        t0, t1 = view.resolve()
        out.print(f"  now: {t0:%Y-%m-%d %H:%M:%S} .. {t1:%Y-%m-%d %H:%M:%S} UTC")
    except ValueError as exc:  # an absolute range saved earlier may be empty by now
        out.print(f"  now: {exc}")


@app.command("save")
def views_save(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument(help="View name (unique in the dataset).")],
    channel: Annotated[
        list[str], typer.Option(help="Stored or derived channel to plot (repeatable).")
    ],
    start: Annotated[
        str, typer.Option(help="ISO time or relative to now: now-8h, now-30min, now-7d.")
    ] = "now-1d",
    end: Annotated[str, typer.Option(help="ISO time or relative to now (see --start).")] = "now",
    kind: Annotated[PlotKind, typer.Option(help="Plot kind.")] = "line",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Plot option KEY=VALUE, JSON values parsed."),
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    replace: Annotated[bool, typer.Option(help="Replace a view of that name.")] = False,
) -> None:
    """Save a view after checking it (channels known, range not empty now)."""
    from stream0d_nb.db.view_tables import ViewRegistry
    from stream0d_nb.saved_views import save_view

    spec = ViewSpec(
        name=name,
        channels=channel,
        start=start,
        end=end,
        kind=kind,
        options=_option_values(option),
        description=description,
    )
    with store() as st:
        if not replace and any(v.name == name for v in ViewRegistry(st.registry).list(dataset_id)):
            fail(f"view {name!r} exists in {dataset_id}; pass --replace to change it")
        saved, created = save_view(st, dataset_id, spec, None, create_only=not replace)
    verb = "saved" if created else "replaced"
    out.print(
        f"{verb} view {saved.name} of {dataset_id}: {saved.kind} of {', '.join(saved.channels)} "
        f"over {saved.start} .. {saved.end}"
    )


@app.command("delete")
def views_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    confirm: Annotated[str | None, typer.Option(help="Repeat the view name to confirm.")] = None,
) -> None:
    """Delete a saved view (needs --confirm NAME; the audit log keeps what it was)."""
    from stream0d_nb.db.view_tables import ViewRegistry

    with store() as st:
        views = ViewRegistry(st.registry)
        views.get(dataset_id, name)  # a missing view is said before asking to confirm
        if confirm != name:
            raise ConfirmationRequiredError(
                f"deleting view {name!r} of {dataset_id!r}: confirm by repeating its name"
            ).with_fixes([Fix("confirm", name)])
        views.delete(dataset_id, name, st.actor(None))
    out.print(f"deleted view {name} of {dataset_id}")
