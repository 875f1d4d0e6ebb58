"""A real hub for the tests: node OIDC provider + JupyterHub + configurable-http-proxy.

``start_idp`` runs ``tests/hub/oidc_idp.mjs`` (node ``oidc-provider``) and ``start_hub``
runs ``jupyterhub -f hub_config/jupyterhub_config.py`` with a partners file written by the
test, both on free 127.0.0.1 ports, each in its own process group (stopped as a group).
``browser`` launches Debian's Chromium through Playwright (never a downloaded browser).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import (
    REPO_ROOT,
    ServerUnavailable,
    _tail,
    free_port,
    port_open,
    stop_process_group,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLIENT_SECRET = "hub-test-client-secret-0123456789"
# Users of the test provider: two partners, a second member of fersa, one of no partner.
IDP_USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "alice-pw-1", "name": "Alice (FERSA)", "groups": ["fersa"]},
    "carol": {"password": "carol-pw-1", "name": "Carol (FERSA)", "groups": ["fersa"]},
    "bob": {"password": "bob-pw-1", "name": "Bob (ZF)", "groups": ["zf"]},
    "mallory": {"password": "mallory-pw-1", "name": "Mallory", "groups": ["elsewhere"]},
}


@dataclass
class NodeIdP:
    """A running ``oidc-provider``."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process_group(self.process, signal.SIGTERM, timeout=10)


def start_idp(
    users: Mapping[str, Mapping[str, Any]], redirect_uris: list[str], workdir: Path
) -> NodeIdP:
    """Start the test OIDC provider with one client (the hub) allowed ``redirect_uris``."""
    if shutil.which("node") is None:
        raise ServerUnavailable("node is not on PATH")
    if not (REPO_ROOT / "node_modules" / "oidc-provider").exists():
        raise ServerUnavailable("node_modules/oidc-provider missing; run `make setup`")
    port = free_port()
    log = workdir / f"idp-{port}.log"
    env = dict(os.environ)
    env |= {
        "IDP_PORT": str(port),
        "IDP_USERS": json.dumps(users),
        "IDP_CLIENTS": json.dumps(
            [
                {
                    "client_id": "stream0d-hub",
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": redirect_uris,
                }
            ]
        ),
    }
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            ["node", str(REPO_ROOT / "tests" / "hub" / "oidc_idp.mjs")],
            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=REPO_ROOT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if port_open(port):
            return NodeIdP(port, proc, log)
        time.sleep(0.1)
    stop_process_group(proc, signal.SIGKILL)
    raise ServerUnavailable(f"the OIDC provider did not start:\n{_tail(log)}")


@dataclass
class Hub:
    """A running JupyterHub (proxy and API service included)."""

    url: str
    process: subprocess.Popen[bytes]
    home: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def service_url(self) -> str:
        """The API service as clients reach it (through the proxy)."""
        return f"{self.url}/services/stream0d"

    def stop(self) -> None:
        stop_process_group(self.process, signal.SIGTERM, timeout=30)

    def log_tail(self) -> str:
        return _tail(self.log, 6000)


def start_hub(
    partners_toml: str, home: Path, port: int, extra_env: Mapping[str, str] | None = None
) -> Hub:
    """Start JupyterHub on ``port`` with ``partners_toml`` and the store under ``home``; wait
    until the hub and the API service answer through the proxy."""
    url = f"http://127.0.0.1:{port}"
    partners = home / "partners.toml"
    partners.write_text(partners_toml.replace("{HUB_URL}", url))
    log = home / "hub.log"
    # the shipped configuration, with one answer per REST request however fast this
    # machine is: a server start answers 202 (pending) at once, a stop 204 once it is done
    config = home / "jupyterhub_config.py"
    config.write_text(
        f"load_subconfig({str(REPO_ROOT / 'hub_config' / 'jupyterhub_config.py')!r})\n"
        "c.JupyterHub.tornado_settings = {**c.JupyterHub.get('tornado_settings', {}),\n"
        "    'slow_spawn_timeout': 0, 'slow_stop_timeout': 60}\n"
    )
    env = dict(os.environ)
    env |= {
        "STREAM0D_HOME": str(home),
        "STREAM0D_PARTNERS": str(partners),
        "STREAM0D_HUB_URL": url,
        "STREAM0D_HUB_PORT": str(free_port()),
        "STREAM0D_HUB_PROXY_API_PORT": str(free_port()),
        "STREAM0D_HUB_SERVICE_PORT": str(free_port()),
        "STREAM0D_HUB_STATE": str(home / "hub"),
        "STREAM0D_HUB_LOG_LEVEL": "INFO",
        "STREAM0D_SERVICE_LOG_LEVEL": "warning",
        "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex(),
        **(extra_env or {}),
    }
    env.pop("JUPYTERHUB_API_TOKEN", None)
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("jupyterhub")), "-f", str(config)],
            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=home, start_new_session=True,
        )  # fmt: skip
    hub = Hub(url, proc, home, log, env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            up = httpx.get(f"{url}/hub/api/", timeout=2).status_code == 200
            if up and httpx.get(f"{hub.service_url}/api/datasets", timeout=2).status_code == 401:
                return hub
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    hub.stop()
    raise ServerUnavailable(f"JupyterHub did not come up:\n{hub.log_tail()}")


def shared_partners_toml(idp: NodeIdP) -> str:
    """A partners file: one shared provider whose groups claim names the partner."""
    return f"""
[hub]
login = "shared"
admins = []
public_url = "{{HUB_URL}}"

[hub.shared]
label = "Partner SSO"
authorize_url = "{idp.url}/auth"
token_url = "{idp.url}/token"
userdata_url = "{idp.url}/me"
client_id = "stream0d-hub"
client_secret_env = "TEST_SSO_SECRET"
scope = ["openid", "profile", "email", "groups"]
groups_claim = "oauth_user.groups"

[[partners]]
slug = "fersa"
name = "FERSA"

[[partners]]
slug = "zf"
name = "ZF"
"""


@pytest.fixture(scope="session")
def hub_workdir() -> Iterator[Path]:
    """A folder for the hub session's servers and store."""
    path = Path(tempfile.mkdtemp(prefix="stream0d-hub-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (skips when Chromium is missing)."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium missing: `make setup-test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def start_run_hub(
    home: Path, url: str, as_user: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m stream0d_nb.hub.run`` (what ``make run`` starts) on ``url`` and free
    ports, with the store under ``home`` (as OS user ``as_user`` when given); waits for
    its banner: (process, banner)."""
    env = dict(os.environ) | {
        "STREAM0D_HOME": str(home),
        "STREAM0D_HUB_URL": url,
        "STREAM0D_HUB_PORT": str(free_port()),
        "STREAM0D_HUB_PROXY_API_PORT": str(free_port()),
        "STREAM0D_HUB_SERVICE_PORT": str(free_port()),
        "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex(),
    }
    out = home.parent / f"{home.name}-run.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream0d_nb.hub.run"],
            stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, start_new_session=True,
            user=as_user, group=as_user and pwd.getpwnam(as_user).pw_gid,
            extra_groups=[] if as_user else None,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while "Stop with Ctrl-C" not in out.read_text() and proc.poll() is None:
        if time.monotonic() > deadline:
            stop_process_group(proc, signal.SIGKILL)
            raise ServerUnavailable(f"make run's hub did not come up:\n{out.read_text()[-3000:]}")
        time.sleep(0.3)
    if proc.poll() is not None:
        raise AssertionError(f"make run's hub exited:\n{out.read_text()[-3000:]}")
    return proc, out.read_text()


def stop_run_hub(proc: subprocess.Popen[bytes]) -> None:
    """Stop what ``start_run_hub`` started as Ctrl-C would (the hub stops its servers and
    services); kill its process group if it takes over a minute."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Any, within: str | None = None) -> list[tuple[str, str, int]]:
    """axe-core's accessibility violations of the page shown (or of the elements matching
    the CSS selector ``within``): (rule, impact, nodes)."""
    if not AXE.exists():
        raise ServerUnavailable("node_modules/axe-core missing; run `make setup`")
    page.add_script_tag(path=str(AXE))
    found: list[list[Any]] = page.evaluate(
        "(within) => axe.run(within ? {include: [[within]]} : document)"
        ".then((r) => r.violations.map((v) => [v.id, v.impact, v.nodes.length]))",
        within,
    )
    return [(str(a), str(b), int(c)) for a, b, c in found]
