import os, sys
c = get_config()  # noqa
S = "/tmp/voila-spike"
BIN = f"{S}/.venv/bin"
P = {k: int(os.environ[f"SPIKE_PORT_{k.upper()}"]) for k in ("public", "hub", "proxy", "api", "dash", "dashcold")}
c.JupyterHub.bind_url = f"http://127.0.0.1:{P['public']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{P['hub']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{P['proxy']}"
c.ConfigurableHTTPProxy.command = ["/work/main/node_modules/.bin/configurable-http-proxy"]
c.ConfigurableHTTPProxy.pid_file = f"{S}/state/proxy.pid"
c.JupyterHub.db_url = f"sqlite:///{S}/state/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{S}/state/cookie_secret"
c.JupyterHub.pid_file = f"{S}/state/jupyterhub.pid"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["SPIKE_PASSWORD"]
c.Authenticator.allowed_users = {"alice", "bob", "carol"}
c.JupyterHub.load_groups = {"fersa": {"users": ["alice"]}, "zf": {"users": ["bob"]}}
c.JupyterHub.custom_scopes = {"custom:stream0d:read": {"description": "read stream0d"}}
c.JupyterHub.load_roles = [
    {"name": "viewers", "groups": ["fersa", "zf"],
     "scopes": ["custom:stream0d:read", "access:services!service=dash", "access:services!service=dashcold",
                "access:services!service=api"]},
]
API = f"http://127.0.0.1:{P['api']}/services/api"
def voila(name, port, preheat):
    cmd = [f"{BIN}/voila", "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
           f"--Voila.base_url=/services/{name}/",
           "--Voila.identity_provider_class=spike_idp.DashboardIdentityProvider",
           '--VoilaConfiguration.http_header_envs=["X-S0d-Viewer","X-S0d-Token"]',
           "--VoilaConfiguration.show_tracebacks=True",
           *([] if os.environ.get("SPIKE_NO_GUARD") else ["--Voila.authorizer_class=spike_guard.KernelOwnerAuthorizer", "--VoilaConfiguration.multi_kernel_manager_class=spike_guard.OwnerKernelManager"])]
    if preheat:
        cmd += ["--preheat_kernel=True", "--pool_size=1"]
    return {"name": name, "url": f"http://127.0.0.1:{port}", "command": cmd + [f"{S}/nb/dash.ipynb"],
            "oauth_no_confirm": True, "oauth_client_allowed_scopes": ["custom:stream0d:read"],
            "environment": {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": f"{S}/svc", "SPIKE_API_URL": API,
                            "JUPYTER_RUNTIME_DIR": f"{S}/state/rt-{name}"},
            "cwd": f"{S}/nb", "display": True}
c.JupyterHub.services = [
    {"name": "api", "url": f"http://127.0.0.1:{P['api']}", "command": [f"{BIN}/python", f"{S}/svc/api.py"],
     "oauth_no_confirm": True, "environment": {"PATH": f"{BIN}:/usr/bin:/bin"}},
    voila("dash", P["dash"], True),
    voila("dashcold", P["dashcold"], False),
]
c.JupyterHub.log_level = "INFO"
