"""The ``stream0d`` command: datasets, ingest, appends, read, export, history and the demo.

Every subcommand has ``--help``. Errors print one line (plus the offending places) and
exit 1; ``--debug`` shows the traceback instead. Each command group lives in its own
module (``datasets``, ``channels``, ``ingest``, ``appends``, ``formulas``, ``alerts``, ``views``,
``recalibration``, ``data``, ``history``, ``demo``); this one wires them and runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pydantic
import typer
from rich.markup import escape

from stream0d_nb.cli import (
    alerts,
    appends,
    channels,
    data,
    datasets,
    demo,
    formulas,
    history,
    ingest,
    recalibration,
    views,
)
from stream0d_nb.cli.common import STATE, err
from stream0d_nb.cli.errors import error_text
from stream0d_nb.errors import Stream0dError
from stream0d_nb.settings import Settings

app = typer.Typer(
    help="stream0d: manufacturing sensor datasets on Icechunk/Zarr. "
    "Store location: --home, $STREAM0D_HOME or ./var.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(datasets.app, name="dataset")
app.add_typer(channels.app, name="channel")
app.add_typer(formulas.app, name="formula")
app.add_typer(alerts.app, name="alerts")
app.add_typer(views.app, name="views")
app.add_typer(recalibration.app, name="recal")
app.command("ingest")(ingest.ingest)
app.command("append")(appends.append)
app.command("fold")(appends.fold)
app.command("retain")(appends.retain)
app.command("read")(data.read)
app.command("export")(data.export_cmd)
app.command("history")(history.history)
app.command("audit")(history.audit)
app.command("demo")(demo.demo)


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option(help="Store folder (default $STREAM0D_HOME or ./var).")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Who is acting (recorded in commits).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
) -> None:
    """Options of every command: where the store is, who acts, tracebacks or not."""
    STATE.update(home=home, user=user, debug=debug)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning our errors into one clear message."""
    from stream0d_nb.hub.accounts import become_owner_of

    become_owner_of(Settings().home)  # as root on the hub's store: as the platform account
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):  # click returns Exit's code instead of raising it here
            return rv
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (Stream0dError, pydantic.ValidationError) as exc:
        if STATE["debug"]:
            raise
        if isinstance(exc, pydantic.ValidationError):
            msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        else:
            msg = error_text(exc)  # its fixes said as flags
        err.print(f"[bold red]error:[/] {escape(msg)}", markup=True)
        return 1
    except Exception as exc:
        # typer's own click: bad usage (a missing argument, an unknown choice) has a message
        # to show and an exit code; anything else is a bug and keeps its traceback
        if STATE["debug"] or not hasattr(exc, "exit_code"):
            raise
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"[bold red]error:[/] {escape(str(exc) or type(exc).__name__)}", markup=True)
        return int(getattr(exc, "exit_code", 2))
    return 0
