"""``stream0d formula``: derived channels, formulas over channels (docs/formulas.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stream0d_nb.cli.common import emit, fail, out, store
from stream0d_nb.specs import format_duration

app = typer.Typer(
    help="Derived channels: formulas over channels (docs/formulas.md).", no_args_is_help=True
)


@app.command("add")
def formula_add(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument(help="Name of the derived channel.")],
    formula: Annotated[
        str, typer.Argument(help='Formula, e.g. "{Accelerometer1RMS} / {Accelerometer2RMS}".')
    ],
    description: Annotated[str, typer.Option()] = "",
    replace: Annotated[
        bool, typer.Option(help="Replace an existing formula of that name.")
    ] = False,
    materialize: Annotated[
        bool, typer.Option(help="Also store the values (kept fresh after every write).")
    ] = False,
) -> None:
    """Save a derived channel after checking it (syntax, channels, units, cycles)."""
    from stream0d_nb import derived
    from stream0d_nb.specs import FormulaSpec

    with store() as st:
        if not replace and any(f.name == name for f in derived.list_formulas(st, dataset_id)):
            fail(f"derived channel {name!r} exists; pass --replace to change it")
        saved = derived.save_formula(
            st,
            dataset_id,
            FormulaSpec(
                name=name, formula=formula, description=description, materialize=materialize
            ),
        )
    out.print(f"saved derived channel {saved.name} = {saved.formula}  [{saved.units or '1'}]")


@app.command("list")
def formula_list(dataset_id: Annotated[str, typer.Argument(metavar="DATASET")]) -> None:
    """List a dataset's derived channels."""
    from stream0d_nb import derived

    with store() as st:
        formulas = derived.list_formulas(st, dataset_id)
    if not formulas:
        out.print(f"no derived channels in {dataset_id}: add one with `stream0d formula add`")
        return
    t = Table("name", "units", "formula", "description")
    for f in formulas:
        t.add_row(f.name, f.units, f.formula, f.description)
    out.print(t)


@app.command("show")
def formula_show(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Show one derived channel: formula, units, inputs, margins."""
    from stream0d_nb import derived

    with store() as st:
        ctx = derived.DerivedContext(st, dataset_id)
        if name not in ctx.formulas:
            fail(f"dataset {dataset_id!r} has no derived channel {name!r}")
        spec, compiled = ctx.formulas[name], ctx.compile(name)
    out.print(f"{spec.name} = {spec.formula}")
    out.print(
        f"  units {spec.units or '1'} · grid {format_duration(compiled.interval_ns)} · "
        f"inputs {', '.join(sorted(compiled.refs))}"
    )
    before, after = compiled.margin_ns
    out.print(
        f"  reads {format_duration(before) if before else '0s'} before and "
        f"{format_duration(after) if after else '0s'} after a range"
    )
    if spec.description:
        out.print(f"  {spec.description}")


@app.command("delete")
def formula_delete(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    name: Annotated[str, typer.Argument()],
    confirm: Annotated[str | None, typer.Option(help="Repeat the name to confirm.")] = None,
) -> None:
    """Delete a derived channel (refused while other formulas use it; needs --confirm NAME)."""
    from stream0d_nb import derived

    with store() as st:
        derived.delete_formula(st, dataset_id, name, confirm)
    out.print(f"deleted derived channel {name} of {dataset_id}")


@app.command("eval")
def formula_eval(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    formula: Annotated[str, typer.Argument(help="Formula to evaluate (not saved).")],
    start: Annotated[str | None, typer.Option(help="First time (included).")] = None,
    end: Annotated[str | None, typer.Option(help="End time (excluded).")] = None,
    as_of: Annotated[str | None, typer.Option(help="Snapshot id or a past time.")] = None,
    format: Annotated[str, typer.Option(help="csv or json.")] = "csv",
) -> None:
    """Evaluate a formula over a time range without saving it."""
    from stream0d_nb import derived
    from stream0d_nb.tables import to_pandas

    with store() as st:
        arr = derived.evaluate_text(st, dataset_id, formula, start, end, as_of)
    df = to_pandas(arr.to_dataset(name="value"))
    emit(df, format, None, aggregated=False)
