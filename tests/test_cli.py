"""The stream0d command as a user runs it: real files, exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from stream0d_nb.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
needs_data = pytest.mark.skipif(
    not (DATA / "nab").is_dir(), reason=f"real recordings not found at {DATA}"
)


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_dataset_lifecycle_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys,
        tmp_path,
        "dataset",
        "create",
        "line-1",
        "--interval",
        "5min",
        "--tz",
        "Europe/Madrid",
        "--title",
        "Line 1",
        "--partner",
        "fersa",
        "--channel",
        "temp=degC",
    )
    assert code == 0 and "created dataset line-1 (interval 5min, tz Europe/Madrid)" in out
    code, _, err = run(capsys, tmp_path, "dataset", "create", "line-1", "--interval", "5min")
    assert code == 1 and "exists already" in err and "Traceback" not in err
    code, _, err = run(capsys, tmp_path, "dataset", "create", "Line 2", "--interval", "5min")
    assert code == 1 and "lowercase slug" in err
    code, _, err = run(capsys, tmp_path, "dataset", "create", "line-2", "--interval", "often")
    assert code == 1 and "'often' is not a duration" in err
    # bad usage is explained, never a silent exit code
    code, _, err = run(
        capsys, tmp_path, "dataset", "create", "line-2", "--interval", "1s", "--compression", "gz"
    )
    assert code == 2 and "Invalid value for '--compression'" in err and "'lz4', 'zstd'" in err
    code, _, err = run(capsys, tmp_path, "dataset", "create", "--interval", "1s")
    assert code == 2 and "Missing argument 'ID'" in err and "Traceback" not in err
    code, _, err = run(capsys, tmp_path, "no-such-command")
    assert code == 2 and "No such command" in err
    code, out, _ = run(capsys, tmp_path, "dataset", "list", "--json")
    assert [d["spec"]["id"] for d in json.loads(out)] == ["line-1"]
    assert json.loads(out)[0]["spec"]["compression"] == "lz4"
    code, out, _ = run(capsys, tmp_path, "dataset", "show", "line-1")
    assert code == 0 and "no data yet" in out and "temp" in out and "(lz4)" in out
    code, out, _ = run(
        capsys,
        tmp_path,
        "dataset",
        "create",
        "archive",
        "--interval",
        "1h",
        "--compression",
        "zstd",
    )
    code, out, _ = run(capsys, tmp_path, "dataset", "show", "archive")
    assert code == 0 and "(zstd)" in out
    run(capsys, tmp_path, "dataset", "delete", "archive", "--confirm", "archive")
    code, _, err = run(capsys, tmp_path, "dataset", "delete", "line-1")
    assert code == 1 and "--confirm line-1" in err
    code, out, _ = run(capsys, tmp_path, "dataset", "delete", "line-1", "--confirm", "line-1")
    assert code == 0 and "deleted dataset line-1" in out
    code, _, err = run(capsys, tmp_path, "read", "line-1")
    assert code == 1 and "Traceback" not in err
    assert "no dataset 'line-1' in the registry (see `stream0d dataset list`)" in err


@needs_data
def test_ingest_nab_refused_then_accepted_read_and_history(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nab = DATA / "nab" / "machine_temperature_system_failure.csv"
    run(capsys, tmp_path, "dataset", "create", "nab", "--interval", "5min")
    code, _, err = run(capsys, tmp_path, "ingest", "nab", str(nab), "--unit", "value=1")
    assert code == 1
    assert "duplicate timestamps with different values in channel 'value'" in err
    assert (
        "2014-01-07T02:00:00+00:00: line 10139 has 94.42340604, line 10151 has 94.13972336" in err
    )
    assert "Nothing was stored; choose which value to keep" in err and "Traceback" not in err
    assert err.rstrip().endswith("fix: --duplicates last|first|mean")  # flags, not JSON fields
    code, out, _ = run(capsys, tmp_path, "history", "nab", "--json")
    assert all(h["metadata"].get("action") != "ingest" for h in json.loads(out))  # nothing stored
    code, out, _ = run(
        capsys,
        tmp_path,
        "ingest",
        "nab",
        str(nab),
        "--unit",
        "value=1",
        "--duplicates",
        "last",
        "--json",
    )
    rep = json.loads(out)
    assert code == 0 and rep["rows_read"] == 22695 and rep["duplicates_resolved"] == 12
    assert rep["values_written"] == 22695 - 12 and rep["commit"]
    code, out, _ = run(
        capsys, tmp_path, "ingest", "nab", str(nab), "--unit", "value=1", "--duplicates", "last"
    )
    assert code == 0 and "unchanged: every value was already stored" in out
    code, out, _ = run(
        capsys,
        tmp_path,
        "read",
        "nab",
        "--start",
        "2014-01-07T02:00",
        "--end",
        "2014-01-07T02:15",
        "--format",
        "json",
    )
    recs = json.loads(out)
    assert [r["value"] for r in recs] == [94.13972336, 94.11196982, 94.63872322]  # the later copy
    code, out, _ = run(
        capsys,
        tmp_path,
        "read",
        "nab",
        "--start",
        "2014-01-07",
        "--end",
        "2014-01-08",
        "--every",
        "1h",
        "--how",
        "count",
    )
    df = pd.read_csv(pd.io.common.StringIO(out))
    assert df["value"].tolist() == [12.0] * 24
    code, out, _ = run(capsys, tmp_path, "history", "nab")
    assert "ingest machine_temperature_system_failure.csv (sha256" in out
    code, out, _ = run(capsys, tmp_path, "audit", "nab")
    assert "ingest" in out and "dataset.create" in out


@needs_data
def test_ingest_skab_needs_units_then_reads_by_braced_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    skab = DATA / "skab" / "anomaly-free.csv"
    run(capsys, tmp_path, "dataset", "create", "pump", "--interval", "1s")
    code, _, err = run(capsys, tmp_path, "ingest", "pump", str(skab))
    assert code == 1 and "no units for new channels" in err and "Volume Flow RateRMS" in err
    units = [
        "--unit",
        "Accelerometer1RMS=g",
        "--unit",
        "Accelerometer2RMS=g",
        "--unit",
        "Current=A",
        "--unit",
        "Pressure=bar",
        "--unit",
        "Temperature=degC",
        "--unit",
        "Thermocouple=degC",
        "--unit",
        "Voltage=V",
        "--unit",
        "Volume Flow RateRMS=L/min",
    ]
    code, out, _ = run(capsys, tmp_path, "ingest", "pump", str(skab), *units, "--json")
    rep = json.loads(out)
    assert rep["rows_read"] == 9405 and rep["values_written"] == 9405 * 8
    assert rep["gaps"] > 0 and rep["longest_gap"] == "2s"  # jittered ~1 Hz: some 2 s steps
    assert rep["detected"]["delimiter"] == ";"
    code, out, _ = run(
        capsys,
        tmp_path,
        "read",
        "pump",
        "--channels",
        "Volume Flow RateRMS,Pressure",
        "--end",
        "2020-02-08T13:30:49",
    )
    lines = out.strip().splitlines()
    assert lines[0] == "time,Volume Flow RateRMS,Pressure"
    assert lines[1].startswith("2020-02-08T13:30:47+0000,122.664,0.382638")
    code, out, _ = run(capsys, tmp_path, "channel", "list", "pump")
    assert "L/min" in out


def test_entry_point_in_a_fresh_process(tmp_path: Path) -> None:
    env = {**os.environ, "STREAM0D_HOME": str(tmp_path)}
    exe = Path(sys.executable).parent / "stream0d"
    r = subprocess.run(
        [str(exe), "dataset", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "no datasets yet" in r.stdout
    r = subprocess.run(
        [str(exe), "read", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [str(exe), "--debug", "read", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and "Traceback" in r.stderr


@needs_data
@pytest.mark.slow
def test_demo_twice_is_idempotent(tmp_path: Path) -> None:
    env = {**os.environ, "STREAM0D_HOME": str(tmp_path)}
    exe = Path(sys.executable).parent / "stream0d"
    first = subprocess.run(
        [str(exe), "demo", "--days", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert first.returncode == 0, first.stderr
    assert "fersa-grinding-1" in first.stdout and "zf-extrusion-2" in first.stdout
    assert (
        "default policy refused the file" in first.stdout and "Where to look next" in first.stdout
    )
    second = subprocess.run(
        [str(exe), "demo", "--days", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("unchanged") == 3


def test_unsafe_input_is_refused_and_csv_output_is_spreadsheet_safe(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The models refuse for the CLI too (nothing stored); CSV headers that a spreadsheet
    would run are quoted in ``export`` and ``read``, negative values stay numbers."""
    import csv

    from stream0d_nb.settings import Settings
    from stream0d_nb.specs import ChannelSpec, DatasetSpec
    from stream0d_nb.store import Store

    idx = pd.date_range("2024-01-01", periods=2, freq="1s", tz="UTC").as_unit("ns")
    chans = [ChannelSpec(name="-x", units="degC"), ChannelSpec(name="=cmd", units="bar")]
    with Store(Settings(home=tmp_path)) as st:
        st.create_dataset(DatasetSpec(id="inj", interval="1s", channels=chans))
        st.write("inj", pd.DataFrame({"-x": [-3.5, 2.0], "=cmd": [1.0, -0.25]}, index=idx))
        before = ([c.id for c in st.history("inj")], st.channels("inj"))
    src = tmp_path / "a.csv"
    src.write_text("time,a\\b\n2024-01-01T00:00:02Z,1\n")
    refusals = [
        (
            ["dataset", "create", "line-2", "--interval", "1s", "--title", "ab\u202ecd"],
            "title: contains U+202E (bidi override) at position 2",
        ),
        (
            ["ingest", "inj", str(src), "--encoding", "zlib_codec", "--unit", "a\\b=1"],
            "encoding: Value error, encoding 'zlib_codec' is not a text encoding",
        ),
        (
            ["ingest", "inj", str(src), "--time-format", "%Y" * 5000, "--unit", "a\\b=1"],
            "time_format: String should have at most 200 characters",
        ),
        (
            ["ingest", "inj", str(src), "--unit", "a\\b=1"],
            "column 'a\\\\b' cannot be a channel: Value error, channel name 'a\\\\b' must not "
            "contain '/' or '\\' (Zarr path separators)",
        ),
    ]
    for args, message in refusals:
        code, _, err = run(capsys, tmp_path, *args)
        assert code == 1 and message in err and "Traceback" not in err, err
    with Store(Settings(home=tmp_path)) as st:
        assert ([c.id for c in st.history("inj")], st.channels("inj")) == before
        assert [d.id for d in st.list_datasets()] == ["inj"]
    code, _, _ = run(capsys, tmp_path, "export", "inj", str(tmp_path / "out.csv"))
    assert code == 0
    with (tmp_path / "out.csv").open(newline="") as f:
        assert list(csv.reader(f)) == [
            ["time", "'-x", "'=cmd"],
            ["2024-01-01T00:00:00+00:00", "-3.5", "1"],
            ["2024-01-01T00:00:01+00:00", "2", "-0.25"],
        ]
    code, out, _ = run(capsys, tmp_path, "read", "inj")
    assert code == 0 and out.splitlines() == [
        "time,'-x,'=cmd",
        "2024-01-01T00:00:00+0000,-3.5,1.0",
        "2024-01-01T00:00:01+0000,2.0,-0.25",
    ]
