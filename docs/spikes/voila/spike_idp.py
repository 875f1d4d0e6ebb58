"""Identity provider for standalone Voila 0.5 as a JupyterHub service (spike).

1. prefixes the OAuth callback/logout handlers with the service prefix (Voila registers
   identity_provider.get_handlers() without its base_url);
2. strips any client-sent X-S0d-* header, then, for an authenticated viewer, sets
   X-S0d-Viewer and X-S0d-Token server-side (the token is minted by the API service for
   this viewer from the viewer's hub OAuth token + this service's own token). Voila copies
   them into the kernel through VoilaConfiguration.http_header_envs.
"""
import hashlib
import json
import os
import time

import spike_guard  # noqa: F401 (installs the guards)
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider
from jupyterhub.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

HEADERS = ("X-S0d-Viewer", "X-S0d-Token")
_minted: dict[bytes, tuple[str, float]] = {}


class DashboardIdentityProvider(JupyterHubIdentityProvider):
    def get_handlers(self):
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        return [(url_path_join(prefix, h[0]),) + tuple(h[1:]) for h in super().get_handlers()]

    async def get_user(self, handler):
        for name in HEADERS:  # a client can never supply these (all case variants/duplicates)
            handler.request.headers.pop(name, None)
            while name in handler.request.headers:
                del handler.request.headers[name]
        user = await super().get_user(handler)
        if user is None:
            return None
        hub_token = self.hub_auth.get_token(handler)
        handler.request.headers[HEADERS[0]] = user.username
        handler.request.headers[HEADERS[1]] = await self._delegated_token(hub_token)
        return user

    async def _delegated_token(self, hub_token: str) -> str:
        key = hashlib.sha256(hub_token.encode()).digest()
        hit = _minted.get(key)
        if hit and hit[1] > time.time() + 60:
            return hit[0]
        req = HTTPRequest(
            os.environ["SPIKE_API_URL"] + "/dashboard-tokens",
            method="POST",
            headers={"Authorization": f"token {self.hub_auth.api_token}",  # this service
                     "Content-Type": "application/json"},
            body=json.dumps({"viewer_token": hub_token}),
        )
        r = await AsyncHTTPClient().fetch(req)
        out = json.loads(r.body)
        _minted[key] = (out["token"], out["expires"])
        return out["token"]
