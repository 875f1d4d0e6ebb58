"""The API under test: stores seeded with one dataset per partner, uvicorn in a thread,
and the app served over HTTP with a token per user (``ApiOverHttp``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import uvicorn

from stream0d_nb.api import ApiSettings, create_app
from stream0d_nb.api.deps import UserInfo, get_group_resolver
from stream0d_nb.client import Client
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store
from tests.servers import free_port

N = 600
IDX = pd.date_range("2024-05-01", periods=N, freq="1s", tz="UTC").as_unit("ns")


def partner_spec(ds: str, partner: str, title: str = "") -> DatasetSpec:
    """A 1 s dataset of ``partner`` with channels ``temp`` (degC) and ``p_in`` (bar)."""
    return DatasetSpec(
        id=ds,
        interval="1s",
        partner=partner,
        title=title,
        channels=[ChannelSpec(name="temp", units="degC"), ChannelSpec(name="p_in", units="bar")],
    )


def seed_partner_datasets(
    store: Store, datasets: dict[str, str], *, titled: bool = True, gap: bool = False
) -> None:
    """Create ``{id: partner}`` datasets holding ``N`` seconds of ``temp`` and ``p_in`` from
    ``IDX`` on (the same values in each); ``gap`` leaves ``p_in`` rows 10-19 missing."""
    for ds, partner in datasets.items():
        store.create_dataset(partner_spec(ds, partner, ds if titled else ""))
        rng = np.random.default_rng(1)
        df = pd.DataFrame(
            {"temp": 60 + rng.normal(0, 1, N), "p_in": 5 + rng.normal(0, 0.1, N)}, index=IDX
        )
        if gap:
            df.iloc[10:20, 1] = np.nan
        store.write(ds, df)


class UvicornThread:
    """``app`` served by uvicorn on a free 127.0.0.1 port in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ApiOverHttp:
    """The API app on ``store`` under uvicorn, with one API token per user of ``users``
    (groups, admin flag and scopes as the hub would resolve them), for tests over HTTP."""

    def __init__(
        self,
        store: Store,
        users: Mapping[str, UserInfo],
        *,
        level: str = "write",
        settings: ApiSettings | None = None,
    ) -> None:
        self.store = store
        self.access = AccessRegistry(store.registry)
        app = create_app(store, settings)
        app.dependency_overrides[get_group_resolver] = lambda: lambda u: users.get(u, UserInfo())
        self.tokens = {u: self.token(u, level) for u in users}
        self.uvicorn = UvicornThread(app)
        self.url = f"http://127.0.0.1:{self.uvicorn.port}"
        self.http = httpx.Client(base_url=self.url + "/api", timeout=60)

    def token(self, owner: str, level: str, **restriction: Any) -> str:
        """A new API token of ``owner`` (a day long), e.g. ``partner=`` or ``datasets=``."""
        exp = datetime.now(UTC) + timedelta(days=1)
        return self.access.issue_token(owner, level=level, expires_at=exp, **restriction).token

    def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """A request below ``/api`` with ``who``'s token."""
        headers = {"Authorization": f"token {self.tokens[who]}"}
        return self.http.request(method, path, headers=headers, **kw)

    def client(self, who: str) -> Client:
        return Client(self.url, self.tokens[who])

    def stop(self) -> None:
        self.http.close()
        self.uvicorn.stop()
