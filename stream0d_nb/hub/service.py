"""The API as a JupyterHub managed service: ``python -m stream0d_nb.hub.service``.

The hub starts it with ``JUPYTERHUB_SERVICE_URL`` (where to listen, loopback),
``JUPYTERHUB_SERVICE_PREFIX`` (``/services/stream0d/``) and the service's API token; the
store comes from the ``STREAM0D_*`` settings the hub config passes on.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import uvicorn

from stream0d_nb.api.app import create_app
from stream0d_nb.hub.resolver import HubGroupResolver


def main() -> None:
    """Serve the API where the hub says, resolving token owners through the hub."""
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    app = create_app(group_resolver=HubGroupResolver())
    uvicorn.run(
        app,
        host=os.environ.get("STREAM0D_SERVICE_BIND") or url.hostname or "127.0.0.1",
        port=url.port or 10101,
        log_level=os.environ.get("STREAM0D_SERVICE_LOG_LEVEL", "info"),
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
