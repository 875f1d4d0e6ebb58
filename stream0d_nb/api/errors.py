"""Exception handlers: the one place where errors become HTTP statuses (DESIGN §1).

Bodies are ``{"error": {"type", "message", "locations"?, "fixes"?, "hint"?}}``
(``locations``: file, line, column of an ingest error; line, column of a formula error;
``fixes``: ``{"option", "value"}`` alternatives, each enough on its own, named as the
request's JSON fields, with ``hint`` saying them in words). ``type`` names the status
class only (never the exception class), so a hidden dataset and a missing one look the
same; unexpected errors become a bare 500 without stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stream0d_nb.access import InvalidTokenError
from stream0d_nb.api.deps import AuthUnavailableError
from stream0d_nb.errors import (
    ConfirmationRequiredError,
    DatasetExistsError,
    Fix,
    IngestError,
    StorageUnavailableError,
    Stream0dError,
    WriteConflictError,
)
from stream0d_nb.formulas.errors import FormulaError, FormulaSyntaxError

log = logging.getLogger(__name__)

TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "too_large",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}


class PayloadTooLargeError(Stream0dError, ValueError):
    """The request or its answer would exceed a hard limit (HTTP 413)."""


class NotFoundError(Stream0dError, LookupError):
    """Something inside a visible dataset does not exist (HTTP 404)."""


def error_response(
    status: int,
    message: str,
    locations: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    fixes: Iterable[Fix] = (),
) -> JSONResponse:
    """The JSON error body every failure uses (with ``fixes`` and their ``hint``, if any)."""
    body: dict[str, Any] = {"type": TYPES.get(status, "error"), "message": message}
    if locations is not None:
        body["locations"] = locations
    fixes = list(fixes)
    if fixes:
        body["fixes"] = [fix_json(f) for f in fixes]
        body["hint"] = fix_hint(fixes)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def fix_json(fix: Fix) -> dict[str, Any]:
    """A fix as the API says it: the JSON field and its value (null: one to choose, see
    ``example``)."""
    out: dict[str, Any] = {"option": fix.option, "value": fix.value}
    if fix.value is None and fix.example is not None:
        out["example"] = fix.example
    return out


def fix_hint(fixes: Iterable[Fix]) -> str:
    """The fixes in words with JSON field names: ``set duplicates to "last" or "first"``."""
    by_option: dict[str, list[Fix]] = {}
    for f in fixes:
        by_option.setdefault(f.option, []).append(f)
    parts = []
    for option, alts in by_option.items():
        values = [json.dumps(f.value) for f in alts if f.value is not None]
        examples = [json.dumps(f.example) for f in alts if f.value is None and f.example]
        if values:
            parts.append(f"{option} to {' or '.join(values)}")
        else:
            parts.append(option + (f" (e.g. {examples[0]})" if examples else ""))
    return "set " + ", or ".join(parts)


def status_of(exc: Exception) -> int:
    """The HTTP status of one of our errors (order matters: 401 before 403)."""
    if isinstance(exc, InvalidTokenError):
        return 401
    if isinstance(exc, ConfirmationRequiredError):
        return 400
    if isinstance(exc, PermissionError):
        return 403
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, DatasetExistsError | WriteConflictError):
        return 409
    if isinstance(exc, PayloadTooLargeError):
        return 413
    if isinstance(exc, AuthUnavailableError | StorageUnavailableError):
        return 503
    if isinstance(exc, ValueError):
        return 422
    return 500


def _locations(exc: IngestError) -> list[dict[str, Any]]:
    return [
        {"file": loc.file, "line": loc.line, "column": loc.column, "value": loc.value}
        for loc in exc.locations
    ]


async def _ours(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Stream0dError)
    status = status_of(exc)
    if status == 500:
        log.exception("unexpected platform error", exc_info=exc)
        return error_response(500, "internal error")
    headers = {"WWW-Authenticate": "token"} if status == 401 else None
    if isinstance(exc, IngestError):
        return error_response(status, exc.message, _locations(exc), fixes=exc.fixes)
    if isinstance(exc, FormulaError) and exc.line is not None and exc.column is not None:
        # where in the formula text (1-based), for an editor to place its annotation
        where: dict[str, Any] = {"line": exc.line, "column": exc.column}
        if isinstance(exc, FormulaSyntaxError) and exc.expected:
            where["expected"] = list(exc.expected)
        return error_response(status, str(exc), [where], headers=headers)
    if exc.fixes:
        return error_response(status, exc.problem, headers=headers, fixes=exc.fixes)
    return error_response(status, str(exc), headers=headers)


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | pydantic.ValidationError)
    errors = exc.errors()
    parts = [
        ".".join(str(p) for p in e.get("loc", ()) if p != "body") + ": " + str(e.get("msg"))
        for e in errors
    ]
    return error_response(422, "; ".join(parts) or "invalid request")


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(Stream0dError, _ours)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(pydantic.ValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
