"""Read results as tables: pandas DataFrames and Arrow tables (no I/O).

The store, the API and the client all turn an ``xarray.Dataset`` of channels along
``time`` into these; the conversions live here, below the store and the client alike,
so that people's code converting a read does not import the store.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa
import xarray as xr


def to_pandas(ds: xr.Dataset, tz: str | None = None) -> pd.DataFrame:
    """A DataFrame with a tz-aware index (UTC, or ``tz`` such as the dataset's zone)."""
    df = ds.to_dataframe()
    idx = pd.DatetimeIndex(df.index).tz_localize("UTC")
    df.index = idx.tz_convert(tz) if tz else idx
    df.index.name = "time"
    return df


def _arrow_meta(attrs: dict[Any, Any]) -> dict[str, str]:
    """Attributes as Arrow metadata: text as is, lists and numbers as JSON."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str):
            out[str(k)] = v
        elif isinstance(v, list | tuple | int | float | bool):
            out[str(k)] = json.dumps(list(v) if isinstance(v, tuple) else v)
    return out


def to_arrow(ds: xr.Dataset) -> pa.Table:
    """An Arrow table: ``time`` (timestamp[ns, UTC]) then one float64 column per channel.

    Channel attributes go to field metadata and dataset attributes (dataset, snapshot,
    interval, tz) to schema metadata; lists such as tags are JSON text.
    """
    cols: dict[str, pa.Array] = {
        "time": pa.array(
            ds["time"].values.astype("datetime64[ns]"), type=pa.timestamp("ns", tz="UTC")
        )
    }
    fields = [pa.field("time", pa.timestamp("ns", tz="UTC"))]
    for name, var in ds.data_vars.items():
        cols[str(name)] = pa.array(var.values, type=pa.float64(), from_pandas=True)
        fields.append(pa.field(str(name), pa.float64(), metadata=_arrow_meta(var.attrs) or None))
    schema = pa.schema(fields, metadata=_arrow_meta(ds.attrs) or None)
    return pa.Table.from_arrays(list(cols.values()), schema=schema)


__all__ = ["to_arrow", "to_pandas"]
