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
- the managed services: the API at ``/services/stream0d/``, the alert runner (no-data
  rules on a clock) and the recalibration scheduler, as the platform account;
- on one machine, each user's server as its own OS account (``spawner.AccountSpawner``)
  with nothing but the API's URL and the hub's own variables; the proxy from
  ``node_modules``, loopback only. Without root it is an announced single-user mode.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from stream0d_nb.access import SCOPE_PREFIX, Level
from stream0d_nb.hub import sharing
from stream0d_nb.hub.accounts import (
    PLATFORM_ACCOUNT,
    can_run,
    can_switch_users,
    ensure_platform_account,
    lock_down,
    open_for_traversal,
)
from stream0d_nb.hub.partners import AzureADLogin, OIDCLogin, Partners
from stream0d_nb.hub.server_tokens import ServerTokens
from stream0d_nb.hub.starter import DEFAULT_URL, LAB_SETTINGS, seed_home

SERVICE = "stream0d"
SCHEDULER = "stream0d-scheduler"
ALERTS = "stream0d-alerts"
ADMIN_ROLE = "stream0d-admins"
SERVICE_ROLE = "stream0d-service"
ROLES_ENV = "STREAM0D_HUB_ROLES"
API_URL_ENV = "STREAM0D_API_URL"

# The platform's settings: store, registry and secrets. Only platform processes (the
# services) get them; users' servers never do.
PLATFORM_SETTINGS = (
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
    alert_every: str = "30s"  # the alert runner's clock ("" or "0": no alert runner)
    deployment: str = "local"  # "kubernetes": zero-to-jupyterhub owns proxy, spawner, DB
    # "accounts": users' servers as their own OS accounts, services as the platform account
    # (needs root); "single-user": everything as the hub's own OS user (announced).
    isolation: str = "accounts"
    platform_account: str = "stream0d"
    home: Path = Path("var")
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
            alert_every=env.get("STREAM0D_HUB_ALERT_EVERY", "30s"),
            deployment=env.get("STREAM0D_HUB_DEPLOYMENT", "local"),
            isolation=env.get(
                "STREAM0D_HUB_ISOLATION", "accounts" if can_switch_users() else "single-user"
            ),
            platform_account=env.get("STREAM0D_HUB_PLATFORM_ACCOUNT", PLATFORM_ACCOUNT),
            home=home.resolve(),
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
    # A server's hub token only talks to the hub (JupyterHub's default server role): the
    # stream0d API refuses hub tokens; notebooks use the API token the hub gave their
    # server (hub.server_tokens), so no hub token carries a stream0d scope through it.
    out.append(
        {
            "name": "server",
            "description": "Post activity and reach one's own server (no stream0d scope)",
            "scopes": ["users:activity!user", "access:servers!server"],
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
    """Environment of the platform services: the store's settings and the role table."""
    out = {k: env[k] for k in PLATFORM_SETTINGS if env.get(k)}
    out["PATH"] = env.get("PATH", "/usr/bin:/bin")
    out[ROLES_ENV] = json.dumps(role_scopes(partners))
    return out


def services(partners: Partners, places: HubPlaces, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The managed services: the API, the alert runner and the recalibration scheduler.

    They are the platform processes: the only ones given the store's settings and
    secrets, and on one machine with accounts they run as the platform account.
    """
    senv = service_env(partners, env) | dict(places.extra_env)
    python = str(places.venv_bin / "python")
    cwd = str(Path.cwd())
    host = "127.0.0.1"
    common: dict[str, Any] = {"environment": senv, "cwd": cwd}
    if places.deployment == "kubernetes":
        # The proxy runs in its own pod and reaches the service through the hub's k8s service.
        host = "hub"
        senv["STREAM0D_SERVICE_BIND"] = "0.0.0.0"
    elif places.isolation == "accounts":
        senv["STREAM0D_HOME"] = str(places.home)
        common |= {"user": places.platform_account, "cwd": str(places.home)}
    out: list[dict[str, Any]] = [
        {
            "name": SERVICE,
            "url": f"http://{host}:{places.service_port}",
            "command": [python, "-m", "stream0d_nb.hub.service"],
            **common,
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [lv.scope for lv in Level],
            "display": True,
            "info": {"description": "stream0d API, tokens page and OpenAPI reference"},
        }
    ]
    stream0d = str(places.venv_bin / "stream0d")
    if places.alert_every not in ("", "0"):
        # no_data rules fire on a clock; rules on data also run after every write
        out.append(
            {"name": ALERTS, "command": [stream0d, "alerts", "run", "--every", places.alert_every]}
            | common
        )
    if places.scheduler:
        out.append({"name": SCHEDULER, "command": [stream0d, "recal", "scheduler"]} | common)
    return out


def spawner(
    partners: Partners, places: HubPlaces, env: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Users' servers on one machine: each as its own OS account (see docs/hub.md).

    Their environment holds the API's URL and the hub's own variables, nothing of the
    store, registry or secrets. In single-user mode (hub not root) they run as the hub's
    OS user, which the hub announces.
    """
    user_env = {
        "PATH": f"{places.venv_bin}:/usr/local/bin:/usr/bin:/bin",
        # notebooks reach the API directly (loopback) as their owner
        API_URL_ENV: f"http://127.0.0.1:{places.service_port}/services/{SERVICE}",
    }
    homes = places.state_dir / "homes"
    common = {
        "ip": "127.0.0.1",
        "cmd": [str(places.venv_bin / "jupyterhub-singleuser")],
        # a new user lands on the Studio's starter notebook (``hub.starter``)
        "default_url": DEFAULT_URL,
        # plants may be offline: no news feed, prompt or update check from JupyterLab
        "args": [
            "--LabApp.news_url=None",
            f"--LabApp.app_settings_dir={LAB_SETTINGS}",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        ],
        "environment": user_env,
        "env_keep": ["LANG", "LC_ALL"],
        "start_timeout": 60,
        "http_timeout": 60,
        # each server gets its own stream0d API token (STREAM0D_API_TOKEN), revoked at stop
        **server_token_hooks(partners),
    }
    if places.isolation == "accounts":
        return {
            "JupyterHub": {"spawner_class": "stream0d_nb.hub.spawner.AccountSpawner"},
            "AccountSpawner": {"homes_dir": str(homes)},
            "Spawner": common,
            "LocalProcessSpawner": {"interrupt_timeout": 5, "term_timeout": 5},
        }
    template = str(homes / "{username}")
    tokens_hook = common["pre_spawn_hook"]

    def seed_then_token(spawner: Any) -> Any:
        """Single-user mode: seed the home (the hub's own files) before the token hook."""
        seed_home(Path(template.format(username=spawner.user.name)))
        return tokens_hook(spawner)

    return {
        "JupyterHub": {"spawner_class": "jupyterhub.spawner.SimpleLocalProcessSpawner"},
        "SimpleLocalProcessSpawner": {"home_dir_template": template},
        "Spawner": common | {"pre_spawn_hook": seed_then_token},
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
    bind = places.public_url
    if public.hostname == "localhost":  # browsers resolve *.localhost to loopback
        bind = f"{public.scheme}://127.0.0.1:{public.port}"
    cfg: dict[str, dict[str, Any]] = {
        "JupyterHub": {
            "bind_url": bind,
            **origins(places),
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


def uses_subdomains(public_url: str) -> bool:
    """Whether the hub gives each user and service its own origin: whenever its host is
    a name (``localhost`` or a domain with wildcard DNS), not an IP address."""
    host = urlparse(public_url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(host)
    return False


def origins(places: HubPlaces) -> dict[str, Any]:
    """``subdomain_host`` when the hub's URL allows it (see ``uses_subdomains``).

    Each user's server then lives on its own origin (``ana.localhost``), the API service
    on its own (``stream0d--service.localhost``), the hub on the bare host: a page of one
    user's server cannot read another user's or the service's pages, nor use a
    visitor's credentials on them.
    """
    if not uses_subdomains(places.public_url):
        return {}
    return {"subdomain_host": places.public_url.rstrip("/")}


def service_url(public_url: str, name: str = SERVICE) -> str:
    """Where browsers and scripts reach service ``name`` through the proxy."""
    from jupyterhub.utils import subdomain_hook_idna

    public = urlparse(public_url.rstrip("/"))
    if not uses_subdomains(public_url) or public.hostname is None:
        return f"{public_url.rstrip('/')}/services/{name}"
    host = subdomain_hook_idna(name, public.hostname, "service")
    port = f":{public.port}" if public.port else ""
    return f"{public.scheme}://{host}{port}/services/{name}"


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


def server_token_hooks(partners: Partners) -> dict[str, Any]:
    """The spawner hooks that give each server its own API token (``hub.server_tokens``)."""
    tokens = ServerTokens(role_scopes(partners))
    return {"pre_spawn_hook": tokens.pre_spawn, "post_stop_hook": tokens.post_stop}


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
            **origins(places),
            "custom_scopes": _custom_scopes(),
            "load_roles": roles(partners),
            "services": services(partners, places, env),
        },
        # KubeSpawner's pods get the server's API token too (the chart's singleuser
        # settings give them nothing else of ours)
        "Spawner": server_token_hooks(partners),
    }
    for section, values in authentication(partners, places, env).items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def apply(c: Any, partners: Partners, places: HubPlaces | None = None) -> dict[str, dict[str, Any]]:
    """Set ``hub_config(...)`` on JupyterHub's config object ``c``; returns what was set."""
    places = places or HubPlaces.from_env(partners)
    if places.deployment == "local":
        places.state_dir.mkdir(parents=True, exist_ok=True)
        prepare_machine(places)
    sharing.install(p.slug for p in partners.partners)
    cfg = hub_config(partners, places)
    for section, values in cfg.items():
        for key, value in values.items():
            setattr(getattr(c, section), key, value)
    return cfg


def prepare_machine(places: HubPlaces) -> None:
    """Before the hub starts on one machine: the isolation model's accounts and files.

    With accounts: the platform account exists and owns the store, registry, secret key
    and hub state (nothing there readable by others, but the way to the users' homes);
    files made from now on are private (umask 077); users' accounts can reach their homes
    and run the venv's Python. Refuses to start when they cannot. In single-user mode it
    only logs, loudly, that every user's code runs as the hub's OS user.
    """
    log = logging.getLogger("stream0d.hub")
    if places.isolation == "single-user":
        log.warning(SINGLE_USER_WARNING)
        return
    if places.isolation != "accounts":
        raise ValueError(
            f"STREAM0D_HUB_ISOLATION={places.isolation!r}: expected 'accounts' or 'single-user'"
        )
    if not can_switch_users():
        raise PermissionError(
            "STREAM0D_HUB_ISOLATION=accounts needs the hub to run as root (it starts each "
            "user's server as that user's own OS account); run as root, or choose "
            "STREAM0D_HUB_ISOLATION=single-user for a demo"
        )
    os.umask(0o077)
    platform = ensure_platform_account(places.platform_account)
    homes = places.state_dir / "homes"
    lock_down(platform, sorted({places.home, places.state_dir}), homes)
    python = places.venv_bin / "python"
    for opened in open_for_traversal([homes, python.parent]):
        log.warning("made %s traversable by others (o+x, no listing) for users' servers", opened)
    why = can_run(places.platform_account, python)
    if why is not None:
        raise PermissionError(
            f"the hub's accounts cannot run {python} ({why}): install Python outside a "
            "private home (hub_config/python-for-accounts.sh does it for `make setup`)"
        )


SINGLE_USER_WARNING = (
    "SINGLE-USER MODE: the hub is not root, so every user's server runs as this OS user "
    "and can read the store, registry and secrets directly. Fine for one trusted analyst; "
    "never for partners (run the hub as root, or on Kubernetes)."
)
