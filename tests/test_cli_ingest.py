"""``stream0d ingest --dry-run``: what ingest would do, from the real preview, storing
nothing; its problems say their fixes as flags, and those flags make the ingest pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream0d_nb.settings import Settings
from stream0d_nb.specs import IngestPreview
from stream0d_nb.store import Store
from tests.conftest import CliRun

NAB = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "nab"
    / "machine_temperature_system_failure.csv"
).resolve()


def _state(home: Path, dataset: str) -> tuple[list[str], list[str]]:
    """What a dry run must not change: the commits and the channels of the dataset."""
    with Store(Settings(home=home)) as st:
        return [c.id for c in st.history(dataset)], [c.name for c in st.channels(dataset)]


@pytest.mark.skipif(not NAB.is_file(), reason=f"real recording {NAB} not found")
def test_dry_run_of_nab_names_the_flags_and_stores_nothing(cli: CliRun, tmp_path: Path) -> None:
    code, _, err = cli("dataset", "create", "nab", "--interval", "5min")
    assert code == 0, err
    before = _state(tmp_path, "nab")
    code, out, err = cli("ingest", "nab", str(NAB), "--dry-run")
    assert code == 1 and err == "" and "Traceback" not in out
    lines = out.splitlines()
    assert lines[0] == f"{NAB} -> nab: dry run, nothing stored"
    assert "time_column='timestamp'" in lines[1] and "delimiter=','" in lines[1]
    assert lines[2] == "  columns: timestamp (time), value (number)"
    assert lines[3] == (
        "  rows read 22,695 (skipped 0) · time span 2013-12-02T21:15:00Z .. "
        "2014-02-19T15:25:00Z · interval 5min (dataset 5min)"
    )
    assert "2013-12-02T21:15:00Z" in out and "73.9673" in out  # the first rows, as parsed
    assert (
        "  problem: " + str(NAB) + ": duplicate timestamps with different values in channel "
        "'value' (first: 2014-01-07T02:00:00+00:00: line 10139 has 94.42340604, line 10151 "
        "has 94.13972336)"
    ) in out
    assert f"    {NAB}, line 10151, column 'value': '94.13972336'" in lines
    assert "    fix: --duplicates last|first|mean" in lines
    assert "    (read on as with --duplicates last)" in lines
    assert "  problem: no units for new channel 'value': declare them" in out
    assert "    fix: --unit value=1, or --allow-missing-units" in lines
    assert lines[-1] == "ingest would stop at the first problem; nothing was stored"
    assert "duplicates=" not in out and "skip_columns" not in out  # flags, not fields
    assert _state(tmp_path, "nab") == before
    # as JSON: the preview's own model, fixes as option sets
    code, out, _ = cli("ingest", "nab", str(NAB), "--dry-run", "--json")
    p = IngestPreview.model_validate(json.loads(out))
    assert code == 1 and [x.fixes for x in p.problems] == [
        [{"duplicates": "last"}, {"duplicates": "first"}, {"duplicates": "mean"}],
        [{"units": {"value": "1"}}, {"allow_missing_units": True}],
    ]
    # with the flags it named, the dry run passes, and so does the ingest
    flags = ["--duplicates", "last", "--unit", "value=1"]
    code, out, _ = cli("ingest", "nab", str(NAB), *flags, "--dry-run")
    assert code == 0 and "problem" not in out
    assert out.splitlines()[-1] == "ingest would read the whole file; nothing was stored"
    assert "value (number, 1)" in out
    assert _state(tmp_path, "nab") == before
    code, out, err = cli("ingest", "nab", str(NAB), *flags, "--json")
    assert code == 0, err
    assert json.loads(out)["values_written"] == 22695 - 12
    assert _state(tmp_path, "nab")[1] == ["value"]


def test_dry_run_reads_on_past_a_text_column(cli: CliRun, tmp_path: Path) -> None:
    src = tmp_path / "line.csv"
    src.write_text(
        "time,temp [degC],Status text\n"
        "2024-05-02T00:00:00Z,20.5,OK\n"
        "2024-05-02T00:00:01Z,20.75,FAIL\n"
    )
    cli("dataset", "create", "line", "--interval", "1s")
    before = _state(tmp_path, "line")
    code, out, _ = cli("ingest", "line", str(src), "--dry-run")
    assert code == 1
    assert "  columns: time (time), temp (number, degC), Status text (text)" in out
    assert "  problem: column 'Status text' holds text such as 'OK', not numbers" in out
    assert "    fix: --skip-column 'Status text', or --text-columns skip" in out.splitlines()
    assert "2024-05-02T00:00:01Z" in out and "20.75" in out  # read on without the column
    code, out, _ = cli("ingest", "line", str(src), "--skip-column", "Status text", "--dry-run")
    assert code == 0 and "problem" not in out
    assert _state(tmp_path, "line") == before and before[1] == []
    code, _, err = cli("ingest", "nope", str(src), "--dry-run")
    assert code == 1 and "no dataset 'nope' in the registry (see `stream0d dataset list`)" in err
