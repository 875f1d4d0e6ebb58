"""``stream0d read`` and ``stream0d export``: a time range of channels, stored or derived."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream0d_nb.cli.common import emit, fail, out, store


def read(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    start: Annotated[str | None, typer.Option(help="First time (included); naive = UTC.")] = None,
    end: Annotated[str | None, typer.Option(help="End time (excluded); naive = UTC.")] = None,
    channels: Annotated[
        str | None, typer.Option(help="Comma-separated channel names (default all).")
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="Aggregate to this interval, e.g. 15min.")
    ] = None,
    how: Annotated[str, typer.Option(help="mean, min, max, sum, count, first, last.")] = "mean",
    as_of: Annotated[str | None, typer.Option(help="Snapshot id or a past time.")] = None,
    format: Annotated[str, typer.Option(help="csv, json or parquet.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file (default stdout).")
    ] = None,
    local_time: Annotated[
        bool, typer.Option(help="Times in the dataset's zone instead of UTC.")
    ] = False,
) -> None:
    """Read a time range [start, end) of channels, stored or derived."""
    from stream0d_nb import derived
    from stream0d_nb.tables import to_arrow, to_pandas

    names = [c.strip() for c in channels.split(",")] if channels else None
    with store() as st:
        ds = derived.read(st, dataset_id, names, start, end, every, how, as_of)
        tzname = st.get_dataset(dataset_id).spec.tz if local_time else None
    if format == "parquet":
        import pyarrow.parquet as pq

        if output is None:
            fail("--format parquet needs --output FILE")
        pq.write_table(to_arrow(ds), output)
        return
    emit(to_pandas(ds, tzname), format, output, aggregated=every is not None)


def export_cmd(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    out_path: Annotated[
        Path, typer.Argument(metavar="OUT", help="File or folder: .csv .xlsx .parquet .nc .zarr")
    ],
    format: Annotated[
        str | None, typer.Option(help="csv, xlsx, parquet, netcdf, zarr (default from OUT).")
    ] = None,
    start: Annotated[str | None, typer.Option()] = None,
    end: Annotated[str | None, typer.Option()] = None,
    channels: Annotated[str | None, typer.Option(help="Comma-separated channel names.")] = None,
    every: Annotated[str | None, typer.Option()] = None,
    how: Annotated[str, typer.Option()] = "mean",
    as_of: Annotated[str | None, typer.Option()] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Export a time range and channel subset as CSV, Parquet, NetCDF or Zarr."""
    from stream0d_nb.export import export

    names = [c.strip() for c in channels.split(",")] if channels else None
    with store() as st:
        res = export(
            st,
            dataset_id,
            out_path,
            format=format,
            channels=names,
            start=start,
            end=end,
            every=every,
            how=how,
            as_of=as_of,
            overwrite=overwrite,
        )
    out.print(f"exported {res!s}")
