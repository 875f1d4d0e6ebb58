"""Who owns an API token, as the hub knows them now: groups, admin flag, stream0d scopes.

Our API tokens (``s0d_...``) carry their owner's name only, so every use asks the hub
for the owner's current groups and roles (cached briefly): removing someone from a
partner or the hub takes their tokens' rights away within ``max_age`` seconds. The hub's
REST API has no "scopes of a user" call, so the stream0d scopes come from the role
table the hub was configured with (``STREAM0D_HUB_ROLES``, written by ``hub.config``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from stream0d_nb.access import InvalidTokenError
from stream0d_nb.api.deps import AuthUnavailableError, TtlCache, UserInfo
from stream0d_nb.hub.config import ROLES_ENV


class OwnerGoneError(InvalidTokenError):
    """The token's owner is no longer a hub user (HTTP 401)."""


class HubGroupResolver:
    """``user -> UserInfo`` through the hub's REST API (service token), cached ``max_age`` s."""

    def __init__(
        self,
        api_url: str | None = None,
        api_token: str | None = None,
        roles: Mapping[str, Mapping[str, list[str]]] | None = None,
        max_age: float = 30.0,
    ) -> None:
        self.api_url = (api_url or os.environ.get("JUPYTERHUB_API_URL", "")).rstrip("/")
        token = api_token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not self.api_url or not token:
            raise AuthUnavailableError("the hub resolver needs JUPYTERHUB_API_URL and _TOKEN")
        if roles is None:
            roles = json.loads(os.environ.get(ROLES_ENV, "{}"))
        self.roles = dict(roles)
        self._client = httpx.Client(headers={"Authorization": f"token {token}"}, timeout=10.0)
        self._cache = TtlCache(max_age)

    def __call__(self, user: str) -> UserInfo:
        return self._cache.get(user, lambda: self._fetch(user))

    def _fetch(self, user: str) -> UserInfo:
        try:
            r = self._client.get(f"{self.api_url}/users/{quote(user, safe='')}")
        except httpx.HTTPError as exc:
            raise AuthUnavailableError(f"the hub did not answer: {exc}") from None
        if r.status_code == 404:
            raise OwnerGoneError("this token's owner is no longer a hub user")
        if r.status_code != 200:
            raise AuthUnavailableError(f"the hub answered {r.status_code} for a user lookup")
        return self.info(r.json())

    def info(self, model: Mapping[str, Any]) -> UserInfo:
        """The ``UserInfo`` of a hub user model, scopes from the configured role table."""
        return user_info(model, self.roles)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def user_info(model: Mapping[str, Any], roles: Mapping[str, Mapping[str, Any]]) -> UserInfo:
    """The ``UserInfo`` of a hub user model (name, groups, role names, admin flag), its
    stream0d scopes from the role table ``roles`` (``hub.config.role_scopes``)."""
    name = str(model.get("name", ""))
    groups = frozenset(model.get("groups") or ())
    own_roles = set(model.get("roles") or ())
    scopes: set[str] = set()
    for role, spec in roles.items():
        if (
            role in own_roles
            or name in spec.get("users", ())
            or groups.intersection(spec.get("groups", ()))
        ):
            scopes.update(spec.get("scopes", ()))
    return UserInfo(groups=groups, is_admin=bool(model.get("admin")), scopes=frozenset(scopes))
