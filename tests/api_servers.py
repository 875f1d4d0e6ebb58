"""The API under test: stores seeded with one dataset per partner, and uvicorn in a thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import uvicorn

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
