"""Export: a time range of stored channels as a CSV, Parquet, NetCDF or Zarr (zipped) file.

The file is written by ``stream0d_nb.export`` (one snapshot, bounded memory, window by
window) into a private temporary folder under the store home, sent as a file response
(streamed from disk) and removed once sent. The read limits apply (413), so an export is a
download of a bounded range, not a way around them; larger exports are for the CLI.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from stream0d_nb import export as exporter
from stream0d_nb.access import Action
from stream0d_nb.api.deps import DatasetContext, StoreDep, get_settings, require
from stream0d_nb.api.routes.data import check_limits, parse_channels

router = APIRouter(tags=["data"])

ExportFormat = Literal["csv", "parquet", "netcdf", "zarr", "xlsx"]
SUFFIX = {
    "csv": ".csv",
    "parquet": ".parquet",
    "netcdf": ".nc",
    "zarr": ".zarr.zip",
    "xlsx": ".xlsx",
}
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
    "netcdf": "application/x-netcdf",
    "zarr": "application/zip",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _stamp(text: str | None, default: str) -> str:
    """A time as a file-name part (``2024-05-01T00-00-00Z``)."""
    return _UNSAFE.sub("-", text)[:40].strip("-") if text else default


def _remove_stale(home: Path, max_age_s: float = 3600) -> None:
    """Remove exports left behind (a client that went away before the file was sent)."""
    now = time.time()
    for d in home.glob("export-*"):
        try:
            if now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


def _zip_folder(folder: Path, out: Path) -> None:
    """A Zarr folder as one zip (stored: the chunks are compressed already)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())


@router.get(
    "/datasets/{dataset_id}/export",
    response_class=FileResponse,
    responses={200: {"content": {m: {} for m in MEDIA.values()}}},
)
def export(
    ctx: Annotated[DatasetContext, Depends(require(Action.READ))],
    store: StoreDep,
    settings: Annotated[Any, Depends(get_settings)],
    format: Annotated[ExportFormat, Query()] = "csv",
    start: Annotated[str | None, Query(description="Inclusive start (ISO time).")] = None,
    end: Annotated[str | None, Query(description="Exclusive end (ISO time).")] = None,
    channels: Annotated[str | None, Query(description="Comma-separated stored channels.")] = None,
    every: Annotated[str | None, Query(description="Aggregation bin, e.g. '1min'.")] = None,
    how: Annotated[str, Query(description="mean, min, max, sum, count, first, last")] = "mean",
    as_of: Annotated[str | None, Query(description="Snapshot id or time.")] = None,
    tz: Annotated[str | None, Query(description="Zone of CSV/Parquet times.")] = None,
    units_in_header: Annotated[bool, Query(description="CSV headers 'name [units]'.")] = False,
) -> FileResponse:
    """One snapshot's channels over ``[start, end)`` as a file; read limits give 413.

    Zarr comes as a zip of the Zarr v3 folder. Headers ``X-Stream0d-Snapshot`` and
    ``X-Stream0d-Rows`` say what the file holds.
    """
    names = parse_channels(channels)
    snap = store.data(ctx.id).snapshot(as_of)
    check_limits(snap, names, start, end, every, how, settings, format, store, ctx.id)
    home = store.settings.home / "exports"
    home.mkdir(parents=True, exist_ok=True)
    _remove_stale(home)
    tmp = Path(tempfile.mkdtemp(prefix="export-", dir=home))
    try:
        name = f"{ctx.id}_{_stamp(start, 'start')}_{_stamp(end, 'end')}"
        target = tmp / (name + (".zarr" if format == "zarr" else SUFFIX[format]))
        result = exporter.export(
            store,
            ctx.id,
            target,
            format=format,
            channels=names,
            start=start,
            end=end,
            every=every,
            how=how,
            as_of=snap.id,
            tz=tz,
            units_in_header=units_in_header,
        )
        if format == "zarr":
            zipped = tmp / (name + SUFFIX["zarr"])
            _zip_folder(target, zipped)
            target = zipped
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type=MEDIA[format],
        filename=target.name,
        headers={"X-Stream0d-Snapshot": result.snapshot, "X-Stream0d-Rows": str(result.rows)},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
