"""Mock of the stream0d API's part in the spike: mint a delegated read token for a viewer.

POST {prefix}dashboard-tokens  Authorization: token <dashboard service's hub token>
     body {"viewer_token": <viewer's hub OAuth token issued to that dashboard service>}
GET  {prefix}whoami            Authorization: token s0d_...   (hub tokens refused)
"""
import json
import os
import secrets
import time

from jupyterhub.services.auth import HubAuth
from tornado import ioloop, web

PREFIX = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
DASHBOARDS = set(os.environ.get("SPIKE_DASHBOARDS", "dash,dashcold").split(","))
auth = HubAuth(cache_max_age=2)
TOKENS: dict[str, dict] = {}
LIFETIME = 3600


def log(*a):
    print("[api]", *a, flush=True)


class Mint(web.RequestHandler):
    def check_xsrf_cookie(self):
        pass

    async def post(self):
        h = self.request.headers.get("Authorization", "")
        caller = await auth.user_for_token(h.removeprefix("token ").strip(), sync=False) if h else None
        if not caller or caller.get("kind") != "service" or caller.get("name") not in DASHBOARDS:
            log("refused caller", caller and {k: caller.get(k) for k in ("kind", "name")})
            raise web.HTTPError(403, "only dashboard services may mint")
        vt = json.loads(self.request.body).get("viewer_token", "")
        viewer = await auth.user_for_token(vt, sync=False)
        need = f"access:services!service={caller['name']}"
        if not viewer or viewer.get("kind") != "user":
            raise web.HTTPError(403, "viewer token invalid")
        log("viewer model:", {k: viewer.get(k) for k in ("name", "kind", "session_id", "token_id", "scopes")})
        if not viewer.get("session_id") or need not in viewer.get("scopes", []):
            raise web.HTTPError(403, "viewer token is no OAuth login token of this dashboard")
        if "custom:stream0d:read" not in viewer.get("scopes", []):
            raise web.HTTPError(403, "viewer has no stream0d read scope")
        tok = "s0d_" + secrets.token_hex(4) + "_" + secrets.token_urlsafe(16)
        exp = time.time() + LIFETIME
        TOKENS[tok] = {"owner": viewer["name"], "level": "read", "expires": exp,
                       "note": f"dashboard {caller['name']} (hub session {viewer['session_id'][:8]})"}
        log("minted for", viewer["name"], TOKENS[tok]["note"])
        self.write({"token": tok, "expires": exp})


class WhoAmI(web.RequestHandler):
    def get(self):
        tok = self.request.headers.get("Authorization", "").removeprefix("token ").strip()
        rec = TOKENS.get(tok)
        if not rec or rec["expires"] < time.time():
            raise web.HTTPError(401, "not a stream0d API token")
        self.write({"owner": rec["owner"], "level": rec["level"], "note": rec["note"]})


if __name__ == "__main__":
    app = web.Application([(PREFIX + "dashboard-tokens", Mint), (PREFIX + "whoami", WhoAmI)])
    port = int(os.environ["JUPYTERHUB_SERVICE_URL"].rsplit(":", 1)[1].strip("/"))
    app.listen(port, "127.0.0.1")
    log("listening", port)
    ioloop.IOLoop.current().start()
