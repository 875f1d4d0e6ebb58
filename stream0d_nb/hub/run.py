"""``make run``'s hub: the embedded default on 127.0.0.1:8000 with demo users.

Starts JupyterHub with ``hub_config/jupyterhub_config.py`` (local login, SQLite, the API
service), waits until it answers, prints the URL and the demo logins, and stops the hub
and its services on Ctrl-C. The demo password is generated once and kept (mode 0600)
under the hub's state folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from stream0d_nb.db.sealed import secret_file
from stream0d_nb.hub.config import SINGLE_USER_WARNING, HubPlaces, service_url, uses_subdomains
from stream0d_nb.hub.partners import Partners, load_partners

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "hub_config" / "jupyterhub_config.py"


def hub_environment(partners: Partners, env: dict[str, str]) -> dict[str, str]:
    """The environment the hub runs with: passwords of the local login, absolute home."""
    env = dict(env)
    env.setdefault("STREAM0D_HOME", str(Path(env.get("STREAM0D_HOME", "var")).resolve()))
    env.setdefault("STREAM0D_HUB_SCHEDULER", "1")  # recalibration schedules fire while up
    places = HubPlaces.from_env(partners, env)
    if partners.hub.login == "local":
        env.setdefault(
            "STREAM0D_HUB_DEMO_PASSWORD", secret_file(places.state_dir / "demo_password", 12)
        )
        env.setdefault(
            "STREAM0D_HUB_ADMIN_PASSWORD", secret_file(places.state_dir / "admin_password", 32)
        )
    return env


def _answers(url: str, token: str | None = None, route: str | None = None) -> bool:
    """Whether ``url`` answers 200 (and, with ``route``, lists that proxy route)."""
    headers = {"Authorization": f"token {token}"} if token else None
    try:
        r = httpx.get(url, headers=headers, timeout=2)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and (route is None or route in r.json())


def wait_until_up(places: HubPlaces, token: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the hub answers on its own port, the proxy routes to it (asked through
    the proxy's API, so no request meets the proxy before its routes exist and logs an
    error), and the public URL answers."""
    steps = [
        (f"http://127.0.0.1:{places.hub_port}/hub/api/", None, None),
        (f"http://127.0.0.1:{places.proxy_api_port}/api/routes", token, "/"),
        (places.public_url.rstrip("/") + "/hub/api/", None, None),
    ]
    deadline = time.monotonic() + 90.0
    for url, auth, route in steps:
        while not _answers(url, auth, route):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterHub exited with code {proc.returncode}; see its log above"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterHub did not answer at {url} within 90 s")
            time.sleep(0.3)


def banner(partners: Partners, env: dict[str, str], url: str) -> str:
    """What ``make run`` prints once the hub is up."""
    api = service_url(url)
    lines = [
        "",
        f"stream0d hub is up: {url}/hub/login",
        f"  API tokens page:   {api}/tokens",
        f"  API reference:     {api}/docs",
    ]
    places = HubPlaces.from_env(partners, env)
    if places.scheduler:
        lines.append(
            "  Recalibration:     the scheduler runs as a hub service (`stream0d recal runs`)"
        )
    if places.alert_every not in ("", "0"):
        lines.append(
            "  Alerts:            the alert runner runs as a hub service (no-data rules on a "
            f"clock, every {places.alert_every})"
        )
    if places.isolation == "accounts":
        lines.append(
            f"  Isolation:         each user's server runs as its own OS account; the store, "
            f"registry and secrets belong to the platform account {places.platform_account!r}"
        )
    else:
        lines += ["", "  !! " + SINGLE_USER_WARNING, ""]
    if uses_subdomains(url):
        lines.append(
            "  Origins:           each user's server and the API on their own "
            "(<user>.<host>; browsers resolve *.localhost to this machine)"
        )
    if partners.hub.login == "local":
        lines.append("  Demo logins (password for all: " + env["STREAM0D_HUB_DEMO_PASSWORD"] + "):")
        for p in partners.partners:
            for u in p.demo_users:
                lines.append(f"    {u:<8} partner {p.slug} ({p.name}), {p.level.value}")
        for a in partners.hub.admins:
            lines.append(f"    {a:<8} hub admin, password {env['STREAM0D_HUB_ADMIN_PASSWORD']}")
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


def main() -> int:
    """Run the hub in the foreground until Ctrl-C."""
    partners_file = os.environ.get("STREAM0D_PARTNERS", str(CONFIG.with_name("partners.toml")))
    partners = load_partners(partners_file)
    env = hub_environment(partners, dict(os.environ))
    token = env.setdefault("CONFIGPROXY_AUTH_TOKEN", secrets.token_hex(32))
    places = HubPlaces.from_env(partners, env)
    jupyterhub = Path(sys.executable).with_name("jupyterhub")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM/SIGHUP stop the hub like Ctrl-C (finally below)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    # Started in the background by a shell without job control, we inherit SIGINT ignored,
    # and so would the hub and its services: they would then ignore the hub's SIGINT at
    # shutdown and stop only after its timeouts (or, killed, stay behind).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    proc = subprocess.Popen(
        [str(jupyterhub), "-f", str(CONFIG)], env=env, cwd=ROOT, start_new_session=True
    )
    try:
        wait_until_up(places, token, proc)
        print(banner(partners, env, places.public_url.rstrip("/")), flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # anything the hub left behind in its session (proxy, services) goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
