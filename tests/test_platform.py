"""The composition root: platform code opens the store with the write hooks, once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stream0d_nb import derived
from stream0d_nb.api import create_app
from stream0d_nb.hooks import follow_writes
from stream0d_nb.platform import open_platform
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec


def test_open_platform_installs_the_write_hooks_once(tmp_path: Path) -> None:
    with open_platform(Settings(home=tmp_path)) as store:
        hooks = list(store._write_hooks)
        assert len(hooks) == 3  # derived channels, model channels, alert rules
        assert follow_writes(store) is store and store._write_hooks == hooks
        create_app(store)  # the API on a store that already follows writes: no second set
        assert store._write_hooks == hooks
        # and they run: a materialised derived channel follows a write
        store.create_dataset(
            DatasetSpec(id="line", interval="1s", channels=[ChannelSpec(name="t", units="K")])
        )
        spec = FormulaSpec(name="t2", formula="t * 2", materialize=True)
        derived.save_formula(store, "line", spec, "test")
        idx = pd.date_range("2024-01-01", periods=5, freq="1s", tz="UTC")
        store.write("line", pd.DataFrame({"t": np.arange(5.0)}, index=idx))
        got = store.read("line", ["t2"])["t2"].values
        np.testing.assert_array_equal(got, np.arange(5.0) * 2)
