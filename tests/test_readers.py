"""open_source on the real shared files and on small made-up messy files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream0d_nb.errors import IngestError
from stream0d_nb.ingest import RawBatch, Source, open_source
from stream0d_nb.ingest import readers as readers_mod
from stream0d_nb.specs import IngestOptions

DATA = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()


def real(rel: str) -> Path:
    p = DATA / rel
    if not p.is_file():
        pytest.skip(f"shared test data {p} is not available (expected ../shared/data/{rel})")
    return p


def ns(text: str) -> int:
    return int(pd.Timestamp(text).as_unit("ns").value)


def read(path: Path, default_tz: str = "UTC", **opts: object) -> tuple[Source, RawBatch]:
    """Open and read everything; return the source and all batches joined into one."""
    src = open_source(path, IngestOptions(**opts), default_tz)  # type: ignore[arg-type]
    batches = list(src.batches())
    for b in batches:
        assert b.times.dtype == np.int64 and b.lines.dtype == np.int64
        assert all(v.dtype == np.float64 and len(v) == len(b.times) for v in b.values.values())
        assert list(b.values) == src.info.channels
    if not batches:
        empty = RawBatch(
            np.zeros(0, np.int64),
            {c: np.zeros(0) for c in src.info.channels},
            np.zeros(0, np.int64),
        )
        return src, empty
    joined = RawBatch(
        times=np.concatenate([b.times for b in batches]),
        values={c: np.concatenate([b.values[c] for b in batches]) for c in src.info.channels},
        lines=np.concatenate([b.lines for b in batches]),
        bytes_read=batches[-1].bytes_read,
    )
    return src, joined


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


# -- real files ---------------------------------------------------------------------------

SKAB_CHANNELS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]


def test_skab_anomaly_free() -> None:
    src, b = read(real("skab/anomaly-free.csv"))
    assert src.info.format == "csv"
    assert src.info.channels == SKAB_CHANNELS
    assert src.info.time_columns == ["datetime"]
    d = src.info.detected
    assert (d["delimiter"], d["decimal"], d["encoding"], d["header_line"]) == (";", ".", "utf-8", 1)
    assert d["units_row"] is False
    assert len(b.times) == 9405 and src.counters.rows_read == 9405
    assert b.times[0] == ns("2020-02-08 13:30:47")
    assert b.lines[0] == 2 and b.lines[-1] == 9406
    assert b.values["Volume Flow RateRMS"][0] == 122.664
    assert b.values["Pressure"].min() < 0  # negative pressures survive
    assert b.bytes_read == src.info.bytes_total
    # Local time zone of naive times is honoured.
    _src2, b2 = read(real("skab/anomaly-free.csv"), default_tz="Europe/Moscow")
    assert b2.times[0] == ns("2020-02-08 10:30:47")


def test_skab_valve_with_labels() -> None:
    src, b = read(real("skab/valve1_1.csv"))
    assert src.info.channels == [*SKAB_CHANNELS, "anomaly", "changepoint"]
    assert set(np.unique(b.values["anomaly"])) <= {0.0, 1.0}
    assert len(b.times) == 1145
    assert b.times[0] == ns("2020-03-09 10:34:33")
    _, b2 = read(real("skab/valve1_1.csv"), skip_columns=["anomaly", "changepoint"])
    assert list(b2.values) == SKAB_CHANNELS


def test_nab_machine_temperature_duplicates_pass_through() -> None:
    src, b = read(real("nab/machine_temperature_system_failure.csv"))
    assert src.info.channels == ["value"] and src.info.time_columns == ["timestamp"]
    assert len(b.times) == 22695
    dup = np.flatnonzero(b.times == ns("2014-01-07 02:00"))
    assert b.lines[dup].tolist() == [10139, 10151]
    assert b.values["value"][dup].tolist() == [94.42340604, 94.13972336]


def test_nab_ambient_temperature() -> None:
    _src, b = read(real("nab/ambient_temperature_system_failure.csv"))
    assert len(b.times) == 7267
    assert b.times[0] == ns("2013-07-04 00:00")
    steps = np.diff(b.times)
    assert (steps > 3600 * 10**9).sum() >= 10  # the gaps are there, untouched
    assert steps.max() > 7 * 86400 * 10**9


# -- layout -------------------------------------------------------------------------------


def test_metadata_units_row_and_brackets(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "m.csv",
        "# exported by SCADA\nline: 3\n\n"
        "time,T [degC],P (bar),Flow / l/min,Speed\n"
        ",,,,rpm\n"
        "2024-01-01 00:00:00,1.5,2,3,4\n"
        "2024-01-01 00:00:01,1.6,2,3,5\n",
    )
    src, b = read(p, units={"Speed": "1/min"})
    assert src.info.channels == ["T", "P", "Flow", "Speed"]
    assert src.info.units == {"T": "degC", "P": "bar", "Flow": "l/min", "Speed": "1/min"}
    assert src.info.columns["T"] == "T [degC]"
    assert src.info.detected["header_line"] == 4 and src.info.detected["units_row"] is True
    assert b.lines.tolist() == [6, 7]
    assert b.values["T"].tolist() == [1.5, 1.6]


def test_units_row_only(tmp_path: Path) -> None:
    p = write(tmp_path, "u.csv", "time;T;P\n;°C;bar\n2024-01-01 00:00;1;2\n")
    src, b = read(p)
    assert src.info.units == {"T": "°C", "P": "bar"} and b.lines.tolist() == [3]


def test_decimal_comma_semicolon_crlf(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "d.csv",
        "Zeit;Temp;Druck\r\n01.02.2024 10:00;21,5;-1,25\r\n01.02.2024 10:01;21,6;1\r\n",
    )
    src, b = read(p)
    assert src.info.detected["decimal"] == ","
    assert src.info.detected["time_parsing"] == "format %d.%m.%Y %H:%M"
    assert b.values["Temp"].tolist() == [21.5, 21.6] and b.values["Druck"].tolist() == [-1.25, 1]
    assert b.times[0] == ns("2024-02-01 10:00")


def test_tsv(tmp_path: Path) -> None:
    p = write(tmp_path, "t.tsv", "timestamp\ta\tb\n2024-01-01T00:00:00\t1\t2\n")
    src, b = read(p)
    assert src.info.detected["delimiter"] == "\t" and b.values["b"].tolist() == [2.0]


def test_quoted_fields(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "q.csv",
        'time,"pressure, inlet",note\n2024-01-01 00:00,"1.5","2"\n2024-01-01 00:01,"2.5",3\n',
    )
    src, b = read(p)
    assert src.info.channels == ["pressure, inlet", "note"]
    assert b.values["pressure, inlet"].tolist() == [1.5, 2.5]


def test_cp1252_and_bom(tmp_path: Path) -> None:
    p = write(tmp_path, "c.csv", "time;Temp [°C]\n2024-01-01 00:00;1,5\n", "cp1252")
    src, b = read(p)
    assert src.info.detected["encoding"] == "cp1252"
    assert src.info.units == {"Temp": "°C"} and b.values["Temp"].tolist() == [1.5]
    p2 = write(tmp_path, "bom.csv", "\ufefftime,T [°C]\n2024-01-01 00:00,1\n")
    src2, b2 = read(p2)
    assert src2.info.detected["encoding"] == "utf-8-sig"
    assert src2.info.time_columns == ["time"] and src2.info.units == {"T": "°C"}
    assert b2.lines.tolist() == [2]


def test_blank_lines_counted_and_line_numbers_kept(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "b.csv",
        "time,a\n2024-01-01 00:00,1\n\n2024-01-01 00:01,2\n,\n2024-01-01 00:02,\n",
    )
    src, b = read(p)
    assert b.lines.tolist() == [2, 4, 6]
    assert np.isnan(b.values["a"][2])
    assert src.counters.rows_skipped == 2 and src.counters.rows_read == 3


def test_wrong_field_count_names_line(tmp_path: Path) -> None:
    p = write(tmp_path, "w.csv", "time,a,b\n2024-01-01 00:00,1,2\n2024-01-01 00:01,1\n")
    with pytest.raises(IngestError, match="fields") as ei:
        read(p)
    assert ei.value.locations[0].line == 3


# -- time ---------------------------------------------------------------------------------


def test_date_and_time_columns_with_24h(tmp_path: Path) -> None:
    p = write(tmp_path, "dt.csv", "Datum;Uhrzeit;T\n2024-01-01;23:00;1\n2024-01-01;24:00;2\n")
    src, b = read(p, date_column="Datum", time_column="Uhrzeit")
    assert src.info.time_columns == ["Datum", "Uhrzeit"] and src.info.channels == ["T"]
    assert b.times.tolist() == [ns("2024-01-01 23:00"), ns("2024-01-02")]
    # Detected without options, too.
    src2, b2 = read(p)
    assert src2.info.detected["date_column"] == "Datum"
    assert b2.times.tolist() == b.times.tolist()


def test_24h_in_iso_column(tmp_path: Path) -> None:
    p = write(tmp_path, "h.csv", "time,a\n2024-01-01T23:00:00,1\n2024-01-01T24:00:00,2\n")
    _, b = read(p)
    assert b.times.tolist() == [ns("2024-01-01 23:00"), ns("2024-01-02")]


def test_epoch_seconds_and_ms(tmp_path: Path) -> None:
    p = write(tmp_path, "e.csv", "ts,a\n1704067200,1\n1704067201,2\n")
    _src, b = read(p, epoch_unit="s")
    assert b.times.tolist() == [ns("2024-01-01"), ns("2024-01-01 00:00:01")]
    p2 = write(tmp_path, "e2.csv", "time,a\n1704067200000,1\n1704067200500,2\n")
    src2, b2 = read(p2)
    assert src2.info.detected["time_parsing"] == "epoch ms"
    assert b2.times.tolist() == [ns("2024-01-01"), ns("2024-01-01 00:00:00.5")]
    _, b3 = read(p2, epoch_unit="ms", tz="Europe/Madrid")  # epochs ignore zones
    assert b3.times.tolist() == b2.times.tolist()


def test_iso_offsets_and_z(tmp_path: Path) -> None:
    p = write(tmp_path, "o.csv", "time,a\n2024-01-01T02:00:00+02:00,1\n2024-01-01T00:00:01Z,2\n")
    _src, b = read(p, tz="Europe/Madrid")
    assert b.times.tolist() == [ns("2024-01-01"), ns("2024-01-01 00:00:01")]
    p2 = write(tmp_path, "mix.csv", "time,a\n2024-01-01T02:00:00,1\n2024-01-01T00:00:01Z,2\n")
    with pytest.raises(IngestError, match="mixes"):
        read(p2)


def madrid_file(tmp_path: Path) -> Path:
    rows = [
        "2024-03-31 01:30",
        "2024-03-31 02:30",
        "2024-03-31 03:30",
        "2024-10-27 01:30",
        "2024-10-27 02:00",
        "2024-10-27 02:30",
        "2024-10-27 02:00",
        "2024-10-27 02:30",
        "2024-10-27 03:00",
    ]
    return write(
        tmp_path, "madrid.csv", "time;v\n" + "".join(f"{t};{i}\n" for i, t in enumerate(rows))
    )


def test_madrid_dst(tmp_path: Path) -> None:
    p = madrid_file(tmp_path)
    with pytest.raises(IngestError, match="does not exist") as ei:
        read(p, tz="Europe/Madrid")
    assert ei.value.locations[0].line == 3 and "line 3" in ei.value.message
    with pytest.raises(IngestError, match="occurs twice") as ei2:
        read(p, tz="Europe/Madrid", nonexistent="drop")
    assert ei2.value.locations[0].line == 6 and "line 6" in ei2.value.message
    assert ei2.value.locations[0].value == "2024-10-27 02:00:00"
    src, b = read(p, tz="Europe/Madrid", nonexistent="drop", ambiguous="infer")
    assert src.counters.rows_dropped_time == 1 and b.lines.tolist() == [2, 4, 5, 6, 7, 8, 9, 10]
    fall = b.times[2:]
    assert fall.tolist() == [ns("2024-10-26 23:30")] + [
        ns("2024-10-27 00:00") + k * 1800 * 10**9 for k in range(5)
    ]
    _, be = read(p, tz="Europe/Madrid", nonexistent="shift_forward", ambiguous="earliest")
    assert be.times[1] == ns("2024-03-31 01:30") and be.times[5] == be.times[7]  # 03:30 CEST
    _, bl = read(p, tz="Europe/Madrid", nonexistent="shift_backward", ambiguous="latest")
    assert bl.times[1] == ns("2024-03-31 00:30")  # 02:30 moved back by the gap: 01:30 CET
    assert bl.times[4] == ns("2024-10-27 01:00")


def test_fixed_utc_offset(tmp_path: Path) -> None:
    p = write(tmp_path, "f.csv", "time,a\n2024-07-01 02:00,1\n")
    _, b = read(p, utc_offset="+02:00", default_tz="America/New_York")
    assert b.times.tolist() == [ns("2024-07-01 00:00")]


def test_no_or_several_time_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "n.csv", "a,b\n1,2\n")
    with pytest.raises(IngestError, match="time_column"):
        read(p)
    p2 = write(tmp_path, "s.csv", "start,end,a\n2024-01-01 00:00,2024-01-01 01:00,1\n")
    with pytest.raises(IngestError, match="time_column"):
        read(p2)
    _, b = read(p2, time_column="end", skip_columns=["start"])
    assert b.times.tolist() == [ns("2024-01-01 01:00")]


def test_unparseable_time(tmp_path: Path) -> None:
    p = write(tmp_path, "ut.csv", "time,a\n2024-01-01 00:00,1\nyesterday,2\n")
    with pytest.raises(IngestError, match="time") as ei:
        read(p)
    loc = ei.value.locations[0]
    assert (loc.file, loc.line, loc.column, loc.value) == (str(p), 3, "time", "yesterday")


# -- values -------------------------------------------------------------------------------


def test_sentinel_skip_rename_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "v.csv", "time,a,b,c\n2024-01-01,1,-9999,3\n2024-01-02,NA,5,6\n")
    src, b = read(p, missing_values=["-9999"], skip_columns=["c"], rename={"a": "alpha"})
    assert src.info.channels == ["alpha", "b"] and src.info.columns == {"alpha": "a", "b": "b"}
    assert np.isnan(b.values["b"][0]) and np.isnan(b.values["alpha"][1])
    src2, _ = read(p, columns=["c", "a"])
    assert src2.info.channels == ["c", "a"]
    with pytest.raises(IngestError, match="not a column"):
        read(p, columns=["zzz"])


def test_bad_cell_error_and_missing_policy(tmp_path: Path) -> None:
    p = write(tmp_path, "bad.csv", "time,a,b\n2024-01-01,1,2\n2024-01-02,x1,3\n2024-01-03,4,??\n")
    with pytest.raises(IngestError, match="bad_values='missing'") as ei:
        read(p)
    locs = [(loc.file, loc.line, loc.column, loc.value) for loc in ei.value.locations]
    assert locs == [(str(p), 3, "a", "x1"), (str(p), 4, "b", "??")]
    src, b = read(p, bad_values="missing")
    assert src.counters.bad_cells_missing == 2
    assert np.isnan(b.values["a"][1]) and b.values["a"][2] == 4.0


def test_text_column_suggests_skip_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "st.csv", "time,a,status\n2024-01-01,1,RUN\n2024-01-02,2,STOP\n")
    with pytest.raises(IngestError, match="skip_columns"):
        read(p)
    src, _ = read(p, skip_columns=["status"])
    assert src.info.channels == ["a"]


def test_bad_cell_far_into_streamed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers_mod, "CHUNK_BYTES", 64 * 1024)
    n = 50_000
    t = pd.date_range("2024-01-01", periods=n, freq="1s").strftime("%Y-%m-%dT%H:%M:%S")
    vals = np.arange(n).astype(str).astype(object)
    vals[45_000] = "oops"
    p = tmp_path / "big.csv"
    pd.DataFrame({"time": t, "v": vals, "w": np.ones(n)}).to_csv(p, index=False)
    assert p.stat().st_size > 10 * 64 * 1024
    src = open_source(p, IngestOptions())
    got = 0
    with pytest.raises(IngestError) as ei:
        for batch in src.batches():
            got += len(batch.times)
    assert got > 0
    loc = ei.value.locations[0]
    assert (loc.line, loc.column, loc.value) == (45_002, "v", "oops")
    src2, b = read(p, bad_values="missing")
    assert len(b.times) == n and src2.counters.bad_cells_missing == 1
    assert np.array_equal(b.lines, np.arange(2, n + 2))
    assert np.isnan(b.values["v"][45_000]) and b.values["v"][44_999] == 44_999


# -- other formats ------------------------------------------------------------------------


def test_excel_with_units_row(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws.append(["Report line 3"])
    ws.append([])
    ws.append(["Zeitstempel", "Temp", "Druck"])
    ws.append([None, "degC", "bar"])
    ws.append([pd.Timestamp("2024-01-01 00:00").to_pydatetime(), 1.5, 2])
    ws.append([pd.Timestamp("2024-01-01 00:01").to_pydatetime(), "n/a", 3])
    ws.append([pd.Timestamp("2024-01-01 00:02").to_pydatetime(), 2.5, "bad"])
    p = tmp_path / "x.xlsx"
    wb.save(p)
    with pytest.raises(IngestError) as ei:
        read(p)
    loc = ei.value.locations[0]
    assert (loc.line, loc.column, loc.value) == (7, "Druck", "bad")
    src, b = read(p, bad_values="missing", tz="Europe/Madrid")
    assert src.info.format == "excel" and src.info.detected["sheet"] == "Data"
    assert src.info.detected["header_line"] == 3 and src.info.detected["units_row"] is True
    assert src.info.units == {"Temp": "degC", "Druck": "bar"}
    assert b.lines.tolist() == [5, 6, 7]
    assert b.times[0] == ns("2023-12-31 23:00")
    assert np.isnan(b.values["Temp"][1]) and b.values["Druck"][1] == 3


def test_parquet_tz_aware_and_naive(tmp_path: Path) -> None:
    t = pd.date_range("2024-03-31 00:00", periods=4, freq="h", tz="Europe/Madrid")
    p = tmp_path / "p.parquet"
    pq.write_table(pa.table({"time": t, "T [degC]": [1.0, 2.0, None, 4.0], "n": [1, 2, 3, 4]}), p)
    src, b = read(p)
    assert src.info.format == "parquet" and src.info.units["T"] == "degC"
    assert b.times.tolist() == [x.value for x in t.tz_convert("UTC").as_unit("ns")]
    assert b.lines.tolist() == [1, 2, 3, 4] and np.isnan(b.values["T"][2])
    p2 = tmp_path / "n.parquet"
    pq.write_table(
        pa.table({"ts": pd.date_range("2024-01-01", periods=2, freq="h"), "v": [1.0, 2.0]}), p2
    )
    _, b2 = read(p2, tz="Europe/Madrid")
    assert b2.times.tolist() == [ns("2023-12-31 23:00"), ns("2024-01-01 00:00")]


def test_json_records_columns_lines(tmp_path: Path) -> None:
    recs = [
        {"time": "2024-01-01T00:00:00Z", "a": 1.5, "b": 1},
        {"time": "2024-01-01T00:00:01Z", "a": None, "b": "2"},
    ]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(recs))
    src, b = read(p)
    assert src.info.detected["json_shape"] == "records" and src.info.channels == ["a", "b"]
    assert b.times.tolist() == [ns("2024-01-01"), ns("2024-01-01 00:00:01")]
    assert np.isnan(b.values["a"][1]) and b.values["b"].tolist() == [1.0, 2.0]
    assert b.lines.tolist() == [1, 2]
    p2 = tmp_path / "c.json"
    p2.write_text(json.dumps({"timestamp": [1704067200000, 1704067201000], "v": [1, 2]}))
    src2, b2 = read(p2)
    assert src2.info.detected["json_shape"] == "columns"
    assert b2.times.tolist() == [ns("2024-01-01"), ns("2024-01-01 00:00:01")]
    p3 = tmp_path / "l.jsonl"
    p3.write_text(
        '{"time": "2024-01-01 00:00", "v": 1}\n\n{"time": "2024-01-01 00:01", "v": "x"}\n'
    )
    with pytest.raises(IngestError) as ei:
        read(p3)
    assert ei.value.locations[0].line == 3 and ei.value.locations[0].value == "x"
    _, b3 = read(p3, bad_values="missing")
    assert b3.lines.tolist() == [1, 3]


def test_format_detection_and_override(tmp_path: Path) -> None:
    p = write(tmp_path, "data.log", "time,a\n2024-01-01,1\n")
    with pytest.raises(IngestError, match="format"):
        open_source(p, IngestOptions())
    _, b = read(p, format="csv")
    assert b.values["a"].tolist() == [1.0]
    with pytest.raises(IngestError, match="no such file"):
        open_source(tmp_path / "missing.csv", IngestOptions())


def test_day_month_order_must_be_given(tmp_path: Path) -> None:
    p = write(tmp_path, "dm.csv", "Time (UTC),Speed (rpm)\n08/02/2020 13:30,5\n")
    with pytest.raises(IngestError, match="time_format") as ei:
        read(p)
    assert ei.value.locations[0].file == str(p)
    src, b = read(p, time_format="%d/%m/%Y %H:%M")
    assert src.info.units == {"Speed": "rpm"} and b.times.tolist() == [ns("2020-02-08 13:30")]


def test_decimal_comma_with_few_rows_and_empty_cells(tmp_path: Path) -> None:
    p = write(tmp_path, "x.csv", "time;a;b\r\n2024-01-01 00:00;1,5;2\r\n2024-01-01 00:01;;x\r\n")
    src, b = read(p, bad_values="missing")
    assert src.info.detected["decimal"] == ","
    assert b.values["a"][0] == 1.5 and np.isnan(b.values["a"][1])
    assert src.counters.bad_cells_missing == 1


def test_header_only_file(tmp_path: Path) -> None:
    src, b = read(write(tmp_path, "h.csv", "time,a\n"))
    assert src.info.channels == ["a"] and len(b.times) == 0 and src.counters.rows_read == 0


def test_streamed_chunks_reuse_buffers_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small chunks (reused read buffers, partial lines of every length, blank lines and
    CRLF) give exactly what pandas reads from the whole file, with exact line numbers."""
    monkeypatch.setattr(readers_mod, "CHUNK_BYTES", 4096)
    rng = np.random.default_rng(7)
    n = 20_000
    t = pd.date_range("2024-01-01", periods=n, freq="1s").strftime("%Y-%m-%dT%H:%M:%S")
    a = np.round(rng.normal(0, 10.0 ** rng.integers(0, 6, n)), 3)  # widths vary per line
    b = rng.integers(-(10**9), 10**9, n).astype(float)
    lines = ["time,a,b"] + [f"{t[i]},{float(a[i])!r},{b[i]:.0f}" for i in range(n)]
    blank = {101, 5_000, 12_345}  # indices in `lines` before which a blank line goes
    text = "".join(("\r\n" if i in blank else "") + line + "\r\n" for i, line in enumerate(lines))
    p = tmp_path / "var.csv"
    p.write_bytes(text.encode())
    src, got = read(p)
    assert src.info.detected["chunks_reparsed_as_text"] == 0
    assert np.array_equal(got.values["a"], a) and np.array_equal(got.values["b"], b)
    assert np.array_equal(got.times, pd.DatetimeIndex(t).as_unit("ns").asi8)
    expected_lines = np.arange(2, n + 2) + np.array(
        [sum(1 for k in blank if k <= i + 1) for i in range(n)]
    )
    assert np.array_equal(got.lines, expected_lines)


def test_line_longer_than_a_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers_mod, "CHUNK_BYTES", 64)
    long_value = "1." + "0" * 300 + "1"
    rows = [f"2024-01-01T00:00:{s:02d},{s}" for s in range(40)]
    rows[17] = f"2024-01-01T00:00:17,{long_value}"
    p = write(tmp_path, "long.csv", "time,v\n" + "\n".join(rows) + "\n")
    _, got = read(p)
    assert got.values["v"].tolist() == [float(s) for s in range(17)] + [1.0] + [
        float(s) for s in range(18, 40)
    ]
    assert got.lines.tolist() == list(range(2, 42))
