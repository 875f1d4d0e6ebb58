"""Partners kept apart on one machine: people's code reaches data only through the API.

From the attacker's seat: a kernel of a user of partner ``fersa``, spawned through
``make run``'s hub and driven over the kernel websocket as a notebook would be, tries to
reach ``zf``'s data, the registry, the secret key, the hub's state and other processes;
every attempt fails, and the legitimate path (the client, as its owner) still works.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream0d_nb.hub import HubPlaces, hub_config, load_partners
from stream0d_nb.hub.accounts import (
    PLATFORM_ACCOUNT,
    AccountError,
    account_name,
    can_switch_users,
    ensure_account,
    lock_down,
    open_for_traversal,
)
from stream0d_nb.hub.config import (
    ALERTS,
    PLATFORM_SETTINGS,
    SCHEDULER,
    SERVICE,
    prepare_machine,
)
from tests.hub_servers import axe_violations, start_run_hub, stop_run_hub
from tests.servers import REPO_ROOT, free_port
from tests.test_hub import _seeded, run_in_kernel

needs_root = pytest.mark.skipif(not can_switch_users(), reason="switching OS users needs root")
PLATFORM_ENV = (
    *PLATFORM_SETTINGS,
    "CONFIGPROXY_AUTH_TOKEN",
    "STREAM0D_HUB_DEMO_PASSWORD",
    "STREAM0D_HUB_ADMIN_PASSWORD",
)


# ----------------------------------------------------------------------------- configuration


def test_account_names_are_valid_and_collision_free() -> None:
    assert account_name("ana") == "s0d-ana"
    odd = account_name("fersa:alice")
    assert re.fullmatch(r"s0d-fersa-alice-[0-9a-f]{6}", odd)
    assert account_name("fersa-alice") == "s0d-fersa-alice" != odd
    long = account_name("a.very.long.name@partner.example.org")
    assert len(long) <= 32 and re.fullmatch(r"[a-z0-9_-]+", long)
    assert account_name("Ana") != account_name("ana")


def _places(tmp_path: Path, **kw: Any) -> HubPlaces:
    return HubPlaces(state_dir=tmp_path / "hub", home=tmp_path, **kw)


def test_user_servers_get_no_platform_setting(tmp_path: Path) -> None:
    """Whatever the hub's environment holds, users' servers get the API's URL and PATH."""
    partners = load_partners(REPO_ROOT / "hub_config" / "partners.toml")
    env = {k: f"secret-{k}" for k in PLATFORM_ENV} | {"PATH": "/usr/bin"}
    env |= {"STREAM0D_HUB_DEMO_PASSWORD": "pw", "STREAM0D_HUB_ADMIN_PASSWORD": "pw2"}
    for isolation in ("accounts", "single-user"):
        cfg = hub_config(partners, _places(tmp_path, isolation=isolation, scheduler=True), env)
        spawn = cfg["Spawner"]
        assert set(spawn["environment"]) == {"PATH", "STREAM0D_API_URL"}
        assert spawn["env_keep"] == ["LANG", "LC_ALL"]
        assert "--allow-root" not in spawn.get("args", [])
        assert not any("secret" in v for v in spawn["environment"].values())
        services = {s["name"]: s for s in cfg["JupyterHub"]["services"]}
        assert set(services) == {SERVICE, ALERTS, SCHEDULER}
        for s in services.values():  # the platform processes hold the settings
            assert s["environment"]["STREAM0D_SECRET_KEY"] == "secret-STREAM0D_SECRET_KEY"
            assert s.get("user") == (PLATFORM_ACCOUNT if isolation == "accounts" else None)
    assert cfg["JupyterHub"]["spawner_class"].endswith("SimpleLocalProcessSpawner")
    accounts = hub_config(partners, _places(tmp_path), env)
    assert accounts["JupyterHub"]["spawner_class"] == "stream0d_nb.hub.spawner.AccountSpawner"
    assert accounts["AccountSpawner"]["homes_dir"] == str(tmp_path / "hub" / "homes")
    assert services[ALERTS]["command"][-3:] == ["run", "--every", "30s"]


def test_single_user_mode_is_announced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without root: never a silently shared mode. Asked for accounts without root: refused."""
    monkeypatch.setattr("stream0d_nb.hub.config.can_switch_users", lambda: False)
    monkeypatch.delenv("STREAM0D_HUB_ISOLATION", raising=False)
    partners = load_partners(REPO_ROOT / "hub_config" / "partners.toml")
    places = HubPlaces.from_env(partners, {"STREAM0D_HOME": str(tmp_path)})
    assert places.isolation == "single-user"
    with caplog.at_level("WARNING"):
        prepare_machine(places)
    assert "SINGLE-USER MODE" in caplog.text and "never for partners" in caplog.text
    with pytest.raises(PermissionError, match="needs the hub to run as root"):
        prepare_machine(_places(tmp_path, isolation="accounts"))
    with pytest.raises(ValueError, match="expected 'accounts' or 'single-user'"):
        prepare_machine(_places(tmp_path, isolation="shared"))


@needs_root
def test_lock_down_leaves_users_only_the_way_home(tmp_path: Path) -> None:
    home = tmp_path / "var"
    (home / "datasets" / "a").mkdir(parents=True)
    (home / "datasets" / "a" / "chunk").write_bytes(b"x")
    (home / "registry.sqlite").write_bytes(b"db")
    (home / "hub").mkdir()
    (home / "hub" / "demo_password").write_text("pw")
    os.chmod(home / "registry.sqlite", 0o666)
    platform = pwd.getpwnam(PLATFORM_ACCOUNT) if _has(PLATFORM_ACCOUNT) else None
    if platform is None:
        from stream0d_nb.hub.accounts import ensure_platform_account

        platform = ensure_platform_account()
    lock_down(platform, [home], home / "hub" / "homes")
    for p in [home / "datasets", home / "datasets" / "a" / "chunk", home / "registry.sqlite"]:
        st = p.stat()
        assert st.st_uid == platform.pw_uid and stat.S_IMODE(st.st_mode) & 0o077 == 0, p
    for p in (home, home / "hub", home / "hub" / "homes"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o711, p  # search only, no listing
    assert stat.S_IMODE((home / "hub" / "demo_password").stat().st_mode) & 0o077 == 0


def _has(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@needs_root
def test_accounts_are_never_taken_over(tmp_path: Path) -> None:
    """An existing OS account made for something else is refused, not reused."""
    name = "s0d-takeover-test"
    entry = ensure_account(name, tmp_path / name, "stream0d hub user takeover-test")
    try:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o700
        assert (tmp_path / name).stat().st_uid == entry.pw_uid != 0
        with pytest.raises(AccountError, match="was not made for this"):
            ensure_account(name, tmp_path / name, "stream0d hub user somebody-else")
    finally:
        subprocess.run(["userdel", name], check=False)


@needs_root
def test_operator_cli_as_root_acts_as_the_platform_account(tmp_path: Path) -> None:
    """`stream0d` run by root on the hub's store writes as the store's owner."""
    from stream0d_nb.hub.accounts import ensure_platform_account

    platform = ensure_platform_account()
    home = tmp_path / "var"
    home.mkdir()
    os.chown(home, platform.pw_uid, platform.pw_gid)
    open_for_traversal([home])
    env = dict(os.environ) | {"STREAM0D_HOME": str(home)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("stream0d")), "dataset", "create", "cli-line",
         "--interval", "1s", "--channel", "temp=degC"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = [p for p in home.rglob("*")]
    assert made and all(p.stat().st_uid == platform.pw_uid for p in made)
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in made if not p.is_symlink())


# ----------------------------------------------------------------------------- make run's hub

_PROBE = r"""
import glob, json, os, pwd
from pathlib import Path
home = Path(%(home)r)
out = {"uid": os.getuid(), "user": pwd.getpwuid(os.getuid()).pw_name,
       "home": os.environ["HOME"], "home_mode": oct(os.stat(os.environ["HOME"]).st_mode & 0o777),
       "env": sorted(k for k in os.environ if k.startswith(("STREAM0D", "CONFIGPROXY"))),
       "denied": {}, "allowed": {}}
def attempt(name, fn):
    try:
        fn()
        out["allowed"][name] = True
    except PermissionError as e:
        out["denied"][name] = "PermissionError"
    except Exception as e:
        out["allowed"][name] = f"{type(e).__name__}: {e}"
for name, path in %(paths)r.items():
    p = home / path
    attempt("read " + name, (lambda p=p: p.read_bytes()) if not path.endswith("/") else (lambda p=p: os.listdir(p)))
attempt("write zf repository", lambda: (home / "datasets" / "zf-line" / "planted").write_text("x"))
attempt("write registry", lambda: open(home / "registry.sqlite", "r+b").write(b"x"))
attempt("make a file in the hub state", lambda: (home / "hub" / "planted").write_text("x"))
import sqlite3
try:
    sqlite3.connect(f"file:{home / 'registry.sqlite'}?mode=ro", uri=True).execute("select 1 from datasets").fetchall()
    out["allowed"]["sqlite registry"] = True
except sqlite3.Error as e:
    out["denied"]["sqlite registry"] = str(e)
readable, tried = [], 0
for env in glob.glob("/proc/[0-9]*/environ"):
    pid = int(env.split("/")[2])
    try:
        if os.stat(f"/proc/{pid}").st_uid == os.getuid():
            continue
        tried += 1
        if b"STREAM0D" in open(env, "rb").read() or b"JUPYTERHUB_API_TOKEN" in open(env, "rb").read():
            readable.append(pid)
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        pass
out["proc_tried"], out["proc_readable"] = tried, readable
from stream0d_nb.client import Client, NotFoundError
c = Client.from_env()
out["datasets"] = sorted(d.id for d in c.datasets())
out["fersa_values"] = int(c.read("fersa-line", "temp")["temp"].size)
try:
    c.read("zf-line", "temp")
    out["zf"] = "read"
except NotFoundError as e:
    out["zf"] = "404"
print(json.dumps(out))
"""

_PATHS = {
    "zf repository": "datasets/zf-line/",
    "store": "datasets/",
    "registry": "registry.sqlite",
    "secret key": "secret.key",
    "STREAM0D_HOME": "./",
    "hub database": "hub/jupyterhub.sqlite",
    "cookie secret": "hub/jupyterhub_cookie_secret",
    "demo password": "hub/demo_password",
    "admin password": "hub/admin_password",
    "homes": "hub/homes/",
    "zoe's home": "hub/homes/s0d-zoe/",
}


@pytest.fixture(scope="module")
def isolated_hub(hub_workdir: Path) -> Iterator[tuple[str, str, Path]]:
    """``python -m stream0d_nb.hub.run`` (``make run``'s hub) as root, two partners."""
    if not can_switch_users():
        pytest.skip("the isolation model needs the hub to run as root")
    home = _seeded(hub_workdir / "iso", {"fersa-line": "fersa", "zf-line": "zf"}, 60)
    (home / "secret.key").write_text("k" * 44)
    url = f"http://localhost:{free_port()}"  # as make run: every user on their own origin
    proc, banner = start_run_hub(home, url)
    try:
        yield url, banner, home
    finally:
        stop_run_hub(proc)


def user_origin(url: str, user: str) -> str:
    """Where ``user``'s server lives: its own subdomain of the hub's host."""
    return url.replace("://", f"://{user}.", 1)


def _login(browser: Any, url: str, user: str, password: str, next_url: str = "/hub/home") -> Any:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{url}/hub/login?next={next_url}")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    return ctx, page


def _login_and_spawn(browser: Any, url: str, user: str, password: str) -> tuple[Any, Any]:
    ctx, page = _login(browser, url, user, password, "/hub/spawn")
    lab = f"{user_origin(url, user)}/user/{user}/lab"
    page.wait_for_url(re.compile(rf"{re.escape(lab)}.*"), timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    return ctx, page


@pytest.mark.hub
def test_kernel_of_one_partner_reaches_only_the_api(
    browser: Any, isolated_hub: tuple[str, str, Path]
) -> None:
    """ana (fersa) in her own notebook: no file, variable or process of the platform or of
    zoe (zf) is reachable; the client still reads fersa's data and gets 404 for zf's."""
    url, banner, home = isolated_hub
    assert "each user's server runs as its own OS account" in banner, banner[-2000:]
    assert re.search(r"Starting (managed )?service .?stream0d-alerts", banner), banner[-3000:]
    password = re.search(r"password for all: (\S+)\)", banner)
    assert password
    zoe_ctx, _ = _login_and_spawn(browser, url, "zoe", password.group(1))  # a victim running
    ctx, page = _login_and_spawn(browser, url, "ana", password.group(1))
    try:
        # a new user lands on the starter notebook; JupyterLab fetches no news (offline plants)
        assert page.url.endswith("/user/ana/lab/tree/Studio.ipynb"), page.url
        page.wait_for_selector("text=from stream0d_nb.widgets import Studio", timeout=60_000)
        config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
        assert config["news"] == {"disabled": True}, config.get("news")
        code = _PROBE % {"home": str(home), "paths": _PATHS}
        raw = run_in_kernel(page, f"{user_origin(url, 'ana')}/user/ana", code)
        result = json.loads(raw.strip().splitlines()[-1])
    finally:
        ctx.close()
        zoe_ctx.close()
    ana = pwd.getpwnam("s0d-ana")
    assert (result["uid"], result["user"]) == (ana.pw_uid, "s0d-ana") and ana.pw_uid != 0
    assert result["home"] == str(home / "hub" / "homes" / "s0d-ana")
    assert result["home_mode"] == "0o700"
    starter = home / "hub" / "homes" / "s0d-ana" / "Studio.ipynb"
    assert starter.stat().st_uid == ana.pw_uid and stat.S_IMODE(starter.stat().st_mode) == 0o600
    # the API's URL and the server's own API token (listed on ana's tokens page)
    assert result["env"] == ["STREAM0D_API_TOKEN", "STREAM0D_API_URL"], result["env"]
    assert result["allowed"] == {}, result["allowed"]
    expected = {f"read {n}" for n in _PATHS} | {
        "write zf repository",
        "write registry",
        "make a file in the hub state",
    }
    assert {k for k, v in result["denied"].items() if v == "PermissionError"} == expected
    assert "unable to open" in result["denied"]["sqlite registry"]
    assert result["proc_tried"] > 5 and result["proc_readable"] == []
    # positive controls: the API path works, as ana
    assert result["datasets"] == ["fersa-line"] and result["fersa_values"] == 60
    assert result["zf"] == "404"
    # nothing was planted, and the platform's files are the platform account's
    assert not (home / "datasets" / "zf-line" / "planted").exists()
    assert not (home / "hub" / "planted").exists()
    platform = pwd.getpwnam(PLATFORM_ACCOUNT)
    for p in (home / "registry.sqlite", home / "secret.key", home / "hub" / "demo_password"):
        st = p.stat()
        assert st.st_uid == platform.pw_uid and stat.S_IMODE(st.st_mode) & 0o077 == 0, p


@needs_root
@pytest.mark.hub
def test_a_hub_without_root_announces_single_user_mode(hub_workdir: Path) -> None:
    """make run's hub started by an ordinary OS user: it says, in the banner and its log,
    that every user's code runs as that user; the API still answers."""
    home = hub_workdir / "nonroot" / "var"
    home.parent.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(home.parent, nobody.pw_uid, nobody.pw_gid)
    open_for_traversal([home.parent])
    proc, banner = start_run_hub(home, f"http://127.0.0.1:{free_port()}", as_user="nobody")
    try:
        assert "!! SINGLE-USER MODE: the hub is not root" in banner
        assert "never for partners" in banner and "own OS account" not in banner
        assert home.stat().st_uid == nobody.pw_uid  # nothing was handed to another account
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


# ----------------------------------------------------------------------------- Kubernetes


def _env_names(env: dict[str, Any]) -> dict[str, str]:
    """``{name: value or 'secret:<key>'}`` of a values file's extraEnv."""
    return {
        k: v if isinstance(v, str) else "secret:" + v["valueFrom"]["secretKeyRef"]["key"]
        for k, v in env.items()
    }


def test_z2jh_users_pods_carry_no_platform_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each kind of pod, as the values file renders it: the hub pod (and the services the
    hub starts in it) hold the secrets; users' pods only the API's URL, and their network
    reaches only the hub, the API and the proxy."""
    import yaml
    from traitlets.config import Config

    values = yaml.safe_load((REPO_ROOT / "hub_config" / "z2jh-values.yaml").read_text())
    hub_env = _env_names(values["hub"]["extraEnv"])
    for name, key in {
        "STREAM0D_DATABASE_URL": "database-url",
        "STREAM0D_AZURE_KEY": "azure-key",
        "STREAM0D_SECRET_KEY": "secret-key",
    }.items():
        assert hub_env[name] == f"secret:{key}"  # from the Kubernetes secret, never the file
    user_env = _env_names(values["singleuser"]["extraEnv"])
    assert user_env == {"STREAM0D_API_URL": "http://hub:10101/services/stream0d"}
    assert not any(v.startswith("secret:") for v in user_env.values())
    assert "extraFiles" not in values["singleuser"] and "initContainers" not in values["singleuser"]
    # the services the hub starts get the platform's settings from the hub pod's env
    partners = tmp_path / "partners.toml"
    partners.write_text(values["hub"]["extraFiles"]["partners"]["stringData"])
    for name, value in hub_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STREAM0D_PARTNERS", str(partners))
    c = Config()
    exec(values["hub"]["extraConfig"]["00-stream0d"], {"c": c})
    assert c.JupyterHub.subdomain_host == "https://stream0d.example.org"  # one origin each
    assert "*.stream0d.example.org" in values["proxy"]["https"]["hosts"]
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == {SERVICE, ALERTS, SCHEDULER}
    for s in services.values():
        assert s["environment"]["STREAM0D_SECRET_KEY"] == "secret:secret-key"
        assert s["environment"]["STREAM0D_DATABASE_URL"] == "secret:database-url"
    # users' env is the chart's alone; the hub adds the server's own API token at spawn
    assert set(c.Spawner) == {"pre_spawn_hook", "post_stop_hook"} and "KubeSpawner" not in c
    # users' pods: no Internet, metadata or private addresses; the hub's ports and the proxy
    policy = values["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True
    assert not any(
        v for k, v in policy["egressAllowRules"].items() if k != "dnsPortsKubeSystemNamespace"
    )
    allowed = {
        (rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"], p["port"])
        for rule in policy["egress"]
        for p in rule["ports"]
    }
    assert allowed == {("hub", 8081), ("hub", 10101), ("proxy", 8000)}
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is True
    ingress = values["hub"]["networkPolicy"]["ingress"][0]
    assert [p["port"] for p in ingress["ports"]] == [10101]
    assert {
        f["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for f in ingress["from"]
    } == {
        "proxy",
        "singleuser-server",
    }


# ----------------------------------------------------------------------------- one origin each

_ATTACK_JS = """async ([api]) => {
  const out = {};
  const attempt = async (name, url, opts) => {
    try {
      const r = await fetch(url, opts);
      out[name] = {status: r.status, type: r.type, body: (await r.text()).slice(0, 300)};
    } catch (e) { out[name] = {error: String(e)}; }
  };
  const creds = {credentials: "include"};
  await attempt("datasets", api + "/api/datasets", creds);
  await attempt("tokens page", api + "/tokens", creds);
  await attempt("login", api + "/login", creds);
  await attempt("datasets here", "/services/stream0d/api/datasets", creds);
  await attempt("tokens page here", "/services/stream0d/tokens", creds);
  await attempt("mint", api + "/api/tokens", {method: "POST", mode: "no-cors", credentials: "include",
    headers: {"Content-Type": "text/plain"}, body: JSON.stringify({note: "stolen", level: "write"})});
  const frame = document.createElement("iframe");
  frame.src = api + "/tokens";
  document.body.appendChild(frame);
  await new Promise((r) => setTimeout(r, 3000));
  try { out.frame = frame.contentDocument ? frame.contentDocument.body.innerText.slice(0, 300) : "no access"; }
  catch (e) { out.frame = "error: " + e; }
  const popup = window.open(api + "/tokens", "_blank");
  await new Promise((r) => setTimeout(r, 3000));
  try { out.popup = popup && popup.document ? popup.document.body.innerText.slice(0, 300) : "no access"; }
  catch (e) { out.popup = "error: " + e; }
  if (popup) popup.close();
  out.cookies = document.cookie;
  return out;
}"""


EVIL_PAGE = "<!doctype html><html lang='en'><title>report</title><main>report</main></html>"


def _assert_nothing_obtained(out: dict[str, Any]) -> None:
    """What ``_ATTACK_JS`` got: no answer of the API, nothing minted, framed or opened."""
    for name in ("datasets", "tokens page", "login", "datasets here", "tokens page here"):
        got = out[name]
        assert "error" in got or ("-line" not in got["body"] and "s0d_" not in got["body"]), (
            name,
            got,
        )
    # sent blind at most (an opaque answer); the tokens page shows that nothing was minted
    assert "error" in out["mint"] or out["mint"] == {"status": 0, "type": "opaque", "body": ""}
    assert out["frame"] in ("no access", "") or out["frame"].startswith("error"), out["frame"]
    assert out["popup"] == "no access" or out["popup"].startswith("error"), out["popup"]


def _tokens_listed(page: Any, api: str) -> str:
    """The text of the tokens table on the API's page, once its script has filled it."""
    page.goto(f"{api}/tokens")
    page.wait_for_selector("#tokens tr")
    return str(page.text_content("#tokens"))


def _hub_post(page: Any, url: str, path: str, data: Any) -> Any:
    """POST to the hub's REST API from a logged-in page (hub session + XSRF)."""
    page.goto(f"{url}/hub/home")
    xsrf = next(c["value"] for c in page.context.cookies(f"{url}/hub/") if c["name"] == "_xsrf")
    return page.request.post(f"{url}{path}", data=data, headers={"X-XSRFToken": xsrf})


@pytest.mark.hub
def test_a_users_page_obtains_no_credential_of_its_visitor(
    browser: Any, isolated_hub: tuple[str, str, Path]
) -> None:
    """ana shares her server within fersa (marco) and cannot share it with zf (zoe, by user,
    group or share code). A script in a page of ana's server, run in zoe's or marco's
    browser while they are logged in to the API's pages, can read, mint or frame nothing
    of the API; their own pages on the API's origin still work."""
    from stream0d_nb.hub.config import service_url
    from stream0d_nb.hub.sharing import PARTNER_ONLY

    url, banner, _ = isolated_hub
    api = service_url(url)
    assert api.startswith("http://stream0d--service.localhost:") and f"{api}/tokens" in banner
    password = re.search(r"password for all: (\S+)\)", banner)
    assert password
    ana_ctx, ana = _login_and_spawn(browser, url, "ana", password.group(1))
    try:
        for target in ({"user": "zoe"}, {"group": "zf"}):
            r = _hub_post(ana, url, "/hub/api/shares/ana/", target)
            assert r.status == 403 and PARTNER_ONLY in r.text(), r.text()
        code = _hub_post(ana, url, "/hub/api/share-codes/ana/", {}).json()["code"]
        r = _hub_post(ana, url, "/hub/api/shares/ana/", {"user": "marco"})
        assert r.status == 200, r.text()  # positive control: within the partner
    finally:
        ana_ctx.close()
    zoe_ctx, zoe = _login(browser, url, "zoe", password.group(1))
    try:
        r = _hub_post(zoe, url, f"/hub/accept-share?code={code}", {"code": code})
        assert r.status == 403 and PARTNER_ONLY in r.text()
        r = zoe.goto(f"{user_origin(url, 'ana')}/user/ana/api/contents")
        assert r is not None and r.status == 403, (r and r.status, zoe.url)
        assert '"type": "directory"' not in zoe.content()
        # Were a page of ana's origin ever opened by zoe (e.g. a share made before the rule),
        # its script would still get nothing of zoe's: the browser serves it one here.
        zoe.goto(f"{api}/tokens")
        zoe.wait_for_selector("#groups")
        evil = f"{user_origin(url, 'ana')}/user/ana/files/evil.html"
        zoe.route(evil, lambda route: route.fulfill(content_type="text/html", body=EVIL_PAGE))
        zoe.goto(evil)
        _assert_nothing_obtained(zoe.evaluate(_ATTACK_JS, [api]))
        assert "stolen" not in _tokens_listed(zoe, api)
    finally:
        zoe_ctx.close()
    marco_ctx, marco = _login(browser, url, "marco", password.group(1), "/hub/home")
    try:
        marco.goto(f"{api}/tokens")  # marco is logged in to the API's pages...
        marco.wait_for_selector("#groups")
        assert marco.text_content("#groups") == "fersa"
        own = marco.evaluate("() => fetch('api/datasets').then((r) => r.json())")
        assert [d["id"] for d in own] == ["fersa-line"]  # positive control, on its own origin
        marco.goto(f"{user_origin(url, 'ana')}/user/ana/lab")  # ...then opens ana's server
        authorize = marco.locator("button[type=submit]:has-text('Authorize')")
        if authorize.count():
            authorize.click()
        marco.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
        _assert_nothing_obtained(marco.evaluate(_ATTACK_JS, [api]))
        assert "stolen" not in _tokens_listed(marco, api)  # nothing was minted for marco
        assert axe_violations(marco) == []
        # logging out on the API's origin ends the hub session on the hub's own origin too
        marco.click("#session-logout")
        marco.wait_for_url(re.compile(rf"{re.escape(url)}/hub/(login|logout).*"))
        deadline = time.monotonic() + 30
        while True:
            marco.goto(f"{api}/tokens")
            if "/hub/login" in marco.url:
                break
            assert time.monotonic() < deadline, marco.url
            time.sleep(0.5)
    finally:
        marco_ctx.close()
