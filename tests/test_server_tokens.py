"""The hub's spawner hooks that give each notebook server its own API token (no hub).

A stand-in spawner carries what JupyterHub's does (``user`` with groups, roles and admin
flag, ``name``, ``environment``, ``log``); the registry is a real SQLite one.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stream0d_nb.access import Level, TokenRevokedError
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.db.base import utcnow
from stream0d_nb.db.registry import Registry
from stream0d_nb.hub import load_partners, role_scopes
from stream0d_nb.hub.server_tokens import SERVER_TOKEN_LIFETIME, TOKEN_ENV, ServerTokens
from tests.servers import REPO_ROOT


def run(hook: Coroutine[Any, Any, None]) -> None:
    """Run a hook to completion in its own thread and loop (Playwright's sync API, used by
    other tests of the session, keeps a loop running in the main thread)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, hook).result()


def fake_spawner(user: str, groups: list[str], name: str = "", admin: bool = False) -> Any:
    """What the hooks read of a JupyterHub spawner."""
    owner = SimpleNamespace(
        name=user,
        groups=[SimpleNamespace(name=g) for g in groups],
        roles=[SimpleNamespace(name="user")],
        admin=admin,
    )
    env = {"STREAM0D_API_URL": "http://127.0.0.1:1/services/stream0d"}
    return SimpleNamespace(user=owner, name=name, environment=env, log=logging.getLogger("t"))


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[tuple[ServerTokens, AccessRegistry]]:
    partners = load_partners(REPO_ROOT / "hub_config" / "partners.toml")
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    tokens = ServerTokens(role_scopes(partners), database_url=url)
    registry = Registry(url)
    yield tokens, AccessRegistry(registry)
    registry.close()
    tokens.access.registry.close()


def test_spawn_issues_a_token_of_the_owner_and_stop_revokes_it(hooks: Any) -> None:
    tokens, access = hooks
    spawner = fake_spawner("ana", ["fersa"])
    run(tokens.pre_spawn(spawner))
    token = spawner.environment[TOKEN_ENV]
    assert spawner.environment["STREAM0D_API_URL"].endswith("/services/stream0d")  # kept
    record = access.verify_token(token)
    assert record.owner == "ana" and record.level is Level.WRITE  # fersa's level
    assert record.note == "notebook server ana/" and record.partner is None
    left = record.expires_at - utcnow()
    assert SERVER_TOKEN_LIFETIME - timedelta(minutes=1) < left <= SERVER_TOKEN_LIFETIME
    # a second start (e.g. after a hub crash skipped the stop hook) replaces the first
    run(tokens.pre_spawn(spawner))
    second = spawner.environment[TOKEN_ENV]
    assert second != token
    with pytest.raises(TokenRevokedError):
        access.verify_token(token)
    run(tokens.post_stop(spawner))
    assert TOKEN_ENV not in spawner.environment
    with pytest.raises(TokenRevokedError):
        access.verify_token(second)
    revoked = access.get_token(second.split("_")[1])
    assert revoked.revoked_by == "jupyterhub"


def test_named_servers_and_other_users_are_apart(hooks: Any) -> None:
    tokens, access = hooks
    ana, ana_named, lea = (
        fake_spawner("ana", ["fersa"]),
        fake_spawner("ana", ["fersa"], "gpu"),
        fake_spawner("lea", ["lab"]),
    )
    for s in (ana, ana_named, lea):
        run(tokens.pre_spawn(s))
    assert access.verify_token(lea.environment[TOKEN_ENV]).level is Level.READ  # lab reads
    assert access.verify_token(ana_named.environment[TOKEN_ENV]).note == "notebook server ana/gpu"
    ana_token = ana.environment[TOKEN_ENV]
    run(tokens.post_stop(ana))
    with pytest.raises(TokenRevokedError):
        access.verify_token(ana_token)
    # stopping ana's default server leaves her named server's and lea's tokens alone
    assert access.verify_token(ana_named.environment[TOKEN_ENV]).owner == "ana"
    assert access.verify_token(lea.environment[TOKEN_ENV]).owner == "lea"


def test_admins_get_admin_and_people_of_no_partner_get_nothing(hooks: Any) -> None:
    tokens, access = hooks
    ops, nobody = fake_spawner("ops", [], admin=True), fake_spawner("mallory", ["elsewhere"])
    for s in (ops, nobody):
        run(tokens.pre_spawn(s))
    assert access.verify_token(ops.environment[TOKEN_ENV]).level is Level.ADMIN
    assert TOKEN_ENV not in nobody.environment
    assert access.list_tokens("mallory") == []


def test_hooks_are_shared_by_every_spawner(hooks: Any) -> None:
    """traitlets deep-copies config values into each spawner: one registry, not one each."""
    tokens, _ = hooks
    hook = copy.deepcopy(tokens.pre_spawn)
    assert hook.__self__ is tokens
