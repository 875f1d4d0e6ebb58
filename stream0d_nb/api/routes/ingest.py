"""Ingest: a multipart upload (``file`` plus ``IngestOptions`` as form fields or as one
JSON ``options`` field), written to a temp file under the store home and ingested."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, get_settings, require
from stream0d_nb.api.errors import PayloadTooLargeError
from stream0d_nb.errors import IngestError, Location, ValidationError
from stream0d_nb.safetext import json_depth
from stream0d_nb.specs import IngestOptions, IngestPreview, IngestReport
from stream0d_nb.store.preview import preview_ingest

router = APIRouter(tags=["ingest"])

CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class LengthRequiredError(ValidationError):
    """Uploads must say their size up front so limits hold before reading."""


def options_from_form(fields: dict[str, str], max_depth: int = 32) -> IngestOptions:
    """``IngestOptions`` from a JSON ``options`` field and/or one form field per option.

    JSON text nested deeper than ``max_depth`` is refused before it is parsed.
    """
    raw: dict[str, Any] = {}
    for key, text in fields.items():
        depth = json_depth(text) if text.count("[") + text.count("{") > max_depth else 0
        if depth > max_depth:
            raise ValidationError(
                f"ingest option {key!r} nests {depth:,} levels deep; at most {max_depth} "
                "are accepted"
            )
    if "options" in fields:
        try:
            parsed = json.loads(fields["options"])
        except json.JSONDecodeError as exc:
            raise ValidationError(f"options is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValidationError("options must be a JSON object")
        raw.update(parsed)
    known = IngestOptions.model_fields
    for key, text in fields.items():
        if key == "options":
            continue
        if key not in known:
            raise ValidationError(f"unknown ingest option {key!r}")
        raw[key] = _form_value(text)
    return IngestOptions.model_validate(raw)


def _form_value(text: str) -> Any:
    """JSON lists/objects/numbers/booleans as such, anything else as the text."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{") or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def _safe_name(name: str | None) -> str:
    base = Path(name or "upload").name
    return _UNSAFE.sub("_", base)[-120:] or "upload"


async def _upload_form(request: Request, limit: int) -> tuple[Any, UploadFile, dict[str, str]]:
    """The multipart form (close it), its ``file`` part and its text fields; the declared
    size is checked before anything is read."""
    length = request.headers.get("content-length")
    if length is None:
        raise LengthRequiredError("uploads need a Content-Length header")
    if not length.isdigit() or int(length) > limit + 64 * 1024:
        raise PayloadTooLargeError(f"uploads may have at most {limit:,} bytes")
    form = await request.form(max_files=1, max_fields=64)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
        raise ValidationError("the upload needs a 'file' part")
    return form, upload, {k: v for k, v in form.items() if isinstance(v, str)}


@asynccontextmanager
async def _saved(upload: UploadFile, limit: int, home: Path, prefix: str) -> AsyncIterator[Path]:
    """The upload written to a private temp folder under the uploads folder (its size
    checked as it arrives), removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=_upload_dir(home)))
    try:
        path = tmp / _safe_name(upload.filename)
        size = 0
        with path.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(f"uploads may have at most {limit:,} bytes")
                out.write(chunk)
        yield path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@router.post("/datasets/{dataset_id}/ingest")
async def ingest(
    request: Request,
    ctx: Annotated[DatasetContext, Depends(require(Action.INGEST))],
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
) -> IngestReport:
    """Ingest one uploaded file as one commit; returns the ingest report (422 on bad input)."""
    limit = settings.max_upload_bytes
    form, upload, fields = await _upload_form(request, limit)
    try:
        options = options_from_form(fields, settings.max_json_depth)
        async with _saved(upload, limit, store.settings.home, "upload-") as path:
            try:
                return await run_in_threadpool(
                    store.ingest, ctx.id, path, options, ctx.identity.user
                )
            except IngestError as exc:
                raise _hide_path(exc, path) from None
    finally:
        await form.close()


PREVIEW_ROWS = 20


@router.post("/datasets/{dataset_id}/ingest/preview")
async def ingest_preview(
    request: Request,
    ctx: Annotated[DatasetContext, Depends(require(Action.INGEST))],
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
) -> IngestPreview:
    """What ingesting the upload would do (layout, columns, rows, problems); stores nothing.

    Form fields as for ingest, plus ``truncated=true`` for a file's first bytes and
    ``rows`` (1..200) for how many parsed rows to return.
    """
    limit = settings.max_upload_bytes
    form, upload, fields = await _upload_form(request, limit)
    try:
        truncated = fields.pop("truncated", "false").strip().lower() in ("true", "1", "yes")
        rows_text = fields.pop("rows", str(PREVIEW_ROWS)).strip()
        if not rows_text.isdigit() or not 1 <= int(rows_text) <= 200:
            raise ValidationError(f"rows must be a whole number from 1 to 200, not {rows_text!r}")
        options = options_from_form(fields, settings.max_json_depth)
        async with _saved(upload, limit, store.settings.home, "preview-") as path:
            try:
                return await run_in_threadpool(
                    partial(
                        preview_ingest,
                        ctx.record.spec,
                        path,
                        options,
                        rows=int(rows_text),
                        truncated=truncated,
                        file=_safe_name(upload.filename),
                    )
                )
            except IngestError as exc:
                raise _hide_path(exc, path) from None
    finally:
        await form.close()


def _upload_dir(home: Path) -> Path:
    d = home / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _hide_path(exc: IngestError, path: Path) -> IngestError:
    """The same error naming the upload, not the server's temp path."""
    locs = [
        Location(
            path.name if loc.file in (str(path), path.name) else loc.file,
            loc.line,
            loc.column,
            loc.value,
        )
        for loc in exc.locations
    ]
    return IngestError(exc.message.replace(str(path), path.name), locs, exc.fixes)
