"""Dependencies of the API: the store, registries, settings and the caller's identity.

Identity is resolved in this order: ``Authorization: token|Bearer s0d_...`` is one of our
API tokens (verified by ``AccessRegistry.verify_token``; the owner's groups, admin flag
and scopes come from a pluggable ``GroupResolver``, hub-backed under the hub); any other
token in the header (a hub token: personal, minted by a token, a server's) is refused,
so every credential that works here is listed on the tokens page, expires and can be
revoked there. Otherwise, when running as a hub service (``JUPYTERHUB_API_TOKEN`` set),
the browser session: the hub OAuth cookie sealed by our own callback (``session``),
checked with the hub through ``jupyterhub.services.auth.HubOAuth`` at least every
``SESSION_CHECK_SECONDS``. Tokens in the query string are refused. Every dependency is
overridable in tests.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request

from stream0d_nb.access import (
    AccessDeniedError,
    Action,
    Identity,
    InvalidTokenError,
    Role,
    check,
)
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.api import session
from stream0d_nb.db.access_tables import AccessRegistry, looks_like_token
from stream0d_nb.db.dataset_tables import DatasetRecord
from stream0d_nb.db.registry import AUDIT_VIA
from stream0d_nb.errors import Stream0dError
from stream0d_nb.store import Store

AuthMethod = Literal["api-token", "cookie"]
URL_TOKEN_PARAMS = ("token", "access_token", "api_token")
# How long the hub's answer about a session token is reused: a hub logout deletes the
# session's OAuth tokens, so the service notices it within this many seconds.
SESSION_CHECK_SECONDS = 2


class NotAuthenticatedError(InvalidTokenError):
    """No usable credentials (HTTP 401)."""


class AuthUnavailableError(Stream0dError, RuntimeError):
    """The service cannot resolve identities in this setup (HTTP 503)."""


@dataclass(frozen=True)
class UserInfo:
    """What the hub knows of a user: partner groups, admin flag, stream0d scopes."""

    groups: frozenset[str] = frozenset()
    is_admin: bool = False
    scopes: frozenset[str] = frozenset()


GroupResolver = Callable[[str], UserInfo]


class TtlCache:
    """A tiny thread-safe cache whose entries live ``ttl`` seconds (``clear`` drops all).

    Per-request lookups (verified tokens, dataset records, grants) are reused for a
    couple of seconds: the app clears it after every state-changing request, so its own
    changes apply at once; changes made by other processes within ``ttl``.
    """

    def __init__(self, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get[T](self, key: Any, load: Callable[[], T]) -> T:
        """The cached value of ``key``, loading (outside the lock) when absent or stale."""
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            value: T = hit[1]
            return value
        value = load()
        with self._lock:
            if len(self._data) > 10_000:
                self._data.clear()
            self._data[key] = (now, value)
        return value

    def clear(self) -> None:
        """Forget everything (after a change)."""
        with self._lock:
            self._data.clear()


def unconfigured_resolver(user: str) -> UserInfo:
    """Default resolver: refuses, since groups of a token's owner need the hub (later)."""
    raise AuthUnavailableError(
        "API tokens need a group resolver; the hub-backed one comes with the hub setup"
    )


def get_store(request: Request) -> Store:
    """The app's store."""
    store: Store = request.app.state.store
    return store


def get_access(request: Request) -> AccessRegistry:
    """Grants and API tokens, on the store's registry."""
    access: AccessRegistry = request.app.state.access
    return access


def get_alerts(request: Request) -> AlertService:
    """The alert service of the app's store."""
    alerts: AlertService = request.app.state.alerts
    return alerts


def get_settings(request: Request) -> Any:
    """The app's ``ApiSettings`` (limits)."""
    return request.app.state.settings


def get_cache(request: Request) -> TtlCache:
    """The app's short-lived cache of per-request lookups."""
    cache: TtlCache = request.app.state.cache
    return cache


def get_group_resolver(request: Request) -> GroupResolver:
    """How to find a token owner's groups (override in tests; hub-backed later)."""
    resolver: GroupResolver = request.app.state.group_resolver
    return resolver


def _split_authorization(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() not in ("token", "bearer") or not value or " " in value:
        raise NotAuthenticatedError(
            "malformed Authorization header: use 'Authorization: token <token>'"
        )
    return value


@lru_cache(maxsize=1)
def hub_auth() -> Any:
    """The ``HubOAuth`` helper when running as a hub service (None otherwise)."""
    if not os.environ.get("JUPYTERHUB_API_TOKEN"):
        return None
    from jupyterhub.services.auth import HubOAuth

    return HubOAuth(cache_max_age=SESSION_CHECK_SECONDS)


def _hub_identity(model: dict[str, Any] | None, channel: str) -> Identity:
    """An ``Identity`` from the hub's user model of a browser session's OAuth token."""
    if not model or model.get("kind", "user") != "user" or not model.get("name"):
        raise NotAuthenticatedError(
            "this browser session has ended (logged out of the hub, or expired): log in again"
        )
    return Identity(
        user=str(model["name"]),
        groups=frozenset(model.get("groups") or ()),
        is_admin=bool(model.get("admin")),
        scopes=frozenset(model.get("scopes") or ()),
        channel=channel,
    )


def get_identity(
    request: Request,
    access: Annotated[AccessRegistry, Depends(get_access)],
    resolver: Annotated[GroupResolver, Depends(get_group_resolver)],
) -> Identity:
    """Who calls: our API token, else the hub (token or OAuth cookie); 401 otherwise."""
    identity = _identity(request, access, resolver)
    holder = AUDIT_VIA.get()
    if holder is not None:  # audit entries of this request record how the caller came in
        holder["via"] = identity.via
    return identity


def _identity(request: Request, access: AccessRegistry, resolver: GroupResolver) -> Identity:
    """The identity behind the request's credentials (see ``get_identity``)."""
    for name in URL_TOKEN_PARAMS:
        if name in request.query_params:
            raise NotAuthenticatedError(
                f"tokens in the URL (?{name}=) are refused: they end up in logs and "
                "histories; send 'Authorization: token <token>' instead"
            )
    header = request.headers.get("authorization")
    hub = hub_auth()
    if header is not None:
        token = _split_authorization(header)
        if looks_like_token(token):
            key = ("token", hashlib.sha256(token.encode()).digest())
            record = get_cache(request).get(key, lambda: access.verify_token(token))
            if record.expires_at <= datetime.now(UTC):
                record = access.verify_token(token)  # raises: expired
            info = resolver(record.owner)
            request.state.auth_method = "api-token"
            return Identity(
                user=record.owner,
                groups=info.groups,
                is_admin=info.is_admin,
                scopes=info.scopes,
                token=record.restriction(),
            )
        raise NotAuthenticatedError(
            "not a stream0d API token: hub tokens (from /hub/token, minted by another "
            "token, or a notebook server's JUPYTERHUB_API_TOKEN) are refused here. Use an "
            f"API token s0d_... from {_tokens_page(request)}; in a notebook on the hub, "
            "Client.from_env() uses the server's own (STREAM0D_API_TOKEN)"
        )
    if hub is not None:
        cookie = request.cookies.get(hub.cookie_name)
        if cookie:
            opened = session.unseal(cookie)
            if opened is None:
                raise NotAuthenticatedError(
                    f"this browser session is unknown or has expired: log in again at "
                    f"{_tokens_page(request)}"
                )
            model = hub.user_for_token(opened.token, sync=True)
            identity = _hub_identity(model, "session")
            if request.method not in session.SAFE_METHODS and not session.xsrf_ok(
                opened.token, request.headers.get(session.XSRF_HEADER)
            ):
                raise AccessDeniedError(
                    f"missing or wrong {session.XSRF_HEADER} header: changes made with the "
                    "browser session must come from the service's own pages"
                )
            request.state.auth_method = "cookie"
            return identity
    raise NotAuthenticatedError(
        "authentication required: send 'Authorization: token <token>' "
        f"(API tokens are created on {_tokens_page(request)})"
    )


def _tokens_page(request: Request) -> str:
    """The path of the tokens page, for error messages."""
    return request.scope.get("root_path", "").rstrip("/") + "/tokens"


def session_only(
    request: Request, identity: Annotated[Identity, Depends(get_identity)]
) -> Identity:
    """The identity, if it came from a hub browser session (never from a token header)."""
    if getattr(request.state, "auth_method", None) != "cookie" or identity.token is not None:
        raise AccessDeniedError(
            "tokens can only be created from a hub-authenticated browser session, "
            "never with a token"
        )
    return identity


@dataclass(frozen=True)
class DatasetContext:
    """A dataset the caller may act on, with the caller and the role they act with."""

    record: DatasetRecord
    identity: Identity
    role: Role

    @property
    def id(self) -> str:
        """The dataset id."""
        return self.record.id


def require(action: Action) -> Callable[..., DatasetContext]:
    """A dependency checking ``action`` on the path's dataset (404 if hidden, 403 if too low)."""

    def dependency(
        dataset_id: Annotated[str, Path(description="Dataset id")],
        identity: Annotated[Identity, Depends(get_identity)],
        store: Annotated[Store, Depends(get_store)],
        access: Annotated[AccessRegistry, Depends(get_access)],
        cache: Annotated[TtlCache, Depends(get_cache)],
    ) -> DatasetContext:
        record, grants = cache.get(
            ("dataset", dataset_id),
            lambda: (store.get_dataset(dataset_id), access.list_grants(dataset_id)),
        )
        role = check(identity, record, action, grants)
        return DatasetContext(record, identity, role)

    return dependency


StoreDep = Annotated[Store, Depends(get_store)]
AccessDep = Annotated[AccessRegistry, Depends(get_access)]
AlertsDep = Annotated[AlertService, Depends(get_alerts)]
IdentityDep = Annotated[Identity, Depends(get_identity)]


async def bind_audit_via() -> None:
    """Give this request a holder for how the caller authenticated (filled by get_identity).

    Async on purpose: it runs in the request's own context, which the (sync) dependencies
    and endpoint then inherit, so they all see the same holder.
    """
    AUDIT_VIA.set({"via": None})
