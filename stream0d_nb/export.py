"""Export a time range of a dataset to CSV, Parquet, NetCDF or Zarr, in bounded memory.

Every export reads one snapshot (the head, or ``as_of``) window by window through
``Store.read``, so a year of 1 s data never sits in memory at once, and concurrent writes
cannot mix versions into one file. Output goes to a hidden temporary sibling that is
renamed into place at the end: an interrupted export leaves no file under the final name.

Layouts:

- ``csv``: ``time`` (ISO 8601 with offset, UTC or ``tz``) then one column per channel;
  missing values are empty cells; ``units_in_header=True`` writes headers as
  ``name [units]`` (which the CSV ingest understands). Headers a spreadsheet would run as
  a formula (starting with ``= + - @``, tab or CR) get a leading ``'`` (OWASP CSV
  injection); values are numbers and stay numbers, ``-3.5`` included.
- ``parquet``: ``time`` as ``timestamp[ns, UTC]`` then float64 columns (missing = null);
  field metadata holds ``units``, ``long_name``, ``description``, ``tags`` (JSON) and
  ``cell_methods`` when aggregated; schema metadata holds the dataset attributes
  (``dataset``, ``interval``, ``snapshot``, ``tz``, ``Conventions``). One row group per
  window.
- ``netcdf``: netCDF-4 (HDF5) written with h5netcdf (or netCDF4-python when h5py is
  missing), window by window along an unlimited ``time`` dimension; CF: ``time`` is int64 "seconds since 1970-01-01" (or ms/us/ns for
  sub-second intervals), channels keep their attributes, ``_FillValue`` NaN, list-valued
  attributes such as ``tags`` become JSON text because netCDF cannot hold lists.
- ``zarr``: a plain Zarr v3 directory written by ``xarray.Dataset.to_zarr`` (first window,
  then appends along ``time``), consolidated metadata, chunks of about a day of samples
  (the store's own chunk rule for the output interval).

Channels come in the order asked for, by default in the dataset's channel order. Times of
rows are grid times: the export covers ``[start, end)`` on the dataset's grid
(default: everything stored), gaps included as missing values.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import xarray as xr

from stream0d_nb.errors import Fix, ValidationError
from stream0d_nb.safetext import spreadsheet_safe
from stream0d_nb.specs import check_timezone
from stream0d_nb.store import Store
from stream0d_nb.store.grid import chunk_length_for, to_ns
from stream0d_nb.store.reader import bin_steps, index_range
from stream0d_nb.store.repo import AsOf

FORMATS: tuple[str, ...] = ("csv", "parquet", "netcdf", "zarr", "xlsx")
SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".nc": "netcdf",
    ".zarr": "zarr",
    ".xlsx": "xlsx",
}
EXCEL_MAX_ROWS = 1_048_576
"""Rows of one Excel sheet, the header row included."""
WINDOW_VALUES = 1 << 23
"""Raw float64 samples read per window (64 MiB), over all channels."""
_EPOCH = pd.Timestamp(0, unit="ns", tz="UTC")
TimeCode = Literal["s", "ms", "us", "ns"]
_TIME_UNITS: tuple[tuple[TimeCode, int, str], ...] = (
    ("s", 10**9, "seconds"),
    ("ms", 10**6, "milliseconds"),
    ("us", 10**3, "microseconds"),
)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: where, how much, and which snapshot it came from."""

    path: Path
    format: str
    rows: int
    channels: list[str]
    snapshot: str
    bytes: int
    start: pd.Timestamp | None = None
    """UTC time of the first row (None when no rows)."""
    end: pd.Timestamp | None = None
    """UTC time of the last row (inclusive; None when no rows)."""
    seconds: float = 0.0

    def __str__(self) -> str:
        span = (
            f", {self.start.isoformat()}..{self.end.isoformat()}" if self.start and self.end else ""
        )
        return (
            f"{self.path} ({self.format}, {self.rows:,} rows x {len(self.channels)} channels"
            f"{span}, {self.bytes:,} bytes, snapshot {self.snapshot}, {self.seconds:.1f} s)"
        )


@dataclass(frozen=True)
class _Plan:
    """The rows of an export on the grid, and how they are split into windows."""

    dataset_id: str
    snapshot: str
    channels: list[str]
    interval_ns: int
    i0: int
    i1: int
    k: int
    """Grid steps per output row (1 unless aggregated)."""
    every: str | None
    how: str
    b0: int
    """Grid index of the first output row (``i0``, or the start of its bin)."""
    rows: int
    window_rows: int
    chunk_rows: int
    template: xr.Dataset = field(repr=False)

    @property
    def step_ns(self) -> int:
        """Time between output rows."""
        return self.interval_ns * self.k

    def row_time(self, row: int) -> pd.Timestamp:
        """UTC time of output row ``row``."""
        return pd.Timestamp((self.b0 + row * self.k) * self.interval_ns, unit="ns", tz="UTC")

    def windows(self, store: Store) -> Iterator[xr.Dataset]:
        """The export as consecutive datasets of at most ``window_rows`` rows each."""
        span = self.window_rows * self.k
        a = self.i0
        while a < self.i1:
            b = min(self.i1, self.b0 + ((a - self.b0) // span + 1) * span)
            yield store.read(
                self.dataset_id,
                self.channels,
                pd.Timestamp(a * self.interval_ns, unit="ns", tz="UTC"),
                pd.Timestamp(b * self.interval_ns, unit="ns", tz="UTC"),
                self.every,
                self.how,
                as_of=self.snapshot,
            )
            a = b


def export(
    store: Store,
    dataset_id: str,
    out: str | Path,
    *,
    format: str | None = None,
    channels: list[str] | None = None,
    start: object | None = None,
    end: object | None = None,
    every: str | None = None,
    how: str = "mean",
    as_of: AsOf = None,
    tz: str | None = None,
    overwrite: bool = False,
    units_in_header: bool = False,
) -> ExportResult:
    """Write channels over ``[start, end)`` (naive times are UTC) of one snapshot to ``out``.

    ``format`` defaults from the suffix of ``out``; ``tz`` is the zone of CSV times (and of
    the Parquet timestamp type); ``overwrite`` allows replacing an existing output.
    """
    t0 = time.perf_counter()
    path = Path(out)
    fmt = _format_of(path, format)
    zone = _check_tz(tz, fmt)
    _check_target(path, fmt, overwrite)
    plan = _plan(store, dataset_id, channels, start, end, every, how, as_of)
    writer: Callable[[Store, _Plan, Path], None]
    if fmt == "csv":

        def writer(st: Store, p: _Plan, tmp: Path) -> None:
            _write_csv(st, p, tmp, zone or "UTC", units_in_header)

    elif fmt == "parquet":

        def writer(st: Store, p: _Plan, tmp: Path) -> None:
            _write_parquet(st, p, tmp, zone or "UTC")

    elif fmt == "xlsx":

        def writer(st: Store, p: _Plan, tmp: Path) -> None:
            _write_xlsx(st, p, tmp, zone or "UTC", units_in_header)

    elif fmt == "netcdf":
        writer = _write_netcdf
    else:
        writer = _write_zarr
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        writer(store, plan, tmp)
        _move_into_place(tmp, path, overwrite)
    except BaseException:
        _remove(tmp)
        raise
    return ExportResult(
        path=path,
        format=fmt,
        rows=plan.rows,
        channels=list(plan.channels),
        snapshot=plan.snapshot,
        bytes=_size(path),
        start=plan.row_time(0) if plan.rows else None,
        end=plan.row_time(plan.rows - 1) if plan.rows else None,
        seconds=round(time.perf_counter() - t0, 3),
    )


# ---- checks and plan ------------------------------------------------------------------------
def _format_of(path: Path, format: str | None) -> str:
    """The format asked for, else the one the suffix names; ValidationError lists choices."""
    choices = f"{', '.join(FORMATS)} (suffixes {', '.join(SUFFIXES)})"
    if format is not None:
        fmt = format.lower().strip()
        if fmt == "nc":
            fmt = "netcdf"
        if fmt not in FORMATS:
            raise ValidationError(f"export format {format!r} unknown; use one of {choices}")
        return fmt
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValidationError(
            f"cannot tell the export format of {path.name!r} from its suffix; "
            f"pass format= one of {choices}"
        )
    return SUFFIXES[suffix]


def _check_tz(tz: str | None, fmt: str) -> str | None:
    """A valid zone for CSV, Excel or Parquet; NetCDF and Zarr times are UTC by convention."""
    if tz is None:
        return None
    if fmt not in ("csv", "parquet", "xlsx"):
        raise ValidationError(
            f"tz applies to csv, xlsx and parquet exports only; {fmt} times are always UTC"
        )
    try:
        return check_timezone(tz)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _check_target(path: Path, fmt: str, overwrite: bool) -> None:
    """Refuse an existing output unless ``overwrite``, and never replace unrelated folders."""
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise ValidationError(f"{path} exists already").with_fixes([Fix("overwrite", True)])
    if fmt == "zarr":
        if not (path.is_dir() and (path / "zarr.json").is_file()):
            raise ValidationError(f"{path} exists and is not a Zarr store; refusing to replace it")
    elif path.is_dir():
        raise ValidationError(f"{path} is a directory; refusing to replace it with a file")


def _plan(
    store: Store,
    dataset_id: str,
    channels: list[str] | None,
    start: object | None,
    end: object | None,
    every: str | None,
    how: str,
    as_of: AsOf,
) -> _Plan:
    """Pin the snapshot, check the request, and size windows and chunks."""
    snap = store.data(dataset_id).snapshot(as_of)
    names = list(snap.channels) if channels is None else list(channels)
    if len(set(names)) != len(names):
        raise ValidationError(f"channels repeated in {names!r}")
    k = bin_steps(snap.grid, every, how)
    try:
        i0, i1 = index_range(snap, start, end)
        if start is not None and end is not None and to_ns(end) < to_ns(start):
            raise ValidationError(f"end {end!r} is before start {start!r}")
    except ValidationError:
        raise
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"start/end must be times: {exc}") from None
    # A zero-length read at the epoch checks channel names and yields the attributes.
    template = store.read(dataset_id, names, _EPOCH, _EPOCH, every, how, as_of=snap.id)
    b0 = (i0 // k) * k
    rows = -(-(i1 - b0) // k) if i1 > i0 else 0
    chunk_rows = snap.grid.chunk_len if k == 1 else chunk_length_for(snap.grid.interval_ns * k)
    window_rows = max(1, WINDOW_VALUES // (k * max(1, len(names))))
    if window_rows >= chunk_rows:
        window_rows -= window_rows % chunk_rows
    else:
        chunk_rows = window_rows
    chunk_rows = max(1, min(chunk_rows, rows))
    return _Plan(
        dataset_id=dataset_id,
        snapshot=snap.id,
        channels=names,
        interval_ns=snap.grid.interval_ns,
        i0=i0,
        i1=i1,
        k=k,
        every=every,
        how=how,
        b0=b0,
        rows=rows,
        window_rows=window_rows,
        chunk_rows=chunk_rows,
        template=template,
    )


# ---- attributes -----------------------------------------------------------------------------
def _text_attrs(attrs: dict[str, Any]) -> dict[str, str | int | float]:
    """Attributes netCDF/Parquet can hold: lists and other values become JSON text."""
    out: dict[str, str | int | float] = {}
    for key, value in attrs.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            out[str(key)] = value
        else:
            out[str(key)] = json.dumps(value, default=str)
    return out


def _global_attrs(plan: _Plan) -> dict[str, str | int | float]:
    """Dataset attributes of the export (those of ``Store.read``), as text."""
    attrs = _text_attrs(dict(plan.template.attrs))
    attrs["snapshot"] = plan.snapshot
    attrs["history"] = (
        f"{pd.Timestamp.now(tz='UTC').isoformat(timespec='seconds')}: exported by stream0d_nb "
        f"from dataset {plan.dataset_id!r} at snapshot {plan.snapshot}"
    )
    return attrs


def _time_unit(step_ns: int) -> tuple[TimeCode, int, str]:
    """Coarsest of s/ms/us/ns (code, ns per unit, CF name) holding every row time exactly."""
    for code, size, name in _TIME_UNITS:
        if step_ns % size == 0:
            return code, size, name
    return "ns", 1, "nanoseconds"


def _times_ns(ds: xr.Dataset) -> np.ndarray:
    """UTC nanoseconds of a window's rows."""
    return np.asarray(ds["time"].values.astype("datetime64[ns]").astype(np.int64))


# ---- CSV ------------------------------------------------------------------------------------
def _headers(plan: _Plan, units_in_header: bool) -> list[str]:
    """Column titles of a CSV or Excel export, neutralised against formula injection."""
    headers = ["time"]
    for name in plan.channels:
        units = str(plan.template[name].attrs.get("units", ""))
        headers.append(f"{name} [{units}]" if units_in_header and units else name)
    return [spreadsheet_safe(h) for h in headers]


def _write_csv(store: Store, plan: _Plan, tmp: Path, zone: str, units_in_header: bool) -> None:
    """Header line by the csv module (quoting odd names), rows by Arrow's CSV writer."""
    headers = _headers(plan, units_in_header)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(headers)
    code = _time_unit(plan.step_ns)[0]
    schema = pa.schema(
        [pa.field("time", pa.string())] + [pa.field(n, pa.float64()) for n in plan.channels]
    )
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with pa.OSFile(str(tmp), "wb") as sink:
        sink.write(buf.getvalue().encode("utf-8"))
        with pacsv.CSVWriter(sink, schema, write_options=options) as writer:
            for ds in plan.windows(store):
                cols = [_iso_times(_times_ns(ds), zone, code)]
                cols += [
                    pa.array(ds[n].values, type=pa.float64(), from_pandas=True)
                    for n in plan.channels
                ]
                writer.write_table(pa.Table.from_arrays(cols, schema=schema))


# ---- Excel ----------------------------------------------------------------------------------
def _write_xlsx(store: Store, plan: _Plan, tmp: Path, zone: str, units_in_header: bool) -> None:
    """One sheet: the CSV's header (text cells, neutralised), times as the CSV's ISO text
    with their UTC offset (Excel has no time zones), values as numbers, gaps empty."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    if plan.rows + 1 > EXCEL_MAX_ROWS:
        raise ValidationError(
            f"an Excel sheet holds at most {EXCEL_MAX_ROWS - 1:,} rows of data; this export "
            f"has {plan.rows:,}: narrow the range, aggregate (every=...), or export csv or "
            "parquet"
        )
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title="data")

    def text(value: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"  # never a formula, whatever openpyxl would guess
        return cell

    sheet.append([text(h) for h in _headers(plan, units_in_header)])
    code = _time_unit(plan.step_ns)[0]
    for ds in plan.windows(store):
        times = _iso_times(_times_ns(ds), zone, code).to_pylist()
        values = np.empty((len(times), len(plan.channels)))
        for j, n in enumerate(plan.channels):
            values[:, j] = ds[n].values
        cells = values.astype(object)
        cells[np.isnan(values)] = None
        for t, row in zip(times, cells.tolist(), strict=True):
            sheet.append([t, *row])
    book.save(tmp)


def _iso_times(ns: np.ndarray, zone: str, code: TimeCode) -> pa.Array:
    """ISO 8601 local times with their UTC offset (``2024-03-31T03:00:00+02:00``).

    numpy formats the local wall times, and the few distinct offsets are joined on by
    Arrow: about 2.5x faster than ``pyarrow.compute.strftime``.
    """
    utc = pd.DatetimeIndex(ns.view("datetime64[ns]"), tz="UTC")
    local = np.asarray(utc.tz_convert(zone).tz_localize(None).asi8)
    minutes = (local - ns) // 60_000_000_000
    offsets, which = np.unique(minutes, return_inverse=True)
    labels = pa.array(
        [f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in offsets]
    )
    suffix = pa.DictionaryArray.from_arrays(pa.array(which.astype(np.int32)), labels)
    text = np.datetime_as_string(local.astype("datetime64[ns]"), unit=code)
    return pc.binary_join_element_wise(pa.array(text), suffix.cast(pa.string()), "")


# ---- Parquet --------------------------------------------------------------------------------
def _write_parquet(store: Store, plan: _Plan, tmp: Path, zone: str) -> None:
    """One row group per window; units and dataset attributes in the schema."""
    ttype = pa.timestamp("ns", tz=zone)
    fields = [pa.field("time", ttype, nullable=False)]
    for name in plan.channels:
        meta = {k: str(v) for k, v in _text_attrs(dict(plan.template[name].attrs)).items()}
        fields.append(pa.field(name, pa.float64(), metadata=meta))
    meta = {k: str(v) for k, v in _global_attrs(plan).items()}
    schema = pa.schema(fields, metadata=meta)
    with pq.ParquetWriter(str(tmp), schema, compression="zstd") as writer:
        for ds in plan.windows(store):
            cols = [pa.array(_times_ns(ds), type=pa.int64()).cast(ttype)]
            cols += [
                pa.array(ds[n].values, type=pa.float64(), from_pandas=True) for n in plan.channels
            ]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
        if plan.rows == 0:
            writer.write_table(schema.empty_table())


# ---- NetCDF ---------------------------------------------------------------------------------
NETCDF_BACKENDS: tuple[str, ...] = ("h5netcdf", "netCDF4")
"""netCDF-4 writers tried in order: h5netcdf (needs h5py), then netCDF4-python."""


def _netcdf_module() -> Any:
    """The first importable netCDF4-style API of ``NETCDF_BACKENDS``."""
    for name in NETCDF_BACKENDS:
        try:
            if name == "h5netcdf":
                import h5netcdf.legacyapi as mod
                import h5py  # noqa: F401  (h5netcdf >= 1.7 needs it but does not require it)
            else:
                import netCDF4 as mod
        except ImportError:
            continue
        return mod
    raise ModuleNotFoundError(
        "netcdf export needs h5py (for h5netcdf) or netCDF4: pip install 'h5netcdf[h5py]'"
    )


def _write_netcdf(store: Store, plan: _Plan, tmp: Path) -> None:
    """netCDF-4 (HDF5) growing an unlimited ``time`` dimension window by window."""
    nc = _netcdf_module()
    _, size, unit_name = _time_unit(plan.step_ns)
    chunks = (plan.chunk_rows,)
    with nc.Dataset(str(tmp), "w") as f:
        f.createDimension("time", None)
        tvar = f.createVariable("time", "i8", ("time",), chunksizes=chunks)
        tattrs = _text_attrs(dict(plan.template["time"].attrs))
        tattrs.update(
            {
                "units": f"{unit_name} since 1970-01-01",
                "calendar": "proleptic_gregorian",
                "standard_name": "time",
                "axis": "T",
            }
        )
        for key, value in tattrs.items():
            tvar.setncattr(key, value)
        variables = {}
        for name in plan.channels:
            var = f.createVariable(
                name,
                "f8",
                ("time",),
                zlib=True,
                complevel=1,
                shuffle=True,
                chunksizes=chunks,
                fill_value=np.nan,
            )
            for key, value in _text_attrs(dict(plan.template[name].attrs)).items():
                var.setncattr(key, value)
            variables[name] = var
        for key, value in _global_attrs(plan).items():
            f.setncattr(key, value)
        n = 0
        for ds in plan.windows(store):
            m = ds.sizes["time"]
            tvar[n : n + m] = _times_ns(ds) // size
            for name, var in variables.items():
                var[n : n + m] = ds[name].values
            n += m


# ---- Zarr -----------------------------------------------------------------------------------
def _write_zarr(store: Store, plan: _Plan, tmp: Path) -> None:
    """``to_zarr`` for the first window, then appends along ``time``; consolidated metadata."""
    from zarr.codecs import ZstdCodec

    _, _, unit_name = _time_unit(plan.step_ns)
    chunks = (plan.chunk_rows,)
    encoding: dict[str, dict[str, Any]] = {
        "time": {
            "units": f"{unit_name} since 1970-01-01",
            "calendar": "proleptic_gregorian",
            "dtype": "int64",
            "chunks": chunks,
        }
    }
    for name in plan.channels:
        encoding[name] = {
            "chunks": chunks,
            "compressors": [ZstdCodec(level=3)],
            "_FillValue": np.nan,
        }
    attrs = dict(plan.template.attrs)
    attrs.update({k: v for k, v in _global_attrs(plan).items() if k in ("snapshot", "history")})
    first = True
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec yet; we want it anyway.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        for ds in _nonempty_or_template(plan, store):
            ds = ds.assign_attrs(attrs)
            if first:
                ds.to_zarr(str(tmp), mode="w-", zarr_format=3, consolidated=True, encoding=encoding)
                first = False
            else:
                ds.to_zarr(str(tmp), append_dim="time", consolidated=True)


def _nonempty_or_template(plan: _Plan, store: Store) -> Iterator[xr.Dataset]:
    """The export's windows, or the zero-row template when there are none."""
    empty = True
    for ds in plan.windows(store):
        empty = False
        yield ds
    if empty:
        yield plan.template


# ---- files ----------------------------------------------------------------------------------
def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished temporary output to its final name (atomic for files)."""
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ValidationError(f"{path} appeared during the export").with_fixes(
            [Fix("overwrite", True)]
        )
    if tmp.is_dir() and path.exists():
        trash = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(path, trash)
        os.replace(tmp, path)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _remove(p: Path) -> None:
    """Delete a temporary file or folder, ignoring what is not there."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _size(p: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


__all__ = ["FORMATS", "NETCDF_BACKENDS", "SUFFIXES", "ExportResult", "export"]
