"""Browser side of the service: hub OAuth login, logout, and the API tokens page.

Tokens are issued only here, from a hub-authenticated browser session: the page calls
``POST api/tokens`` with the session cookie and its XSRF token. The page also lists the
notebook servers' tokens (made by the hub at spawn, see ``hub.server_tokens``) and the
browser session itself with its expiry.
"""

from __future__ import annotations

import html
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stream0d_nb.api import session
from stream0d_nb.api.deps import NotAuthenticatedError, hub_auth

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + "/"


def _require_hub() -> Any:
    hub = hub_auth()
    if hub is None:
        raise NotAuthenticatedError("browser login needs the hub: run the service under JupyterHub")
    return hub


def _cookie_kwargs(request: Request) -> dict[str, Any]:
    return {
        "path": _root(request),
        "httponly": True,
        "samesite": "lax",
        "secure": request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto") == "https",
    }


@router.get("/login")
async def login(request: Request, next: str | None = None) -> Response:
    """Start the hub OAuth flow (state and PKCE kept by ``HubOAuth``), then come back."""
    hub = _require_hub()
    next_url = session.safe_next(_root(request), next)
    verifier, challenge, method = hub.generate_pkce_code_challenge()
    state = hub.generate_state(next_url, code_verifier=verifier)
    url = f"{hub.login_url}&state={state}&code_challenge={challenge}&code_challenge_method={method}"
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(hub.state_cookie_name, state, max_age=600, **_cookie_kwargs(request))
    return response


@router.get("/oauth_callback")
async def oauth_callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    """Finish the OAuth flow: the state must match the browser's cookie, then set the session."""
    hub = _require_hub()
    if error:
        return _page(400, "Login failed", f"The hub refused the login: {error}.")
    cookie_state = request.cookies.get(hub.state_cookie_name)
    known = state is not None and state in hub._oauth_states
    if not code or not state or not cookie_state or state != cookie_state or not known:
        refused = _page(
            403, "Login failed", "OAuth state does not match this browser. Try logging in again."
        )
        refused.delete_cookie(hub.state_cookie_name, path=_root(request))
        return refused
    next_url = session.safe_next(_root(request), hub.get_next_url(state))
    verifier = hub.get_code_verifier(state)
    hub.clear_oauth_state(state)
    token, lifetime = await _token_for_code(hub, code, verifier)
    response = RedirectResponse(next_url, status_code=302)
    response.delete_cookie(hub.state_cookie_name, path=_root(request))
    sealed = session.seal(token, int(time.time()) + lifetime)
    response.set_cookie(hub.cookie_name, sealed, max_age=lifetime, **_cookie_kwargs(request))
    return response


async def _token_for_code(hub: Any, code: str, verifier: str | None) -> tuple[str, int]:
    """The hub OAuth token for ``code`` and its lifetime in seconds.

    ``HubOAuth.token_for_code`` makes the same request but drops ``expires_in``, which the
    session cookie and the tokens page need.
    """
    params = {
        "client_id": hub.oauth_client_id,
        "client_secret": hub.api_token,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": hub.oauth_redirect_uri,
    }
    if verifier:
        params["code_verifier"] = verifier
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(
            hub.oauth_token_url,
            content=urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    if r.status_code != 200:
        raise NotAuthenticatedError(f"the hub refused the login code ({r.status_code})")
    reply = r.json()
    return str(reply["access_token"]), int(reply.get("expires_in") or 3600)


@router.get("/logout")
async def logout(request: Request) -> Response:
    """Forget the service session and log out of the hub, which deletes the session's
    OAuth tokens (the service notices within ``SESSION_CHECK_SECONDS``)."""
    hub = _require_hub()
    # the hub's own origin (``hub_host``) when users and services each have theirs
    response = RedirectResponse(hub.hub_host + hub.hub_prefix + "logout", status_code=302)
    response.delete_cookie(hub.cookie_name, path=_root(request))
    return response


def _session_user(request: Request) -> tuple[dict[str, Any], session.Session] | None:
    """The hub user model and session of the request's (sealed) cookie, if still valid."""
    hub = _require_hub()
    opened = session.unseal(request.cookies.get(hub.cookie_name))
    if opened is None:
        return None
    model = hub.user_for_token(opened.token, sync=True)
    if not model or model.get("kind", "user") != "user":
        return None
    return model, opened


@router.get("/")
def home(request: Request) -> Response:
    """The service's front page: links to the tokens page and the API reference."""
    return RedirectResponse(_root(request) + "tokens", status_code=302)


@router.get("/tokens")
def tokens_page(request: Request) -> Response:
    """The API tokens page (log in through the hub first)."""
    found = _session_user(request)
    if found is None:
        return RedirectResponse(f"{_root(request)}login?next={_root(request)}tokens", 302)
    model, opened = found
    groups = ", ".join(sorted(model.get("groups") or [])) or "none"
    levels = sorted(
        {
            s.split("!")[0].rsplit(":", 1)[1]
            for s in model.get("scopes", [])
            if s.startswith("custom:stream0d:")
        }
    )
    body = _TOKENS.format(
        user=html.escape(model["name"]),
        groups=html.escape(groups),
        levels=html.escape(", ".join(levels) or "none"),
        level_options="".join(
            f"<option>{lv}</option>" for lv in ("read", "write", "admin") if lv in levels
        )
        or "<option>read</option>",
        config=html.escape(
            json.dumps({"xsrf": session.xsrf_token(opened.token), "api": _root(request) + "api/"}),
            quote=True,
        ),
        root=html.escape(_root(request)),
        hub=html.escape(_hub_url()),
        session_expires=datetime.fromtimestamp(opened.expires, UTC).isoformat(),
    )
    return HTMLResponse(body, headers=_PAGE_HEADERS)


def _hub_url() -> str:
    """The hub's pages, on the hub's own origin when the service has another one."""
    hub = _require_hub()
    return f"{hub.hub_host}{hub.hub_prefix}"


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>"
        f"<p id='message'>{html.escape(text)}</p></main></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS)


_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
}

_TOKENS = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stream0d API tokens</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
fieldset {{ border: 1px solid #ccc; padding: 1rem; }} label {{ display: block; margin: .4rem 0; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #ddd; padding: .3rem; text-align: left; }}
#secret {{ background: #fff8d6; padding: .8rem; font-family: monospace; word-break: break-all; }}
.error {{ color: #b00020; }}
.sr {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }}
</style></head>
<body data-config="{config}"><main>
<h1>API tokens</h1>
<p>Signed in as <b id="user">{user}</b>; partner groups: <span id="groups">{groups}</span>;
allowed levels: <span id="levels">{levels}</span>. A token never does more than you may.
<a href="{hub}home">Hub</a> · <a href="{root}docs">API reference</a> · <a href="{root}logout">Log out</a></p>
<form id="create"><fieldset><legend>New token</legend>
<label>Note <input id="note" name="note" required maxlength="1000" placeholder="what it is for"></label>
<label>Level <select id="level" name="level">{level_options}</select></label>
<label>Expires in days <input id="days" name="days" type="number" min="1" max="365" value="30"></label>
<label>Only partner (optional) <input id="partner" name="partner"></label>
<label>Only datasets, comma separated (optional) <input id="datasets" name="datasets"></label>
<button id="submit" type="submit">Create token</button>
</fieldset></form>
<p id="error" class="error" role="alert"></p>
<div id="created" hidden><p>Copy this token now; it is not shown again:</p><p id="secret"></p>
<p>Use it from Python: <code id="usage"></code>, or send the header
<code>Authorization: token &lt;token&gt;</code>. In a notebook on this hub,
<code>Client.from_env()</code> needs no token: the hub gives each notebook server its own,
listed below as "notebook server {user}/" and revoked when the server stops.</p></div>
<h2>Your tokens</h2>
<table><thead><tr><th>id</th><th>note</th><th>level</th><th>restriction</th><th>expires</th><th>state</th><th><span class="sr">action</span></th></tr></thead>
<tbody id="tokens"></tbody></table>
<h2>Browser session</h2>
<table><thead><tr><th>session</th><th>expires</th><th><span class="sr">action</span></th></tr></thead>
<tbody id="sessions"><tr><td>this browser session (signed in through the hub)</td>
<td id="session-expires">{session_expires}</td>
<td><a id="session-logout" href="{root}logout">Log out</a></td></tr></tbody></table>
<p>Logging out (here or on the hub) ends the session on the API within seconds.</p>
</main>
<script>
const cfg = JSON.parse(document.body.dataset.config);
const headers = {{"Content-Type": "application/json", "X-XSRFToken": cfg.xsrf}};
const $ = (id) => document.getElementById(id);
function cell(row, text) {{ const td = row.insertCell(); td.textContent = text; return td; }}
async function call(method, path, body) {{
  const r = await fetch(cfg.api + path, {{method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body)}});
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(data && data.error ? data.error.message : r.statusText);
  return data;
}}
async function refresh() {{
  const list = await call("GET", "tokens");
  const tbody = $("tokens"); tbody.textContent = "";
  if (!list.length) {{
    const td = tbody.insertRow().insertCell(); td.colSpan = 7; td.id = "no-tokens";
    td.textContent = "No tokens yet: create one above. A notebook server gets its own when it starts.";
  }}
  for (const t of list) {{
    const row = tbody.insertRow(); row.dataset.id = t.id;
    cell(row, t.id); cell(row, t.note); cell(row, t.level);
    cell(row, [t.partner ? "partner " + t.partner : "", t.datasets ? "datasets " + t.datasets.join(", ") : ""].filter(Boolean).join("; ") || "none");
    const expired = new Date(t.expires_at) <= new Date();
    cell(row, t.expires_at); cell(row, t.revoked_at ? "revoked" : expired ? "expired" : "active");
    const td = row.insertCell();
    if (!t.revoked_at && !expired) {{
      const b = document.createElement("button"); b.textContent = "Revoke"; b.className = "revoke";
      b.onclick = async () => {{ try {{ await call("DELETE", "tokens/" + t.id); await refresh(); }}
        catch (e) {{ $("error").textContent = e.message; }} }};
      td.appendChild(b);
    }}
  }}
}}
$("create").addEventListener("submit", async (ev) => {{
  ev.preventDefault(); $("error").textContent = "";
  const days = Number($("days").value || 30);
  const body = {{note: $("note").value, level: $("level").value,
    expires_at: new Date(Date.now() + days * 86400e3).toISOString()}};
  if ($("partner").value.trim()) body.partner = $("partner").value.trim();
  const ds = $("datasets").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (ds.length) body.datasets = ds;
  try {{
    const t = await call("POST", "tokens", body);
    $("secret").textContent = t.token; $("created").hidden = false;
    const service = location.origin + cfg.api.replace(/api\/$/, "").replace(/\/$/, "");
    $("usage").textContent = `from stream0d_nb.client import Client; c = Client("${{service}}", "${{t.token}}")`;
    await refresh();
  }} catch (e) {{ $("error").textContent = e.message; }}
}});
refresh().catch((e) => {{ $("error").textContent = e.message; }});
</script></body></html>
"""
