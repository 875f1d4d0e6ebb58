"""Errors of the platform: one base class, each also a builtin so callers can catch either.

Only the CLI (and later the API) turns these into exit codes or HTTP statuses.
"""

from __future__ import annotations

from dataclasses import dataclass


class Stream0dError(Exception):
    """Base of every error the platform raises on purpose."""


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
    callers can show them or the API can return them as structured detail.
    """

    def __init__(self, message: str, locations: list[Location] | None = None) -> None:
        self.locations = list(locations or [])
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.locations:
            return self.message
        lines = [self.message]
        lines += [f"  {loc}" for loc in self.locations[:10]]
        if len(self.locations) > 10:
            lines.append(f"  ... and {len(self.locations) - 10} more")
        return "\n".join(lines)
