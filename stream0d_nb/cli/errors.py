"""How the ``stream0d`` command says an error: the problem, where, and its fixes as flags.

Errors name the problem only and carry ``Fix``es named as ``IngestOptions`` fields and
keyword arguments (``skip_columns``); here they become the flags a user types
(``--skip-column status``), as the API says them as JSON fields.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

from stream0d_nb.errors import DatasetNotFoundError, Fix, IngestError, Stream0dError

FLAGS = {
    "skip_columns": "--skip-column",
    "columns": "--column",
    "missing_values": "--missing",
    "units": "--unit",
    "rename": "--rename",
}
"""Options whose flag is not ``--`` plus the name with dashes (repeatable, one per item)."""
CHOICES = frozenset(
    {
        "format",
        "ambiguous",
        "nonexistent",
        "bad_values",
        "duplicates",
        "off_grid",
        "on_existing",
        "epoch_unit",
    }
)
"""Options with a few fixed values: alternatives are said together (``--duplicates a|b``)."""


def flag_name(option: str) -> str:
    """``skip_columns`` -> ``--skip-column``; ``off_grid`` -> ``--off-grid``."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def _flags(option: str, value: Any) -> str:
    """One option with a value as flags: lists and NAME=VALUE maps repeat the flag."""
    name = flag_name(option)
    if value is True:
        return name
    if value is False:
        return "--no-" + name[2:]
    if isinstance(value, dict):
        return " ".join(f"{name} {shlex.quote(f'{k}={v}')}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(f"{name} {shlex.quote(str(v))}" for v in value)
    return f"{name} {shlex.quote(str(value))}"


def flag(fix: Fix) -> str:
    """A fix as the flags to add; a value to choose shows as ``...`` and an example."""
    if fix.value is not None:
        return _flags(fix.option, fix.value)
    text = f"{flag_name(fix.option)} ..."
    return text if fix.example is None else f"{text} (e.g. {_flags(fix.option, fix.example)})"


def cli_fixes(fixes: Iterable[Fix]) -> str:
    """``fix: --skip-column status``; alternatives joined by ``or`` (``--duplicates a|b``)."""
    groups: dict[str, list[Fix]] = {}
    for f in fixes:
        groups.setdefault(f.option, []).append(f)
    parts: list[str] = []
    for option, alts in groups.items():
        words = [str(f.value) for f in alts if f.value is not None]
        if option in CHOICES and len(words) > 1 and len(words) == len(alts):
            parts.append(f"{flag_name(option)} {'|'.join(words)}")
        else:
            parts += [flag(f) for f in alts]
    return "fix: " + ", or ".join(parts) if parts else ""


def error_text(exc: Stream0dError) -> str:
    """The message the command prints for one of our errors (fixes said as flags)."""
    how = cli_fixes(exc.fixes)
    if isinstance(exc, IngestError):
        return exc.render(how)
    text = exc.problem if exc.fixes else str(exc)
    if isinstance(exc, DatasetNotFoundError):
        text += " (see `stream0d dataset list`)"
    return f"{text} ({how})" if how else text
