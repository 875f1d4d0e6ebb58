"""Browser sessions of the service: hub OAuth cookie and XSRF tokens (no I/O).

A browser logs in through the hub's OAuth (``/login`` -> hub -> ``/oauth_callback``); the
hub's access token then lives in an HttpOnly cookie limited to the service's path,
*sealed*: ``<token>.<expires>.<HMAC>`` under the service's secret. Only tokens the
service itself received from its OAuth callback are sessions, so a hub token of another
kind (personal, a server's) pasted into the cookie is refused, and the tokens page can
show when the session ends. State changes made with that cookie must carry
``X-XSRFToken``: an HMAC of the session's token under the service's secret, which only
pages of the service (same origin) can read, so a third-party site cannot forge a
cookie-authenticated POST.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
XSRF_HEADER = "X-XSRFToken"


def _secret() -> bytes:
    """The service's own secret (``STREAM0D_COOKIE_SECRET``, else its hub API token)."""
    value = os.environ.get("STREAM0D_COOKIE_SECRET") or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not value:
        raise RuntimeError("no secret for XSRF tokens: not running as a hub service")
    return value.encode()


def xsrf_token(session_token: str) -> str:
    """The XSRF token bound to one session (changes at every login)."""
    digest = hashlib.sha256(session_token.encode()).hexdigest()
    return hmac.new(_secret(), b"xsrf:" + digest.encode(), hashlib.sha256).hexdigest()


def xsrf_ok(session_token: str, header: str | None) -> bool:
    """Whether ``header`` is the session's XSRF token (constant-time comparison)."""
    return bool(header) and hmac.compare_digest(xsrf_token(session_token), str(header))


@dataclass(frozen=True)
class Session:
    """An opened session cookie: the hub OAuth token and when it expires (Unix seconds)."""

    token: str = field(repr=False)
    expires: int


def _seal_mac(token: str, expires: int) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    message = f"session:{digest}:{expires}".encode()
    return hmac.new(_secret(), message, hashlib.sha256).hexdigest()


def seal(token: str, expires: int) -> str:
    """The cookie value of a session whose hub token ``token`` expires at ``expires``."""
    return f"{token}.{expires}.{_seal_mac(token, expires)}"


def unseal(value: str | None, now: float | None = None) -> Session | None:
    """The session in a cookie value, or None if it was not sealed here or has expired."""
    token, _, rest = (value or "").partition(".")
    expires_text, _, mac = rest.partition(".")
    if not token or not expires_text.isdigit() or not mac:
        return None
    expires = int(expires_text)
    if not hmac.compare_digest(_seal_mac(token, expires), mac):
        return None
    if expires <= (time.time() if now is None else now):
        return None
    return Session(token, expires)


def safe_next(prefix: str, next_url: str | None) -> str:
    """``next_url`` if it is a path of this service, else the service's root (no open redirect)."""
    root = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    if not next_url or not next_url.startswith(root) or next_url.startswith("//"):
        return root
    if "\\" in next_url or any(c in next_url for c in "\r\n"):
        return root
    return next_url
