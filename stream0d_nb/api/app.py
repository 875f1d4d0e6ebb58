"""The FastAPI app factory of the stream0d service (OpenAPI at /openapi.json, docs at /docs).

The hub runs the app as a managed service under ``JUPYTERHUB_SERVICE_PREFIX`` (e.g.
``/services/stream0d/``); the proxy keeps that prefix, so a small ASGI wrapper strips it
and sets ``root_path``, which keeps routes and docs prefix-agnostic.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream0d_nb.alerts.service import AlertService
from stream0d_nb.api import errors
from stream0d_nb.api.deps import GroupResolver, TtlCache, bind_audit_via, unconfigured_resolver
from stream0d_nb.api.routes import access as access_routes
from stream0d_nb.api.routes import alerts as alert_routes
from stream0d_nb.api.routes import append as append_routes
from stream0d_nb.api.routes import data as data_routes
from stream0d_nb.api.routes import datasets as dataset_routes
from stream0d_nb.api.routes import export as export_routes
from stream0d_nb.api.routes import formulas as formula_routes
from stream0d_nb.api.routes import ingest as ingest_routes
from stream0d_nb.api.routes import pages as page_routes
from stream0d_nb.api.routes import recalibration as recal_routes
from stream0d_nb.api.routes import sinks as sink_routes
from stream0d_nb.api.routes import summary as summary_routes
from stream0d_nb.api.routes import views as view_routes
from stream0d_nb.api.session import SAFE_METHODS
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.hooks import follow_writes
from stream0d_nb.safetext import json_depth
from stream0d_nb.store import Store
from stream0d_nb.store.fold import Folder
from stream0d_nb.store.reader import MAX_READ_VALUES
from stream0d_nb.store.retention import RetentionSchedule


class ApiSettings(BaseSettings):
    """Hard limits of the API (env ``STREAM0D_API_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="STREAM0D_API_")

    max_values: int = Field(20_000_000, ge=1, description="Values returned per read.")
    max_json_values: int = Field(2_000_000, ge=1, description="Values per JSON read.")
    max_scan_values: int = Field(MAX_READ_VALUES, ge=1, description="Values scanned per read.")
    csv_window_values: int = Field(1_000_000, ge=1, description="Values per streamed CSV part.")
    max_upload_bytes: int = Field(256 * 2**20, ge=1, description="Size of one ingest upload.")
    max_json_bytes: int = Field(
        2**20, ge=1, description="Size of one request body other than an upload (413 above)."
    )
    max_json_depth: int = Field(
        32, ge=1, description="Nesting of a JSON body, checked before parsing (422 above)."
    )
    max_auth_header_bytes: int = Field(
        4096, ge=1, description="Length of the Authorization header (401 above; tokens are ~70)."
    )
    fold_seconds: float = Field(
        5.0,
        ge=0,
        description="How often appended rows due for folding are committed to their chunks, "
        "by a background thread (0: never here; another process folds).",
    )
    retention_hours: float = Field(
        1.0,
        ge=0,
        description="How often the background folder applies the retention policy (expire "
        "old commits but each day's last, collect garbage) to every dataset (0: never here).",
    )
    cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long verified tokens, dataset records and grants are reused "
        "(cleared after every change made through this app).",
    )


class StripPrefix:
    """ASGI wrapper: requests under ``prefix`` get it as ``root_path`` (routes match below it)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = "/" + prefix.strip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if path == self.prefix or path.startswith(self.prefix + "/"):
            # Starlette routes on ``path`` minus ``root_path`` (ASGI: path includes it).
            scope = dict(scope)
            scope["root_path"] = self.prefix
        await self.app(scope, receive, send)


def create_app(
    store: Store | None = None,
    settings: ApiSettings | None = None,
    group_resolver: GroupResolver | None = None,
    prefix: str | None = None,
) -> FastAPI:
    """Build the API app on ``store`` (default: one from the environment, closed on exit).

    ``prefix`` (default ``JUPYTERHUB_SERVICE_PREFIX``) is also accepted in front of every
    route; ``group_resolver`` finds an API token owner's groups (hub-backed later).
    """
    owned = store is None
    the_store = store if store is not None else Store()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        every, hours = app.state.settings.fold_seconds, app.state.settings.retention_hours
        retention = RetentionSchedule(every=timedelta(hours=hours)) if hours > 0 else None
        folder = Folder(the_store, every, after_pass=retention).start() if every > 0 else None
        try:
            yield
        finally:
            if folder is not None:
                await run_in_threadpool(folder.stop)
            if owned:
                the_store.close()

    app = FastAPI(
        title="stream0d API",
        version="0.1.0",
        description="Datasets, reads, ingest, formulas, alerts, grants and tokens.",
        lifespan=lifespan,
    )
    app.state.store = the_store
    app.state.access = AccessRegistry(the_store.registry)
    app.state.alerts = AlertService(the_store)
    app.state.settings = settings or ApiSettings()
    app.state.group_resolver = group_resolver or unconfigured_resolver
    app.state.cache = TtlCache(app.state.settings.cache_seconds)
    app.add_middleware(_forget_after_changes(app.state.cache))
    app.add_middleware(_input_limits(app.state.settings))

    # the platform's write hooks, with this app's alert service; once (a store opened with
    # platform.open_platform already follows writes)
    follow_writes(the_store, app.state.alerts)
    errors.install(app)
    for module in (
        dataset_routes,
        data_routes,
        ingest_routes,
        append_routes,
        formula_routes,
        sink_routes,  # before alert_routes: /alerts/routes is no rule's name
        alert_routes,
        access_routes,
        export_routes,
        summary_routes,
        view_routes,
        recal_routes,
    ):
        app.include_router(module.router, prefix="/api", dependencies=[Depends(bind_audit_via)])
    app.include_router(page_routes.router)
    prefix = prefix if prefix is not None else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if prefix.strip("/"):
        app.add_middleware(_prefix_middleware(prefix))
    return app


def _forget_after_changes(cache: TtlCache) -> Any:
    """ASGI middleware class: clear ``cache`` around every state-changing request but
    appends, so revocations, grants and deletions made through the app apply to the next
    request."""

    class _Forget:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            changes = scope["type"] == "http" and scope.get("method") not in SAFE_METHODS
            # an append changes no token, grant or dataset record: it keeps the cache (a
            # gateway appending every second would otherwise verify everything each time)
            changes = changes and not str(scope.get("path", "")).endswith("/append")
            if changes:
                cache.clear()
            try:
                await self.app(scope, receive, send)
            finally:
                if changes:
                    cache.clear()

    return _Forget


def _input_limits(settings: ApiSettings) -> Any:
    """ASGI middleware class refusing over-long Authorization headers (401) and request
    bodies over ``max_json_bytes`` (413) or nested deeper than ``max_json_depth`` (422),
    before any route, token check or parser runs.

    Multipart bodies (uploads) pass: the ingest route streams them to disk under its own
    limit. Other bodies are read here up to the limit and handed on whole.
    """

    class _Limits:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            headers: dict[bytes, bytes] = {}
            for key, value in scope["headers"]:
                if key == b"authorization" and len(value) > settings.max_auth_header_bytes:
                    refusal = errors.error_response(
                        401,
                        f"Authorization header longer than {settings.max_auth_header_bytes:,} "
                        "bytes (setting max_auth_header_bytes)",
                        headers={"WWW-Authenticate": "token"},
                    )
                    await refusal(scope, receive, send)
                    return
                headers.setdefault(key, value)
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            has_body = b"content-length" in headers or b"transfer-encoding" in headers
            if not has_body or kind.startswith(b"multipart/"):
                await self.app(scope, receive, send)
                return
            body = await _read_capped(receive, headers, settings.max_json_bytes)
            if body is None:
                too_big = errors.error_response(
                    413,
                    f"request bodies may have at most {settings.max_json_bytes:,} bytes "
                    "(setting max_json_bytes)",
                )
                await too_big(scope, receive, send)
                return
            jsonish = not kind or kind == b"application/json" or kind.endswith(b"+json")
            depth = json_depth(body) if jsonish and body else 0
            if depth > settings.max_json_depth:
                too_deep = errors.error_response(
                    422,
                    f"JSON body nested {depth:,} levels deep; at most "
                    f"{settings.max_json_depth} are accepted (setting max_json_depth)",
                )
                await too_deep(scope, receive, send)
                return
            await self.app(scope, _replay(body, receive), send)

    return _Limits


async def _read_capped(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes | None:
    """The whole request body, or None as soon as it (or its declared length) is over
    ``limit`` bytes, so a huge body is never held in memory."""
    declared = headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` as one message, then whatever the client sends next
    (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _prefix_middleware(prefix: str) -> Any:
    """A middleware class stripping ``prefix`` (``add_middleware`` wants a class)."""

    class _Strip(StripPrefix):
        def __init__(self, app: ASGIApp) -> None:
            super().__init__(app, prefix)

    return _Strip
