"""Input limits and refused text from the attacker's seat, over real HTTP (issue 11, 7 and 8).

The app runs under uvicorn on a free 127.0.0.1 port on a store with fersa's dataset
``fersa-press`` (which no attack may change: spec, data head, history, channels, formulas,
alert rules and temporary files are compared before and after) and ``fersa-lab`` for the
positive controls. Limits are small (10,000-byte JSON bodies, 2 MB uploads) so the tests
stay fast. Each attack is pinned to its exact status and message; each used to be a 500.
"""

from __future__ import annotations

import contextlib
import csv
import io
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openpyxl
import pandas as pd
import pytest

from stream0d_nb.alerts.service import AlertService
from stream0d_nb.api import ApiSettings, create_app
from stream0d_nb.api.deps import UserInfo, get_group_resolver
from stream0d_nb.db.access_tables import AccessRegistry
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec
from stream0d_nb.store import Store
from tests.api_servers import UvicornThread, partner_spec, seed_partner_datasets

ADMIN = frozenset({"custom:stream0d:admin"})
DS, LAB = "fersa-press", "fersa-lab"
CSV = b"time,temp\n2024-05-02T00:00:00Z,1.5\n"
RULE = {"name": "cold", "kind": "threshold", "channels": ["temp"], "op": "<", "value": 0}
JSON_LIMIT = 10_000
DEEP = "[" * 200_000 + "]" * 200_000


class Server:
    """Store, app under uvicorn, alice's token; ``state()`` is what attacks must not change."""

    def __init__(self, home: Path) -> None:
        self.store = Store(Settings(home=home))
        seed_partner_datasets(self.store, {DS: "fersa", LAB: "fersa"})
        settings = ApiSettings(max_upload_bytes=2_000_000, max_json_bytes=JSON_LIMIT)
        app = create_app(self.store, settings)
        user = UserInfo(frozenset({"fersa"}), False, ADMIN)
        app.dependency_overrides[get_group_resolver] = lambda: lambda name: user
        exp = datetime.now(UTC) + timedelta(days=1)
        self.token = (
            AccessRegistry(self.store.registry)
            .issue_token("alice", level="admin", expires_at=exp)
            .token
        )
        self.uvicorn = UvicornThread(app)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.uvicorn.port}/api",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
        )

    def state(self) -> tuple[Any, ...]:
        """Everything of ``fersa-press`` an attack could change, and leftover temp files."""
        st, data = self.store, self.store.data(DS)
        home = st.settings.home
        return (
            st.get_dataset(DS).spec.model_dump(),
            data.head(),
            [c.id for c in st.history(DS)],
            [c.model_dump() for c in st.channels(DS)],
            [f.model_dump() for f in st.registry.list_formulas(DS)],
            [r.model_dump() for r in AlertService(st).rules(DS)],
            sorted(
                p.name
                for d in ("uploads", "exports")
                if (home / d).is_dir()
                for p in (home / d).iterdir()
            ),
        )

    def ingest(self, content: bytes | str, name: str = "a.csv", **data: str) -> httpx.Response:
        """An upload of ``content`` as file ``name`` with form fields ``data``."""
        return self.http.post(f"/datasets/{DS}/ingest", files={"file": (name, content)}, data=data)

    def raw(self, head: str, body: bytes = b"") -> str:
        """Send a hand-made request on a fresh connection; the start of the answer."""
        with socket.create_connection(("127.0.0.1", self.uvicorn.port), timeout=30) as sock:
            sock.sendall(head.encode() + body)
            answer = b""
            while b"\r\n\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
            sock.settimeout(2)
            try:
                while part := sock.recv(65536):
                    answer += part
            except TimeoutError:
                pass
        return answer.decode(errors="replace")

    def stop(self) -> None:
        self.http.close()
        self.uvicorn.stop()
        self.store.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("limits") / "home")
    yield s
    s.stop()


@pytest.fixture
def unchanged(srv: Server) -> Iterator[None]:
    """Fails the test if ``fersa-press`` or the temp folders changed during it."""
    before = srv.state()
    yield
    assert srv.state() == before


def refused(r: httpx.Response, status: int, message: str) -> None:
    """``r`` is the JSON error ``status`` with exactly ``message``."""
    assert (r.status_code, r.json()["error"]["message"]) == (status, message), r.text[:400]


# ----------------------------------------------------------------------------- JSON depth


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "a.json",
            DEEP,
            "a.json: JSON nested 200,000 levels deep; at most 32 are read "
            "(records and columns are 2 deep)",
        ),
        (
            "a.json",
            '{"a":' * 200_000 + "1" + "}" * 200_000,
            "a.json: JSON nested 200,000 levels deep; at most 32 are read "
            "(records and columns are 2 deep)",
        ),
        (
            "a.jsonl",
            '{"time": "2024-05-02T00:00:00Z", "temp": 1}\n' + DEEP,
            "a.jsonl: JSON nested 200,000 levels deep; at most 32 are read "
            "(records and columns are 2 deep)",
        ),
    ],
    ids=["array", "object", "json-lines"],
)
def test_deeply_nested_json_upload_is_422(
    srv: Server, name: str, content: str, message: str
) -> None:
    refused(srv.ingest(content, name), 422, message)


@pytest.mark.usefixtures("unchanged")
def test_deeply_nested_ingest_options_are_422(srv: Server) -> None:
    refused(
        srv.ingest(CSV, options=DEEP[:9000] + DEEP[-9000:]),
        422,
        "ingest option 'options' nests 9,000 levels deep; at most 32 are accepted",
    )
    refused(
        srv.ingest(CSV, missing_values="[" * 5000 + "]" * 5000),
        422,
        "ingest option 'missing_values' nests 5,000 levels deep; at most 32 are accepted",
    )


@pytest.mark.usefixtures("unchanged")
def test_deeply_nested_json_body_is_422_before_parsing(srv: Server) -> None:
    deep = "[" * 4000 + "]" * 4000  # 8,000 bytes: under the size limit
    for method, path in (("PATCH", f"/datasets/{DS}"), ("POST", f"/datasets/{DS}/alerts")):
        for kind in ("application/json", "application/merge-patch+json", None):
            headers = {"Content-Type": kind} if kind else {}
            r = srv.http.request(method, path, content=deep, headers=headers)
            refused(
                r,
                422,
                "JSON body nested 4,000 levels deep; at most 32 are accepted "
                "(setting max_json_depth)",
            )


@pytest.mark.usefixtures("unchanged")
def test_json_body_over_the_size_limit_is_413_before_it_is_read(srv: Server) -> None:
    big = {"title": "x" * JSON_LIMIT}
    message = f"request bodies may have at most {JSON_LIMIT:,} bytes (setting max_json_bytes)"
    refused(srv.http.patch(f"/datasets/{DS}", json=big), 413, message)

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"title": "'
        yield b"x" * JSON_LIMIT
        yield b'"}'

    r = srv.http.patch(
        f"/datasets/{DS}", content=chunked(), headers={"Content-Type": "application/json"}
    )
    refused(r, 413, message)
    # a declared terabyte with a few bytes sent: answered without waiting for the rest
    answer = srv.raw(
        f"PATCH /api/datasets/{DS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {srv.token}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {10**12}\r\n\r\n",
        b'{"title": ',
    )
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert message in answer


def test_json_bodies_at_the_limits_pass(srv: Server) -> None:
    nested = {"title": "Lab", "description": "x"}
    r = srv.http.patch(f"/datasets/{LAB}", json=nested)
    assert r.status_code == 200 and r.json()["title"] == "Lab"
    body = '{"title": "' + "y" * (JSON_LIMIT - 14) + '"}'
    assert len(body) == JSON_LIMIT - 1
    r = srv.http.patch(
        f"/datasets/{LAB}", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422  # within the byte limit: the model's own max_length answers
    assert r.json()["error"]["message"] == "title: String should have at most 500 characters"
    # 32 levels are fine for the parser; the model then says what it wants
    deep32 = '{"title": ' + "[" * 31 + "]" * 31 + "}"
    r = srv.http.patch(
        f"/datasets/{LAB}", content=deep32, headers={"Content-Type": "application/json"}
    )
    assert (
        r.status_code == 422
        and r.json()["error"]["message"] == "title: Input should be a valid string"
    )


# ----------------------------------------------------------------------------- ingest options


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("encoding", "why"),
    [
        ("zlib_codec", "is not a text encoding"),
        ("base64", "is not a text encoding"),
        ("rot13", "is not a text encoding"),
        ("no-such-codec", "is unknown"),
    ],
)
def test_ingest_encoding_that_is_no_text_encoding_is_422(
    srv: Server, encoding: str, why: str
) -> None:
    message = (
        f"encoding: Value error, encoding {encoding!r} {why} (try 'utf-8', 'cp1252' or 'latin-1')"
    )
    refused(srv.ingest(CSV, encoding=encoding), 422, message)
    refused(srv.ingest(CSV, options=f'{{"encoding": "{encoding}"}}'), 422, message)


@pytest.mark.usefixtures("unchanged")
def test_ingest_time_format_too_long_or_unusable_is_422(srv: Server) -> None:
    refused(
        srv.ingest(CSV, time_format="%Y" * 5000),
        422,
        "time_format: String should have at most 200 characters",
    )
    r = srv.ingest(CSV, time_format="%Y%Y")  # short, but the parser cannot use it
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "the time format '%Y%Y' is not usable: redefinition of group name 'Y' as group 2; "
        "was group 1 at position 19"
    )
    assert r.json()["error"]["hint"] == 'set time_format (e.g. "%d.%m.%Y %H:%M:%S")'


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("c\\..\\..\\x", "must not contain '/' or '\\' (Zarr path separators)"),
        ("a\\b", "must not contain '/' or '\\' (Zarr path separators)"),
        ("__x", "must not start with '.' or '__' (reserved by Zarr)"),
        ("zarr.json", "is reserved (time, zarr.json)"),
        ("t\u202eemp", "contains U+202E (bidi override) at position 1"),
    ],
)
def test_channel_names_zarr_cannot_hold_are_422_naming_the_channel(
    srv: Server, name: str, why: str
) -> None:
    r = srv.http.put(f"/datasets/{DS}/channels", json=[{"name": name, "units": "1"}])
    refused(r, 422, f"0.name: Value error, channel name {name!r} {why}")
    header = name.encode()
    r = srv.ingest(CSV.replace(b"temp", header), units=f'{{"{name}": "1"}}'.replace("\\", "\\\\"))
    refused(
        r,
        422,
        f"a.csv: column {name!r} cannot be a channel: Value error, channel name {name!r} {why}",
    )
    r = srv.ingest(CSV, rename=f'{{"temp": "{name}"}}'.replace("\\", "\\\\"))
    refused(r, 422, f"rename: Value error, channel name {name!r} {why}")


def test_ingest_options_and_names_at_the_limits_pass(srv: Server) -> None:
    lab = f"/datasets/{LAB}/ingest"
    text = "time;Öl-Temp\n02.05.2024 00:00:00;1,5\n".encode("cp1252")
    r = srv.http.post(
        lab,
        files={"file": ("b.csv", text)},
        data={"encoding": "cp1252", "time_format": "%d.%m.%Y %H:%M:%S", "units": '{"x..y": "1"}'},
    )
    assert (
        r.status_code == 422
        and "no units for new channels 'Öl-Temp'" in r.json()["error"]["message"]
    )
    r = srv.http.post(
        lab,
        files={"file": ("b.csv", text)},
        data={
            "encoding": "cp1252",
            "time_format": "%d.%m.%Y %H:%M:%S",
            "rename": '{"Öl-Temp": "x..y"}',
            "units": '{"x..y": "degC"}',
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["new_channels"] == ["x..y"] and r.json()["values_written"] == 1
    rows = '[{"time": "2024-05-02T00:00:01Z", "temp": 2.5}]'
    r = srv.http.post(lab, files={"file": ("c.json", rows)})
    assert r.status_code == 200 and r.json()["values_written"] == 1


# ----------------------------------------------------------------------------- Authorization


@pytest.mark.usefixtures("unchanged")
def test_over_long_authorization_header_is_401_before_any_work(srv: Server) -> None:
    message = "Authorization header longer than 4,096 bytes (setting max_auth_header_bytes)"
    for value in (f"token {srv.token}" + "x" * 8000, "token " + "s0d_" + "a" * 8000):
        for method in ("GET", "PATCH"):
            r = srv.http.request(
                method, f"/datasets/{DS}", headers={"Authorization": value}, json={"title": "x"}
            )
            refused(r, 401, message)
            assert r.headers["www-authenticate"] == "token"


@pytest.mark.usefixtures("unchanged")
def test_64_kib_authorization_header_is_401_or_h11s_400_never_a_500(srv: Server) -> None:
    """A head read in one piece reaches the app, which answers 401 before any work; one
    that arrives in pieces is refused by h11 (uvicorn's parser) once over 16 KiB."""
    head = (
        f"GET /api/datasets/{DS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: token {'a' * 65536}\r\nConnection: close\r\n\r\n"
    )
    answer = srv.raw(head)
    assert answer.split("\r\n")[0] == "HTTP/1.1 401 Unauthorized", answer[:300]
    assert answer.split("\r\n\r\n", 1)[1] == (
        '{"error":{"type":"unauthorized","message":"Authorization header longer than 4,096 '
        'bytes (setting max_auth_header_bytes)"}}'
    )
    with socket.create_connection(("127.0.0.1", srv.uvicorn.port), timeout=30) as sock:
        data = head.encode()
        with contextlib.suppress(OSError):  # h11 closes once it has refused
            for k in range(0, len(data), 4096):
                sock.sendall(data[k : k + 4096])
                time.sleep(0.01)
        answer = sock.recv(65536).decode()
    assert answer == (
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
        "Connection: close\r\n\r\nInvalid HTTP request received."
    )


def test_authorization_header_at_the_limit_is_read(srv: Server) -> None:
    r = srv.http.get(f"/datasets/{DS}")
    assert r.status_code == 200
    padded = "token " + "s0d_" + "a" * (4096 - 10)
    r = srv.http.get(f"/datasets/{DS}", headers={"Authorization": padded})
    assert r.status_code == 401 and "longer than" not in r.json()["error"]["message"]


# ----------------------------------------------------------------------------- refused text


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        (
            "PATCH",
            f"/datasets/{DS}",
            {"title": "Pr\u202eesse"},
            "title: contains U+202E (bidi override) at position 2",
        ),
        (
            "PATCH",
            f"/datasets/{DS}",
            {"description": "ok\n\x1b[2J"},
            "description: contains U+001B (control character) at position 3",
        ),
        (
            "PUT",
            f"/datasets/{DS}/channels",
            [{"name": "flow", "units": "m\u200b3/h"}],
            "0.units: contains U+200B (zero-width character) at position 1",
        ),
        (
            "POST",
            f"/datasets/{DS}/formulas",
            {"name": "x", "formula": "p_in * 3", "description": "a\x00"},
            "description: contains U+0000 (NUL) at position 1",
        ),
        (
            "POST",
            f"/datasets/{DS}/alerts",
            {**RULE, "name": "cold2", "labels": {"team": "\u2066ops"}},
            "labels: label 'team': contains U+2066 (bidi isolate) at position 0",
        ),
        (
            "POST",
            f"/datasets/{DS}/alerts",
            {**RULE, "name": "cold2", "runbook": "https://wiki/\ufeff"},
            "runbook: contains U+FEFF (zero-width character) at position 13",
        ),
    ],
    ids=["title", "description", "units", "formula", "label", "runbook"],
)
def test_unsafe_characters_are_422_naming_field_and_character(
    srv: Server, method: str, path: str, body: Any, message: str
) -> None:
    refused(srv.http.request(method, path, json=body), 422, message)


def test_ordinary_text_in_any_script_passes(srv: Server) -> None:
    r = srv.http.patch(
        f"/datasets/{LAB}", json={"title": "Presse – Öl 温度", "description": "a\r\nb\tc"}
    )
    assert r.status_code == 200
    assert (r.json()["title"], r.json()["description"]) == ("Presse – Öl 温度", "a\nb\tc")


# ----------------------------------------------------------------------------- CSV export


FORMULA_NAMES = ["=cmd|' -C calc'!A0", "+1+2", "-x", "@SUM(A1)"]


def test_csv_export_neutralises_formula_headers_and_keeps_negative_numbers(srv: Server) -> None:
    st = srv.store
    st.create_dataset(
        partner_spec("fersa-csv", "fersa").model_copy(
            update={"channels": [ChannelSpec(name=n, units="degC") for n in FORMULA_NAMES]}
        )
    )
    idx = pd.date_range("2024-05-01", periods=2, freq="1s", tz="UTC")
    st.write(
        "fersa-csv", pd.DataFrame({n: np.array([-3.5, 2.0]) for n in FORMULA_NAMES}, index=idx)
    )
    for units_in_header, expect in (
        (False, ["time", *("'" + n for n in FORMULA_NAMES)]),
        (True, ["time", *(f"'{n} [degC]" for n in FORMULA_NAMES)]),
    ):
        r = srv.http.get(
            "/datasets/fersa-csv/export",
            params={
                "format": "csv",
                "channels": ",".join(FORMULA_NAMES),
                "units_in_header": units_in_header,
            },
        )
        assert r.status_code == 200, r.text
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows == [
            expect,
            ["2024-05-01T00:00:00+00:00", "-3.5", "-3.5", "-3.5", "-3.5"],
            ["2024-05-01T00:00:01+00:00", "2", "2", "2", "2"],
        ]
    # the same through the Excel export and the data route's CSV
    r = srv.http.get(
        "/datasets/fersa-csv/export",
        params={"format": "xlsx", "channels": ",".join(FORMULA_NAMES)},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    rows = [[c.value for c in row] for row in book.active.iter_rows()]
    assert rows == [
        ["time", *("'" + n for n in FORMULA_NAMES)],
        ["2024-05-01T00:00:00+00:00", -3.5, -3.5, -3.5, -3.5],
        ["2024-05-01T00:00:01+00:00", 2.0, 2.0, 2.0, 2.0],
    ]
    assert all(c.data_type == "s" for c in next(book.active.iter_rows()))  # no formula
    r = srv.http.get(
        "/datasets/fersa-csv/data", params={"format": "csv", "channels": ",".join(FORMULA_NAMES)}
    )
    assert r.status_code == 200, r.text
    head, *body = list(csv.reader(io.StringIO(r.text)))
    assert head[1:] == ["'" + n for n in FORMULA_NAMES] and body[0][1:] == ["-3.5"] * 4
