"""The hub: partners file, generated config, and end to end with real parts.

End to end: a node ``oidc-provider`` (users in two partners and one in none), JupyterHub
with configurable-http-proxy and the API as a managed service, and headless Chromium
driving the login, the tokens page and attacks on the browser session; the token made in
the browser is then used from Python with ``stream0d_nb.client.Client``.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from stream0d_nb.access import Level
from stream0d_nb.api import session
from stream0d_nb.client import AuthenticationError, Client, NotFoundError, PermissionDeniedError
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.hub import HubPlaces, PartnersFileError, hub_config, load_partners, role_scopes
from stream0d_nb.hub.partners import Partners
from stream0d_nb.hub.resolver import HubGroupResolver
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from tests.hub_servers import (
    CLIENT_SECRET,
    IDP_USERS,
    Hub,
    NodeIdP,
    shared_partners_toml,
    start_hub,
    start_idp,
    start_run_hub,
)
from tests.servers import REPO_ROOT, ServerUnavailable, free_port

ENV = {"TEST_SSO_SECRET": CLIENT_SECRET, "PATH": "/usr/bin:/bin"}


# ----------------------------------------------------------------------------- partners file


def test_shipped_partners_files_load() -> None:
    local = load_partners(REPO_ROOT / "hub_config" / "partners.toml")
    assert local.hub.login == "local"
    assert {p.slug for p in local.partners} >= {"fersa", "zf"}
    assert all(p.demo_users for p in local.partners)
    example = load_partners(REPO_ROOT / "hub_config" / "partners.example.toml")
    assert example.hub.login == "shared"
    assert example.partner("zf").level is Level.READ


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[partners]]\nslug='A B'\nname='x'", "partners.0.slug"),
        ("[[partners]]\nslug='fersa-east'\nname='x'", "must not contain '-'"),
        ("[[partners]]\nslug='a'\nname='x'\n[[partners]]\nslug='a'\nname='y'", "appear twice"),
        ("[hub]\nlogin='shared'\n[[partners]]\nslug='a'\nname='x'", "needs a [hub.shared]"),
        (
            "[hub]\nlogin='per-partner'\n[[partners]]\nslug='a'\nname='x'",
            "no [partners.login] for a",
        ),
        ("[[partners]]\nslug='a'\nname='x'\ncolour='red'", "partners.0.colour"),
        ("[[partners]]\nslug='a'\nname='x'\nlevel='root'", "partners.0.level"),
        ("[[partners]\n", "not valid TOML"),
    ],
)
def test_partners_file_errors_name_file_and_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "partners.toml"
    path.write_text(text)
    with pytest.raises(PartnersFileError) as err:
        load_partners(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_missing_partners_file(tmp_path: Path) -> None:
    with pytest.raises(PartnersFileError, match="not found"):
        load_partners(tmp_path / "nope.toml")


# ----------------------------------------------------------------------------- generated config


def _places(tmp_path: Path, **kw: Any) -> HubPlaces:
    return HubPlaces(state_dir=tmp_path / "hub", node_bin=REPO_ROOT / "node_modules" / ".bin", **kw)


def _shared(tmp_path: Path) -> Partners:
    path = tmp_path / "p.toml"
    idp = NodeIdP(9999, None, tmp_path)  # type: ignore[arg-type]
    path.write_text(shared_partners_toml(idp).replace("{HUB_URL}", "http://127.0.0.1:8000"))
    return load_partners(path)


def test_shared_provider_config(tmp_path: Path) -> None:
    cfg = hub_config(_shared(tmp_path), _places(tmp_path), ENV)
    assert cfg["JupyterHub"]["authenticator_class"] == "generic-oauth"
    auth = cfg["GenericOAuthenticator"]
    assert auth["manage_groups"] is True
    assert auth["auth_state_groups_key"] == "oauth_user.groups"
    assert auth["allowed_groups"] == {"fersa", "zf"}
    assert auth["client_secret"] == CLIENT_SECRET  # from the named env variable
    roles = {r["name"]: r for r in cfg["JupyterHub"]["load_roles"]}
    assert roles["stream0d-fersa"]["scopes"][0] == "custom:stream0d:write"
    assert roles["stream0d-fersa"]["groups"] == ["fersa"]
    # servers' hub tokens carry no stream0d scope: notebooks get their own API token
    assert roles["server"]["scopes"] == ["users:activity!user", "access:servers!server"]
    assert cfg["Spawner"]["pre_spawn_hook"].__name__ == "pre_spawn"
    assert cfg["Spawner"]["post_stop_hook"].__name__ == "post_stop"
    service, alerts = cfg["JupyterHub"]["services"]  # the scheduler only when asked for
    assert service["name"] == "stream0d" and service["url"].startswith("http://127.0.0.1:")
    assert alerts["name"] == "stream0d-alerts" and "url" not in alerts
    # loopback only, everywhere
    text = repr(cfg)
    assert "0.0.0.0" not in text
    assert cfg["Spawner"]["ip"] == "127.0.0.1"


def test_shared_provider_secret_must_be_set(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="TEST_SSO_SECRET"):
        hub_config(_shared(tmp_path), _places(tmp_path), {"PATH": "/bin"})


def test_local_login_config(tmp_path: Path) -> None:
    partners = load_partners(REPO_ROOT / "hub_config" / "partners.toml")
    env = {"STREAM0D_HUB_DEMO_PASSWORD": "demo-password", "STREAM0D_HUB_ADMIN_PASSWORD": "x" * 32}
    cfg = hub_config(partners, _places(tmp_path), env)
    assert cfg["JupyterHub"]["authenticator_class"] == "shared-password"
    assert cfg["JupyterHub"]["load_groups"]["fersa"] == {"users": ["ana", "marco"]}
    assert cfg["SharedPasswordAuthenticator"]["allowed_users"] >= {"ana", "zoe", "ops"}
    assert cfg["SharedPasswordAuthenticator"]["admin_users"] == {"ops"}


def test_per_partner_providers_through_multiauthenticator(tmp_path: Path) -> None:
    """Each partner's own provider puts its users into that partner's group."""
    from multiauthenticator import MultiAuthenticator
    from traitlets.config import Config

    path = tmp_path / "p.toml"
    path.write_text(
        """
[hub]
login = "per-partner"
[[partners]]
slug = "fersa"
name = "FERSA"
[partners.login]
kind = "azuread"
label = "FERSA Entra"
tenant_id = "t-1"
client_id = "c-1"
client_secret_env = "FERSA_SECRET"
[[partners]]
slug = "zf"
name = "ZF"
[partners.login]
kind = "oidc"
label = "ZF SSO"
authorize_url = "http://127.0.0.1:1/auth"
token_url = "http://127.0.0.1:1/token"
userdata_url = "http://127.0.0.1:1/me"
client_id = "c-2"
client_secret_env = "ZF_SECRET"
"""
    )
    cfg = hub_config(
        load_partners(path), _places(tmp_path), {"FERSA_SECRET": "s1", "ZF_SECRET": "s2"}
    )
    assert cfg["JupyterHub"]["authenticator_class"] == "multiauthenticator"
    c = Config()
    for key, value in cfg["MultiAuthenticator"].items():
        setattr(c.MultiAuthenticator, key, value)
    auth = MultiAuthenticator(config=c)
    subs = auth._authenticators
    from oauthenticator.azuread import AzureAdOAuthenticator
    from oauthenticator.generic import GenericOAuthenticator

    assert isinstance(subs[0], AzureAdOAuthenticator)
    assert isinstance(subs[1], GenericOAuthenticator)
    assert [a.username_prefix for a in subs] == ["fersa:", "zf:"]
    assert [a.login_url("/hub/") for a in subs] == ["/hub/fersa/oauth_login", "/hub/zf/oauth_login"]
    assert subs[0].oauth_callback_url == "http://127.0.0.1:8000/hub/fersa/oauth_callback"
    assert subs[0].auth_state_groups_key({"user": {}}) == ["fersa"]
    assert subs[1].auth_state_groups_key({"oauth_user": {"groups": ["zf", "x"]}}) == ["zf"]
    assert subs[1].manage_groups and auth.manage_groups


def test_resolver_scopes_from_roles(tmp_path: Path) -> None:
    partners = _shared(tmp_path)
    resolver = HubGroupResolver("http://127.0.0.1:1/hub/api", "t", role_scopes(partners))
    try:
        info = resolver.info(
            {"name": "alice", "groups": ["fersa"], "roles": ["user"], "admin": False}
        )
        assert info.groups == {"fersa"} and info.scopes == {"custom:stream0d:write"}
        nobody = resolver.info({"name": "m", "groups": ["elsewhere"], "roles": ["user"]})
        assert nobody.scopes == frozenset()
    finally:
        resolver.close()


def test_xsrf_token_is_bound_to_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM0D_COOKIE_SECRET", "s3cret")
    t = session.xsrf_token("session-a")
    assert session.xsrf_ok("session-a", t)
    assert not session.xsrf_ok("session-b", t)
    assert not session.xsrf_ok("session-a", None)
    assert not session.xsrf_ok("session-a", t[:-1] + ("0" if t[-1] != "0" else "1"))


def test_session_cookie_is_sealed_by_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what the service's OAuth callback sealed is a session: a raw hub token, another
    service's seal, a changed expiry or an expired seal are not."""
    monkeypatch.setenv("STREAM0D_COOKIE_SECRET", "s3cret")
    hub_token = "0123456789abcdef0123456789abcdef"
    later = int(time.time()) + 600
    sealed = session.seal(hub_token, later)
    opened = session.unseal(sealed)
    assert opened is not None and opened.token == hub_token and opened.expires == later
    assert hub_token not in repr(opened)
    token, expires, mac = sealed.split(".")
    for value in (
        hub_token,
        "",
        None,
        f"{token}.{later + 9999}.{mac}",
        f"{token}x.{expires}.{mac}",
    ):
        assert session.unseal(value) is None, value
    assert session.unseal(session.seal(hub_token, int(time.time()) - 1)) is None
    monkeypatch.setenv("STREAM0D_COOKIE_SECRET", "other")
    assert session.unseal(sealed) is None


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/services/stream0d/tokens", "/services/stream0d/tokens"),
        ("https://evil.example/", "/services/stream0d/"),
        ("//evil.example/services/stream0d/", "/services/stream0d/"),
        ("/hub/admin", "/services/stream0d/"),
        (None, "/services/stream0d/"),
    ],
)
def test_safe_next_refuses_open_redirects(next_url: str | None, expected: str) -> None:
    assert session.safe_next("/services/stream0d/", next_url) == expected


# ----------------------------------------------------------------------------- end to end


def _dataset(ds: str, partner: str) -> DatasetSpec:
    return DatasetSpec(
        id=ds, interval="1s", partner=partner, channels=[ChannelSpec(name="temp", units="degC")]
    )


def _seeded(home: Path, datasets: dict[str, str], seconds: int) -> Path:
    """``home`` with a store holding ``datasets`` (id -> partner), ``seconds`` of 1 Hz data each."""
    home.mkdir()
    idx = pd.date_range("2024-05-01", periods=seconds, freq="1s", tz="UTC")
    with Store(Settings(home=home)) as store:
        for ds, partner in datasets.items():
            store.create_dataset(_dataset(ds, partner), actor="setup")
            if seconds:
                frame = pd.DataFrame({"temp": np.arange(float(seconds))}, index=idx)
                store.write(ds, frame, actor="setup")
    return home


@pytest.fixture(scope="module")
def hub(hub_workdir: Path) -> Iterator[Hub]:
    """IdP + hub (shared provider) + API service on a store with two partners' datasets."""
    home = _seeded(hub_workdir / "shared", {"fersa-grinding": "fersa", "zf-extrusion": "zf"}, 120)
    with Store(Settings(home=home)) as store:
        AccessRegistry(store.registry).grant("zf-extrusion", "group", "fersa", "viewer", "setup")
    port = free_port()
    try:
        idp = start_idp(IDP_USERS, [f"http://127.0.0.1:{port}/hub/oauth_callback"], hub_workdir)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        the_hub = start_hub(shared_partners_toml(idp), home, port, ENV)
        try:
            yield the_hub
        finally:
            the_hub.stop()
    finally:
        idp.stop()


def login(browser: Any, hub: Hub, user: str) -> tuple[Any, Any]:
    """A browser context of ``user``, logged in through the IdP, on the tokens page."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{hub.service_url}/tokens")
    page.click("text=Sign in with Partner SSO")
    page.wait_for_selector("#login")
    assert page.url.startswith("http://127.0.0.1:") and "/interaction/" in page.url
    page.fill("#login", user)
    page.fill("#password", IDP_USERS[user]["password"])
    page.click("#submit")
    return ctx, page


def create_token(page: Any, note: str, level: str = "read", **extra: str) -> str:
    page.fill("#note", note)
    page.select_option("#level", level)
    for field_id, value in extra.items():
        page.fill(f"#{field_id}", value)
    page.click("#submit")
    page.wait_for_selector("#secret:not(:empty)")
    token: str = page.text_content("#secret")
    return token


@pytest.fixture(scope="module")
def alice(browser: Any, hub: Hub) -> Iterator[Any]:
    ctx, page = login(browser, hub, "alice")
    page.wait_for_url(f"{hub.service_url}/tokens")
    try:
        yield page
    finally:
        ctx.close()


@pytest.mark.hub
def test_login_token_in_browser_then_client(hub: Hub, alice: Any) -> None:
    assert alice.text_content("#user") == "alice"
    assert alice.text_content("#groups") == "fersa"  # the IdP's groups claim became the group
    token = create_token(alice, "notebook on my laptop", "read")
    assert re.fullmatch(r"s0d_\w+_\S+", token)
    with Store(Settings(home=hub.home)) as store:  # audited: who, and from a browser session
        (entry,) = store.registry.audit_log(action="token.create", limit=1)
        assert entry.actor == "alice" and entry.via == "session"
        assert entry.detail["id"] == token.split("_")[1]
    assert alice.locator("#tokens tr").count() >= 1
    with Client(hub.service_url, token) as client:
        ids = {d.id for d in client.datasets()}
        assert ids == {"fersa-grinding", "zf-extrusion"}  # own partner's + shared with fersa
        data = client.read("fersa-grinding", start="2024-05-01", end="2024-05-01T00:01")
        assert data["temp"].values.tolist() == list(np.arange(60.0))
        before = len(client.history("fersa-grinding"))
        with pytest.raises(PermissionDeniedError):  # a read token never writes
            client.ingest(
                "fersa-grinding",
                pd.DataFrame({"temp": [1.0]}, index=pd.DatetimeIndex(["2024-05-02"], tz="UTC")),
            )
        assert len(client.history("fersa-grinding")) == before


@pytest.mark.hub
def test_partners_are_kept_apart(browser: Any, hub: Hub) -> None:
    ctx, page = login(browser, hub, "bob")
    try:
        page.wait_for_url(f"{hub.service_url}/tokens")
        assert page.text_content("#groups") == "zf"
        token = create_token(page, "bob's script", "write")
    finally:
        ctx.close()
    with Client(hub.service_url, token) as client:
        assert {d.id for d in client.datasets()} == {"zf-extrusion"}
        with pytest.raises(NotFoundError) as hidden:
            client.dataset("fersa-grinding")
        with pytest.raises(NotFoundError) as missing:
            client.dataset("no-such-dataset")
        assert str(hidden.value).replace("fersa-grinding", "X") == str(missing.value).replace(
            "no-such-dataset", "X"
        )


@pytest.mark.hub
def test_user_of_no_partner_cannot_log_in(browser: Any, hub: Hub) -> None:
    ctx, page = login(browser, hub, "mallory")
    try:
        page.wait_for_load_state("networkidle")
        assert not page.url.startswith(f"{hub.service_url}/tokens")
        assert "403" in (page.text_content("body") or "")
        assert ctx.cookies(hub.service_url + "/") == [] or all(
            c["name"] != "service-stream0d" for c in ctx.cookies(hub.service_url + "/")
        )
    finally:
        ctx.close()


@pytest.mark.hub
def test_cookie_post_needs_the_xsrf_token(hub: Hub, alice: Any) -> None:
    api = f"{hub.service_url}/api/tokens"
    count = len(alice.request.get(api).json())
    body = {"level": "read", "expires_at": "2099-01-01T00:00:00Z", "note": "forged"}
    for headers in ({}, {"X-XSRFToken": "0" * 64}):
        r = alice.request.post(api, data=body, headers=headers)
        assert r.status == 403, r.text()
        assert "X-XSRFToken" in r.json()["error"]["message"]
    assert len(alice.request.get(api).json()) == count  # nothing was created


@pytest.mark.hub
def test_oauth_callback_with_a_wrong_state(browser: Any, hub: Hub) -> None:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        r = page.goto(f"{hub.service_url}/oauth_callback?code=stolen-code&state=forged-state")
        assert r is not None and r.status == 403
        assert "state does not match" in (page.text_content("#message") or "")
        assert not any(c["name"] == "service-stream0d" for c in ctx.cookies())
    finally:
        ctx.close()


@pytest.mark.hub
def test_tokens_cannot_make_tokens_or_exceed_rights(hub: Hub, alice: Any) -> None:
    token = create_token(alice, "for the attack test", "write")
    body = {"level": "read", "expires_at": "2099-01-01T00:00:00Z", "note": "x"}
    r = httpx.post(
        f"{hub.service_url}/api/tokens", json=body, headers={"Authorization": f"token {token}"}
    )
    assert r.status_code == 403
    r = httpx.get(f"{hub.service_url}/api/datasets?token={token}")
    assert r.status_code == 401 and "URL" in r.json()["error"]["message"]
    # alice (fersa, write) may not mint an admin token: the page shows why
    n = alice.locator("#tokens tr").count()
    assert alice.locator("#level option").all_text_contents() == ["read", "write"]
    alice.evaluate("document.getElementById('level').add(new Option('admin'))")  # forged
    alice.fill("#note", "too strong")
    alice.select_option("#level", "admin")
    alice.click("#submit")
    alice.wait_for_selector("#error:not(:empty)")
    assert "may not create a admin token" in (alice.text_content("#error") or "")
    assert alice.locator("#tokens tr").count() == n


@pytest.mark.hub
def test_revoke_in_browser(hub: Hub, alice: Any) -> None:
    token = create_token(alice, "short-lived", "read")
    token_id = token.split("_")[1]
    with Client(hub.service_url, token) as client:
        assert client.datasets()
        alice.click(f"#tokens tr[data-id='{token_id}'] button.revoke")
        alice.wait_for_selector(f"#tokens tr[data-id='{token_id}'] td:text-is('revoked')")
        with pytest.raises(AuthenticationError):
            client.datasets()


@pytest.mark.hub
def test_openapi_reference_is_served(hub: Hub) -> None:
    r = httpx.get(f"{hub.service_url}/openapi.json")
    assert r.status_code == 200 and "/api/datasets" in r.json()["paths"]


# ----------------------------------------------------------------------------- one kind of credential

SESSION_COOKIE = "service-stream0d"


def hub_xsrf(page: Any, hub: Hub) -> str:
    """The hub's XSRF token of the page's hub session (for hub REST calls from the browser)."""
    page.goto(f"{hub.url}/hub/home")
    xsrf: str = next(
        c["value"] for c in page.context.cookies(f"{hub.url}/hub/") if c["name"] == "_xsrf"
    )
    return xsrf


def api_get(hub: Hub, path: str, token: str | None = None, cookie: str | None = None) -> Any:
    headers = {"Authorization": f"token {token}"} if token else {}
    if cookie:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    return httpx.get(f"{hub.service_url}/api/{path}", headers=headers, timeout=30)


@pytest.mark.hub
def test_hub_tokens_are_refused_by_the_api(hub: Hub, alice: Any) -> None:
    """A personal hub token (made at /hub/token) and one minted by it work on the hub but
    not on the API, neither in the header nor pasted into the session cookie."""
    page = alice.context.new_page()
    try:
        xsrf = hub_xsrf(page, hub)
        r = page.request.post(
            f"{hub.url}/hub/api/users/alice/tokens",
            data={"note": "personal, as from /hub/token"},
            headers={"X-XSRFToken": xsrf},
        )
        assert r.status == 201, r.text()
        personal = r.json()["token"]
    finally:
        page.close()
    r = httpx.post(
        f"{hub.url}/hub/api/users/alice/tokens",
        json={"note": "minted by a token"},
        headers={"Authorization": f"token {personal}"},
    )
    assert r.status_code == 201, r.text
    minted = r.json()["token"]
    for token in (personal, minted):
        # positive control: the hub takes it for alice
        r = httpx.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"})
        assert r.status_code == 200 and r.json()["name"] == "alice"
        for scheme in ("token", "Bearer"):
            r = httpx.get(
                f"{hub.service_url}/api/datasets", headers={"Authorization": f"{scheme} {token}"}
            )
            assert r.status_code == 401, r.text
            message = r.json()["error"]["message"]
            assert "hub tokens" in message and "/services/stream0d/tokens" in message
        r = api_get(hub, "datasets", cookie=token)  # not sealed by the service's login
        assert r.status_code == 401 and "log in again" in r.json()["error"]["message"]
        r = httpx.get(f"{hub.service_url}/tokens", cookies={SESSION_COOKIE: token})
        assert r.status_code == 302 and "/login" in r.headers["location"]
    # positive control: alice's own browser session works
    cookie = next(c["value"] for c in alice.context.cookies() if c["name"] == SESSION_COOKIE)
    assert api_get(hub, "whoami", cookie=cookie).json()["user"] == "alice"


def _kernel_lines(page: Any, hub: Hub, user: str, code: str) -> list[str]:
    return run_in_kernel(page, f"{hub.url}/user/{user}", code).strip().splitlines()


def _server(page: Any, hub: Hub, user: str, xsrf: str, start: bool) -> None:
    """Start or stop ``user``'s server through the hub's REST API, and wait for it."""
    url = f"{hub.url}/hub/api/users/{user}/server"
    headers = {"X-XSRFToken": xsrf}
    r = (
        page.request.post(url, headers=headers)
        if start
        else page.request.delete(url, headers=headers)
    )
    # the test hub answers a start at once, pending (202), and a stop once it is done (204):
    # see its spawn and stop timeouts in tests.hub_servers.start_hub
    assert r.status == (202 if start else 204), r.text()
    deadline = time.monotonic() + 120
    while True:
        model = page.request.get(f"{hub.url}/hub/api/users/{user}", headers=headers).json()
        server = model.get("servers", {}).get("")
        if (server is not None and server.get("ready")) if start else server is None:
            return
        assert time.monotonic() < deadline, model
        time.sleep(0.5)


_FROM_ENV = """import os
from stream0d_nb.client import Client
print(os.environ["STREAM0D_API_TOKEN"])
try:
    print(sorted(d.id for d in Client.from_env().datasets()))
except Exception as e:
    print(type(e).__name__, e)
"""


@pytest.mark.hub
def test_notebook_server_gets_its_own_api_token(browser: Any, hub: Hub) -> None:
    """The hub gives carol's server an API token of hers: a kernel reads her datasets with
    it, it is on her tokens page, revoking it there cuts the kernel off, and stopping the
    server revokes the next one."""
    ctx, page = login(browser, hub, "carol")
    try:
        page.wait_for_url(f"{hub.service_url}/tokens")
        hub_page = ctx.new_page()
        xsrf = hub_xsrf(hub_page, hub)
        _server(hub_page, hub, "carol", xsrf, start=True)
        token, listed = _kernel_lines(page, hub, "carol", _FROM_ENV)
        assert token.startswith("s0d_")
        assert listed == "['fersa-grinding', 'zf-extrusion']"  # fersa's and shared with fersa
        who = api_get(hub, "whoami", token).json()
        assert who["user"] == "carol"
        # on carol's tokens page, with its note and a week's expiry
        token_id = token.split("_")[1]
        page.goto(f"{hub.service_url}/tokens")
        row = page.locator(f"#tokens tr[data-id='{token_id}']")
        row.wait_for()
        cells = row.locator("td").all_text_contents()
        assert cells[1] == "notebook server carol/" and cells[5] == "active"
        expires = pd.Timestamp(cells[4])
        assert pd.Timedelta(days=6.9) < expires - pd.Timestamp.now(tz="UTC") <= pd.Timedelta(days=7)
        # revoked on the page: the kernel's next call is refused
        row.locator("button.revoke").click()
        page.wait_for_selector(f"#tokens tr[data-id='{token_id}'] td:text-is('revoked')")
        again, refused = _kernel_lines(page, hub, "carol", _FROM_ENV)
        assert again == token and refused.startswith("AuthenticationError"), refused
        assert "revoked" in refused
        # a restart gets a new token; stopping the server revokes it
        _server(hub_page, hub, "carol", xsrf, start=False)
        _server(hub_page, hub, "carol", xsrf, start=True)
        second, listed = _kernel_lines(page, hub, "carol", _FROM_ENV)
        assert second != token and listed == "['fersa-grinding', 'zf-extrusion']"
        assert api_get(hub, "whoami", second).status_code == 200
        _server(hub_page, hub, "carol", xsrf, start=False)
        deadline = time.monotonic() + 30  # the API reuses a verified token for up to 2 s
        while (r := api_get(hub, "whoami", second)).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    finally:
        ctx.close()


@pytest.mark.hub
def test_logout_ends_the_service_session_within_seconds(browser: Any, hub: Hub) -> None:
    """Log out on the tokens page: the hub deletes the session's OAuth token and the service
    stops taking the (stolen) session cookie within a few seconds."""
    ctx, page = login(browser, hub, "bob")
    try:
        page.wait_for_url(f"{hub.service_url}/tokens")
        expires = pd.Timestamp(page.text_content("#session-expires") or "")
        assert expires > pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
        cookie = next(c["value"] for c in ctx.cookies() if c["name"] == SESSION_COOKIE)
        assert api_get(hub, "whoami", cookie=cookie).json()["user"] == "bob"  # control
        page.click("#session-logout")
        page.wait_for_url(re.compile(rf"{re.escape(hub.url)}/hub/(logout|login).*"))
        t0 = time.monotonic()
        while (r := api_get(hub, "whoami", cookie=cookie)).status_code == 200:
            assert time.monotonic() - t0 < 30, "the service still takes the session"
            time.sleep(0.1)
        delay = time.monotonic() - t0
        print(f"service noticed the logout after {delay:.2f} s")
        assert r.status_code == 401 and "ended" in r.json()["error"]["message"]
        page.goto(f"{hub.service_url}/tokens")
        assert not page.url.startswith(f"{hub.service_url}/tokens")  # asked to log in again
    finally:
        ctx.close()


# ----------------------------------------------------------------------------- make run's hub


@pytest.fixture(scope="module")
def local_hub(hub_workdir: Path) -> Iterator[tuple[str, str]]:
    """``python -m stream0d_nb.hub.run`` (what ``make run`` starts) on free ports: (URL, banner)."""
    home = _seeded(hub_workdir / "local", {"fersa-line": "fersa", "zf-line": "zf"}, 60)
    url = f"http://127.0.0.1:{free_port()}"
    proc, banner = start_run_hub(home, url)
    try:
        yield url, banner
        # SIGTERM to the command (as Ctrl-C) stops the hub, its proxy and services promptly
        state = home / "hub"
        pids = [int((state / f).read_text()) for f in ("jupyterhub.pid", "jupyterhub-proxy.pid")]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert time.monotonic() - t0 < 30
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


_KERNEL_JS = """async ([base, xsrf, code]) => {
  const r = await fetch(base + "/api/kernels", {method: "POST", headers: {"X-XSRFToken": xsrf},
                                                credentials: "same-origin"});
  const kernel = await r.json();
  const ws = new WebSocket(base.replace("http", "ws") + "/api/kernels/" + kernel.id + "/channels");
  const msgId = crypto.randomUUID();
  let out = "";
  return await new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error("kernel timeout: " + out)), 60000);
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onopen = () => ws.send(JSON.stringify({
      header: {msg_id: msgId, username: "", session: crypto.randomUUID(),
               msg_type: "execute_request", version: "5.3", date: new Date().toISOString()},
      parent_header: {}, metadata: {}, channel: "shell", buffers: [],
      content: {code, silent: false, store_history: false, user_expressions: {},
                allow_stdin: false, stop_on_error: true}}));
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.parent_header.msg_id !== msgId) return;
      if (m.msg_type === "stream") out += m.content.text;
      if (m.msg_type === "error") out += m.content.ename + ": " + m.content.evalue;
      if (m.msg_type === "status" && m.content.execution_state === "idle") { ws.close(); resolve(out); }
    };
  });
}"""


def run_in_kernel(page: Any, base: str, code: str) -> str:
    """Run ``code`` in a new kernel of the user's server, from their browser session."""
    page.goto(f"{base}/lab", wait_until="domcontentloaded")  # API answers forbid scripts (CSP)
    xsrf = next(c["value"] for c in page.context.cookies(base + "/") if c["name"] == "_xsrf")
    out: str = page.evaluate(_KERNEL_JS, [base, xsrf, code])
    return out


@pytest.mark.hub
def test_make_run_hub_demo_login(browser: Any, local_hub: tuple[str, str]) -> None:
    """As in the README: log in as a demo user of fersa, make a token, read with the client;
    then ana shares her JupyterLab with marco (JupyterHub sharing): he gets in, zoe not."""
    url, banner = local_hub
    assert f"{url}/hub/login" in banner
    password = re.search(r"password for all: (\S+)\)", banner)
    assert password and "ana" in banner and "zoe" in banner
    assert re.search(r"Starting (managed )?service .?stream0d-scheduler", banner), banner[-3000:]
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/services/stream0d/tokens")
        page.fill("#username_input", "ana")
        page.fill("#password_input", password.group(1))
        page.click("#login_submit")
        page.wait_for_url(f"{url}/services/stream0d/tokens")
        assert page.text_content("#groups") == "fersa"
        token = create_token(page, "make run", "read")
        with Client(f"{url}/services/stream0d", token) as client:
            assert {d.id for d in client.datasets()} == {"fersa-line"}
            assert client.read("fersa-line", "temp")["temp"].size == 60
        # ana's own JupyterLab starts (same OS user as the hub: the documented demo trade-off)
        page.goto(f"{url}/hub/spawn")
        page.wait_for_url(re.compile(rf"{re.escape(url)}/user/ana/lab.*"), timeout=90_000)
        page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
        # a notebook in ana's server uses the API as ana, with no token to paste (the hub
        # gave her server its own API token, STREAM0D_API_TOKEN)
        out = run_in_kernel(
            page,
            f"{url}/user/ana",
            "from stream0d_nb.client import Client\n"
            "c = Client.from_env()\n"
            "print(sorted(d.id for d in c.datasets()))",
        )
        assert out.strip() == "['fersa-line']", out
        # ana shares her server with marco (JupyterHub sharing, hub API, her own session)
        page.goto(f"{url}/hub/home")
        xsrf = next(c["value"] for c in ctx.cookies(f"{url}/hub/") if c["name"] == "_xsrf")
        r = page.request.post(
            f"{url}/hub/api/shares/ana/", data={"user": "marco"}, headers={"X-XSRFToken": xsrf}
        )
        assert r.status == 200, r.text()
    finally:
        ctx.close()
    for user, allowed in (("marco", True), ("zoe", False)):
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/hub/login?next=/user/ana/lab")
            page.fill("#username_input", user)
            page.fill("#password_input", password.group(1))
            page.click("#login_submit")
            page.wait_for_load_state("networkidle")
            authorize = page.locator("button[type=submit]:has-text('Authorize')")
            if authorize.count():  # the hub asks before opening a shared server
                authorize.click()
                page.wait_for_load_state("networkidle")
            r = page.request.get(f"{url}/user/ana/api/contents")
            if allowed:
                assert r.status == 200 and r.json()["type"] == "directory"
            else:
                assert r.status == 403 and "directory" not in r.text(), r.text()
        finally:
            ctx.close()


def test_z2jh_values_use_the_same_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Helm values' extraConfig runs against a real traitlets config, production mode."""
    import yaml
    from traitlets.config import Config

    values = yaml.safe_load((REPO_ROOT / "hub_config" / "z2jh-values.yaml").read_text())
    hub = values["hub"]
    partners = tmp_path / "partners.toml"
    partners.write_text(hub["extraFiles"]["partners"]["stringData"])
    for name, value in hub["extraEnv"].items():
        monkeypatch.setenv(name, value if isinstance(value, str) else f"secret-{name}")
    monkeypatch.setenv("STREAM0D_PARTNERS", str(partners))
    c = Config()
    exec(hub["extraConfig"]["00-stream0d"], {"c": c})
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.GenericOAuthenticator.client_secret == "secret-STREAM0D_SSO_SECRET"
    assert c.JupyterHub.db_url == "secret-JUPYTERHUB_DB_URL"
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["stream0d", "stream0d-alerts", "stream0d-scheduler"]
    api = c.JupyterHub.services[0]
    assert api["url"] == "http://hub:10101"
    assert api["environment"]["STREAM0D_STORAGE_URL"] == "az://stream0d/datasets"
    assert hub["service"]["extraPorts"][0]["port"] == 10101
    # the chart owns the proxy, the spawner and where the hub listens
    assert "spawner_class" not in c.JupyterHub and "bind_url" not in c.JupyterHub
    assert "ConfigurableHTTPProxy" not in c


# ----------------------------------------------------------------------------- one IdP per partner


@pytest.fixture(scope="module")
def multi_hub(hub_workdir: Path) -> Iterator[Hub]:
    """Two partners, each with its own OIDC provider; both have a user called alice."""
    home = _seeded(hub_workdir / "multi", {"fersa-multi": "fersa", "zf-multi": "zf"}, 0)
    port = free_port()
    hub = f"http://127.0.0.1:{port}/hub"
    users_f = {"alice": {"password": "f-pw-12345", "groups": []}}
    users_z = {"alice": {"password": "z-pw-12345", "groups": ["fersa"]}}  # claims are ignored
    try:
        idp_f = start_idp(users_f, [f"{hub}/fersa/oauth_callback"], hub_workdir)
        idp_z = start_idp(users_z, [f"{hub}/zf/oauth_callback"], hub_workdir)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    toml = "[hub]\nlogin = 'per-partner'\npublic_url = '{HUB_URL}'\n"
    for slug, idp in (("fersa", idp_f), ("zf", idp_z)):
        toml += f"""
[[partners]]
slug = "{slug}"
name = "{slug.upper()}"
[partners.login]
kind = "oidc"
label = "{slug.upper()} SSO"
authorize_url = "{idp.url}/auth"
token_url = "{idp.url}/token"
userdata_url = "{idp.url}/me"
client_id = "stream0d-hub"
client_secret_env = "TEST_SSO_SECRET"
"""
    try:
        the_hub = start_hub(toml, home, port, ENV)
        try:
            yield the_hub
        finally:
            the_hub.stop()
    finally:
        idp_f.stop()
        idp_z.stop()


@pytest.mark.hub
@pytest.mark.parametrize(
    ("partner", "password", "other"), [("fersa", "f-pw-12345", "zf"), ("zf", "z-pw-12345", "fersa")]
)
def test_each_partner_logs_in_with_its_own_provider(
    browser: Any, multi_hub: Hub, partner: str, password: str, other: str
) -> None:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{multi_hub.service_url}/tokens")
        assert page.locator("text=Sign in with FERSA SSO").count() == 1
        assert page.locator("text=Sign in with ZF SSO").count() == 1
        page.click(f"text=Sign in with {partner.upper()} SSO")
        page.fill("#login", "alice")
        page.fill("#password", password)
        page.click("#submit")
        page.wait_for_url(f"{multi_hub.service_url}/tokens")
        # the two alices are two people, each in the group of the provider that vouched
        assert page.text_content("#user") == f"{partner}:alice"
        assert page.text_content("#groups") == partner
        token = create_token(page, "multi", "read")
    finally:
        ctx.close()
    with Client(multi_hub.service_url, token) as client:
        assert {d.id for d in client.datasets()} == {f"{partner}-multi"}
        with pytest.raises(NotFoundError):
            client.dataset(f"{other}-multi")
