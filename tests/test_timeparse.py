"""Time conversion: formats, offsets, epochs, 24:00 and DST policies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from stream0d_nb.errors import IngestError
from stream0d_nb.ingest import timeparse
from stream0d_nb.ingest.timeparse import TimeParser


def ns(text: str) -> int:
    return int(pd.Timestamp(text).as_unit("ns").value)


def conv(values: Sequence[object], **kw: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = TimeParser(file="f.csv", column="time", **kw)  # type: ignore[arg-type]
    lines = np.arange(2, len(values) + 2, dtype=np.int64)
    return p.convert(pa.array(values), lines)


def test_headers_and_formats() -> None:
    for h in ("time", "Timestamp", "DateTime", "Zeit", "fecha", "date_time", "Time (UTC)"):
        assert timeparse.is_time_header(h), h
    for h in ("Temperature", "Volume Flow RateRMS", "value", "runtime"):
        assert not timeparse.is_time_header(h), h
    assert timeparse.detect_format(["2024-01-01T00:00:00", "2024-01-01 00:00:01.5"]) == "ISO8601"
    assert timeparse.detect_format(["31.12.2024 23:59:00"]) == "%d.%m.%Y %H:%M:%S"
    assert timeparse.detect_format(["12/31/2024 23:59"]) == "%m/%d/%Y %H:%M"
    with pytest.raises(IngestError, match="day-first or month-first"):
        timeparse.detect_format(["01/02/2024 10:00"])
    assert timeparse.detect_format(["hello"]) is None
    assert timeparse.guess_epoch_unit([1_704_067_200]) == "s"
    assert timeparse.guess_epoch_unit([1_704_067_200_000]) == "ms"
    assert timeparse.guess_epoch_unit([12.5]) is None


def test_iso_naive_utc_and_zone() -> None:
    t, missing, drop = conv(["2024-01-01T00:00:00", None, "2024-07-01 12:00"])
    assert t[0] == ns("2024-01-01") and t[2] == ns("2024-07-01 12:00")
    assert missing.tolist() == [False, True, False] and not drop.any()
    t, _, _ = conv(["2024-01-01T01:00:00", "2024-07-01T02:00:00"], tz="Europe/Madrid")
    assert t.tolist() == [ns("2024-01-01 00:00"), ns("2024-07-01 00:00")]


def test_offsets_and_z() -> None:
    t, _, _ = conv(
        ["2024-01-01T02:00:00+02:00", "2024-01-01T00:00:01Z", "2024-01-01T00:00:02-0100"]
    )
    assert t.tolist() == [ns("2024-01-01"), ns("2024-01-01 00:00:01"), ns("2024-01-01 01:00:02")]


def test_mixing_naive_and_aware_is_an_error() -> None:
    with pytest.raises(IngestError, match="mixes") as ei:
        conv(["2024-01-01T00:00:00", "2024-01-01T00:00:01Z"])
    assert [loc.line for loc in ei.value.locations] == [2, 3]
    p = TimeParser(file="f.csv", column="time")
    p.convert(pa.array(["2024-01-01T00:00:00"]), np.array([2]))
    with pytest.raises(IngestError, match="mixes"):
        p.convert(pa.array(["2024-01-01T00:00:00Z"]), np.array([3]))


def test_fixed_offset() -> None:
    t, _, _ = conv(["2024-01-01 02:00"], offset_minutes=120)
    assert t[0] == ns("2024-01-01 00:00")


def test_24h_is_next_midnight() -> None:
    t, _, _ = conv(["2024-01-31 23:00", "2024-01-31 24:00", "2024-01-31T24:00:00"])
    assert t.tolist() == [ns("2024-01-31 23:00"), ns("2024-02-01"), ns("2024-02-01")]
    t, _, _ = conv(["31.01.2024 24:00"], time_format="%d.%m.%Y %H:%M")
    assert t[0] == ns("2024-02-01")


def test_time_format_and_unparseable() -> None:
    t, _, _ = conv(["08.02.2020 13:30:47"], time_format="%d.%m.%Y %H:%M:%S")
    assert t[0] == ns("2020-02-08 13:30:47")
    with pytest.raises(IngestError, match="cannot parse 1 time") as ei:
        conv(["2024-01-01 00:00", "2024-13-45 99:00"])
    loc = ei.value.locations[0]
    assert (loc.file, loc.line, loc.column, loc.value) == ("f.csv", 3, "time", "2024-13-45 99:00")


def test_epochs() -> None:
    t, _, _ = conv([1_704_067_200, 1_704_067_201], epoch_unit="s")
    assert t.tolist() == [ns("2024-01-01"), ns("2024-01-01 00:00:01")]
    t, _, _ = conv([1_704_067_200_500.0], epoch_unit="ms")
    assert t[0] == ns("2024-01-01 00:00:00.5")
    t, _, _ = conv([1_704_067_200_000])  # guessed: ms
    assert t[0] == ns("2024-01-01")
    t, _, _ = conv(["1704067200"], epoch_unit="s")
    assert t[0] == ns("2024-01-01")
    with pytest.raises(IngestError, match="epoch_unit"):
        conv([3.5, 4.5])


MADRID_FALL = [
    "2024-10-27 01:30",
    "2024-10-27 02:00",
    "2024-10-27 02:30",
    "2024-10-27 02:00",
    "2024-10-27 02:30",
    "2024-10-27 03:00",
]


def test_ambiguous_policies() -> None:
    with pytest.raises(IngestError, match="occurs twice") as ei:
        conv(MADRID_FALL, tz="Europe/Madrid")
    assert "line 3" in ei.value.message
    assert ei.value.locations[0].line == 3
    t, _, _ = conv(MADRID_FALL, tz="Europe/Madrid", ambiguous="earliest")
    assert t[1] == ns("2024-10-27 00:00") and t[3] == ns("2024-10-27 00:00")
    t, _, _ = conv(MADRID_FALL, tz="Europe/Madrid", ambiguous="latest")
    assert t[1] == ns("2024-10-27 01:00") and t[3] == ns("2024-10-27 01:00")
    t, _, _ = conv(MADRID_FALL, tz="Europe/Madrid", ambiguous="infer")
    assert t.tolist() == [
        ns("2024-10-26 23:30"),
        ns("2024-10-27 00:00"),
        ns("2024-10-27 00:30"),
        ns("2024-10-27 01:00"),
        ns("2024-10-27 01:30"),
        ns("2024-10-27 02:00"),
    ]


def test_infer_across_batches() -> None:
    p = TimeParser(file="f.csv", column="time", tz="Europe/Madrid", ambiguous="infer")
    a, _, _ = p.convert(pa.array(MADRID_FALL[:3]), np.arange(3))
    b, _, _ = p.convert(pa.array(MADRID_FALL[3:]), np.arange(3, 6))
    assert np.all(np.diff(np.concatenate([a, b])) == 30 * 60 * 10**9)


MADRID_SPRING = ["2024-03-31 01:30", "2024-03-31 02:00", "2024-03-31 02:30", "2024-03-31 03:00"]


def test_nonexistent_policies() -> None:
    with pytest.raises(IngestError, match="does not exist") as ei:
        conv(MADRID_SPRING, tz="Europe/Madrid")
    assert [loc.line for loc in ei.value.locations] == [3, 4]
    # moved by the gap's length: 02:00 -> 03:00 CEST, 02:30 -> 03:30 CEST (on the grid)
    t, _, _ = conv(MADRID_SPRING, tz="Europe/Madrid", nonexistent="shift_forward")
    assert t[1] == ns("2024-03-31 01:00") and t[2] == ns("2024-03-31 01:30")
    t, _, _ = conv(MADRID_SPRING, tz="Europe/Madrid", nonexistent="shift_backward")
    assert t[1] == ns("2024-03-31 00:00") and t[2] == ns("2024-03-31 00:30")  # 01:00, 01:30 CET
    p = TimeParser(file="f.csv", column="time", tz="Europe/Madrid", nonexistent="drop")
    t, _, drop = p.convert(pa.array(MADRID_SPRING), np.arange(4))
    assert drop.tolist() == [False, True, True, False]
    assert p.counters.rows_dropped_time == 2


def test_date_and_time_columns() -> None:
    p = TimeParser(file="f.csv", column="date+time")
    t, _, _ = p.convert_date_time(
        pa.array(["2024-01-01", "2024-01-01"]), pa.array(["23:00", "24:00"]), np.arange(2)
    )
    assert t.tolist() == [ns("2024-01-01 23:00"), ns("2024-01-02")]


def test_timestamp_arrays() -> None:
    aware = pa.array(
        [pd.Timestamp("2024-01-01 02:00", tz="Europe/Madrid")],
        pa.timestamp("us", tz="Europe/Madrid"),
    )
    t, _, _ = TimeParser(file="f", column="t").convert(aware, np.arange(1))
    assert t[0] == ns("2024-01-01 01:00")
    naive = pa.array([pd.Timestamp("2024-01-01 02:00")], pa.timestamp("ms"))
    t, _, _ = TimeParser(file="f", column="t", tz="Europe/Madrid").convert(naive, np.arange(1))
    assert t[0] == ns("2024-01-01 01:00")
