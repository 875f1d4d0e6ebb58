"""Sharing servers stays within a partner: the hub refuses cross-partner shares.

JupyterHub lets a user share their server with any user or group (``shares!user``), and
anyone logged in can accept a share code. A shared server runs with its owner's
credentials, so sharing it with another partner would hand them the owner's data.
JupyterHub has no hook to veto a share; every way to make one (the share API, share
codes accepted at ``/hub/accept-share``) goes through ``orm.Share.grant``, which
``install`` wraps: a share whose target is in no partner of the owner is refused with
403 and a message, before anything is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PARTNER_ONLY = "servers are shared only within the partner of their owner"
_installed: dict[str, Any] = {}


def partners_of(orm_user: Any, slugs: frozenset[str]) -> frozenset[str]:
    """The partner slugs among ``orm_user``'s hub groups."""
    return frozenset(g.name for g in orm_user.groups) & slugs


def shared_partners(owner: Any, share_with: Any, slugs: frozenset[str]) -> frozenset[str]:
    """Partners that the server's owner and the share's target (a user or group) have in
    common: for a group, the group itself when it is one of the owner's partners."""
    mine = partners_of(owner, slugs)
    if getattr(share_with, "kind", "user") == "group":
        return mine & {share_with.name}
    return mine & partners_of(share_with, slugs)


def install(partner_slugs: Iterable[str]) -> None:
    """Wrap ``jupyterhub.orm.Share.grant`` so that it refuses cross-partner shares."""
    from jupyterhub import orm
    from tornado import web

    slugs = frozenset(partner_slugs)
    original = _installed.setdefault("grant", orm.Share.grant.__func__)

    def grant(cls: Any, db: Any, spawner: Any, share_with: Any, scopes: Any = None) -> Any:
        owner = spawner.user
        if not shared_partners(owner, share_with, slugs):
            raise web.HTTPError(
                403,
                f"{PARTNER_ONLY}: {owner.name!r} and {share_with.kind} {share_with.name!r} "
                "share no partner",
            )
        return original(cls, db, spawner, share_with, scopes)

    orm.Share.grant = classmethod(grant)
