"""Errors of the platform: one base class, each also a builtin so callers can catch either.

Only the CLI and the API turn these into exit codes or HTTP statuses. A message names
the problem (file, line, column, channel), never how a caller spells an option: an
error may carry ``fixes`` (``Fix``: a parameter and a value that would get past it), and
each edge says them in its caller's terms: ``--skip-column 'X'`` on the command line,
``skip_columns: ["X"]`` in the API's JSON, ``skip_columns=['X']`` to Python callers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True)
class Fix:
    """A parameter (named as in Python and the API's JSON) and a value that would get past
    an error; ``value`` None: the caller must choose one (``example`` shows one)."""

    option: str
    value: Any = None
    example: Any = None

    def python(self) -> str:
        """The fix as a Python keyword argument: ``skip_columns=['X']``."""
        if self.value is not None:
            return f"{self.option}={self.value!r}"
        return f"{self.option}=" + ("..." if self.example is None else f"{self.example!r}")


def python_fixes(fixes: Iterable[Fix]) -> str:
    """``fix: pass a=1`` or ``fix: pass one of a=1, a=2`` (empty without fixes)."""
    texts = [f.python() for f in fixes]
    if not texts:
        return ""
    return "fix: pass " + (texts[0] if len(texts) == 1 else "one of " + ", ".join(texts))


class Stream0dError(Exception):
    """Base of every error the platform raises on purpose.

    ``fixes`` are alternatives, each enough on its own; ``problem`` is the message without
    them, for edges that say the fixes in their own terms; ``str()`` says them to Python.
    """

    fixes: tuple[Fix, ...] = ()

    def with_fixes(self, fixes: Iterable[Fix]) -> Self:
        """This error, carrying ``fixes``."""
        self.fixes = tuple(fixes)
        return self

    @property
    def problem(self) -> str:
        """The message alone, naming no option syntax."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({python_fixes(self.fixes)})" if self.fixes else text


class ValidationError(Stream0dError, ValueError):
    """A value given by the user is not acceptable (names the field and the value)."""


class DatasetNotFoundError(Stream0dError, LookupError):
    """No dataset with that id."""


class DatasetExistsError(Stream0dError, ValueError):
    """A dataset with that id exists already."""


class ChannelNotFoundError(Stream0dError, LookupError):
    """The dataset has no channel of that name."""


class SnapshotNotFoundError(Stream0dError, LookupError):
    """No snapshot matches the given id or time."""


class RuleNotFoundError(Stream0dError, LookupError):
    """The dataset has no alert rule of that name."""


class SilenceNotFoundError(Stream0dError, LookupError):
    """The dataset has no silence with that id."""


class SinkNotFoundError(Stream0dError, LookupError):
    """No notification sink of that name."""


class ModelNotFoundError(Stream0dError, LookupError):
    """The dataset has no recalibration model of that name."""


class ModelVersionNotFoundError(Stream0dError, LookupError):
    """No model version with that id."""


class ScheduleNotFoundError(Stream0dError, LookupError):
    """No recalibration schedule of that name (or none of that dataset)."""


class RunNotFoundError(Stream0dError, LookupError):
    """No notebook run with that id (or none of that dataset)."""


class ConfirmationRequiredError(Stream0dError, PermissionError):
    """A destructive action was asked without the explicit confirmation it needs."""


class WriteConflictError(Stream0dError, RuntimeError):
    """Another writer got there first (the same chunks, retries exhausted; a held claim):
    HTTP 409."""


class ScheduleExistsError(WriteConflictError):
    """A schedule of that name exists (names are unique across datasets): HTTP 409."""


class StorageUnavailableError(Stream0dError, ConnectionError):
    """The storage of datasets failed (unreachable, refused, misconfigured): HTTP 503."""


class StorageConfigError(Stream0dError, ValueError):
    """The storage location or its credentials are not usable."""


@dataclass(frozen=True)
class Location:
    """Where in an input file a problem sits (1-based line; column by header name)."""

    file: str
    line: int | None = None
    column: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        text = ":".join(parts[:1]) + (", " + ", ".join(parts[1:]) if len(parts) > 1 else "")
        if self.value is not None:
            text += f": {self.value!r}"
        return text


class IngestError(Stream0dError, ValueError):
    """Input data cannot be ingested as asked; nothing was stored.

    ``locations`` lists the first offending places (file, line, column, value) so that
    callers can show them or the API can return them as structured detail; ``fixes``
    name ``IngestOptions`` fields and values that would get past the problem.
    """

    def __init__(
        self,
        message: str,
        locations: list[Location] | None = None,
        fixes: Iterable[Fix] | None = None,
    ) -> None:
        self.locations = list(locations or [])
        self.message = message
        self.fixes = tuple(fixes or ())
        super().__init__(self.render(python_fixes(self.fixes)))

    @property
    def problem(self) -> str:
        """The message alone (no locations, no fixes)."""
        return self.message

    def render(self, how_to_fix: str = "") -> str:
        """The message, the first locations, then ``how_to_fix`` (the fixes in the
        caller's terms) on a line of its own."""
        lines = [self.message]
        lines += [f"  {loc}" for loc in self.locations[:10]]
        if len(self.locations) > 10:
            lines.append(f"  ... and {len(self.locations) - 10} more")
        if how_to_fix:
            lines.append(f"  {how_to_fix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render(python_fixes(self.fixes))  # fixes added later count too
