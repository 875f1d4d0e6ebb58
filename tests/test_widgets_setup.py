"""The Dataset setup screen driven without a browser, against a real API over HTTP.

alice (fersa) creates datasets and adds SKAB's real valve recording (``valve1_1.csv``:
semicolon-separated, no units, two label columns) to them, dropped as the browser's file
dropper hands it over and from her home folder; bob (zf) has his own dataset and sees
none of hers; carol (acme) is made a viewer of one of alice's datasets. Each drives the
screen through their own API token, as a kernel on the hub would.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document

from stream0d_nb.api import ApiSettings
from stream0d_nb.api.deps import UserInfo
from stream0d_nb.client import Client
from stream0d_nb.records import WhoAmI
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec, IngestOptions, IngestPreview, PreviewColumn
from stream0d_nb.store import Store
from stream0d_nb.widgets.files import (
    MAX_UPLOAD_BYTES,
    check_name,
    check_size,
    data_files,
    home_file,
    size_text,
)
from stream0d_nb.widgets.mapping import IngestMapping, supports
from stream0d_nb.widgets.setup import DatasetSetup, creatable_partners
from tests.api_servers import ApiOverHttp
from tests.hub_servers import axe_violations
from tests.servers import free_port
from tests.test_plots import DATA, SKAB_UNITS

VALVE = DATA / "skab" / "valve1_1.csv"
pytestmark = pytest.mark.skipif(not VALVE.is_file(), reason=f"SKAB valve file not at {VALVE}")

WRITE = frozenset({"custom:stream0d:write"})
ADMIN = frozenset({"custom:stream0d:admin"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, ADMIN),  # her screen's token: write
    "bob": UserInfo(frozenset({"zf"}), False, WRITE),
    "carol": UserInfo(frozenset({"acme"}), False, WRITE),
}
TZ = "Europe/Moscow"
LABELS = ["anomaly", "changepoint"]
CHANNELS = list(SKAB_UNITS)
ROWS = 1145
BAD = b"time,temp\n2024-05-01T00:00:00Z,1\n2024-05-01T00:00:01Z,abc\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiOverHttp]:
    store = Store(Settings(home=tmp_path_factory.mktemp("setup")))
    store.create_dataset(DatasetSpec(id="zf-rig", interval="1s", partner="zf"))
    server = ApiOverHttp(store, USERS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alice(srv: ApiOverHttp) -> Iterator[Client]:
    with srv.client("alice") as c:
        yield c


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home folder holding the valve file two folders down, and things not to list."""
    (tmp_path / "data" / "skab").mkdir(parents=True)
    shutil.copy(VALVE, tmp_path / "data" / "skab" / VALVE.name)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "hidden.csv").write_text("x")
    (tmp_path / "notes.md").write_text("# notes")
    (tmp_path / "bad.csv").write_bytes(BAD)
    return tmp_path


def new_screen(client: Client, home: Path | None = None) -> DatasetSetup:
    screen = DatasetSetup(client, home_dir=str(home or ""))
    assert screen.status.state == "ready", screen.status.error
    return screen


def create(screen: DatasetSetup, ident: str, tz: str = TZ) -> None:
    screen.param.update(new_id=ident, new_interval="1s", new_tz=tz, new_title="Valve 1")
    screen.create_dataset()
    assert screen.status.state == "ready", screen.status.error
    assert screen.dataset == ident


def drop(screen: DatasetSetup, name: str, body: bytes | str) -> None:
    """Set the file dropper's value as the browser does when an upload completes."""
    screen.dropper.value = {name: body}


def ingest(screen: DatasetSetup) -> None:
    assert screen.ingest(), screen.status.error
    assert screen.wait(120), "the ingest did not end"


# ----------------------------------------------------------------------------- pure parts


def test_files_of_the_home_and_limits(home: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert data_files(home) == ["bad.csv", "data/skab/valve1_1.csv"]  # no hidden, no .md
    assert home_file(home, "data/skab/valve1_1.csv") == (home / "data/skab/valve1_1.csv").resolve()
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text("time,x\n")
    (home / "link.csv").symlink_to(outside)
    for escape in ("../" * 6 + str(outside).lstrip("/"), str(outside), "link.csv"):
        with pytest.raises(ValueError, match="outside your home"):
            home_file(home, escape)
    with pytest.raises(ValueError, match="not a file ingest reads"):
        home_file(home, "notes.md")
    with pytest.raises(ValueError, match="accepted are CSV"):
        check_name("photo.png")
    assert check_name("Monthly.XLSX") == "Monthly.XLSX"
    # the limit shown is the API's
    assert ApiSettings().max_upload_bytes == MAX_UPLOAD_BYTES
    assert (
        size_text(MAX_UPLOAD_BYTES) == "256 MB"
        and size_text(110_330) == "108 KB"
        and size_text(5 * 2**19) == "2.5 MB"
    )
    check_size("a.csv", MAX_UPLOAD_BYTES)
    with pytest.raises(ValueError, match="at most 256 MB per upload"):
        check_size("a.csv", MAX_UPLOAD_BYTES + 1)


def test_partners_one_may_create_datasets_for() -> None:
    def who(groups: list[str], scopes: list[str], admin: bool = False, **token: object) -> WhoAmI:
        tok = {"id": "t1", "level": "write", "partner": None, "datasets": None} | token
        return WhoAmI(user="u", groups=groups, is_admin=admin, scopes=scopes, via="x", token=tok)

    write, read = ["custom:stream0d:write"], ["custom:stream0d:read"]
    assert creatable_partners(who(["fersa", "zf"], write)) == ["fersa", "zf"]
    assert creatable_partners(who(["fersa"], read)) == []  # read scope
    assert creatable_partners(who(["fersa"], write, level="read")) == []  # read token
    assert creatable_partners(who(["fersa", "zf"], write, partner="zf")) == ["zf"]
    assert creatable_partners(who(["fersa"], ["custom:stream0d:write!group=zf"])) == []
    assert creatable_partners(who([], write, admin=True)) == [""]  # admins: no partner


def test_mapping_is_ingest_options() -> None:
    m = IngestMapping()
    assert m.options() == IngestOptions()
    m.set_columns(
        [
            ("time", "time", "time", True),
            ("T [degC]", "T", "number", True),
            ("p", "p", "number", True),
        ]
    )
    m.apply({"units": {"p": "bar"}})
    m.apply({"skip_columns": ["flag"]})  # a column skipped by a fix stays listed
    m.apply({"delimiter": ";", "duplicates": "last"})
    m.add_missing_value(-9999.0)
    m.set_rename("T [degC]", "temp")
    m.set_units("T [degC]", "K")
    assert m.channel("T [degC]") == "temp" and m.value_headers() == ["T [degC]", "p"]
    m.set_rename("T [degC]", "t2")  # the units follow the channel
    assert m.units == {"p": "bar", "t2": "K"}
    want = IngestOptions(
        units={"p": "bar", "t2": "K"},
        rename={"T [degC]": "t2"},
        skip_columns=["flag"],
        delimiter=";",
        duplicates="last",
        missing_values=["-9999"],
    )
    assert m.options() == want
    assert "flag" in m.param.skip_columns.objects and m.other == {"delimiter": ";"}
    m.tz, m.utc_offset = "Europe/Madrid", "+02:00"
    with pytest.raises(ValueError, match="either tz or utc_offset"):
        m.options()
    m.reset()
    assert m.options() == IngestOptions()


# ----------------------------------------------------------------------------- the screen


def test_create_a_dataset(alice: Client, srv: ApiOverHttp) -> None:
    screen = new_screen(alice)
    assert screen.partners == ["fersa"] and screen.new_partner == "fersa"
    create(screen, "fersa-created", tz="Europe/Madrid")
    info = {d.id: d for d in alice.datasets()}["fersa-created"]
    assert (info.tz, info.interval, info.title, info.compression) == (
        "Europe/Madrid",
        "1s",
        "Valve 1",
        "lz4",
    )
    assert "fersa-created" in screen.param.dataset.objects and screen.new_id == ""
    assert "Created fersa-created" in screen.status.message
    # the API's refusals, in the banner
    screen.param.update(new_id="valve-2")
    screen.create_dataset()
    assert screen.status.state == "error"
    assert "ids of partner 'fersa' begin with 'fersa-'" in screen.status.error
    screen.param.new_partner.objects = ["fersa", "zf"]  # forced in alice's own kernel
    screen.param.update(new_partner="zf", new_id="zf-mine")
    screen.create_dataset()
    assert "alice is not a member of partner 'zf'" in screen.status.error
    assert "zf-mine" not in {d.id for d in alice.datasets()}
    screen.param.update(new_partner="fersa", new_id="fersa-created")
    screen.create_dataset()
    assert screen.status.state == "error" and "fersa-created" in screen.status.error


def test_dropped_file_preview_mapping_ingest_report_history(alice: Client) -> None:
    screen = new_screen(alice)
    create(screen, "fersa-valve")
    drop(screen, VALVE.name, VALVE.read_bytes().decode())  # text/csv arrives as str
    p = screen.preview
    assert isinstance(p, IngestPreview), screen.status.error
    assert screen.dropper.value == {}  # taken over: one copy of the file in the kernel
    assert "Dropped file: **valve1_1.csv** (108 KB)" in screen._file_info.object
    assert p.detected["delimiter"] == ";" and p.detected["time_column"] == "datetime"
    kinds = {c.header: c.kind for c in p.columns}
    assert kinds == {"datetime": "time", **{c: "number" for c in CHANNELS + LABELS}}
    assert p.summary.rows_read == ROWS and p.summary.interval_matches is True
    first = screen.frames["rows"]
    assert first is not None and "<caption" in screen._rows.object
    assert list(first["Line"][:2]) == [2, 3] and first["Current"][0] == 0.871339
    assert first[f"Time ({TZ})"][0] == "2020-03-09 10:34:33"  # the file's wall clock
    # no units in the file: one problem per channel, each with its fixes
    assert len(p.problems) == 10 and "no units for new channel" in p.problems[0].message
    assert p.problems[0].locations[0].column == "Accelerometer1RMS"
    assert "problem(s) to fix" in screen.status.message
    screen.apply_fix(0, 0)  # {"units": {"Accelerometer1RMS": "1"}}
    assert screen.mapping.units == {"Accelerometer1RMS": "1"}
    assert len(screen.preview.problems) == 9
    # units per channel and the label columns skipped, in one edit: one new preview
    screen.mapping.param.update(units=dict(SKAB_UNITS), skip_columns=LABELS)
    p = screen.preview
    assert p.problems == [], [x.message for x in p.problems]
    read = {c.name: c.units for c in p.columns if c.kind == "number" and not _left_out(c)}
    assert read == SKAB_UNITS
    if "note" in PreviewColumn.model_fields:  # the preview lists skipped columns
        assert sorted(c.header for c in p.columns if _left_out(c)) == LABELS
    assert "ready to ingest" in screen.status.message
    screen.__panel__()
    assert screen._unit_inputs["Current"].value == "A"  # the inputs show the mapping
    screen._unit_inputs["Pressure"].value = "kPa"  # typed: mapping and preview follow
    assert screen.mapping.units["Pressure"] == "kPa"
    assert {c.name: c.units for c in screen.preview.columns}["Pressure"] == "kPa"
    screen._unit_inputs["Pressure"].value = "bar"

    phases: list[str] = []
    screen.param.watch(lambda e: phases.append(e.new), "phase")
    ingest(screen)
    assert phases == ["uploading", "storing", "done"], screen.status.error
    assert screen.sent == screen.total == VALVE.stat().st_size
    r = screen.report
    assert r is not None and r.rows_read == ROWS and r.values_new == ROWS * len(CHANNELS)
    assert sorted(r.channels) == sorted(CHANNELS) and r.commit is not None
    assert "rows read: 1,145" in screen._report.object
    assert screen.status.state == "ready" and f"commit {r.commit}" in screen.status.message
    assert screen.history[0].id == r.commit and "valve1_1.csv" in screen.history[0].message
    assert screen.frames["history"]["Commit"][0] == r.commit  # type: ignore[index]
    assert f"<td>{r.commit}</td>" in screen._history.object
    # what the client reads is the file's data
    got = alice.read_pandas("fersa-valve", ["Current", "Pressure"]).dropna(how="all")
    want = pd.read_csv(VALVE, sep=";", index_col="datetime", parse_dates=True)
    assert r.gaps > 0  # the file's own gaps: the grid holds missing values there
    assert list(got.index) == list(want.index.tz_localize(TZ).tz_convert("UTC"))
    assert list(got["Current"]) == list(want["Current"])
    assert alice.read("fersa-valve")["Pressure"].attrs["units"] == "bar"
    assert "anomaly" not in {c.name for c in alice.channels("fersa-valve").stored}


def test_home_file_worker_thread_and_code(alice: Client, home: Path) -> None:
    screen = new_screen(alice, home)
    create(screen, "fersa-valve-home")
    assert screen.param.home_file.objects == ["", "bad.csv", "data/skab/valve1_1.csv"]
    doc = Document()
    root = screen.__panel__().get_root(doc)
    assert screen.__panel__() is screen.__panel__()  # the layout is built once
    screen.source = "home"
    screen.home_file = "data/skab/valve1_1.csv"
    assert screen.preview is not None and len(screen.preview.problems) == 10
    # one button for the fix all ten problems offer, clicked as the browser does
    (allow,) = [b for b in _buttons(screen) if "allow_missing_units" in b.label]
    assert allow.label == "Fix 10 problems: allow_missing_units = True"
    allow.clicks += 1
    assert screen.mapping.allow_missing_units and screen.preview.problems == []
    screen.mapping.skip_columns = LABELS

    # The ingest runs in a worker: hold it at its first progress report, and meanwhile
    # use the screen from the notebook's thread.
    gate, threads = threading.Event(), []

    def hold(event: object) -> None:
        threads.append(threading.current_thread())
        gate.wait(120)

    watcher = screen.param.watch(hold, "sent")
    assert screen.ingest()
    assert screen.phase == "uploading" and screen.worker.running
    assert not screen.ingest() and "an ingest is running" in screen.status.error
    screen.preview_rows = 3  # the notebook is free: a preview round trip meanwhile
    assert len(screen.preview.rows) == 3
    gate.set()
    assert screen.wait(120)
    screen.param.unwatch(watcher)
    assert threads and all(t is not threading.main_thread() for t in threads)
    r = screen.report
    assert r is not None and r.values_new == ROWS * len(CHANNELS), screen.status.error
    assert alice.read("fersa-valve-home")["Current"].attrs["units"] == ""
    # the worker's updates reached the rendered models
    ref = root.ref["id"]
    assert screen._bar._models[ref][0].value == 100
    assert "rows read: 1,145" in screen._report._models[ref][0].text

    screen.show_code = True
    code = screen._code.object
    assert "client.ingest('fersa-valve-home'" in code and "allow_missing_units=True" in code
    scope: dict[str, object] = {"CLIENT": alice}
    exec(code.strip("`").removeprefix("python\n").replace("Client.from_env()", "CLIENT"), scope)
    assert scope["report"].unchanged  # type: ignore[attr-defined]  # the same file again


def test_a_file_of_another_type_is_refused(alice: Client) -> None:
    screen = new_screen(alice)
    create(screen, "fersa-types")
    drop(screen, "photo.png", b"\x89PNG\r\n")
    assert screen.status.state == "error" and "'photo.png' is not a file ingest reads" in (
        screen.status.error
    )
    assert screen.upload is None and screen.preview is None
    assert not screen.ingest() and "drop a file first" in screen.status.error


def test_bad_file_names_line_and_column(alice: Client, home: Path) -> None:
    screen = new_screen(alice, home)
    create(screen, "fersa-bad", tz="UTC")
    before = [c.id for c in alice.history("fersa-bad")]
    screen.mapping.units = {"temp": "degC"}
    screen.source, screen.home_file = "home", "bad.csv"
    problem = screen.preview.problems[0]
    loc = problem.locations[0]
    assert (loc.line, loc.column, loc.value) == (3, "temp", "abc")
    assert any(b.label.startswith("Fix problem 1: bad_values = missing") for b in _buttons(screen))
    ingest(screen)
    assert screen.phase == "failed" and screen.report is None
    assert "bad.csv, line 3, column 'temp'" in screen.status.error
    assert "Ingesting bad.csv into fersa-bad failed" in screen.status.error
    assert [c.id for c in alice.history("fersa-bad")] == before
    # positive control: the fix the preview offers gets it in
    screen.apply_fix(0, 0)
    assert screen.mapping.bad_values == "missing" and screen.preview.problems == []
    ingest(screen)
    assert screen.report is not None and screen.report.bad_cells_missing == 1
    assert screen.status.error == ""


def _left_out(column: object) -> bool:
    return bool(getattr(column, "note", None))


def _buttons(screen: DatasetSetup) -> list[Any]:
    out = []
    for item in screen._problems.objects:
        out += list(getattr(item, "objects", [item]))
    return [b for b in out if hasattr(b, "clicks")]


def test_a_viewer_cannot_ingest(alice: Client, srv: ApiOverHttp) -> None:
    alice.create_dataset(DatasetSpec(id="fersa-shared", interval="1s", partner="fersa", tz=TZ))
    owner = Client(srv.url, srv.token("alice", "admin"))  # grants need an owner's token
    owner.grant("fersa-shared", "user", "carol", "viewer")
    before = [c.id for c in alice.history("fersa-shared")]
    with srv.client("carol") as carol:
        screen = new_screen(carol)
        assert "fersa-shared" not in screen.param.dataset.objects  # not offered to a viewer
        assert screen.partners == ["acme"]
        screen.param.dataset.objects = ["fersa-shared"]  # forced in carol's own kernel
        screen.dataset = "fersa-shared"
        screen.mapping.param.update(allow_missing_units=True, skip_columns=LABELS)
        drop(screen, VALVE.name, VALVE.read_bytes())
        assert screen.preview is None and screen.status.state == "error"
        assert "carol acts as viewer on dataset 'fersa-shared'" in screen.status.error
        ingest(screen)
        assert screen.phase == "failed" and screen.report is None
        assert "'ingest' needs editor" in screen.status.error
        assert [c.id for c in alice.history("fersa-shared")] == before
        assert alice.read("fersa-shared").sizes.get("time", 0) == 0
        # positive control: made an editor, carol sees it offered and adds the file
        owner.grant("fersa-shared", "user", "carol", "editor")
        screen.refresh()
        assert "fersa-shared" in screen.param.dataset.objects
        screen.run_preview()
        assert screen.preview is not None and screen.preview.problems == []
        ingest(screen)
        assert screen.report is not None and screen.report.rows_read == ROWS
    assert alice.history("fersa-shared")[0].id == screen.report.commit
    owner.close()


def test_another_partner_sees_nothing(srv: ApiOverHttp, alice: Client) -> None:
    alice.create_dataset(DatasetSpec(id="fersa-private", interval="1s", partner="fersa"))
    with srv.client("bob") as bob:
        screen = new_screen(bob)
        assert screen.param.dataset.objects == ["zf-rig"]  # his own: positive control
        assert screen.partners == ["zf"]
        screen.param.dataset.objects = ["zf-rig", "fersa-private"]  # forced...
        screen.dataset = "fersa-private"
        assert screen.status.state == "error"
        assert "no dataset 'fersa-private'" in screen.status.error
        assert screen.history == []


# ----------------------------------------------------------------------------- newer options


US_FILE = "Date (MM/DD/YYYY),temp [degC]\n" + "".join(
    f"{m:02d}/{d:02d}/2024 00:00:00,{d}\n" for m, d in ((5, 1), (5, 2), (5, 13), (6, 1))
)


@pytest.mark.skipif(
    not supports("date_order"),
    reason="IngestOptions has no date_order field yet (stream0d_nb/specs.py)",
)
def test_date_order_month_first(alice: Client) -> None:
    screen = new_screen(alice)
    alice.create_dataset(DatasetSpec(id="fersa-us", interval="1D", partner="fersa"))
    screen.refresh()
    screen.dataset = "fersa-us"
    screen.mapping.date_order = "month_first"
    drop(screen, "us.csv", US_FILE)
    assert screen.preview is not None and screen.preview.problems == [], screen.status.error
    assert [r.time[:10] for r in screen.preview.rows] == [
        "2024-05-01",
        "2024-05-02",
        "2024-05-13",
        "2024-06-01",
    ]
    assert screen.options().date_order == "month_first"


@pytest.mark.skipif(
    not supports("text_columns"),
    reason="IngestOptions has no text_columns field yet (stream0d_nb/specs.py)",
)
def test_text_columns_skipped(alice: Client) -> None:
    text = "time,temp,status,code\n" + "".join(
        f"2024-05-01T00:00:0{i}Z,{i},ok,Q{i}\n" for i in range(5)
    )
    screen = new_screen(alice)
    alice.create_dataset(DatasetSpec(id="fersa-text", interval="1s", partner="fersa"))
    screen.refresh()
    screen.dataset = "fersa-text"
    screen.mapping.param.update(units={"temp": "degC"}, text_columns="skip")
    drop(screen, "flags.csv", text)
    assert screen.preview is not None and screen.preview.problems == [], screen.status.error
    ingest(screen)
    assert screen.report is not None and screen.report.channels == ["temp"]
    assert "status" in screen._report.object and "code" in screen._report.object


def _has_sentinels() -> bool:
    return "sentinels" in IngestPreview.model_fields


@pytest.mark.skipif(
    not _has_sentinels(),
    reason="IngestPreview has no sentinels field (SentinelHint) yet (stream0d_nb/specs.py)",
)
def test_sentinel_accepted_with_one_click(alice: Client) -> None:
    values = [20.0 + (i % 7) / 10 for i in range(200)]
    for i in (50, 51, 120, 121, 122):
        values[i] = -9999.0
    text = "time,temp\n" + "".join(
        f"{pd.Timestamp('2024-05-01T00:00:00Z') + pd.Timedelta(seconds=i):%Y-%m-%dT%H:%M:%SZ},{v}\n"
        for i, v in enumerate(values)
    )
    screen = new_screen(alice)
    alice.create_dataset(DatasetSpec(id="fersa-sentinel", interval="1s", partner="fersa"))
    screen.refresh()
    screen.dataset = "fersa-sentinel"
    screen.mapping.units = {"temp": "degC"}
    drop(screen, "sentinel.csv", text)
    hints = screen.sentinels()
    assert [(h.column, h.count, h.first_line) for h in hints] == [("temp", 5, 52)]
    screen.accept_sentinel(0)
    assert screen.mapping.missing_values == ["-9999"]
    assert screen.sentinels() == []
    ingest(screen)
    got = alice.read_pandas("fersa-sentinel", ["temp"])
    assert got["temp"].isna().sum() == 5 and got["temp"].min() > 19


def test_unsupported_options_are_refused_not_dropped() -> None:
    m = IngestMapping()
    for name, value in (("date_order", "day_first"), ("text_columns", "skip")):
        m.reset()
        setattr(m, name, value)
        if supports(name):
            assert getattr(m.options(), name) == value
        else:
            with pytest.raises(ValueError, match=f"no option {name!r} yet"):
                m.options()


# ----------------------------------------------------------------------------- served


@pytest.mark.slow
def test_a_served_page_ingests_in_the_background(alice: Client, browser: Any) -> None:
    """Served by Panel (a Bokeh session with its own event loop), a click on Ingest starts
    the worker from the session's thread; the worker's updates are queued on that loop
    and the report appears in the page. No serious accessibility violation meanwhile."""
    screen = new_screen(alice)
    create(screen, "fersa-served")
    drop(screen, VALVE.name, VALVE.read_bytes().decode())
    screen.mapping.param.update(units=dict(SKAB_UNITS), skip_columns=LABELS)
    assert screen.preview is not None and screen.preview.problems == []
    port = free_port()
    server = pn.serve(screen, port=port, threaded=True, show=False, start=True)
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        button = page.get_by_role("button", name="Ingest", exact=True)
        button.wait_for()
        bad = [v for v in axe_violations(page) if v[1] in ("serious", "critical")]
        assert bad == []
        button.click()
        page.get_by_text("rows read: 1,145").wait_for(timeout=120_000)
        assert screen.phase == "done" and screen.report is not None
        assert screen.report.values_new == ROWS * len(CHANNELS)
        page.get_by_text(f"commit {screen.report.commit}").first.wait_for()
    finally:
        page.close()
        server.stop()
