"""Exports to CSV, Parquet, NetCDF and Zarr read back exactly, on real temporary stores."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr
import zarr

from stream0d_nb import export as export_mod
from stream0d_nb.errors import ChannelNotFoundError, ValidationError
from stream0d_nb.export import ExportResult, export
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store


def _has_open_source() -> bool:
    """Whether the file readers (written separately from the store) exist yet."""
    try:
        import stream0d_nb.ingest as ingest
    except ImportError:
        return False
    return hasattr(ingest, "open_source")


needs_ingest = pytest.mark.skipif(
    not _has_open_source(), reason="stream0d_nb.ingest.open_source does not exist yet"
)

DS = "line-1"
FLOW = "Volume Flow RateRMS"
UNITS = {"temp": "degC", FLOW: "m**3/h"}
START = pd.Timestamp("2024-03-30T00:00:00Z")  # spans the DST change of 2024-03-31 01:00Z
DAYS = 3
SUFFIX = {"csv": "csv", "parquet": "parquet", "netcdf": "nc", "zarr": "zarr"}

# netCDF writers present here (h5netcdf needs h5py, which h5netcdf >= 1.7 does not pull in).
NETCDF_BACKENDS = [
    b
    for b, mod in (("h5netcdf", "h5py"), ("netCDF4", "netCDF4"))
    if importlib.util.find_spec(mod) is not None
]
NC_ENGINE = "h5netcdf" if "h5netcdf" in NETCDF_BACKENDS else "netcdf4"


def spec(ds_id: str = DS) -> DatasetSpec:
    return DatasetSpec(
        id=ds_id,
        interval="1s",
        tz="Europe/Madrid",
        channels=[
            ChannelSpec(name="temp", units="degC", tags=["line", "hot"], description="oven"),
            ChannelSpec(name=FLOW, units="m**3/h"),
        ],
    )


def make_frame(start: pd.Timestamp = START, days: float = DAYS, seed: int = 0) -> pd.DataFrame:
    """Full-precision values with a 2 h gap, scattered NaNs and a NaN block."""
    n = int(days * 86_400)
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="1s").as_unit("ns")
    df = pd.DataFrame({"temp": rng.normal(60, 5, n), FLOW: rng.normal(3, 1, n) * 1e-3}, index=idx)
    df.loc[rng.random(n) < 0.01, "temp"] = np.nan
    df.iloc[40_000:41_000, 1] = np.nan
    return df.drop(df.index[100_000:107_200])


def on_grid(df: pd.DataFrame) -> pd.DataFrame:
    """What the store holds for ``df``: every grid time from first to last, NaN in gaps."""
    full = pd.date_range(df.index[0], df.index[-1], freq="1s").as_unit("ns")
    return df.reindex(full)


@pytest.fixture(scope="module")
def source() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, source: pd.DataFrame) -> Iterator[Store]:
    """A store holding DS (3 days of 1 s data, 2 channels), shared by the read-only tests."""
    st = Store(Settings(home=tmp_path_factory.mktemp("export-store")))
    st.create_dataset(spec())
    st.write(DS, source)
    yield st
    st.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Store]:
    """An empty store for tests that write."""
    st = Store(Settings(home=tmp_path / "home"))
    yield st
    st.close()


# ---- readers of each format, giving a UTC-indexed frame and per-channel units -----------------
def read_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, index_col="time", dtype={"time": str})
    df.index = pd.to_datetime(df.index, format="ISO8601", utc=True).as_unit("ns")
    return df.astype(np.float64)


def read_parquet(path: Path) -> pd.DataFrame:
    df = pq.read_table(path).to_pandas().set_index("time")
    df.index = pd.DatetimeIndex(df.index).tz_convert("UTC").as_unit("ns")
    return df


def read_xr(ds: xr.Dataset) -> pd.DataFrame:
    df = ds.to_dataframe()
    df.index = pd.DatetimeIndex(df.index).tz_localize("UTC").as_unit("ns")
    return df


def read_back(fmt: str, path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Values and units of an export, via pandas, pyarrow or xarray."""
    if fmt == "csv":
        return read_csv(path), {}
    if fmt == "parquet":
        schema = pq.read_schema(path)
        units = {f.name: f.metadata[b"units"].decode() for f in schema if f.name != "time"}
        return read_parquet(path), units
    opened = xr.open_dataset(path, engine=NC_ENGINE) if fmt == "netcdf" else xr.open_zarr(path)
    with opened as ds:
        ds.load()
        return read_xr(ds), {str(k): v.attrs["units"] for k, v in ds.data_vars.items()}


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same times, columns and values exactly (NaN in the same places)."""
    pd.testing.assert_frame_equal(
        got[list(want.columns)],
        want,
        check_exact=True,
        check_freq=False,
        check_names=False,
        check_index_type=False,
    )


def formats() -> list[object]:
    marks = [] if NETCDF_BACKENDS else [pytest.mark.skip(reason="no h5py nor netCDF4 installed")]
    return ["csv", "parquet", pytest.param("netcdf", marks=marks), "zarr"]


def no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ---- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", formats())
def test_roundtrip_whole_dataset(
    store: Store, source: pd.DataFrame, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"all.{SUFFIX[fmt]}"
    res = export(store, DS, out)
    assert isinstance(res, ExportResult)
    want = on_grid(source)
    assert res.format == fmt and res.path == out and out.exists()
    assert res.rows == len(want) == 3 * 86_400
    assert res.channels == ["temp", FLOW]  # the dataset's order
    assert res.snapshot == store.data(DS).head()
    assert res.start == want.index[0] and res.end == want.index[-1]
    assert res.bytes > 0 and str(out) in str(res)
    got, units = read_back(fmt, out)
    assert_same(got, want)
    assert list(got.columns) == res.channels or fmt == "zarr"
    if fmt != "csv":
        assert units == UNITS
    no_leftovers(tmp_path)


def test_csv_layout_and_time_zone(store: Store, source: pd.DataFrame, tmp_path: Path) -> None:
    res = export(store, DS, tmp_path / "a.csv")
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == ",".join(["time", *res.channels])
    assert lines[1].startswith("2024-03-30T00:00:00+00:00,")
    assert len(lines) == res.rows + 1
    gap = lines[1 + 100_000]  # first row of the 2 h gap: time only, empty cells
    assert gap == "2024-03-31T03:46:40+00:00" + "," * len(res.channels)

    local = export(store, DS, tmp_path / "b.csv", tz="Europe/Madrid", units_in_header=True)
    text = (tmp_path / "b.csv").read_text().splitlines()
    assert text[0] == ",".join(["time", *(f"{c} [{UNITS[c]}]" for c in local.channels)])
    before = 1 + (pd.Timestamp("2024-03-31T00:59:59Z") - START) // pd.Timedelta("1s")
    assert text[before].startswith("2024-03-31T01:59:59+01:00,")
    assert text[before + 1].startswith("2024-03-31T03:00:00+02:00,")
    got = read_csv(tmp_path / "b.csv")
    got.columns = [c.split(" [")[0] for c in got.columns]
    assert_same(got, on_grid(source))


def test_parquet_schema(store: Store, tmp_path: Path) -> None:
    res = export(store, DS, tmp_path / "a.pq")
    assert res.format == "parquet"
    schema = pq.read_schema(tmp_path / "a.pq")
    assert schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert all(schema.field(c).type == pa.float64() for c in res.channels)
    temp = schema.field("temp").metadata
    assert temp[b"units"] == b"degC" and temp[b"long_name"] == b"temp"
    assert temp[b"description"] == b"oven" and json.loads(temp[b"tags"]) == ["line", "hot"]
    meta = schema.metadata
    assert meta[b"dataset"] == DS.encode() and meta[b"interval"] == b"1s"
    assert meta[b"tz"] == b"Europe/Madrid" and meta[b"snapshot"] == res.snapshot.encode()
    assert pq.ParquetFile(tmp_path / "a.pq").metadata.num_row_groups >= 1


@pytest.mark.parametrize("backend", NETCDF_BACKENDS or ["none"])
def test_netcdf_is_cf(
    store: Store,
    source: pd.DataFrame,
    tmp_path: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend == "none":
        pytest.skip("no h5py nor netCDF4 installed")
    monkeypatch.setattr(export_mod, "NETCDF_BACKENDS", (backend,))
    res = export(store, DS, tmp_path / "a.nc")
    with xr.open_dataset(tmp_path / "a.nc", engine=NC_ENGINE, decode_times=False) as raw:
        assert raw["time"].dtype == np.int64
        assert raw["time"].attrs["units"] == "seconds since 1970-01-01"
        assert raw["time"].attrs["standard_name"] == "time"
        assert int(raw["time"][0]) == START.value // 10**9
    with xr.open_dataset(tmp_path / "a.nc", engine=NC_ENGINE) as ds:
        assert ds.attrs["dataset"] == DS and ds.attrs["snapshot"] == res.snapshot
        assert ds.attrs["Conventions"].startswith("CF-")
        assert ds["temp"].attrs["units"] == "degC"
        assert json.loads(ds["temp"].attrs["tags"]) == ["line", "hot"]
        assert ds.encoding["unlimited_dims"] == {"time"}
        assert_same(read_xr(ds.load()), on_grid(source))


def test_zarr_store(store: Store, tmp_path: Path) -> None:
    res = export(store, DS, tmp_path / "a.zarr")
    group = zarr.open_group(tmp_path / "a.zarr", mode="r")
    assert group.metadata.zarr_format == 3
    assert json.loads((tmp_path / "a.zarr" / "zarr.json").read_text()).get("consolidated_metadata")
    temp = group["temp"]
    assert isinstance(temp, zarr.Array) and temp.chunks == (86_400,)
    with xr.open_zarr(tmp_path / "a.zarr", consolidated=True) as ds:
        assert ds["temp"].attrs["tags"] == ["line", "hot"]
        assert ds.attrs["snapshot"] == res.snapshot and ds.attrs["tz"] == "Europe/Madrid"
        assert ds["time"].encoding["units"] == "seconds since 1970-01-01"


# ---- selections ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", formats())
def test_sub_range_and_channel_subset(
    store: Store, source: pd.DataFrame, tmp_path: Path, fmt: str
) -> None:
    start, end = "2024-03-30T23:59:30.5Z", "2024-04-01T01:00:00+02:00"  # end = 23:00Z, excluded
    res = export(store, DS, tmp_path / f"s.{SUFFIX[fmt]}", channels=["temp"], start=start, end=end)
    want = on_grid(source).loc["2024-03-30T23:59:31Z":"2024-03-31T22:59:59Z", ["temp"]]
    assert res.channels == ["temp"] and res.rows == len(want)
    got, units = read_back(fmt, tmp_path / f"s.{SUFFIX[fmt]}")
    assert list(got.columns) == ["temp"]
    assert_same(got, want)
    if fmt != "csv":
        assert units == {"temp": "degC"}


@pytest.mark.parametrize("fmt", formats())
def test_aggregated(store: Store, source: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"m.{SUFFIX[fmt]}"
    res = export(store, DS, out, every="1min", start="2024-03-30T00:00:30Z")
    want = read_xr(store.read(DS, start="2024-03-30T00:00:30Z", every="1min"))
    assert res.rows == len(want) == 3 * 1440 and res.start == START
    got, units = read_back(fmt, out)
    assert_same(got, want)
    assert units == ({} if fmt == "csv" else UNITS)
    # and it is the plain mean of the source over epoch-aligned minutes
    ref = on_grid(source).loc["2024-03-30T00:00:30Z":].resample("1min").mean()
    np.testing.assert_allclose(got[list(ref.columns)].to_numpy(), ref.to_numpy(), rtol=1e-12)
    if fmt == "parquet":
        meta = pq.read_schema(out).field("temp").metadata
        assert meta[b"cell_methods"] == b"time: mean (interval: 1min)"
        assert pq.read_schema(out).metadata[b"interval"] == b"1min"


def test_aggregated_count_keeps_units_one(store: Store, tmp_path: Path) -> None:
    export(store, DS, tmp_path / "c.parquet", every="1h", how="count", channels=["temp"])
    df = read_parquet(tmp_path / "c.parquet")
    assert pq.read_schema(tmp_path / "c.parquet").field("temp").metadata[b"units"] == b"1"
    assert df["temp"].max() <= 3600 and df["temp"].iloc[28] == 0  # 04:00Z lies in the gap


@pytest.mark.parametrize("fmt", formats())
def test_windows_give_the_same_file_content(
    store: Store, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small windows (many reads, appends, row groups) give exactly what one read gives."""
    monkeypatch.setattr(export_mod, "WINDOW_VALUES", 20_000)
    for every, start in ((None, "2024-03-30T07:13:11Z"), ("7s", "2024-03-30T07:13:12Z")):
        out = tmp_path / f"w{every}.{SUFFIX[fmt]}"
        res = export(store, DS, out, every=every, start=start, end="2024-03-31T09:00:00Z")
        want = read_xr(store.read(DS, start=start, end="2024-03-31T09:00:00Z", every=every))
        assert res.rows == len(want)
        assert_same(read_back(fmt, out)[0], want)


@pytest.mark.parametrize("fmt", formats())
def test_empty_range(store: Store, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"e.{SUFFIX[fmt]}"
    res = export(store, DS, out, start="2024-03-31", end="2024-03-31")
    assert res.rows == 0 and res.start is None and out.exists()
    got, _ = read_back(fmt, out)
    assert len(got) == 0 and sorted(got.columns) == sorted(UNITS)


@pytest.mark.parametrize("fmt", formats())
def test_as_of_earlier_snapshot(fresh: Store, tmp_path: Path, fmt: str) -> None:
    fresh.create_dataset(spec())
    first = make_frame(days=0.5, seed=1)
    snap1 = fresh.write(DS, first).commit
    second = make_frame(START + pd.Timedelta("6h"), days=0.5, seed=2)
    fresh.write(DS, second)
    out = tmp_path / f"old.{SUFFIX[fmt]}"
    res = export(fresh, DS, out, as_of=snap1)
    assert res.snapshot == snap1 and res.rows == len(on_grid(first))
    assert_same(read_back(fmt, out)[0], on_grid(first))
    now = export(fresh, DS, tmp_path / f"new.{SUFFIX[fmt]}")
    assert now.snapshot != snap1 and now.rows == 18 * 3600


# ---- files and errors ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", formats())
def test_refuses_to_overwrite(store: Store, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"o.{SUFFIX[fmt]}"
    export(store, DS, out, end="2024-03-30T01:00Z")
    with pytest.raises(ValidationError, match="exists"):
        export(store, DS, out, end="2024-03-30T02:00Z")
    res = export(store, DS, out, end="2024-03-30T02:00Z", channels=["temp"], overwrite=True)
    got, _ = read_back(fmt, out)
    assert res.rows == len(got) == 7200 and list(got.columns) == ["temp"]
    no_leftovers(tmp_path)


def test_overwrite_never_replaces_unrelated_folders(store: Store, tmp_path: Path) -> None:
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "precious.txt").write_text("keep me")
    with pytest.raises(ValidationError, match="not a Zarr store"):
        export(store, DS, tmp_path / "x.zarr", overwrite=True)
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(ValidationError, match="directory"):
        export(store, DS, tmp_path / "d.csv", overwrite=True)
    assert (tmp_path / "x.zarr" / "precious.txt").read_text() == "keep me"


def test_unknown_format(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"csv, parquet, netcdf, zarr"):
        export(store, DS, tmp_path / "a.txt")
    with pytest.raises(ValidationError, match=r"'xls' unknown.*csv, parquet, netcdf, zarr, xlsx"):
        export(store, DS, tmp_path / "a.csv", format="xls")
    res = export(store, DS, tmp_path / "a.txt", format="csv", end="2024-03-30T00:00:10Z")
    assert res.format == "csv" and res.rows == 10
    assert not (tmp_path / "a.csv").exists()


def test_bad_requests(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    with pytest.raises(ChannelNotFoundError, match="did you mean 'temp'"):
        export(store, DS, out, channels=["tmp"])
    with pytest.raises(ValidationError, match="multiple"):
        export(store, DS, out, every="1500ms")
    with pytest.raises(ValidationError, match="not a duration"):
        export(store, DS, out, every="often")
    with pytest.raises(ValidationError, match="aggregation"):
        export(store, DS, out, every="1min", how="median")
    with pytest.raises(ValidationError, match="time"):
        export(store, DS, out, start="yesterday-ish")
    with pytest.raises(ValidationError, match="before start"):
        export(store, DS, out, start="2024-03-31", end="2024-03-30")
    with pytest.raises(ValidationError, match="time zone"):
        export(store, DS, out, tz="Mars/Olympus")
    with pytest.raises(ValidationError, match="UTC"):
        export(store, DS, tmp_path / "a.nc", tz="Europe/Madrid")
    assert not out.exists()
    no_leftovers(tmp_path)


@pytest.mark.parametrize("fmt", formats())
def test_interrupted_export_leaves_nothing(
    store: Store, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_mod, "WINDOW_VALUES", 100_000)
    real = Store.read
    calls = {"n": 0}

    def flaky(self: Store, *args: object, **kw: object) -> xr.Dataset:
        calls["n"] += 1
        if calls["n"] == 4:  # template read, two windows written, then the interrupt
            raise KeyboardInterrupt
        return real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "read", flaky)
    out = tmp_path / f"i.{SUFFIX[fmt]}"
    with pytest.raises(KeyboardInterrupt):
        export(store, DS, out)
    assert not out.exists()
    no_leftovers(tmp_path)


# ---- re-ingest -----------------------------------------------------------------------------
@needs_ingest
@pytest.mark.parametrize(
    ("suffix", "kw"),
    [
        ("csv", {"units_in_header": True}),
        ("csv", {"units_in_header": True, "tz": "Europe/Madrid"}),
        ("parquet", {}),
    ],
)
def test_reingest_gives_identical_data(
    fresh: Store, source: pd.DataFrame, tmp_path: Path, suffix: str, kw: dict[str, object]
) -> None:
    """An export ingested into a new, empty dataset gives the same channels, units and data."""
    fresh.create_dataset(spec())
    fresh.write(DS, source)
    out = tmp_path / f"x.{suffix}"
    export(fresh, DS, out, **kw)  # type: ignore[arg-type]
    fresh.create_dataset(DatasetSpec(id="copy", interval="1s", tz="Asia/Tokyo"))
    report = fresh.ingest("copy", out)
    assert sorted(report.new_channels) == sorted(UNITS)
    assert {c.name: c.units for c in fresh.channels("copy")} == UNITS
    assert_same(read_xr(fresh.read("copy")), read_xr(fresh.read(DS)))
    again = fresh.ingest("copy", out)
    assert again.unchanged


@needs_ingest
def test_reingest_into_existing_channels(fresh: Store, tmp_path: Path) -> None:
    """A plain CSV (no units) goes back into a dataset that has the channels already."""
    fresh.create_dataset(spec())
    df = make_frame(days=0.25)
    fresh.write(DS, df)
    export(fresh, DS, tmp_path / "p.csv")
    fresh.create_dataset(spec("copy"))
    fresh.ingest("copy", tmp_path / "p.csv")
    assert_same(read_xr(fresh.read("copy")), on_grid(df))


@pytest.mark.parametrize("fmt", formats())
def test_sub_second_interval(fresh: Store, tmp_path: Path, fmt: str) -> None:
    """250 ms data: CSV times carry milliseconds, CF time units are milliseconds."""
    fresh.create_dataset(DatasetSpec(id="fast", interval="250ms", channels=[spec().channels[0]]))
    idx = pd.date_range("2024-01-01", periods=1000, freq="250ms", tz="UTC").as_unit("ns")
    df = pd.DataFrame({"temp": np.linspace(0, 1, 1000) ** 3}, index=idx)
    fresh.write("fast", df)
    out = tmp_path / f"f.{SUFFIX[fmt]}"
    export(fresh, "fast", out)
    assert_same(read_back(fmt, out)[0], df)
    if fmt == "csv":
        assert out.read_text().splitlines()[2].startswith("2024-01-01T00:00:00.250+00:00,")
    if fmt == "netcdf":
        with xr.open_dataset(out, engine=NC_ENGINE, decode_times=False) as raw:
            assert raw["time"].attrs["units"] == "milliseconds since 1970-01-01"


def test_csv_headers_a_spreadsheet_would_run_are_quoted(fresh: Store, tmp_path: Path) -> None:
    """OWASP CSV injection: headers starting with = + - @ get a leading quote; the values
    stay numbers (-3.5 is not quoted)."""
    names = ["=cmd|' -C calc'!A0", "+1+2", "-x", "@SUM(A1)", "temp"]
    chans = [ChannelSpec(name=n, units="degC") for n in names]
    fresh.create_dataset(DatasetSpec(id="inj", interval="1s", channels=chans))
    idx = pd.date_range("2024-01-01", periods=2, freq="1s", tz="UTC").as_unit("ns")
    fresh.write("inj", pd.DataFrame({n: [-3.5, 2.0] for n in names}, index=idx))
    quoted = ["'=cmd|' -C calc'!A0", "'+1+2", "'-x", "'@SUM(A1)", "temp"]
    values = [
        ["2024-01-01T00:00:00+00:00", *["-3.5"] * 5],
        ["2024-01-01T00:00:01+00:00", *["2"] * 5],
    ]
    for units_in_header, headers in (
        (False, quoted),
        (True, [f"{h} [degC]" for h in quoted]),
    ):
        out = tmp_path / f"u{units_in_header}.csv"
        export(fresh, "inj", out, units_in_header=units_in_header)
        with out.open(newline="") as f:
            assert list(csv.reader(f)) == [["time", *headers], *values]


def test_excel_export_neutralises_formulas_and_keeps_numbers(
    fresh: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Excel export: the CSV's neutralised headers as text cells (never formulas),
    numbers as numbers, gaps empty, local times; more rows than a sheet holds is refused."""
    import openpyxl

    from stream0d_nb import export as export_module

    names = ["=cmd|' -C calc'!A0", "+1+2", "-x", "@SUM(A1)", "temp"]
    chans = [ChannelSpec(name=n, units="degC") for n in names]
    fresh.create_dataset(DatasetSpec(id="inj", interval="1s", channels=chans))
    idx = pd.date_range("2024-07-01", periods=3, freq="1s", tz="UTC").as_unit("ns")
    frame = pd.DataFrame({n: [-3.5, np.nan, 2.0] for n in names}, index=idx)
    fresh.write("inj", frame)
    out = tmp_path / "a.xlsx"
    res = export(fresh, "inj", out, tz="Europe/Madrid", units_in_header=True)
    assert (res.format, res.rows) == ("xlsx", 3)
    sheet = openpyxl.load_workbook(out).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == ["time", *(f"'{n} [degC]" for n in names[:4]), "temp [degC]"]
    assert all(c.data_type == "s" for c in next(sheet.iter_rows()))
    assert rows[1:] == [
        ["2024-07-01T02:00:00+02:00", *[-3.5] * 5],
        ["2024-07-01T02:00:01+02:00", *[None] * 5],
        ["2024-07-01T02:00:02+02:00", *[2.0] * 5],
    ]
    monkeypatch.setattr(export_module, "EXCEL_MAX_ROWS", 3)
    with pytest.raises(ValidationError, match=r"at most 2 rows of data; this export has 3"):
        export(fresh, "inj", tmp_path / "b.xlsx")
    assert not (tmp_path / "b.xlsx").exists() and not list(tmp_path.glob(".b.xlsx*"))
