"""Traitlets configuration of the hub, built from the partners file and the environment.

``hub_config(partners, env)`` returns a plain ``{section: {key: value}}`` mapping that
``apply(c, ...)`` copies into JupyterHub's config object, so the configuration can be
inspected and tested without starting a hub. What it sets up:

- login: the local demo (shared password, demo users put in their partner's group by
  ``load_groups``), one shared OIDC provider whose groups claim names the partner
  (``manage_groups``, ``auth_state_groups_key``, ``allowed_groups``), or one provider per
  partner through ``jupyterhub-multiauthenticator`` (each puts its users in its partner);
- roles: members of a partner get ``custom:stream0d:<level>`` (unfiltered: their
  per-dataset grants decide *where*; ``!group=`` filters are for narrowing tokens),
  admins get ``custom:stream0d:admin``, the API service may read users and groups;
- the managed services: the API at ``/services/stream0d/`` (and the scheduler when wanted);
- a spawner that works on one machine, the proxy from ``node_modules``, loopback only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from stream0d_nb.access import SCOPE_PREFIX, Level
from stream0d_nb.hub.partners import AzureADLogin, OIDCLogin, Partners

SERVICE = "stream0d"
SCHEDULER = "stream0d-scheduler"
ADMIN_ROLE = "stream0d-admins"
SERVICE_ROLE = "stream0d-service"
ROLES_ENV = "STREAM0D_HUB_ROLES"
API_URL_ENV = "STREAM0D_API_URL"

# Settings the API service and user servers need to reach the same store.
_PASSED_ENV = (
    "STREAM0D_HOME",
    "STREAM0D_STORAGE_URL",
    "STREAM0D_DATABASE_URL",
    "STREAM0D_AZURE_ACCOUNT",
    "STREAM0D_AZURE_KEY",
    "STREAM0D_AZURE_SAS_TOKEN",
    "STREAM0D_AZURE_ENDPOINT",
    "STREAM0D_SECRET_KEY",
)


@dataclass(frozen=True)
class HubPlaces:
    """Where the hub listens and keeps its state (all loopback by default)."""

    public_url: str = "http://127.0.0.1:8000"
    hub_port: int = 8081
    proxy_api_port: int = 8001
    service_port: int = 10101
    state_dir: Path = Path("var/hub")
    venv_bin: Path = Path(sys.executable).parent
    node_bin: Path = Path("node_modules/.bin")
    scheduler: bool = False
    deployment: str = "local"  # "kubernetes": zero-to-jupyterhub owns proxy, spawner, DB
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, partners: Partners, env: Mapping[str, str] | None = None) -> HubPlaces:
        """Places from ``STREAM0D_HUB_*`` variables, defaulting to the partners file's URL."""
        env = os.environ if env is None else env
        home = Path(env.get("STREAM0D_HOME", "var"))
        root = Path(env.get("STREAM0D_PROJECT_ROOT", Path(__file__).resolve().parents[2]))
        return cls(
            public_url=env.get("STREAM0D_HUB_URL", partners.hub.public_url),
            hub_port=int(env.get("STREAM0D_HUB_PORT", 8081)),
            proxy_api_port=int(env.get("STREAM0D_HUB_PROXY_API_PORT", 8001)),
            service_port=int(env.get("STREAM0D_HUB_SERVICE_PORT", 10101)),
            state_dir=Path(env.get("STREAM0D_HUB_STATE", home / "hub")).resolve(),
            venv_bin=Path(env.get("STREAM0D_HUB_VENV_BIN", Path(sys.executable).parent)),
            node_bin=Path(env.get("STREAM0D_HUB_NODE_BIN", root / "node_modules" / ".bin")),
            scheduler=env.get("STREAM0D_HUB_SCHEDULER", "0") not in ("", "0", "false"),
            deployment=env.get("STREAM0D_HUB_DEPLOYMENT", "local"),
        )


def roles(partners: Partners) -> list[dict[str, Any]]:
    """The hub roles: one per partner group, one for admins, one for the API service."""
    out: list[dict[str, Any]] = [
        {
            "name": f"stream0d-{p.slug}",
            "description": f"Members of {p.name}: stream0d {p.level.value} (grants decide where)",
            "scopes": [f"{SCOPE_PREFIX}{p.level.value}", f"access:services!service={SERVICE}"],
            "groups": [p.slug],
        }
        for p in partners.partners
    ]
    out.append(
        {
            "name": ADMIN_ROLE,
            "description": "Hub admins: every dataset",
            "scopes": [Level.ADMIN.scope, f"access:services!service={SERVICE}"],
            "users": list(partners.hub.admins),
        }
    )
    out.append(
        {
            "name": SERVICE_ROLE,
            "description": "The stream0d API: who is in which partner, with which roles",
            "scopes": ["read:users", "read:groups", "read:roles:users", "read:roles:groups"],
            "services": [SERVICE],
        }
    )
    # A user's notebook server acts as that user on the API (its token is capped by the
    # owner's own scopes, so listing every level gives exactly the owner's).
    out.append(
        {
            "name": "server",
            "description": "Post activity, and use the stream0d API as the server's owner",
            "scopes": [
                "users:activity!user",
                "access:servers!server",
                "read:users!user",
                *(lv.scope for lv in Level),
                f"access:services!service={SERVICE}",
            ],
        }
    )
    # Analysts share their servers (e.g. with their partner group): JupyterHub sharing.
    out.append(
        {
            "name": "user",
            "description": "Default user role, plus sharing one's own servers",
            "scopes": ["self", "shares!user", "read:users:name", "read:groups:name"],
        }
    )
    return out


def role_scopes(partners: Partners) -> dict[str, dict[str, list[str]]]:
    """What the API service needs to resolve a user's stream0d scopes from role names."""
    return {
        r["name"]: {
            "scopes": [s for s in r["scopes"] if s.startswith(SCOPE_PREFIX)],
            "groups": list(r.get("groups", [])),
            "users": list(r.get("users", [])),
        }
        for r in roles(partners)
        if r["name"] != "server" and any(s.startswith(SCOPE_PREFIX) for s in r["scopes"])
    }


def _secret(name: str, env: Mapping[str, str]) -> str:
    value = env.get(name)
    if not value:
        raise KeyError(f"environment variable {name} (an OAuth client secret) is not set")
    return value


def _oidc(login: OIDCLogin, callback: str, env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "login_service": login.label,
        "client_id": login.client_id,
        "client_secret": _secret(login.client_secret_env, env),
        "oauth_callback_url": callback,
        "authorize_url": login.authorize_url,
        "token_url": login.token_url,
        "userdata_url": login.userdata_url,
        "scope": list(login.scope),
        "username_claim": login.username_claim,
        "basic_auth": login.basic_auth,
        "http_request_kwargs": {"request_timeout": 15},
    }
    return out


def _azure(login: AzureADLogin, callback: str, env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "login_service": login.label,
        "tenant_id": login.tenant_id,
        "client_id": login.client_id,
        "client_secret": _secret(login.client_secret_env, env),
        "oauth_callback_url": callback,
    }


class _Constant:
    """A picklable ``auth_state -> [slug]``: everyone from a partner's own IdP is in it."""

    def __init__(self, slug: str) -> None:
        self.slug = slug

    def __call__(self, auth_state: Mapping[str, Any]) -> list[str]:
        return [self.slug]


def _partner_class(name: str, slug: str) -> type:
    """``name``'s authenticator whose users are ``<slug>:<user>`` in the hub.

    ``jupyterhub-multiauthenticator`` prefixes usernames with the class's ``prefix``
    (default: the button label); the partner slug keeps two partners' "alice" apart
    with a short, stable name.
    """
    from traitlets import import_item

    base = import_item(name)
    return type(f"{base.__name__}_{slug}", (base,), {"prefix": f"{slug}:"})


def authentication(
    partners: Partners, places: HubPlaces, env: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Authenticator sections for the partners file's login mode."""
    hub = places.public_url.rstrip("/") + "/hub"
    admins = set(partners.hub.admins)
    slugs = {p.slug for p in partners.partners}
    if partners.hub.login == "local":
        users = {u for p in partners.partners for u in p.demo_users} | admins
        return {
            "JupyterHub": {
                "authenticator_class": "shared-password",
                "load_groups": {p.slug: {"users": list(p.demo_users)} for p in partners.partners},
            },
            "SharedPasswordAuthenticator": {
                "user_password": env.get("STREAM0D_HUB_DEMO_PASSWORD", ""),
                "admin_password": env.get("STREAM0D_HUB_ADMIN_PASSWORD", ""),
                "allowed_users": users,
                "admin_users": admins,
            },
        }
    if partners.hub.login == "shared":
        login = partners.hub.shared
        assert login is not None and login.groups_claim  # checked by Partners
        section = _oidc(login, hub + "/oauth_callback", env)
        section |= {
            "manage_groups": True,
            "auth_state_groups_key": login.groups_claim,
            "allowed_groups": slugs,
            "admin_users": admins,
        }
        return {
            "JupyterHub": {"authenticator_class": "generic-oauth"},
            "GenericOAuthenticator": section,
        }
    subs: list[dict[str, Any]] = []
    for p in partners.partners:
        assert p.login is not None  # checked by Partners
        callback = f"{hub}/{p.slug}/oauth_callback"
        if isinstance(p.login, OIDCLogin):
            sub = _oidc(p.login, callback, env)
            cls = _partner_class("oauthenticator.generic.GenericOAuthenticator", p.slug)
        else:
            sub = _azure(p.login, callback, env)
            cls = _partner_class("oauthenticator.azuread.AzureAdOAuthenticator", p.slug)
        sub |= {
            "manage_groups": True,
            "auth_state_groups_key": _Constant(p.slug),
            "allow_all": True,
        }
        subs.append({"authenticator_class": cls, "url_prefix": f"/{p.slug}", "config": sub})
    return {
        "JupyterHub": {"authenticator_class": "multiauthenticator"},
        "MultiAuthenticator": {
            "authenticators": subs,
            "manage_groups": True,
            "allow_all": True,
            "admin_users": admins,
        },
    }


def service_env(partners: Partners, env: Mapping[str, str]) -> dict[str, str]:
    """Environment of the API service: the store's settings and the role table."""
    out = {k: env[k] for k in _PASSED_ENV if env.get(k)}
    out["PATH"] = env.get("PATH", "/usr/bin:/bin")
    out[ROLES_ENV] = json.dumps(role_scopes(partners))
    return out


def services(partners: Partners, places: HubPlaces, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The managed services: the API (and the recalibration scheduler when enabled)."""
    senv = service_env(partners, env) | dict(places.extra_env)
    python = str(places.venv_bin / "python")
    cwd = str(Path.cwd())
    host = "127.0.0.1"
    if places.deployment == "kubernetes":
        # The proxy runs in its own pod and reaches the service through the hub's k8s service.
        host = "hub"
        senv["STREAM0D_SERVICE_BIND"] = "0.0.0.0"
    out: list[dict[str, Any]] = [
        {
            "name": SERVICE,
            "url": f"http://{host}:{places.service_port}",
            "command": [python, "-m", "stream0d_nb.hub.service"],
            "environment": senv,
            "cwd": cwd,
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [lv.scope for lv in Level],
            "display": True,
            "info": {"description": "stream0d API, tokens page and OpenAPI reference"},
        }
    ]
    if places.scheduler:
        out.append(
            {
                "name": SCHEDULER,
                "command": [str(places.venv_bin / "stream0d"), "recal", "scheduler"],
                "environment": senv,
                "cwd": cwd,
            }
        )
    return out


def spawner(
    partners: Partners, places: HubPlaces, env: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Users' servers as processes of the hub's own OS user (one machine; see docs/hub.md)."""
    args = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    user_env = {k: env[k] for k in _PASSED_ENV if env.get(k)}
    user_env["PATH"] = f"{places.venv_bin}:/usr/local/bin:/usr/bin:/bin"
    # Notebooks reach the API directly (loopback) with their server's hub token.
    user_env[API_URL_ENV] = f"http://127.0.0.1:{places.service_port}/services/{SERVICE}"
    return {
        "JupyterHub": {"spawner_class": "jupyterhub.spawner.SimpleLocalProcessSpawner"},
        "SimpleLocalProcessSpawner": {
            "home_dir_template": str(places.state_dir / "homes" / "{username}")
        },
        "Spawner": {
            "ip": "127.0.0.1",
            "cmd": [str(places.venv_bin / "jupyterhub-singleuser")],
            "args": args,
            "default_url": "/lab",
            "environment": user_env,
            "start_timeout": 60,
            "http_timeout": 60,
        },
        "LocalProcessSpawner": {"interrupt_timeout": 5, "term_timeout": 5},
    }


def hub_config(
    partners: Partners, places: HubPlaces, env: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every traitlets section of the hub (see the module docstring)."""
    env = os.environ if env is None else env
    if places.deployment == "kubernetes":
        return _kubernetes(partners, places, env)
    public = urlparse(places.public_url)
    if public.hostname is None or public.port is None:
        raise ValueError(f"hub URL {places.public_url!r} needs a host and a port")
    state = places.state_dir
    cfg: dict[str, dict[str, Any]] = {
        "JupyterHub": {
            "bind_url": places.public_url,
            "hub_bind_url": f"http://127.0.0.1:{places.hub_port}",
            "db_url": env.get("STREAM0D_HUB_DB_URL", f"sqlite:///{state / 'jupyterhub.sqlite'}"),
            "cookie_secret_file": str(state / "jupyterhub_cookie_secret"),
            "pid_file": str(state / "jupyterhub.pid"),
            "custom_scopes": _custom_scopes(),
            "load_roles": roles(partners),
            "services": services(partners, places, env),
            "log_level": env.get("STREAM0D_HUB_LOG_LEVEL", "INFO"),
        },
        "ConfigurableHTTPProxy": {
            "api_url": f"http://127.0.0.1:{places.proxy_api_port}",
            "command": [str(places.node_bin / "configurable-http-proxy")],
            "pid_file": str(state / "jupyterhub-proxy.pid"),
        },
    }
    for part in (authentication(partners, places, env), spawner(partners, places, env)):
        for section, values in part.items():
            cfg.setdefault(section, {}).update(values)
    return cfg


def _custom_scopes() -> dict[str, dict[str, Any]]:
    return {
        Level.READ.scope: {"description": "Read stream0d datasets"},
        Level.WRITE.scope: {
            "description": "Write stream0d data and configuration",
            "subscopes": [Level.READ.scope],
        },
        Level.ADMIN.scope: {
            "description": "Manage stream0d grants and delete datasets",
            "subscopes": [Level.WRITE.scope],
        },
    }


def _kubernetes(
    partners: Partners, places: HubPlaces, env: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Only what is ours under zero-to-jupyterhub: login, roles, scopes, services.

    The chart configures the proxy pod, KubeSpawner, the hub database (PostgreSQL) and
    the listening addresses; see ``hub_config/z2jh-values.yaml``.
    """
    if partners.hub.login == "local":
        raise ValueError("login = 'local' is the embedded demo; production needs a provider")
    cfg: dict[str, dict[str, Any]] = {
        "JupyterHub": {
            "custom_scopes": _custom_scopes(),
            "load_roles": roles(partners),
            "services": services(partners, places, env),
        }
    }
    for section, values in authentication(partners, places, env).items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def apply(c: Any, partners: Partners, places: HubPlaces | None = None) -> dict[str, dict[str, Any]]:
    """Set ``hub_config(...)`` on JupyterHub's config object ``c``; returns what was set."""
    places = places or HubPlaces.from_env(partners)
    if places.deployment == "local":
        places.state_dir.mkdir(parents=True, exist_ok=True)
    cfg = hub_config(partners, places)
    for section, values in cfg.items():
        for key, value in values.items():
            setattr(getattr(c, section), key, value)
    return cfg
