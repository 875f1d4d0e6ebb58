"""What ingest detects for the setup screens (issue 14): the date order from the whole file
and the header, a policy for text columns, and probable missing-value sentinels.

Small messy files are written here; each is read through ``Store.ingest``, through the
API's ingest and ingest preview over real HTTP, and through the ``stream0d`` command, and
checked exactly: the times stored, what the report and the preview say, the errors (file,
line, column, value, and the fixes) and that bad input stores nothing. The real SKAB and
NAB recordings must come out as before: no sentinel, nothing skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest import open_source
from stream0d_nb.ingest import readers as readers_mod
from stream0d_nb.ingest.dateorder import DateOrderUnclear, header_hint
from stream0d_nb.settings import Settings
from stream0d_nb.specs import (
    DatasetSpec,
    IngestOptions,
    IngestPreview,
    IngestReport,
    SentinelHint,
)
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp, seed_partner_datasets
from tests.conftest import CliRun

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
US_FMT = "%m/%d/%Y %H:%M"
EU_FMT = "%d/%m/%Y %H:%M"
DAYS = 20
DAY13 = 12 * 24  # row index of 13 January 00:00 in hourly rows from 1 January
LINE13 = DAY13 + 2  # its line in a file with one header line


def hourly(fmt: str, days: int = DAYS, start: str = "2024-01-01") -> list[str]:
    """Hourly times from ``start`` as text in ``fmt``."""
    return list(pd.date_range(start, periods=24 * days, freq="h").strftime(fmt))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def dated_csv(path: Path, fmt: str, header: str = "Date", time_first: bool = True) -> Path:
    """Hourly rows from 1 January for 20 days, ``temp`` = the row number."""
    lines = [f"{header},temp [degC]" if time_first else f"temp [degC],{header}"]
    for i, t in enumerate(hourly(fmt)):
        lines.append(f"{t},{i}" if time_first else f"{i},{t}")
    return write(path, "\n".join(lines) + "\n")


def times(st: Store, ds: str = "line") -> list[str]:
    """The stored times (UTC) that hold a value, as text."""
    data = st.read(ds).dropna("time", how="all")
    return [str(pd.Timestamp(t)) for t in data.time.values]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(Settings(home=tmp_path / "home")) as st:
        st.create_dataset(DatasetSpec(id="line", interval="1h"))
        yield st


def stored(st: Store, ds: str = "line") -> tuple[list[Any], int]:
    """What bad input must not change: the dataset's commits, and its channels."""
    return [c.id for c in st.history(ds)], len(st.channels(ds))


def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text files read in 4 KB chunks: the 20 days span several, day 13 is not in the first."""
    monkeypatch.setattr(readers_mod, "CHUNK_BYTES", 4096)


# -- date order ---------------------------------------------------------------------------


@pytest.mark.parametrize("time_first", [True, False], ids=["time-first", "time-second"])
def test_us_dates_decided_by_a_day_above_12_far_into_the_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, time_first: bool
) -> None:
    """The first 12 days read both ways; 13 January (line 290, beyond the sniffed sample and
    the first chunk) decides month-first, and every time is stored as the US reading says."""
    small_chunks(monkeypatch)
    path = dated_csv(tmp_path / "us.csv", US_FMT, time_first=time_first)
    r = store.ingest("line", path, IngestOptions(units={"temp": "degC"}))
    assert r.detected["date_order"] == f"month_first (line {LINE13}: '01/13/2024 00:00')"
    assert (r.rows_read, r.values_written, r.sentinels, r.skipped_columns) == (480, 480, [], [])
    ds = store.read("line")
    want = pd.date_range("2024-01-01", periods=480, freq="h").as_unit("ns").to_numpy()
    assert (ds.time.values == want).all()
    assert ds["temp"].values.tolist() == list(map(float, range(480)))


def test_day_first_dates_decided_by_the_file(store: Store, tmp_path: Path) -> None:
    path = dated_csv(tmp_path / "eu.csv", EU_FMT)
    r = store.ingest("line", path)
    assert r.detected["date_order"] == f"day_first (line {LINE13}: '13/01/2024 00:00')"
    got = times(store)
    assert (got[0], got[24], got[-1]) == (
        "2024-01-01 00:00:00",
        "2024-01-02 00:00:00",
        "2024-01-20 23:00:00",
    )


def test_a_later_date_read_the_other_way_is_an_error_naming_both_lines(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Line 290 decides month-first; line 402, in a later chunk, is day-first: nothing is
    stored and the error names both lines with column and value."""
    small_chunks(monkeypatch)
    times = hourly(US_FMT)
    times[400] = "14/01/2024 16:00"
    path = write(
        tmp_path / "mixed.csv",
        "Date,temp\n" + "".join(f"{t},{i}\n" for i, t in enumerate(times)),
    )
    before = stored(store)
    with pytest.raises(IngestError) as ei:
        store.ingest("line", path, IngestOptions(allow_missing_units=True))
    assert ei.value.message == (
        "column 'Date' mixes day-first and month-first dates: line 290 has '01/13/2024 00:00' "
        "(month-first), line 402 has '14/01/2024 16:00', a day-first date"
    )
    assert ei.value.locations == [
        Location(str(path), 290, "Date", "01/13/2024 00:00"),
        Location(str(path), 402, "Date", "14/01/2024 16:00"),
    ]
    assert ei.value.fixes == ()
    assert stored(store) == before


def test_contradiction_among_the_first_dates(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "Date,temp\n13/01/2024 10:00,1\n01/13/2024 11:00,2\n")
    before = stored(store)
    with pytest.raises(IngestError) as ei:
        store.ingest("line", path, IngestOptions(allow_missing_units=True))
    assert ei.value.message == (
        "column 'Date' mixes day-first and month-first dates: line 2 has '13/01/2024 10:00' "
        "(day-first), line 3 has '01/13/2024 11:00' (month-first)"
    )
    assert [(x.line, x.column, x.value) for x in ei.value.locations] == [
        (2, "Date", "13/01/2024 10:00"),
        (3, "Date", "01/13/2024 11:00"),
    ]
    assert stored(store) == before


AMBIGUOUS = "Date,temp\n05/01/2024 10:00,1\n06/01/2024 10:00,2\n12/01/2024 10:00,3\n"


def test_ambiguous_file_offers_both_orders_and_each_works(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "amb.csv", AMBIGUOUS)
    before = stored(store)
    with pytest.raises(DateOrderUnclear) as ei:
        store.ingest("line", path, IngestOptions(allow_missing_units=True))
    assert ei.value.message == (
        "dates such as '05/01/2024 10:00' in column 'Date' could be day-first or month-first: "
        "no date has a day above 12 and the header gives no hint such as 'DD/MM/YYYY'"
    )
    assert ei.value.locations == [Location(str(path), 2, "Date", "05/01/2024 10:00")]
    assert ei.value.fixes == (
        Fix("date_order", "month_first"),
        Fix("date_order", "day_first"),
        Fix("time_format", US_FMT),
        Fix("time_format", EU_FMT),
    )
    assert stored(store) == before
    got = {}
    for order in ("month_first", "day_first"):
        src = open_source(path, IngestOptions(date_order=order))  # type: ignore[arg-type]
        times = np.concatenate([b.times for b in src.batches()])
        got[order] = [str(pd.Timestamp(t)) for t in times]
        assert src.info.detected["date_order"] == f"{order} (given)"
    assert got == {
        "month_first": ["2024-05-01 10:00:00", "2024-06-01 10:00:00", "2024-12-01 10:00:00"],
        "day_first": ["2024-01-05 10:00:00", "2024-01-06 10:00:00", "2024-01-12 10:00:00"],
    }
    # an explicit time_format still wins, and says so
    r = store.ingest("line", path, IngestOptions(time_format=EU_FMT, allow_missing_units=True))
    assert r.detected["date_order"] == f"day_first (time_format {EU_FMT!r})"
    assert r.start is not None and r.start.isoformat() == "2024-01-05T10:00:00+00:00"


@pytest.mark.parametrize(
    ("header", "delimiter", "cell", "decision", "first"),
    [
        ("Date (MM/DD/YYYY)", ",", "05/01/2024 10:00", "month_first", "2024-05-01 10:00"),
        ("Datum [TT.MM.JJJJ]", ";", "05.01.2024 10:00", "day_first", "2024-01-05 10:00"),
        ("date (dd/mm/yyyy)", ",", "05/01/2024 10:00", "day_first", "2024-01-05 10:00"),
        ("Time [mm/dd/yy hh:mm]", ",", "05/01/24 10:00", "month_first", "2024-05-01 10:00"),
        ("Horodatage (JJ/MM/AAAA)", ";", "05/01/2024 10:00", "day_first", "2024-01-05 10:00"),
    ],
)
def test_header_hint_decides_alone(
    store: Store,
    tmp_path: Path,
    header: str,
    delimiter: str,
    cell: str,
    decision: str,
    first: str,
) -> None:
    path = write(tmp_path / "h.csv", f"{header}{delimiter}temp\n{cell}{delimiter}1\n")
    r = store.ingest("line", path, IngestOptions(allow_missing_units=True))
    token = header[header.index(next(c for c in header if c in "([")) + 1 : -1].split(" ")[0]
    assert r.detected["date_order"] == f"{decision} (header hint {token!r})"
    assert r.start is not None and r.start.isoformat() == pd.Timestamp(first, tz="UTC").isoformat()


def test_header_hints_read_and_ignored() -> None:
    assert header_hint("Date (MM/DD/YYYY)") == ("month_first", "MM/DD/YYYY")
    assert header_hint("Datum [TT.MM.JJJJ]") == ("day_first", "TT.MM.JJJJ")
    assert header_hint("Fecha DD-MM-AAAA") == ("day_first", "DD-MM-AAAA")
    assert header_hint("Datum TT.MM.JJ") == ("day_first", "TT.MM.JJ")
    for h in ("Speed (m/s)", "in/out/x", "Temp [degC]", "Date (YYYY-MM-DD)", "a.b.c", "Date"):
        assert header_hint(h) is None, h


def test_a_hint_the_data_contradicts_is_an_error_naming_the_line(
    store: Store, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "h.csv",
        "Date (MM/DD/YYYY),temp\n05/01/2024 10:00,1\n13/01/2024 11:00,2\n",
    )
    before = stored(store)
    with pytest.raises(IngestError) as ei:
        store.ingest("line", path, IngestOptions(allow_missing_units=True))
    assert ei.value.message == (
        "the header of column 'Date (MM/DD/YYYY)' says dates are month-first ('MM/DD/YYYY'), "
        "but line 3 has '13/01/2024 11:00', a day-first date"
    )
    assert ei.value.locations == [Location(str(path), 3, "Date (MM/DD/YYYY)", "13/01/2024 11:00")]
    assert ei.value.fixes == (Fix("date_order", "day_first"),)
    assert stored(store) == before
    r = store.ingest("line", path, IngestOptions(date_order="day_first", allow_missing_units=True))
    assert (r.detected["date_order"], r.values_written) == ("day_first (given)", 2)
    assert times(store) == ["2024-01-05 10:00:00", "2024-01-13 11:00:00"]


def test_an_explicit_time_format_wins_over_the_hint(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "Date (MM/DD/YYYY),temp\n05/01/2024 10:00,1\n")
    r = store.ingest("line", path, IngestOptions(time_format=EU_FMT, allow_missing_units=True))
    assert r.start is not None and r.start.isoformat() == "2024-01-05T10:00:00+00:00"


def test_date_and_time_of_day_columns(store: Store, tmp_path: Path) -> None:
    dates = hourly("%m/%d/%Y")
    times = hourly("%H:%M")
    body = "".join(f"{d},{t},{i}\n" for i, (d, t) in enumerate(zip(dates, times, strict=True)))
    path = write(tmp_path / "dt.csv", "Date,Time,temp\n" + body)
    r = store.ingest("line", path, IngestOptions(allow_missing_units=True))
    assert (r.detected["date_column"], r.detected["time_column"]) == ("Date", "Time")
    assert r.detected["date_order"] == f"month_first (line {LINE13}: '01/13/2024')"
    assert r.end is not None and r.end.isoformat() == "2024-01-20T23:00:00+00:00"


def _excel(path: Path, times: list[str]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Date", "temp"])
    for i, t in enumerate(times):
        ws.append([t, i])
    wb.save(path)
    return path


@pytest.mark.parametrize("kind", ["excel", "parquet", "json", "jsonl"])
def test_other_formats_scan_the_whole_column(store: Store, tmp_path: Path, kind: str) -> None:
    """Text dates in Excel, Parquet and JSON: day 13 lies past what these readers sample
    (Excel and JSON Lines: 200 rows, Parquet and JSON: 100)."""
    times = hourly(US_FMT)
    if kind == "excel":
        path, line = _excel(tmp_path / "us.xlsx", times), LINE13  # sheet rows, header row 1
    elif kind == "parquet":
        path, line = tmp_path / "us.parquet", DAY13 + 1
        pq.write_table(pa.table({"Date": times, "temp": np.arange(480.0)}), path)
    elif kind == "json":
        path, line = tmp_path / "us.json", DAY13 + 1
        path.write_text(json.dumps([{"Date": t, "temp": i} for i, t in enumerate(times)]))
    else:
        path, line = tmp_path / "us.jsonl", DAY13 + 1
        path.write_text(
            "".join(json.dumps({"Date": t, "temp": i}) + "\n" for i, t in enumerate(times))
        )
    r = store.ingest("line", path, IngestOptions(allow_missing_units=True))
    assert r.detected["date_order"] == f"month_first (line {line}: '01/13/2024 00:00')"
    assert (r.values_written, r.end.isoformat() if r.end else None) == (
        480,
        "2024-01-20T23:00:00+00:00",
    )


# -- text columns -------------------------------------------------------------------------

FLAGS = (
    "time,temp [degC],flag,quality,operator,p [bar]\n"
    "2024-01-01 00:00,20.5,OK,G,anna,1.0\n"
    "2024-01-01 01:00,21.0,BAD,S,bob,1.1\n"
    "2024-01-01 02:00,21.5,OK,G,anna,1.2\n"
)


def test_text_columns_are_one_error_naming_them_all(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "flags.csv", FLAGS)
    before = stored(store)
    with pytest.raises(IngestError) as ei:
        store.ingest("line", path)
    assert ei.value.message == (
        "3 columns hold text, not numbers: 'flag' ('OK'), 'quality' ('G'), 'operator' ('anna')"
    )
    assert ei.value.locations == [
        Location(str(path), None, "flag", "OK"),
        Location(str(path), None, "quality", "G"),
        Location(str(path), None, "operator", "anna"),
    ]
    assert ei.value.fixes == (
        Fix("skip_columns", ["flag", "quality", "operator"]),
        Fix("text_columns", "skip"),
    )
    assert stored(store) == before


def test_text_columns_skipped_and_listed(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "flags.csv", FLAGS)
    r = store.ingest("line", path, IngestOptions(text_columns="skip", skip_columns=["p [bar]"]))
    assert r.skipped_columns == ["flag", "quality", "operator", "p [bar]"]
    assert (r.channels, r.values_written, r.warnings) == (["temp"], 3, [])
    assert store.read("line")["temp"].values.tolist() == [20.5, 21.0, 21.5]
    assert [c.name for c in store.channels("line")] == ["temp"]


def test_a_numeric_column_with_a_stray_word_is_no_text_column(store: Store, tmp_path: Path) -> None:
    """Text later in a number column stays a bad value (its own error), skip or not."""
    path = write(tmp_path / "x.csv", "time,temp\n2024-01-01 00:00,1\n2024-01-01 01:00,oops\n")
    with pytest.raises(IngestError) as ei:
        store.ingest("line", path, IngestOptions(text_columns="skip", allow_missing_units=True))
    assert ei.value.message == "1 value(s) are not numbers"
    assert ei.value.locations == [Location(str(path), 3, "temp", "oops")]


# -- sentinels ----------------------------------------------------------------------------


def sentinel_csv(path: Path, rows: int = 400, at: tuple[int, ...] = (7, 150, 151, 390)) -> Path:
    """``temp`` 20..79.5 with -9999 at rows ``at``; ``volt`` 229..231 with 240 five times
    (a real value); ``code`` in {0, 1, 5}; ``count`` whole 0..50 with 120 three times."""
    temp = 20 + (np.arange(rows) % 120) * 0.5
    temp[list(at)] = -9999
    volt = 229 + (np.arange(rows) % 3)
    volt[[10, 20, 30, 40, 50]] = 240
    code = np.array([0, 1, 5])[np.arange(rows) % 3]
    count = np.arange(rows) % 51
    count[[60, 61, 62]] = 120
    times = pd.date_range("2024-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M")
    body = "".join(
        f"{t},{a:g},{v:g},{c},{n}\n"
        for t, a, v, c, n in zip(times, temp, volt, code, count, strict=True)
    )
    return write(path, "time,temp [degC],volt [V],code [1],count [1]\n" + body)


HINT = SentinelHint(
    column="temp [degC]", value="-9999", count=4, first_line=9, range_of_others=(20.0, 79.5)
)
WARNING = (
    "column 'temp [degC]': -9999 appears 4 times, far outside the other values (20 .. 79.5): "
    "probably a missing value; ingest with missing_values=['-9999'] to treat it as missing"
)


def test_sentinel_hinted_not_applied_then_applied(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_chunks(monkeypatch)  # the four -9999 lie in different batches
    path = sentinel_csv(tmp_path / "s.csv")
    r = store.ingest("line", path)
    assert (r.sentinels, r.warnings) == ([HINT], [WARNING])
    temp = store.read("line")["temp"].values
    assert temp[[7, 150, 151, 390]].tolist() == [-9999.0] * 4  # stored as it was
    store.create_dataset(DatasetSpec(id="line2", interval="1h"))
    r2 = store.ingest("line2", path, IngestOptions(missing_values=["-9999"]))
    assert (r2.sentinels, r2.warnings) == ([], [])
    temp2 = store.read("line2")["temp"].values
    assert np.isnan(temp2[[7, 150, 151, 390]]).all() and temp2[0] == 20.0
    assert r2.values_written == r.values_written - 4


def test_sentinels_at_both_ends_and_none_for_rare_or_near_values(tmp_path: Path) -> None:
    rows = 300
    v = 10 + (np.arange(rows) % 50) * 0.25
    v[[3, 4, 5]] = -999.9
    v[[100, 200, 299]] = 9999
    w = 10 + (np.arange(rows) % 50) * 0.25
    w[[8, 9]] = -9999  # twice only
    times = pd.date_range("2024-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M")
    body = "".join(f"{t},{a:g},{b:g}\n" for t, a, b in zip(times, v, w, strict=True))
    path = write(tmp_path / "ends.csv", "time,v,w\n" + body)
    src = open_source(path, IngestOptions())
    for _ in src.batches():
        pass
    assert src.sentinels() == [
        SentinelHint(
            column="v", value="-999.9", count=3, first_line=5, range_of_others=(10, 22.25)
        ),
        SentinelHint(
            column="v", value="9999", count=3, first_line=102, range_of_others=(10, 22.25)
        ),
    ]


def test_parquet_float_columns_are_scanned_too(store: Store, tmp_path: Path) -> None:
    temp = np.linspace(1.0, 2.0, 50)
    temp[[2, 9, 30]] = -9999.0
    path = tmp_path / "s.parquet"
    t = pd.date_range("2024-01-01", periods=50, freq="h").as_unit("ns")
    pq.write_table(pa.table({"time": pa.array(t), "flow": temp}), path)
    r = store.ingest("line", path, IngestOptions(allow_missing_units=True))
    assert r.sentinels == [
        SentinelHint(
            column="flow", value="-9999", count=3, first_line=3, range_of_others=(1.0, 2.0)
        )
    ]


REAL = [
    ("skab/anomaly-free.csv", "1s", {"off_grid": "nearest", "duplicates": "last"}),
    ("skab/valve1_1.csv", "1s", {"off_grid": "nearest", "duplicates": "last"}),
    ("nab/machine_temperature_system_failure.csv", "5min", {"duplicates": "last"}),
    ("nab/ambient_temperature_system_failure.csv", "1h", {}),
]


@pytest.mark.parametrize(("name", "interval", "opts"), REAL, ids=[r[0] for r in REAL])
def test_real_recordings_have_no_sentinel_and_nothing_skipped(
    tmp_path: Path, name: str, interval: str, opts: dict[str, Any]
) -> None:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"real recording {path} not found")
    with Store(Settings(home=tmp_path)) as st:
        st.create_dataset(DatasetSpec(id="real", interval=interval))
        r = st.ingest("real", path, IngestOptions(allow_missing_units=True, **opts))
    assert (r.sentinels, r.skipped_columns) == ([], [])
    assert r.detected["date_order"] == "year_first (ISO 8601)"
    assert not any("missing value" in w for w in r.warnings)


# -- over HTTP ----------------------------------------------------------------------------

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
    "carl": UserInfo(frozenset(), False, WRITE),
}
DS, OTHER = "fersa-press", "zf-oven"


class Server(ApiOverHttp):
    """Two partners' datasets; carl is a viewer of ``DS`` by grant."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        seed_partner_datasets(store, {DS: "fersa", OTHER: "zf"})
        AccessRegistry(store.registry).grant(DS, "user", "carl", "viewer", actor="admin")
        super().__init__(store, USERS)

    def post(
        self, who: str, what: str, name: str, body: bytes, ds: str = DS, **fields: str
    ) -> httpx.Response:
        return self.call(
            who,
            "POST",
            f"/datasets/{ds}/{what}",
            data=fields,
            files={"file": (name, body)},
        )

    def preview(self, name: str, body: bytes, **fields: str) -> IngestPreview:
        r = self.post("alice", "ingest/preview", name, body, **fields)
        assert r.status_code == 200, r.text[:500]
        return IngestPreview.model_validate(r.json())

    def head(self, ds: str = DS) -> tuple[str, int]:
        return self.store.data(ds).head(), len(self.store.history(ds))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("detect") / "home")
    yield s
    s.stop()


def test_preview_over_http_says_the_date_order_and_where_it_came_from(
    srv: Server, tmp_path: Path
) -> None:
    body = dated_csv(tmp_path / "us.csv", US_FMT, header="Date Time").read_bytes()
    before = srv.head()
    p = srv.preview("us.csv", body, rows="2")
    assert (p.problems, p.options) == ([], {})
    assert p.detected["date_order"] == f"month_first (line {LINE13}: '01/13/2024 00:00')"
    assert [(r.line, r.time) for r in p.rows] == [
        (2, "2024-01-01T00:00:00Z"),
        (3, "2024-01-01T01:00:00Z"),
    ]
    assert p.summary.end == "2024-01-20T23:00:00Z"
    # a cut upload decides from what was sent, and says so
    cut = body[: body.index(b"01/14/2024")]
    q = srv.preview("us.csv", cut, truncated="true", rows="1")
    assert q.truncated and q.problems == []
    assert q.detected["date_order"] == (
        f"month_first (line {LINE13}: '01/13/2024 00:00'; decided from the part of the file sent)"
    )
    # cut before 13 January nothing decides: the problem says so and offers both orders
    early = body[: body.index(b"01/13/2024")]
    u = srv.preview("us.csv", early, truncated="true", rows="1")
    (prob,) = u.problems
    assert prob.message == (
        "dates such as '01/01/2024 00:00' in column 'Date Time' could be day-first or "
        "month-first: no date has a day above 12 and the header gives no hint such as "
        "'DD/MM/YYYY' (decided from the part of the file sent: a later date may decide)"
    )
    assert [(x.file, x.line, x.column) for x in prob.locations] == [("us.csv", 2, "Date Time")]
    assert prob.fixes == [
        {"date_order": "month_first"},
        {"date_order": "day_first"},
        {"time_format": US_FMT},
        {"time_format": EU_FMT},
    ]
    assert prob.applied == {"date_order": "month_first"} and u.options == prob.applied
    assert u.detected["date_order"] == "month_first (given)"
    assert srv.head() == before


def test_preview_over_http_lists_text_columns_and_sentinels(srv: Server, tmp_path: Path) -> None:
    p = srv.preview("flags.csv", FLAGS.encode(), text_columns="skip", skip_columns='["p [bar]"]')
    assert p.problems == [] and p.options == {
        "text_columns": "skip",
        "skip_columns": ["p [bar]"],
    }
    assert [(c.name, c.kind, c.note) for c in p.columns] == [
        ("time", "time", None),
        ("temp", "number", None),
        ("flag", "text", "skipped: holds text (text_columns='skip')"),
        ("quality", "text", "skipped: holds text (text_columns='skip')"),
        ("operator", "text", "skipped: holds text (text_columns='skip')"),
        ("p [bar]", "number", "skipped (skip_columns)"),
    ]
    assert [r.values for r in p.rows] == [{"temp": 20.5}, {"temp": 21.0}, {"temp": 21.5}]
    # without the policy: one problem naming every text column; the preview reads on
    q = srv.preview("flags.csv", FLAGS.encode())
    (prob,) = q.problems
    assert prob.fixes == [
        {"skip_columns": ["flag", "quality", "operator"]},
        {"text_columns": "skip"},
    ]
    assert [(x.column, x.value) for x in prob.locations] == [
        ("flag", "OK"),
        ("quality", "G"),
        ("operator", "anna"),
    ]
    assert [c.name for c in q.columns if c.kind == "text"] == ["flag", "quality", "operator"]
    # a probable sentinel: listed, not applied; accepted through missing_values
    body = sentinel_csv(tmp_path / "s.csv").read_bytes()
    s = srv.preview("s.csv", body, rows="10")
    assert s.sentinels == [HINT]
    assert s.rows[7].values["temp"] == -9999.0
    a = srv.preview("s.csv", body, rows="10", missing_values='["-9999"]')
    assert a.sentinels == [] and a.rows[7].values["temp"] is None


def test_ingest_over_http_reports_and_refuses(srv: Server, tmp_path: Path) -> None:
    """The report carries skipped columns, sentinels and their warning; a contradiction is a
    422 naming the upload, line, column and value, storing nothing; a viewer and another
    partner's user are refused, the owner's partner (positive control) is not."""
    body = sentinel_csv(tmp_path / "s.csv").read_bytes()
    before = srv.head()
    assert srv.post("carl", "ingest", "s.csv", body).status_code == 403
    assert srv.post("bob", "ingest", "s.csv", body).status_code == 404
    assert srv.post("bob", "ingest/preview", "s.csv", body).status_code == 404
    assert srv.head() == before
    mixed = write(
        tmp_path / "m.csv", "time,temp\n13/01/2024 10:00,1\n01/13/2024 11:00,2\n"
    ).read_bytes()
    bad = srv.post("alice", "ingest", "mixed.csv", mixed)
    assert bad.status_code == 422
    err = bad.json()["error"]
    assert err["locations"] == [
        {"file": "mixed.csv", "line": 2, "column": "time", "value": "13/01/2024 10:00"},
        {"file": "mixed.csv", "line": 3, "column": "time", "value": "01/13/2024 11:00"},
    ]
    assert srv.head() == before
    ok = srv.post("alice", "ingest", "s.csv", body, text_columns="skip", units='{"temp": "degC"}')
    assert ok.status_code == 200, ok.text[:500]
    r = IngestReport.model_validate(ok.json())
    assert (r.sentinels, r.skipped_columns) == ([HINT], [])
    assert WARNING in r.warnings and r.commit and r.commit != before[0]


# -- the command line ---------------------------------------------------------------------


def test_cli_flags_and_what_the_report_says(cli: CliRun, tmp_path: Path) -> None:
    for ds in ("amb", "line"):
        code, _, err = cli("dataset", "create", ds, "--interval", "1h")
        assert code == 0, err
    amb = write(tmp_path / "amb.csv", AMBIGUOUS)
    code, _, err = cli("ingest", "amb", str(amb), "--allow-missing-units", "--no-progress")
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[0] == (
        "error: dates such as '05/01/2024 10:00' in column 'Date' could be day-first or "
        "month-first: no date has a day above 12 and the header gives no hint such as "
        "'DD/MM/YYYY'"
    )
    fix = err.rstrip().splitlines()[-1]
    assert fix.startswith("  fix: --date-order ") and "month_first" in fix and "day_first" in fix
    assert "date_order" not in err  # said as flags
    code, out, err = cli(
        "ingest", "amb", str(amb), "--allow-missing-units", "--date-order", "day_first", "--json"
    )
    assert code == 0, err
    rep = json.loads(out)
    assert (rep["start"], rep["detected"]["date_order"]) == (
        "2024-01-05T10:00:00Z",
        "day_first (given)",
    )
    # text columns skipped and listed; a sentinel said with the flag that accepts it
    flags = write(tmp_path / "flags.csv", FLAGS)
    code, out, err = cli("ingest", "line", str(flags), "--text-columns", "skip", "--no-progress")
    assert code == 0, err
    assert "  skipped columns: flag, quality, operator" in out.splitlines()
    s = sentinel_csv(tmp_path / "s.csv")
    code, out, _ = cli("ingest", "line", str(s), "--dry-run")
    assert code == 0
    assert (
        "  probable missing value: column 'temp [degC]': -9999 appears 4 times, far outside "
        "the other values (20 .. 79.5): probably a missing value (first on line 9); "
        "fix: --missing -9999"
    ) in out.splitlines()
    code, out, err = cli("ingest", "line", str(s), "--no-progress")
    assert code == 0, err
    assert (
        "  warning: column 'temp [degC]': -9999 appears 4 times, far outside the other values "
        "(20 .. 79.5): probably a missing value; fix: --missing -9999"
    ) in out.splitlines()
    code, out, err = cli("ingest", "line", str(s), "--missing", "-9999", "--no-progress")
    assert code == 0 and "probably a missing value" not in out, err
