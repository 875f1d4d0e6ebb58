"""Memory benchmark: a CSV file much larger than the staging budget ingests in bounded memory.

Generates a CSV of about ``--size-gb`` GB (default 2.0): 1 Hz, 20 float channels rounded to
3 decimals, ISO 8601 times (``2024-01-01T00:00:00``), whole UTC days (about 4.5 months for
2 GB). The file is written day by day with ``pyarrow.csv.CSVWriter``, so generating it stays
in bounded memory too. Each measurement runs in a **child process** (a fresh interpreter)
whose peak resident set size is taken from ``os.wait4`` (the kernel's ``ru_maxrss`` of that
child alone), so the rows do not contaminate each other:

- ``import only``: the child imports stream0d, pyarrow and pandas and exits (the floor);
- ``pyarrow.csv.read_csv``: the baseline, the whole file loaded as one table;
- ``ingest, sorted``: ``Store.ingest`` into a fresh local store; sorted input takes the
  early path (a chunk the stream has passed is written at once, its buffer reused);
- ``ingest, days reversed``: the same rows with the days written in reverse order (each
  day still in order). The first attempt sees the stream go back to a chunk already
  written and restarts without early writes, so every chunk is held until the end and
  buffers spill to ``<home>/tmp`` past ``STAGING_BUDGET`` (1 GiB); the peak spill size is
  polled from the parent.

Timing is printed, never asserted. Run:
``.venv/bin/python bench/bench_memory.py [--size-gb 2.0] [--keep] [--dir /tmp]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_CH = 20
DAY = 86_400
START_S = 1_704_067_200  # 2024-01-01T00:00:00Z
CHANNELS = [f"ch{i:02d}" for i in range(N_CH)]


# ---- data ------------------------------------------------------------------------------
def day_table(day: int) -> pa.Table:
    """One UTC day at 1 Hz: ISO times and 20 random walks rounded to 3 decimals.

    Seeded by the day, so the sorted and the reversed file hold exactly the same rows.
    """
    rng = np.random.default_rng(day)
    secs = np.arange(START_S + day * DAY, START_S + (day + 1) * DAY, dtype=np.int64)
    times = pc.strftime(pa.array(secs, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S")
    cols: dict[str, pa.Array] = {"time": times}
    for name in CHANNELS:
        walk = 50 + np.cumsum(rng.normal(0, 0.02, DAY)) + rng.normal(0, 0.1, DAY)
        cols[name] = pa.array(np.round(walk, 3))
    return pa.table(cols)


def write_csv(path: Path, days: list[int]) -> int:
    """Write the given days in this order; return the number of rows."""
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as f:
        f.write((",".join(["time", *CHANNELS]) + "\n").encode())
        writer: pacsv.CSVWriter | None = None
        for d in days:
            t = day_table(d)
            if writer is None:
                writer = pacsv.CSVWriter(f, t.schema, write_options=opts)
            writer.write_table(t)
        if writer is not None:
            writer.close()
    return len(days) * DAY


def days_for_size(size_gb: float, probe: Path) -> int:
    """Whole days giving about ``size_gb`` GB, from the bytes per row of one written day."""
    write_csv(probe, [0])
    per_day = probe.stat().st_size
    probe.unlink()
    return max(1, round(size_gb * 1e9 / per_day))


# ---- children --------------------------------------------------------------------------
def child(mode: str, csv_path: str, home: str) -> None:
    """Run one measurement in this (child) process and print a JSON line."""
    import pandas  # noqa: F401  (imported so that every mode pays the same imports)

    from stream0d_nb.settings import Settings
    from stream0d_nb.specs import ChannelSpec, DatasetSpec
    from stream0d_nb.store import Store

    result: dict[str, object] = {}
    t0 = time.perf_counter()
    if mode == "read_csv":
        table = pacsv.read_csv(csv_path)
        result["rows"] = table.num_rows
        del table
    elif mode == "ingest":
        with Store(Settings(home=Path(home))) as store:
            store.create_dataset(
                DatasetSpec(
                    id="bench",
                    interval="1s",
                    channels=[ChannelSpec(name=c, units="degC") for c in CHANNELS],
                )
            )
            t0 = time.perf_counter()
            rep = store.ingest("bench", csv_path)
            result.update(
                rows=rep.rows_read,
                values_written=rep.values_written,
                reparsed=rep.detected.get("chunks_reparsed_as_text"),
            )
    result["seconds"] = time.perf_counter() - t0
    print(json.dumps(result), flush=True)


@dataclass
class Measured:
    """What one child did: its JSON result, wall time, peak RSS and peak spill size."""

    result: dict[str, object]
    wall: float
    peak_rss: int
    peak_spill: int


def dir_size(path: Path) -> int:
    """Bytes of the files under ``path`` (files may vanish while walking)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total


def run_child(mode: str, csv_path: Path, home: Path) -> Measured:
    """Start a child, poll its spill folder, and take its peak RSS from ``wait4``."""
    cmd = [sys.executable, __file__, "--child", mode, str(csv_path), str(home)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    spill = home / "tmp"
    peak_spill = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak_spill
        while not stop.wait(0.25):
            if spill.is_dir():
                peak_spill = max(peak_spill, dir_size(spill))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    poller.join()
    if proc.returncode != 0:
        raise SystemExit(f"child {mode} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    return Measured(result, wall, usage.ru_maxrss * 1024, peak_spill)


# ---- main ------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-gb", type=float, default=2.0, help="Size of the CSV file (GB).")
    ap.add_argument("--keep", action="store_true", help="Keep the generated CSV files.")
    ap.add_argument("--dir", type=Path, default=None, help="Where to put temporary files.")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "CSV", "HOME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0

    from stream0d_nb.store.store import STAGING_BUDGET

    tmp = Path(tempfile.mkdtemp(prefix="stream0d-bench-mem-", dir=args.dir))
    sorted_csv, reversed_csv = tmp / "sorted.csv", tmp / "days_reversed.csv"
    rows: list[tuple[str, Path, Measured]] = []
    try:
        ndays = days_for_size(args.size_gb, tmp / "probe.csv")
        t0 = time.perf_counter()
        nrows = write_csv(sorted_csv, list(range(ndays)))
        gen_s = time.perf_counter() - t0
        size = sorted_csv.stat().st_size
        print(
            f"data: {nrows:,} rows x {N_CH} channels ({ndays} days at 1 Hz), "
            f"{size / 1e9:.2f} GB CSV written in {gen_s:.0f} s; "
            f"staging budget {STAGING_BUDGET / 2**30:g} GiB",
            flush=True,
        )

        def measure(label: str, mode: str, path: Path) -> None:
            home = tmp / f"home-{len(rows)}"
            m = run_child(mode, path, home)
            shutil.rmtree(home, ignore_errors=True)
            rows.append((label, path, m))
            print(f"  {label}: {m.wall:.1f} s, peak RSS {m.peak_rss / 2**20:,.0f} MiB", flush=True)

        measure("import only", "none", sorted_csv)
        measure("pyarrow.csv.read_csv (whole file)", "read_csv", sorted_csv)
        measure("Store.ingest, sorted", "ingest", sorted_csv)
        write_csv(reversed_csv, list(reversed(range(ndays))))
        if not args.keep:
            sorted_csv.unlink()
        measure("Store.ingest, days reversed", "ingest", reversed_csv)
    finally:
        if args.keep:
            for p in (sorted_csv, reversed_csv):
                if p.exists():
                    print(f"kept {p}")
            for p in tmp.iterdir():
                if p not in (sorted_csv, reversed_csv):
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    base = next(m for label, _, m in rows if label.startswith("pyarrow"))
    width = max(len(label) for label, _, _ in rows)
    print(
        f"\n{'run (child process)':<{width}}  {'file GB':>7}  {'rows':>11}  {'time s':>7}  "
        f"{'MB/s':>6}  {'peak RSS MiB':>12}  {'RSS / read_csv':>14}  {'spill GiB':>9}"
    )
    for label, _, m in rows:
        r = m.result
        n = r.get("rows")
        secs = float(r["seconds"])  # type: ignore[arg-type]
        timed = n is not None
        print(
            f"{label:<{width}}  {size / 1e9:7.2f}  {(f'{n:,}' if timed else '-'):>11}  "
            f"{(f'{secs:7.1f}' if timed else '-'):>7}  "
            f"{(f'{size / 1e6 / secs:6.0f}' if timed else '-'):>6}  "
            f"{m.peak_rss / 2**20:12,.0f}  {m.peak_rss / base.peak_rss:14.2f}  "
            f"{m.peak_spill / 2**30:9.2f}"
        )
        if r.get("values_written") is not None and r["values_written"] != nrows * N_CH:
            print(f"  note: {label} wrote {r['values_written']:,} values, not {nrows * N_CH:,}")
    print(
        "\ntime s: inside the child (ingest: Store.ingest alone, after creating the dataset); "
        "peak RSS: ru_maxrss of the child from wait4; spill: largest size of <home>/tmp seen."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
