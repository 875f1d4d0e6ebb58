"""``stream0d append``, ``fold`` and ``retain`` as an operator runs them: real files into
the durable buffer (no commit), folded into a commit on demand or by ``fold --loop`` in
its own process, and retention's dry run against the real run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream0d_nb.settings import Settings
from stream0d_nb.specs import AppendReport
from stream0d_nb.store import Store
from tests.conftest import CliRun

DAY = pd.Timestamp("2024-05-01T00:00:00Z")


def _make(cli: CliRun) -> None:
    code, _, err = cli(
        "dataset", "create", "line", "--interval", "1s", "--channel", "temp=degC", "--channel",
        "p_in=bar",
    )  # fmt: skip
    assert code == 0, err


def _csv(path: Path, start: pd.Timestamp, n: int, temp0: float = 20.0) -> Path:
    """``n`` rows of ``temp`` and ``p_in`` every second from ``start``."""
    times = pd.date_range(start, periods=n, freq="1s")
    df = pd.DataFrame({"temp": temp0 + np.arange(n), "p_in": 1.0 + np.arange(n) / 10}, times)
    df.to_csv(path, index_label="time", date_format="%Y-%m-%dT%H:%M:%SZ")
    return path


def _commits(home: Path) -> list[str]:
    with Store(Settings(home=home)) as st:
        return [c.id for c in st.history("line")]


def _buffered(home: Path) -> int:
    with Store(Settings(home=home)) as st:
        return st.appends.tables.buffered_values("line")


def _temps(home: Path, start: pd.Timestamp, n: int) -> list[float]:
    with Store(Settings(home=home)) as st:
        ds = st.read("line", ["temp"], start=start, end=start + pd.Timedelta(seconds=n))
        return [float(v) for v in ds.temp.values]


def test_append_buffers_rows_without_a_commit_and_resends_change_nothing(
    cli: CliRun, tmp_path: Path
) -> None:
    _make(cli)
    commits = _commits(tmp_path)
    push = _csv(tmp_path / "push.csv", DAY, 5)
    code, out, err = cli("append", "line", str(push))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{push} -> line: buffered 10 values (sequence ")
    assert lines[1] == (
        "  rows 5 · time span 2024-05-01 00:00:00 .. 2024-05-01 00:00:04 UTC · channels temp, p_in"
    )
    assert lines[2] == "  values: 10 read, 10 new or changed, 0 unchanged, 0 snapped"
    assert _temps(tmp_path, DAY, 5) == [20.0, 21.0, 22.0, 23.0, 24.0]  # readable at once
    assert _commits(tmp_path) == commits and _buffered(tmp_path) == 10  # no commit
    code, out, _ = cli("append", "line", str(push), "--json")  # a gateway's retry
    again = AppendReport.model_validate(json.loads(out))
    assert code == 0 and (again.values_new, again.values_unchanged, again.sequence) == (0, 10, None)
    # a correction of one time wins; in another format (Parquet) and in degF, converted
    fix = pd.DataFrame({"temp": [212.0]}, index=pd.DatetimeIndex([DAY + pd.Timedelta("2s")]))
    fix.index.name = "time"
    fix.to_parquet(tmp_path / "fix.parquet")
    code, out, err = cli("append", "line", str(tmp_path / "fix.parquet"), "--unit", "temp=degF")
    assert code == 0 and "buffered 1 values" in out, err
    assert _temps(tmp_path, DAY, 5) == pytest.approx([20.0, 21.0, 100.0, 23.0, 24.0])
    assert _commits(tmp_path) == commits


def test_append_refusals_store_nothing(cli: CliRun, tmp_path: Path) -> None:
    _make(cli)
    bad = tmp_path / "bad.csv"
    bad.write_text("time,temp,flow\n2024-05-01T00:00:00Z,1.0,2.0\n")
    code, out, err = cli("append", "line", str(bad))
    assert code == 1 and "no channel 'flow'" in err and "Traceback" not in err + out
    off = tmp_path / "off.csv"
    off.write_text("time,temp\n2024-05-01T00:00:00.300Z,1.0\n")
    code, _, err = cli("append", "line", str(off))
    assert code == 1 and "off the dataset's 1 s grid" in err and "--off-grid" in err
    code, _, err = cli("append", "line", str(off), "--off-grid", "mean")
    assert code == 1 and "not for appends" in err
    code, _, err = cli("append", "nope", str(off))
    assert code == 1 and "nope" in err
    assert _buffered(tmp_path) == 0
    code, out, err = cli("append", "line", str(off), "--off-grid", "nearest")  # the fix it named
    assert code == 0 and "0 unchanged, 1 snapped" in out, err
    assert _buffered(tmp_path) == 1


def test_fold_commits_the_buffer_once(cli: CliRun, tmp_path: Path) -> None:
    _make(cli)
    code, out, _ = cli("fold", "line")
    assert code == 0 and out == "line: nothing to fold\n"
    cli("append", "line", str(_csv(tmp_path / "a.csv", DAY, 30)))
    commits = _commits(tmp_path)
    code, out, _ = cli("fold", "line", "--due-only")  # the day is not complete: nothing due
    assert code == 0 and out == "line: nothing to fold now\n" and _commits(tmp_path) == commits
    code, out, err = cli("fold", "line")
    assert code == 0, err
    after = _commits(tmp_path)
    assert len(after) == len(commits) + 1 and after[1:] == commits
    assert out == (
        f"line: folded 60 values (60 changed the chunks) from 1 segments into 1 chunk(s): "
        f"commit {after[0]}\n"
    )
    assert _buffered(tmp_path) == 0 and _temps(tmp_path, DAY, 3) == [20.0, 21.0, 22.0]
    code, out, _ = cli("fold", "line")
    assert code == 0 and out == "line: nothing to fold\n" and _commits(tmp_path) == after
    code, _, err = cli("fold")
    assert code == 1 and "give the DATASET to fold, or --loop" in err
    code, _, err = cli("fold", "line", "--loop")
    assert code == 1 and "give no DATASET" in err


def test_fold_loop_folds_complete_days_in_its_own_process(cli: CliRun, tmp_path: Path) -> None:
    _make(cli)
    # rows from two seconds before midnight to a minute and a half after: the first day
    # is complete (a minute's grace past its end), the second is not
    cli("append", "line", str(_csv(tmp_path / "a.csv", DAY - pd.Timedelta("2s"), 95)))
    commits = _commits(tmp_path)
    exe = Path(sys.executable).parent / "stream0d"
    proc = subprocess.Popen(
        [str(exe), "fold", "--loop", "--every", "0.2", "--retention-hours", "0"],
        env={**os.environ, "STREAM0D_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120  # no timed assert: only a bound on waiting
        while len(_commits(tmp_path)) == len(commits):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "fold --loop folded nothing"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines()[0] == "folding every 0.2 s until interrupted (Ctrl-C)"
    assert "line: folded 4 values into 1 chunk(s): commit " in out
    assert out.splitlines()[-1] == "stopped"
    assert len(_commits(tmp_path)) == len(commits) + 1
    assert _buffered(tmp_path) == 2 * 93  # the open day stays buffered
    assert _temps(tmp_path, DAY - pd.Timedelta("2s"), 4) == [20.0, 21.0, 22.0, 23.0]


def test_retain_dry_run_says_what_the_run_does(cli: CliRun, tmp_path: Path) -> None:
    _make(cli)
    for k in range(3):  # three commits (folded appends) on top of the dataset's own two
        cli("append", "line", str(_csv(tmp_path / "a.csv", DAY + pd.Timedelta(seconds=k), 1)))
        cli("fold", "line")
    commits = _commits(tmp_path)
    flags = ["--keep-all", "0s", "--keep-daily", "forever", "--gc-margin", "0s"]
    code, out, err = cli("retain", "line", *flags, "--dry-run", "--json")
    assert code == 0, err
    dry = json.loads(out)
    assert dry["dry_run"] and _commits(tmp_path) == commits  # nothing changed
    today = pd.Timestamp.now(tz="UTC").date().isoformat()
    assert dry["tagged"] == [f"daily-{today}"] and dry["untagged"] == []
    assert dry["expired"] == len(commits) - 2  # all but the head (tagged) and the root
    code, out, _ = cli("retain", "line", *flags, "--dry-run")
    assert out.splitlines()[1:3] == [
        f"  would expire {dry['expired']} commit(s); {dry['kept']} kept",
        f"  would tag: daily-{today}",
    ]
    code, out, err = cli("retain", "line", *flags, "--json")
    assert code == 0, err
    done = json.loads(out)
    assert not done["dry_run"] and done["tagged"] == dry["tagged"]
    assert (done["expired"], done["kept"]) == (dry["expired"], dry["kept"])
    assert done["deleted_objects"] > 0
    assert _commits(tmp_path)[0] == commits[0] and len(_commits(tmp_path)) < len(commits)
    assert _temps(tmp_path, DAY, 3) == [20.0, 20.0, 20.0]  # the data is the head's
    code, _, err = cli("retain", "line", "--keep-all", "a week")
    assert code == 1 and "--keep-all 'a week' is not a duration" in err


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' store is --home's, whatever the environment says."""
    monkeypatch.delenv("STREAM0D_HOME", raising=False)
