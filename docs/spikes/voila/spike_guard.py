"""Hardening of standalone Voila 0.5 for per-viewer dashboards (spike).

- GuardedRequestInfoSocketHandler: /voila/query/<kernel_id> only from loopback *without*
  proxy headers (the kernel connects directly; the public proxy adds X-Forwarded-*),
  first connection per kernel wins (no hijack), and it records kernel -> viewer.
- OwnerKernelManager: kernels never inherit the service's JUPYTERHUB_* variables (its hub
  token = OAuth client secret); records kernel -> viewer for cold kernels.
- KernelOwnerAuthorizer: a kernel's websocket/REST/shutdown only for the viewer it serves.
Installed by importing this module before Voila builds its handlers (spike_idp does).
"""
import logging

import voila.app
import voila.handler
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from voila.request_info_handler import RequestInfoSocketHandler as _Base

log = logging.getLogger("spike_guard")
OWNERS: dict[str, str] = {}
VIEWER_ENV = "HTTP_X_S0D_VIEWER"
PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded")


class GuardedRequestInfoSocketHandler(_Base):
    async def get(self, *args, **kwargs):
        h = self.request.headers
        if self.request.remote_ip not in ("127.0.0.1", "::1") or any(k in h for k in PROXY_HEADERS):
            log.warning("refused /voila/query from outside (%s)", h.get("X-Forwarded-For"))
            raise HTTPError(403)
        if kwargs.get("kernel_id", args[0] if args else None) in _Base._waiters:
            log.warning("refused a second /voila/query connection for one kernel")
            raise HTTPError(409)
        return await super().get(*args, **kwargs)

    @classmethod
    def send_updates(cls, msg):
        OWNERS[msg["kernel_id"]] = msg["payload"].get(VIEWER_ENV, "")
        _Base.send_updates(msg)
        _Base._cache.pop(msg["kernel_id"], None) if msg["kernel_id"] in _Base._waiters else None


voila.app.RequestInfoSocketHandler = GuardedRequestInfoSocketHandler
voila.handler.RequestInfoSocketHandler = GuardedRequestInfoSocketHandler


class OwnerKernelManager(AsyncMappingKernelManager):
    async def start_kernel(self, *args, **kwargs):
        env = {k: v for k, v in (kwargs.get("env") or {}).items() if not k.startswith("JUPYTERHUB_")}
        kwargs["env"] = env
        kid = await super().start_kernel(*args, **kwargs)
        if env.get(VIEWER_ENV):
            OWNERS[kid] = env[VIEWER_ENV]
        return kid

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        OWNERS.pop(kernel_id, None)
        _Base._cache.pop(kernel_id, None)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)


class KernelOwnerAuthorizer(Authorizer):
    def is_authorized(self, handler, user, action, resource):
        kid = (handler.path_kwargs or {}).get("kernel_id") or (handler.path_args or [None])[0]
        if resource == "kernels" or (kid and len(str(kid)) == 36):
            ok = kid is not None and OWNERS.get(kid) == user.username
            if not ok:
                log.warning("refused %s on kernel %s for %s (serves %r)", action, kid, user.username, OWNERS.get(kid))
            return ok
        return True


import tornado.web  # noqa: E402
import voila.shutdown_kernel_handler as _sk  # noqa: E402

_orig_post = _sk.VoilaShutdownKernelHandler.post


@tornado.web.authenticated
async def _owner_only_post(self, kernel_id):
    if OWNERS.get(kernel_id) != self.current_user.username:
        raise HTTPError(403)
    return await _orig_post(self, kernel_id)


_sk.VoilaShutdownKernelHandler.post = _owner_only_post
