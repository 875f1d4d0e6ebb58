"""API tokens of users' notebook servers, made and revoked by the hub (spawner hooks).

The API refuses hub tokens, so a notebook server cannot use its ``JUPYTERHUB_API_TOKEN``
there. Instead, when the hub starts a server (``Spawner.pre_spawn_hook``) it issues an
ordinary stream0d API token of the server's owner: the owner's level from the hub's role
table (the API caps it again by the owner's current roles at every use), the note
``notebook server <user>/<server name>``, an expiry ``SERVER_TOKEN_LIFETIME`` ahead, and
hands it to the server as ``STREAM0D_API_TOKEN`` for ``Client.from_env()``. When the
server stops (``Spawner.post_stop_hook``) the hub revokes it. Like any token it is listed
on the owner's tokens page and can be revoked there.

The hub is a platform process: it reaches the registry with the ``STREAM0D_*`` settings
of its own environment, which users' servers do not need.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from stream0d_nb.access import Identity, Level, max_level

if TYPE_CHECKING:
    from stream0d_nb.db.access_tables import AccessRegistry

TOKEN_ENV = "STREAM0D_API_TOKEN"
# A week: long enough for a working week's server, short enough that a token left behind
# by a hub crash (no stop hook) dies soon. A server running longer gets a new token when
# it is restarted; its kernels then get 401 "expired".
SERVER_TOKEN_LIFETIME = timedelta(days=7)
ACTOR = "jupyterhub"  # who the audit log says made and revoked the token
VIA = "hub:spawner"


def server_note(user: str, server: str = "") -> str:
    """The note of a server's token, which is also how the hub finds it again."""
    return f"notebook server {user}/{server}"


class ServerTokens:
    """The two spawner hooks: ``pre_spawn`` issues a server's token, ``post_stop`` revokes it.

    ``roles`` is the role table of ``hub.config.role_scopes`` (which roles give which
    stream0d scope); the registry is opened on first use from ``database_url`` or the
    process's ``STREAM0D_*`` settings.
    """

    def __init__(
        self,
        roles: Mapping[str, Mapping[str, Any]],
        lifetime: timedelta = SERVER_TOKEN_LIFETIME,
        database_url: str | None = None,
    ) -> None:
        self.roles = dict(roles)
        self.lifetime = lifetime
        self.database_url = database_url
        self._access: AccessRegistry | None = None
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> ServerTokens:
        """Shared, not copied: traitlets deep-copies config values into every spawner."""
        return self

    def __repr__(self) -> str:
        return f"ServerTokens(lifetime={self.lifetime})"

    @property
    def access(self) -> AccessRegistry:
        """The registry's tokens (opened once, on first use)."""
        with self._lock:
            if self._access is None:
                from stream0d_nb.db.access_tables import AccessRegistry
                from stream0d_nb.db.registry import Registry
                from stream0d_nb.settings import Settings

                url = self.database_url or Settings().resolved_database_url()
                self._access = AccessRegistry(Registry(url))
            return self._access

    def level_of(self, user: Any) -> Level | None:
        """The highest stream0d level a hub user (``spawner.user``) has through their roles."""
        from stream0d_nb.hub.resolver import user_info

        model = {
            "name": user.name,
            "groups": [g.name for g in user.groups],
            "roles": [r.name for r in user.roles],
            "admin": bool(user.admin),
        }
        info = user_info(model, self.roles)
        return max_level(Identity(user.name, info.groups, info.is_admin, info.scopes))

    def issue(self, owner: str, server: str, level: Level) -> str:
        """A new token for ``owner``'s server (revoking any left from an earlier start)."""
        from stream0d_nb.db.base import utcnow

        self.revoke(owner, server)
        issued = self.access.issue_token(
            owner,
            level=level,
            expires_at=utcnow() + self.lifetime,
            note=server_note(owner, server),
            via=VIA,
        )
        return issued.token

    def revoke(self, owner: str, server: str) -> list[str]:
        """Revoke the active tokens of ``owner``'s server; their ids."""
        note = server_note(owner, server)
        ids = [
            t.id for t in self.access.list_tokens(owner, include_inactive=False) if t.note == note
        ]
        for token_id in ids:
            self.access.revoke_token(token_id, ACTOR, is_admin=True, via=VIA)
        return ids

    async def pre_spawn(self, spawner: Any) -> None:
        """``Spawner.pre_spawn_hook``: put a fresh token of the owner in the server's env."""
        user, server = spawner.user, spawner.name or ""
        env = {k: v for k, v in spawner.environment.items() if k != TOKEN_ENV}
        level = self.level_of(user)
        if level is None:
            spawner.log.warning(
                "no stream0d API token for %s/%s: no stream0d role", user.name, server
            )
        else:
            env[TOKEN_ENV] = await asyncio.to_thread(self.issue, user.name, server, level)
            spawner.log.info("stream0d API token (%s) for server %s/%s", level, user.name, server)
        spawner.environment = env

    async def post_stop(self, spawner: Any) -> None:
        """``Spawner.post_stop_hook``: revoke the stopped server's token."""
        user, server = spawner.user, spawner.name or ""
        ids = await asyncio.to_thread(self.revoke, user.name, server)
        spawner.environment = {k: v for k, v in spawner.environment.items() if k != TOKEN_ENV}
        if ids:
            spawner.log.info(
                "revoked stream0d API token(s) %s of notebook server %s/%s", ids, user.name, server
            )
