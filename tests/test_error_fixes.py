"""Errors speak the caller's language (issue 12, point 6).

The same bad file, ingested from the command line and over HTTP (uvicorn, real tokens):
the message names the problem in the same words on both edges; the command line says
the fixes as flags (``--skip-column 'Status text'``), the API as JSON fields (a
``fixes`` list of ``{"option", "value"}`` and a ``hint``), Python callers as keyword
arguments; and applying the fix it gives makes the same ingest succeed. The real
recordings of ../shared/data trigger most of the errors (NAB's repeated hour, SKAB's
channels without units, NAB on a coarser grid).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from stream0d_nb.api.deps import UserInfo
from stream0d_nb.cli.errors import cli_fixes
from stream0d_nb.client import RemoteIngestError
from stream0d_nb.errors import Fix, IngestError
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec, IngestOptions
from stream0d_nb.store import Store
from tests.api_servers import ApiOverHttp, partner_spec
from tests.conftest import CliRun

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
NAB = DATA / "nab" / "machine_temperature_system_failure.csv"
SKAB = DATA / "skab" / "anomaly-free.csv"
needs_data = pytest.mark.skipif(
    not (NAB.is_file() and SKAB.is_file()), reason=f"real recordings not found at {DATA}"
)
WRITE = frozenset({"custom:stream0d:write"})
USERS = {
    "alice": UserInfo(frozenset({"fersa"}), False, WRITE),
    "olga": UserInfo(frozenset({"fersa"}), False, frozenset({"custom:stream0d:admin"})),
}


@dataclass
class Case:
    """A file a dataset refuses, the options given, what each edge says, the fix to apply."""

    dataset: str
    interval: str
    file: Path | str  # a path, or CSV text written to status.csv
    options: dict[str, Any]
    cli_args: list[str]
    flags: str  # the command line's fix line
    fixes: list[dict[str, Any]]  # the API's
    hint: str
    apply: dict[str, Any]  # one of the fixes, as options
    apply_args: list[str] = field(default_factory=list)

    def path(self, tmp: Path) -> Path:
        if isinstance(self.file, Path):
            return self.file
        p = tmp / "status.csv"
        p.write_text(self.file)
        return p


TEXT = (
    "time,temp [degC],Status text\n"
    "2024-05-02T00:00:00Z,20.5,OK\n"
    "2024-05-02T00:00:01Z,20.5,OK\n"
    "2024-05-02T00:00:02Z,21.0,FAIL\n"
)
CASES = {
    "text-column": Case(
        "fersa-text",
        "1s",
        TEXT,
        {},
        [],
        "fix: --skip-column 'Status text', or --text-columns skip",
        [
            {"option": "skip_columns", "value": ["Status text"]},
            {"option": "text_columns", "value": "skip"},
        ],
        'set skip_columns to ["Status text"], or text_columns to "skip"',
        {"skip_columns": ["Status text"]},
        ["--skip-column", "Status text"],
    ),
    "nab-repeated-hour": Case(
        "fersa-nab",
        "5min",
        NAB,
        {"units": {"value": "1"}},
        ["--unit", "value=1"],
        "fix: --duplicates last|first|mean",
        [
            {"option": "duplicates", "value": "last"},
            {"option": "duplicates", "value": "first"},
            {"option": "duplicates", "value": "mean"},
        ],
        'set duplicates to "last" or "first" or "mean"',
        {"duplicates": "last"},
        ["--duplicates", "last"],
    ),
    "nab-coarser-grid": Case(
        "fersa-hourly",
        "1h",
        NAB,
        {"units": {"value": "1"}},
        ["--unit", "value=1"],
        "fix: --off-grid nearest|mean, or --off-grid-tolerance ... "
        "(e.g. --off-grid-tolerance 100ms)",
        [
            {"option": "off_grid", "value": "nearest"},
            {"option": "off_grid", "value": "mean"},
            {"option": "off_grid_tolerance", "value": None, "example": "100ms"},
        ],
        'set off_grid to "nearest" or "mean", or off_grid_tolerance (e.g. "100ms")',
        {"off_grid": "mean"},
        ["--off-grid", "mean"],
    ),
    "skab-no-units": Case(
        "fersa-pump",
        "1s",
        SKAB,
        {},
        [],
        "fix: --unit ... (e.g. --unit Accelerometer1RMS=degC), or --allow-missing-units",
        [
            {"option": "units", "value": None, "example": {"Accelerometer1RMS": "degC"}},
            {"option": "allow_missing_units", "value": True},
        ],
        'set units (e.g. {"Accelerometer1RMS": "degC"}), or allow_missing_units to true',
        {"allow_missing_units": True},
        ["--allow-missing-units"],
    ),
}


class Server(ApiOverHttp):
    """A store with one fersa dataset per case, its app under uvicorn; alice writes, olga
    (an owner) may delete."""

    def __init__(self, home: Path) -> None:
        store = Store(Settings(home=home))
        for case in CASES.values():
            store.create_dataset(_spec(case))
        store.create_dataset(partner_spec("fersa-press", "fersa"))
        super().__init__(store, USERS)
        self.tokens["olga"] = self.token("olga", "admin")

    def ingest(self, case: Case, path: Path, options: dict[str, Any]) -> httpx.Response:
        """alice's upload of ``path`` into the case's dataset with ``options`` as JSON."""
        with path.open("rb") as fh:
            return self.call(
                "alice",
                "POST",
                f"/datasets/{case.dataset}/ingest",
                files={"file": (path.name, fh)},
                data={"options": json.dumps(options)},
            )


def _spec(case: Case) -> DatasetSpec:
    return DatasetSpec(id=case.dataset, interval=case.interval, partner="fersa")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("fixes") / "home")
    yield s
    s.stop()


def _needs(name: str) -> Any:
    """The case as a parameter, skipped without the real recordings when it needs them."""
    return pytest.param(name, id=name, marks=[] if name == "text-column" else [needs_data])


@pytest.mark.parametrize("name", [_needs(n) for n in CASES])
def test_each_edge_says_the_fix_in_its_terms_and_the_fix_works(
    name: str, srv: Server, cli: CliRun, tmp_path: Path
) -> None:
    case = CASES[name]
    path = case.path(tmp_path)
    # the command line: the problem, where, then the fix as flags
    code, _, err = cli(
        "dataset", "create", case.dataset, "--interval", case.interval, "--partner", "fersa"
    )
    assert code == 0, err
    code, _, err = cli("ingest", case.dataset, str(path), *case.cli_args, "--no-progress")
    assert code == 1 and "Traceback" not in err
    lines = err.rstrip().splitlines()
    assert lines[-1] == f"  {case.flags}", err
    assert all(f["option"] not in err for f in case.fixes if "_" in f["option"])  # no fields
    # the API: the same problem, the fixes as JSON fields and a hint in their names
    r = srv.ingest(case, path, case.options)
    assert r.status_code == 422, r.text[:300]
    body = r.json()["error"]
    assert (body["fixes"], body["hint"]) == (case.fixes, case.hint)
    assert lines[0] == f"error: {body['message'].replace(path.name, str(path))}"
    assert "--" not in body["message"] + body["hint"]
    assert body["locations"] and all(loc["file"] == path.name for loc in body["locations"])
    # ... which is what the command line said, in its own terms
    assert cli_fixes(Fix(**f) for f in body["fixes"]) == case.flags
    assert case.apply in [{f["option"]: f["value"]} for f in body["fixes"]]
    # applying the fix each edge gave makes the ingest succeed
    r = srv.ingest(case, path, {**case.options, **case.apply})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["commit"] and r.json()["values_written"] > 0
    code, out, err = cli(
        "ingest", case.dataset, str(path), *case.cli_args, *case.apply_args, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["values_written"] == r.json()["values_written"]


@needs_data
def test_python_callers_get_keyword_arguments(srv: Server, tmp_path: Path) -> None:
    """The client raises ``RemoteIngestError`` with ``fixes``; ``str()`` says them as Python
    keyword arguments, as an in-process ``IngestError`` does."""
    case = CASES["nab-repeated-hour"]
    with pytest.raises(RemoteIngestError) as remote:
        srv.client("alice").ingest(
            "fersa-press", NAB, {"units": {"value": "1"}, "new_channels": True}
        )
    assert remote.value.fixes == (
        Fix("duplicates", "last"),
        Fix("duplicates", "first"),
        Fix("duplicates", "mean"),
    )
    text = str(remote.value)
    assert text.splitlines()[-1] == (
        "  fix: pass one of duplicates='last', duplicates='first', duplicates='mean'"
    )
    assert "--" not in text
    with Store(Settings(home=tmp_path)) as st:
        st.create_dataset(_spec(case))
        with pytest.raises(IngestError) as local:
            st.ingest(case.dataset, NAB, IngestOptions(units={"value": "1"}))
    assert local.value.fixes == remote.value.fixes
    assert str(local.value).splitlines()[-1] == text.splitlines()[-1]
    assert local.value.problem.replace(str(NAB), NAB.name) == remote.value.problem


def test_confirmations_name_the_parameter_of_each_edge(srv: Server, cli: CliRun) -> None:
    r = srv.call("olga", "DELETE", "/datasets/fersa-press/channels/p_in")
    body = r.json()["error"]
    assert r.status_code == 400
    assert (
        body["message"] == "deleting channel 'p_in' of 'fersa-press': confirm by repeating its name"
    )
    assert (body["fixes"], body["hint"]) == (
        [{"option": "confirm", "value": "p_in"}],
        'set confirm to "p_in"',
    )
    r = srv.call(
        "olga", "DELETE", "/datasets/fersa-press/channels/p_in", params={"confirm": "p_in"}
    )
    assert r.status_code == 200
    cli("dataset", "create", "line-1", "--interval", "1s", "--channel", "temp=degC")
    code, _, err = cli("channel", "delete", "line-1", "temp")
    assert code == 1 and err.rstrip().endswith(
        "confirm by repeating its name (fix: --confirm temp)"
    )


def test_a_missing_dataset_is_named_alike_and_the_cli_says_where_to_look(
    srv: Server, cli: CliRun
) -> None:
    r = srv.call("alice", "GET", "/datasets/fersa-nothing")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "no dataset 'fersa-nothing' in the registry"
    code, _, err = cli("dataset", "show", "fersa-nothing")
    assert code == 1
    assert err.strip() == (
        "error: no dataset 'fersa-nothing' in the registry (see `stream0d dataset list`)"
    )
