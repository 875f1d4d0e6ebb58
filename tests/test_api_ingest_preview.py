"""Ingest preview over real HTTP: what ingest would do with a file, storing nothing (issue 12).

The app runs under uvicorn on a store with two partners' 1 s datasets (``tests.api_servers``).
Each file (a clean CSV, a messy European one, US dates, a text column, the NAB recording
with its duplicate hour, a truncated upload, an Excel sheet) is previewed and checked
exactly: detected options, column kinds and units, first rows, problems with locations
and fixes, summary; and history, registry and audit log stay as they were.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import Client
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.specs import IngestPreview
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp, seed_partner_datasets

WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
    "carl": UserInfo(frozenset(), False, WRITE),
}
DS, OTHER = "fersa-press", "zf-oven"
NAB = Path(__file__).resolve().parents[1] / "../shared/data/nab"
NAB_FILE = NAB / "machine_temperature_system_failure.csv"


class Server(ApiOverHttp):
    """Store, app under uvicorn, one write token per user (carl is a viewer by grant)."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        seed_partner_datasets(store, {DS: "fersa", OTHER: "zf"})
        AccessRegistry(store.registry).grant(DS, "user", "carl", "viewer", actor="admin")
        super().__init__(store, USERS)

    def preview(
        self, who: str, name: str, body: bytes, ds: str = DS, **fields: str
    ) -> httpx.Response:
        headers = {"Authorization": f"token {self.tokens[who]}"}
        return self.http.post(
            f"/datasets/{ds}/ingest/preview",
            headers=headers,
            data=fields,
            files={"file": (name, body)},
        )

    def ok(self, name: str, body: bytes, **fields: str) -> IngestPreview:
        r = self.preview("alice", name, body, **fields)
        assert r.status_code == 200, r.text[:500]
        return IngestPreview.model_validate(r.json())

    def state(self) -> list[Any]:
        """What a preview must not change: specs, heads, histories, and the audit log."""
        return [
            [
                (r.spec.model_dump(), self.store.data(r.id).head(), len(self.store.history(r.id)))
                for r in self.store.list_datasets()
            ],
            [e.model_dump() for e in self.store.registry.audit_log(limit=1000)],
            sorted(p.name for p in (self.store.settings.home / "uploads").glob("*")),
        ]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("preview") / "home")
    yield s
    s.stop()


@pytest.fixture
def unchanged(srv: Server) -> Iterator[None]:
    """Each test's previews leave history, registry, audit log and uploads as they were."""
    srv.store.settings.home.joinpath("uploads").mkdir(parents=True, exist_ok=True)
    before = srv.state()
    yield
    assert srv.state() == before


def cols(p: IngestPreview) -> list[tuple[str, str, str | None, bool | None]]:
    return [(c.name, c.kind, c.units, c.units_known) for c in p.columns]


def rows(p: IngestPreview) -> list[tuple[int, str, dict[str, float | None]]]:
    return [(r.line, r.time, r.values) for r in p.rows]


def problems(p: IngestPreview) -> list[tuple[str, list[tuple[Any, ...]], list[Any], Any]]:
    return [
        (
            x.message,
            [(loc.file, loc.line, loc.column, loc.value) for loc in x.locations],
            x.fixes,
            x.applied,
        )
        for x in p.problems
    ]


CLEAN = (
    "time,temp [degC],p_in [bar]\n"
    "2024-05-02 00:00:00,20.5,1.25\n"
    "2024-05-02 00:00:01,20.75,\n"
    "2024-05-02 00:00:02,21,1.5\n"
)


def test_clean_csv(srv: Server, unchanged: None) -> None:
    p = srv.ok("clean.csv", CLEAN.encode())
    assert p.file == "clean.csv" and p.format == "csv"
    assert (p.truncated, p.complete, p.options) == (False, True, {})
    assert p.detected == {
        "encoding": "utf-8",
        "delimiter": ",",
        "decimal": ".",
        "header_line": 1,
        "units_row": False,
        "first_data_line": 2,
        "time_parsing": "ISO 8601",
        "time_column": "time",
        "naive_times": "local time in UTC",
        "time_parsing_used": ["timestamps"],
        "chunks_reparsed_as_text": 0,
        "format": "csv",
        "date_order": "year_first (ISO 8601)",
    }
    assert cols(p) == [
        ("time", "time", None, None),
        ("temp", "number", "degC", True),
        ("p_in", "number", "bar", True),
    ]
    assert rows(p) == [
        (2, "2024-05-02T00:00:00Z", {"temp": 20.5, "p_in": 1.25}),
        (3, "2024-05-02T00:00:01Z", {"temp": 20.75, "p_in": None}),
        (4, "2024-05-02T00:00:02Z", {"temp": 21.0, "p_in": 1.5}),
    ]
    assert p.problems == []
    assert p.summary.model_dump() == {
        "rows_read": 3,
        "rows_skipped": 0,
        "start": "2024-05-02T00:00:00Z",
        "end": "2024-05-02T00:00:02Z",
        "interval_guess": "1s",
        "dataset_interval": "1s",
        "interval_matches": True,
        "off_grid_rows": 0,
    }


MESSY = (
    "Anlage;Presse 3\n"
    "Export;02.05.2024\n"
    "\n"
    "Zeit;Temperatur;Druck;Leer\n"
    ";degC;kPa_x;\n"
    "02.05.2024 08:00:00;20,5;101,3;\n"
    "02.05.2024 08:00:01;20,75;101,4;\n"
)


def test_messy_csv(srv: Server, unchanged: None) -> None:
    body = codecs.BOM_UTF8 + MESSY.encode("utf-8")
    p = srv.ok("messy.csv", body, tz="Europe/Berlin")
    assert p.options == {"tz": "Europe/Berlin"}
    d = p.detected
    assert (d["encoding"], d["delimiter"], d["decimal"], d["header_line"]) == (
        "utf-8-sig",
        ";",
        ",",
        4,
    )
    assert (d["units_row"], d["first_data_line"], d["time_column"]) == (True, 6, "Zeit")
    assert (d["naive_times"], d["date_order"]) == (
        "local time in Europe/Berlin",
        "day_first (no day above 12; dates with '.' read day-first)",
    )
    assert d["time_parsing_used"] == ["text %d.%m.%Y %H:%M:%S"]
    assert cols(p) == [
        ("Zeit", "time", None, None),
        ("Temperatur", "number", "degC", True),
        ("Druck", "number", "kPa_x", False),
        ("Leer", "empty", None, None),
    ]
    assert rows(p) == [
        (6, "2024-05-02T06:00:00Z", {"Temperatur": 20.5, "Druck": 101.3, "Leer": None}),
        (7, "2024-05-02T06:00:01Z", {"Temperatur": 20.75, "Druck": 101.4, "Leer": None}),
    ]
    got = problems(p)
    assert got == [
        (
            "units 'kPa_x' of column 'Druck' are unknown; declare known ones (pint names "
            "such as degC, bar, percent)",
            [("messy.csv", None, "Druck", "kPa_x")],
            [],
            None,
        ),
        (
            "no units for new channel 'Leer': declare them (1 for dimensionless) or allow "
            "channels without units",
            [("messy.csv", None, "Leer", None)],
            [{"units": {"Leer": "1"}}, {"allow_missing_units": True}],
            None,
        ),
    ]
    assert (p.summary.rows_read, p.summary.interval_guess, p.summary.off_grid_rows) == (2, "1s", 0)


US = (
    "Date Time,temp [degC]\n"
    "05/01/2024 00:00:00,20.5\n"
    "05/01/2024 00:00:01,20.6\n"
    "05/01/2024 00:00:02,20.7\n"
)


def test_us_dates_day_month_ambiguity(srv: Server, unchanged: None) -> None:
    p = srv.ok("us.csv", US.encode())
    assert problems(p) == [
        (
            "dates such as '05/01/2024 00:00:00' in column 'Date Time' could be day-first or "
            "month-first: no date has a day above 12 and the header gives no hint such as "
            "'DD/MM/YYYY'",
            [("us.csv", 2, "Date Time", "05/01/2024 00:00:00")],
            [
                {"date_order": "month_first"},
                {"date_order": "day_first"},
                {"time_format": "%m/%d/%Y %H:%M:%S"},
                {"time_format": "%d/%m/%Y %H:%M:%S"},
            ],
            {"date_order": "month_first"},
        )
    ]
    assert p.options == {"date_order": "month_first"}
    assert (p.detected["time_column"], p.detected["date_order"]) == (
        "Date Time",
        "month_first (given)",
    )
    assert cols(p) == [("Date Time", "time", None, None), ("temp", "number", "degC", True)]
    assert rows(p) == [
        (2, "2024-05-01T00:00:00Z", {"temp": 20.5}),
        (3, "2024-05-01T00:00:01Z", {"temp": 20.6}),
        (4, "2024-05-01T00:00:02Z", {"temp": 20.7}),
    ]
    # The preview's options are what ingest needs: given up front, no problem is left.
    again = srv.ok("us.csv", US.encode(), date_order="month_first")
    assert (again.problems, rows(again)) == ([], rows(p))
    fmt = srv.ok("us.csv", US.encode(), time_format="%m/%d/%Y %H:%M:%S")
    assert (fmt.problems, rows(fmt)) == ([], rows(p))


TEXT = (
    "time,temp [degC],status\n"
    "2024-05-02T00:00:00Z,20.5,OK\n"
    "2024-05-02T00:00:01Z,20.5,OK\n"
    "2024-05-02T00:00:02Z,n/a,FAIL\n"
)


def test_text_column(srv: Server, unchanged: None) -> None:
    p = srv.ok("status.csv", TEXT.encode(), rows="2")
    assert problems(p) == [
        (
            "column 'status' holds text such as 'OK', not numbers",
            [("status.csv", None, "status", "OK")],
            [{"skip_columns": ["status"]}, {"text_columns": "skip"}],
            {"skip_columns": ["status"]},
        )
    ]
    assert p.options == {"skip_columns": ["status"]}
    assert cols(p) == [
        ("time", "time", None, None),
        ("temp", "number", "degC", True),
        ("status", "text", None, None),
    ]
    assert p.detected["time_parsing_used"] == ["timestamps with zone"]
    assert rows(p) == [
        (2, "2024-05-02T00:00:00Z", {"temp": 20.5}),
        (3, "2024-05-02T00:00:01Z", {"temp": 20.5}),
    ]
    assert (p.summary.rows_read, p.summary.end) == (3, "2024-05-02T00:00:02Z")


@pytest.mark.skipif(not NAB_FILE.is_file(), reason=f"real recording {NAB_FILE} not found")
def test_nab_duplicate_hour(srv: Server, unchanged: None) -> None:
    """The NAB file repeats 2014-01-07 02:00-02:55 with other values (its README)."""
    p = srv.ok(NAB_FILE.name, NAB_FILE.read_bytes(), rows="2")
    dup, units = problems(p)
    msg, locs, fixes, applied = dup
    assert msg == (
        "machine_temperature_system_failure.csv: duplicate timestamps with different values "
        "in channel 'value' (first: 2014-01-07T02:00:00+00:00: line 10139 has 94.42340604, "
        "line 10151 has 94.13972336). Nothing was stored; choose which value to keep (the "
        "last, the first) or their mean."
    )
    assert locs[:2] == [
        (NAB_FILE.name, 10151, "value", "94.13972336"),
        (NAB_FILE.name, 10152, "value", "94.11196982"),
    ]
    assert len(locs) == 10
    assert fixes == [{"duplicates": "last"}, {"duplicates": "first"}, {"duplicates": "mean"}]
    assert applied == {"duplicates": "last"}
    assert units == (
        "no units for new channel 'value': declare them (1 for dimensionless) or allow "
        "channels without units",
        [(NAB_FILE.name, None, "value", None)],
        [{"units": {"value": "1"}}, {"allow_missing_units": True}],
        None,
    )
    assert rows(p) == [
        (2, "2013-12-02T21:15:00Z", {"value": 73.96732207}),
        (3, "2013-12-02T21:20:00Z", {"value": 74.93588199999998}),
    ]
    assert p.summary.model_dump() == {
        "rows_read": 22695,
        "rows_skipped": 0,
        "start": "2013-12-02T21:15:00Z",
        "end": "2014-02-19T15:25:00Z",
        "interval_guess": "5min",
        "dataset_interval": "1s",
        "interval_matches": False,
        "off_grid_rows": 0,
    }


def test_truncated_upload(srv: Server, unchanged: None) -> None:
    body = CLEAN.encode()
    cut = body[: body.index(b"2024-05-02 00:00:02") + 13]  # the last line cut in its time
    p = srv.ok("clean.csv", cut, truncated="true")
    assert (p.truncated, p.complete, p.problems) == (True, True, [])
    assert [r.line for r in p.rows] == [2, 3]
    assert p.summary.rows_read == 2
    # Not said to be cut, the same bytes are an error on the last line, as ingest has it.
    whole = srv.ok("clean.csv", cut)
    assert whole.truncated is False and not whole.complete
    assert [(x.line, x.value) for x in whole.problems[0].locations] == [(4, "2024-05-02 00")]


def test_client_sends_first_megabytes(srv: Server, unchanged: None, tmp_path: Path) -> None:
    lines = ["time,temp [degC],p_in [bar]"] + [
        f"2024-05-03 00:{i // 60:02d}:{i % 60:02d},{20 + i / 100},{1 + i / 1000}"
        for i in range(3000)
    ]
    f = tmp_path / "long.csv"
    f.write_text("\n".join(lines) + "\n")
    with Client(srv.url, token=srv.tokens["alice"]) as c:
        p = c.preview_ingest(DS, f, max_bytes=10_000, rows=1)
        whole = c.preview_ingest(DS, f, max_bytes=None)
    assert p.truncated and p.problems == [] and 0 < p.summary.rows_read < 3000
    assert rows(p) == [(2, "2024-05-03T00:00:00Z", {"temp": 20.0, "p_in": 1.0})]
    assert not whole.truncated and whole.summary.rows_read == 3000 and len(whole.rows) == 20


def test_excel(srv: Server, unchanged: None, tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Messwerte"
    ws.append(["Presse 3 export"])
    ws.append(["Zeit", "temp", "p_in"])
    ws.append([None, "degC", "bar"])
    ws.append([datetime(2024, 5, 2, 8, 0, 0), 20.5, 1.5])
    ws.append([datetime(2024, 5, 2, 8, 0, 1), 20.75, None])
    f = tmp_path / "press.xlsx"
    wb.save(f)
    p = srv.ok("press.xlsx", f.read_bytes(), utc_offset="+02:00")
    assert p.format == "excel" and p.problems == []
    d = p.detected
    assert (d["sheet"], d["header_line"], d["units_row"], d["time_column"]) == (
        "Messwerte",
        2,
        True,
        "Zeit",
    )
    assert d["naive_times"] == "fixed offset +02:00"
    assert cols(p) == [
        ("Zeit", "time", None, None),
        ("temp", "number", "degC", True),
        ("p_in", "number", "bar", True),
    ]
    assert rows(p) == [
        (4, "2024-05-02T06:00:00Z", {"temp": 20.5, "p_in": 1.5}),
        (5, "2024-05-02T06:00:01Z", {"temp": 20.75, "p_in": None}),
    ]
    r = srv.preview("alice", "press.xlsx", f.read_bytes(), truncated="true")
    assert (r.status_code, r.json()["error"]["message"]) == (
        422,
        "a truncated excel file cannot be read; send the whole file (only text files can be "
        "previewed from their first megabytes)",
    )


def test_permissions(srv: Server, unchanged: None) -> None:
    body = CLEAN.encode()
    missing = srv.preview("bob", "clean.csv", body, ds="no-such-ds")
    other = srv.preview("bob", "clean.csv", body)
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["message"] == missing.json()["error"]["message"].replace(
        "no-such-ds", DS
    )
    viewer = srv.preview("carl", "clean.csv", body)
    assert viewer.status_code == 403
    assert srv.preview("bob", "clean.csv", body, ds=OTHER).status_code == 200
