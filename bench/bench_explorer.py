"""Explorer (issue 13): first render of 20 channels x 1 month at 1 Hz and a zoom round trip
in the kernel, each beside the bare client read of the same data in the same run.

Data: 20 channels x 30 days at 1 Hz (2,592,000 rows, 51.8 M values), time zone
Europe/Madrid: the 8 channels of the real SKAB pump recording repeated along the month
(copies 2 and 3 offset), each with a daily cycle, noise and a 2-hour outage. Built once
(about 20 s) and kept under ``$TMPDIR/stream0d-bench-explorer-<version>``.

The API runs under uvicorn in a subprocess (a process apart from the kernel, as the hub
service is) on a free loopback port; this process is the kernel: a ``Client`` with a
real read token of a user of the dataset's partner, over HTTP. Panel's comm to the
browser is a recording comm (what ipykernel's would send is built and counted, not
sent), so everything the kernel does before the browser receives the plot is measured.

Rows (``--repeat`` first renders after a new kernel's first, which has its own row;
``--zooms`` zooms; each interleaved with its baseline, in alternating order; ratio =
Explorer / baseline):

- ``first render``, as a person gets it: ``Explorer(client)`` (lists the datasets, opens
  the first) and the cell's display of it (``_repr_mimebundle_``: the screen, figure
  empty), then all 20 channels, preset "All data" (the month) and ``plot()`` (the Plot
  button: a plot-sized read at ``points=900``, the plot's width; HoloViews -> Bokeh
  models in the shown document; the patch for the browser serialized through the comm),
  until the Bokeh data sources hold what the bare read gives. A new Explorer each time
  (the previous one's output closed); goal <= 2 s (median; the max is shown too).
  Baseline: ``client.read(dataset, 20 channels, month, points=900)``.
- ``zoom round trip``: the ``RangeX`` event the browser sends when one hour is shown
  (random hours of the month, at ms) until the plot's data sources hold what the bare
  read of that hour gives and the patch went through the comm; goal <= 0.3 s (median;
  p90 shown). Baseline: ``client.read(dataset, 20 channels, that hour, points=900)``.

Then CPU seconds of the kernel and of the server (less sensitive than wall time to the
other work on the machine), the phases of a first render and of a zoom (medians), and
one profiled run of each (cProfile shares of the main steps). Exit status 1 when a goal
is not met.

Run: ``.venv/bin/python bench/bench_explorer.py [--repeat 7] [--zooms 20] [--rebuild]``.
The machine this runs on has 2 cores shared with others: ``uptime`` goes with the figures.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import tree_cpu_seconds, wait_for

from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec
from stream0d_nb.store import Store

VERSION = "1"  # of the data below: change it when they change
DATASET, PARTNER, USER, TZ = "bench-line", "bench-partner", "bench-user", "Europe/Madrid"
START, DAYS, N_CH = pd.Timestamp("2024-05-01", tz="UTC"), 30, 20
ROWS = DAYS * 86_400
END = START + pd.Timedelta(days=DAYS)
SKAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "skab" / "anomaly-free.csv"
SKAB_UNITS = {
    "Accelerometer1RMS": "g",
    "Accelerometer2RMS": "g",
    "Current": "A",
    "Pressure": "bar",
    "Temperature": "degC",
    "Thermocouple": "degC",
    "Voltage": "V",
    "Volume Flow RateRMS": "L/min",
}
GOAL_FIRST, GOAL_ZOOM = 2.0, 0.3


# ----------------------------------------------------------------------------- server side


def app_from_env() -> Any:
    """The API on the store at ``$BENCH_HOME`` (uvicorn factory)."""
    from stream0d_nb.api import create_app
    from stream0d_nb.api.deps import UserInfo

    info = UserInfo(frozenset({PARTNER}), False, frozenset({"custom:stream0d:read"}))
    store = Store(Settings(home=Path(os.environ["BENCH_HOME"])))
    return create_app(store, group_resolver=lambda user: info, prefix="")


def serve(port: int) -> None:
    """Run uvicorn (blocking); the parent process stops it."""
    import uvicorn

    uvicorn.run(
        "bench_explorer:app_from_env",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


@contextmanager
def served(home: Path) -> Iterator[tuple[str, int]]:
    """The API on ``home`` in a subprocess; yields its URL and process id, and stops it
    (its process group) after."""
    from tests.servers import free_port

    port = free_port()
    env = {**os.environ, "BENCH_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], env=env, start_new_session=True
    )
    try:
        wait_for(port, proc)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- data


def channels() -> dict[str, str]:
    """The 20 channels and their units: SKAB's 8, then copies ``<name> 2`` and ``<name> 3``."""
    names = list(SKAB_UNITS)
    out = {}
    for i in range(N_CH):
        base = names[i % len(names)]
        out[base if i < len(names) else f"{base} {i // len(names) + 1}"] = SKAB_UNITS[base]
    return out


def month_frame() -> pd.DataFrame:
    """The month: SKAB's channels repeated, with a daily cycle, noise, offsets and gaps."""
    raw = pd.read_csv(SKAB, sep=";", index_col=0)
    rng = np.random.default_rng(13)
    day = 2 * np.pi * np.arange(ROWS, dtype=np.float64) / 86_400
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(channels()):
        v = raw[list(SKAB_UNITS)[i % len(SKAB_UNITS)]].to_numpy(np.float64)
        sd = float(np.std(v)) or 1.0
        x = np.resize(v, ROWS) + (i // len(SKAB_UNITS)) * 0.2 * sd
        x += 0.5 * sd * np.sin(day + rng.uniform(0, 2 * np.pi))
        x += rng.normal(0, 0.05 * sd, ROWS)
        gap = int(rng.integers(0, ROWS - 7_200))
        x[gap : gap + 7_200] = np.nan  # a 2-hour outage of this sensor
        cols[name] = np.round(x, 4)
    idx = pd.date_range(START, periods=ROWS, freq="1s")
    return pd.DataFrame(cols, index=idx)


def cached_home(rebuild: bool) -> Path:
    """The store holding the month, built once per ``VERSION`` (in place: the registry keeps
    absolute paths; a file ``complete`` marks a finished build)."""
    home = Path(tempfile.gettempdir()) / f"stream0d-bench-explorer-{VERSION}"
    if (home / "complete").is_file() and not rebuild:
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    t0 = time.perf_counter()
    frame = month_frame()
    spec = DatasetSpec(
        id=DATASET,
        interval="1s",
        tz=TZ,
        partner=PARTNER,
        title="Bench: 20 channels x 30 days at 1 Hz",
        channels=[ChannelSpec(name=n, units=u) for n, u in channels().items()],
    )
    with Store(Settings(home=home)) as store:
        store.create_dataset(spec)
        store.write(DATASET, frame)
    (home / "complete").write_text(f"{VERSION}\n")
    print(f"built {ROWS:,} rows x {N_CH} channels in {time.perf_counter() - t0:.1f} s: {home}")
    return home


def read_token(home: Path) -> str:
    """A new read token (a day long) of the partner's user."""
    from stream0d_nb.db.access_tables import AccessRegistry

    with Store(Settings(home=home)) as store:
        exp = datetime.now(UTC) + timedelta(days=1)
        access = AccessRegistry(store.registry)
        return access.issue_token(USER, level="read", expires_at=exp, note="bench").token


# ----------------------------------------------------------------------------- kernel side


class Sent:
    """Bytes the kernel would send the browser through panel's comms."""

    bytes = 0


def recording_comms() -> None:
    """Panel's comms become open comms that count what they send (ipykernel's would send
    it); panel then builds and serializes every patch for the browser as in JupyterLab."""
    import panel as pn
    from pyviz_comms import Comm, CommManager

    class RecordingComm(Comm):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self._comm = True  # open: panel sends at once instead of scheduling a retry

        def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
            Sent.bytes += len(data or "") + sum(memoryview(b).nbytes for b in buffers or [])

    class RecordingCommManager(CommManager):
        server_comm = RecordingComm
        client_comm = RecordingComm

    pn.state._comm_manager = RecordingCommManager


class TimedClient:
    """The client, adding up the seconds its calls take (HTTP and decoding into xarray)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.seconds, self.calls = 0.0, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        return timed


@dataclass
class Took:
    """Wall seconds, and CPU seconds of this process (the kernel) and of the API server."""

    wall: float = 0.0
    cpu: float = 0.0
    server: float = 0.0
    client: float = 0.0
    """Wall seconds in client calls (the Explorer's only)."""
    sent: int = 0
    """Bytes for the browser through the comms."""


class Clock:
    """Measures a step: wall time, this process's CPU time and the server's CPU time."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid

    @contextmanager
    def __call__(self) -> Iterator[Took]:
        took = Took()
        s0, c0, w0, b0 = (
            tree_cpu_seconds(self.pid),
            time.process_time(),
            time.perf_counter(),
            Sent.bytes,
        )
        yield took
        took.wall, took.cpu = time.perf_counter() - w0, time.process_time() - c0
        took.server, took.sent = tree_cpu_seconds(self.pid) - s0, Sent.bytes - b0


def line_sources(ex: Any) -> list[dict[str, Any]]:
    """The data of the plot's lines, as the Bokeh document holds them."""
    from bokeh.models import Line
    from bokeh.models.renderers import GlyphRenderer

    ((plot, _),) = ex.figure._plots.values()
    renderers = plot.state.select({"type": GlyphRenderer})
    return [dict(r.data_source.data) for r in renderers if isinstance(r.glyph, Line)]


def check_plot(ex: Any, base: Any, t0: pd.Timestamp, t1: pd.Timestamp) -> int:
    """The plot's 20 lines hold what the bare read of ``[t0, t1)`` gave (as many rows, in
    the range on the zone's wall clock); returns the rows per line."""
    assert ex.status.state == "ready", ex.status.error
    lines = line_sources(ex)
    assert len(lines) == N_CH, len(lines)
    rows = int(base.sizes["time"])
    lo, hi = (np.datetime64(t.tz_convert(TZ).tz_localize(None)) for t in (t0, t1))
    for data in lines:
        times = np.asarray(data["time"])
        assert len(times) == rows, (len(times), rows)
        assert lo <= times.min() and times.max() < hi, (times.min(), times.max(), lo, hi)
    return rows


def first_render(client: Any, clock: Clock) -> tuple[Any, Took, Took]:
    """``Explorer(client)`` shown, all channels over all data, plotted (until the Bokeh
    models hold the data and the patch for the browser went out); the Explorer, and the
    measures of the whole and of opening (Explorer and its display) alone."""
    from stream0d_nb.widgets import Explorer

    timed = TimedClient(client)
    opening = Took()
    with clock() as took:
        w0 = time.perf_counter()
        ex = Explorer(timed)
        with redirect_stdout(io.StringIO()):  # (panel's display handle, outside IPython)
            bundle, _ = ex._repr_mimebundle_()  # the cell's output: the screen, empty
        Sent.bytes += sum(len(v) for v in bundle.values())
        opening.wall, opening.client = time.perf_counter() - w0, timed.seconds
        ex.channels = list(ex.param.channels.objects)
        ex.preset = "All data"
        ex.plot()  # the Plot button
    took.client = timed.seconds
    assert ex.status.state == "ready", ex.status.error
    assert ex.window == (START, END) and ex.reads == 1, (ex.window, ex.reads)
    return ex, took, opening


def zoom(ex: Any, t0: pd.Timestamp, t1: pd.Timestamp, clock: Clock) -> Took:
    """The browser's ``RangeX`` event for ``[t0, t1)`` (the axis's wall clock, in ms) until
    the plot holds the new data and the patch went out."""
    stream = ex.figure.object.streams[0]
    x0, x1 = (np.datetime64(t.tz_convert(TZ).tz_localize(None), "ms") for t in (t0, t1))
    reads, client0 = ex.reads, ex.client.seconds
    with clock() as took:
        stream.event(x_range=(x0, x1))
    took.client = ex.client.seconds - client0
    assert ex.reads == reads + 1 and ex.window == (t0, t1), (ex.reads, ex.window, t0, t1)
    assert took.sent > 0, "no patch went to the browser"
    return took


def bare_read(client: Any, t0: pd.Timestamp, t1: pd.Timestamp, clock: Clock) -> tuple[Any, Took]:
    """The baseline: the same channels and range read at the points the Explorer asks
    (its plot's width), nothing else."""
    from stream0d_nb.widgets.explorer import PLOT_WIDTH

    with clock() as took:
        ds = client.read(DATASET, list(channels()), start=t0, end=t1, points=PLOT_WIDTH)
    return ds, took


def hours(n: int, seed: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``n`` random one-hour windows of the month (at milliseconds, as an axis gives)."""
    rng = np.random.default_rng(seed)
    starts = [
        START + pd.Timedelta(int(m), "ms") for m in rng.integers(0, (ROWS - 3_600) * 1_000, n)
    ]
    return [(t, t + pd.Timedelta(hours=1)) for t in starts]


def close(ex: Any) -> None:
    """Forget a shown Explorer as the kernel does when its output goes (frees its models)."""
    import panel as pn

    layout = ex.__panel__()
    for ref, (root, _) in list(layout._models.items()):
        layout._cleanup(root)
        pn.state._views.pop(ref, None)


# ----------------------------------------------------------------------------- profile

HOTSPOTS = (
    ("stream0d_nb/widgets/explorer.py", "__init__", "Explorer(): list datasets, open one"),
    ("panel/viewable.py", "_repr_mimebundle_", "display of the screen (figure empty)"),
    ("stream0d_nb/client.py", "read", "client.read (HTTP, Arrow -> xarray)"),
    ("stream0d_nb/plots/series.py", "lane", "build the HoloViews elements (20 curves)"),
    ("holoviews/plotting/renderer.py", "get_plot", "HoloViews -> Bokeh models"),
    (
        "holoviews/plotting/plot.py",
        "refresh",
        "redraw (zoom, or the render's RangeX re-trigger)",
    ),
    ("holoviews/core/spaces.py", "_execute_callback", "  DynamicMap callbacks (read + build)"),
    ("holoviews/plotting/bokeh/element.py", "_update_ranges", "  ranges of the axes"),
    (
        "holoviews/plotting/bokeh/element.py",
        "_get_dimension_factors",
        "    factors of the extra y axes",
    ),
    ("holoviews/core/dimension.py", "pprint_value", "      pprint_value (each value as text)"),
    ("holoviews/plotting/bokeh/element.py", "_update_glyphs", "  glyph data sources"),
    ("panel/io/notebook.py", "push", "patch serialized for the browser (comm)"),
)


def profile(fn: Callable[[], object]) -> tuple[float, list[tuple[str, float, int]]]:
    """``fn`` under cProfile: its total and the cumulative seconds and calls of the
    ``HOTSPOTS`` (the largest entry of each name: nested ones are inside it)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats: dict[Any, Any] = getattr(pstats.Stats(prof), "stats")  # noqa: B009  (untyped)
    total = max(ct for (_, _, _, ct, _) in stats.values())
    out = []
    for path, name, label in HOTSPOTS:
        hits = [
            (ct, nc)
            for (file, _, func), (_, nc, _, ct, _) in stats.items()
            if func == name and file.endswith(path)
        ]
        if hits:
            ct, nc = max(hits)
            out.append((label, ct, nc))
    return total, out


# ----------------------------------------------------------------------------- main


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=7, help="first renders (new Explorer each)")
    ap.add_argument("--zooms", type=int, default=20, help="zoom round trips (random hours)")
    ap.add_argument("--rebuild", action="store_true", help="build the cached month again")
    ap.add_argument("--no-profile", action="store_true", help="skip the profiled runs")
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    home = cached_home(args.rebuild)
    token = read_token(home)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    import holoviews  # noqa: F401  (what a kernel imports first, timed apart)
    import panel  # noqa: F401

    from stream0d_nb.client import Client
    from stream0d_nb.widgets import Explorer  # noqa: F401

    imports = time.perf_counter() - t0
    recording_comms()
    renders: list[Took] = []
    openings: list[Took] = []
    render_bases: list[Took] = []
    zooms: list[Took] = []
    zoom_bases: list[Took] = []
    rows: dict[str, int] = {}
    prof: dict[str, tuple[float, list[tuple[str, float, int]]]] = {}
    with served(home) as (url, pid), Client(url, token) as client:
        clock = Clock(pid)
        ex = None
        # the first pass is a new kernel's first plot (imports done); order alternates
        for i in range(args.repeat + 1):
            if ex is not None:
                close(ex)
                ex = None
                gc.collect()
            if i % 2:
                base, b_took = bare_read(client, START, END, clock)
                ex, took, opening = first_render(client, clock)
            else:
                ex, took, opening = first_render(client, clock)
                base, b_took = bare_read(client, START, END, clock)
            rows["month"] = check_plot(ex, base, START, END)
            renders.append(took)
            openings.append(opening)
            render_bases.append(b_took)
            print(
                f"first render {i}: {took.wall:.2f} s (bare read {b_took.wall:.2f} s)", flush=True
            )
        assert ex is not None
        for j, (h0, h1) in enumerate(hours(args.zooms, 5)):
            if j % 2:
                base, b_took = bare_read(client, h0, h1, clock)
                took = zoom(ex, h0, h1, clock)
            else:
                took = zoom(ex, h0, h1, clock)
                base, b_took = bare_read(client, h0, h1, clock)
            rows["hour"] = check_plot(ex, base, h0, h1)
            zooms.append(took)
            zoom_bases.append(b_took)
        print(f"zooms: median {statistics.median(z.wall for z in zooms):.2f} s", flush=True)
        if not args.no_profile:
            close(ex)
            holder: list[Any] = []
            prof["first render"] = profile(lambda: holder.append(first_render(client, clock)[0]))
            h0, h1 = hours(1, 99)[0]
            prof["zoom"] = profile(lambda: zoom(holder[0], h0, h1, clock))
    load = (load0, os.getloadavg())
    return report(imports, renders, openings, render_bases, zooms, zoom_bases, rows, prof, load)


def report(
    imports: float,
    renders: list[Took],
    openings: list[Took],
    render_bases: list[Took],
    zooms: list[Took],
    zoom_bases: list[Took],
    rows: dict[str, int],
    prof: dict[str, tuple[float, list[tuple[str, float, int]]]],
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> int:
    """The tables: goals, CPU, phases, profile; 1 if a goal is not met."""
    med = statistics.median
    n, m = len(renders) - 1, len(zooms)
    rw, bw = [r.wall for r in renders[1:]], [b.wall for b in render_bases[1:]]
    zw, zb = [z.wall for z in zooms], [b.wall for b in zoom_bases]
    table = [
        (f"first render, median of {n}", GOAL_FIRST, med(rw), med(bw)),
        (f"first render, max of {n}", GOAL_FIRST, max(rw), max(bw)),
        ("first render, first in the kernel", GOAL_FIRST, renders[0].wall, render_bases[0].wall),
        (f"zoom round trip (1 h), median of {m}", GOAL_ZOOM, med(zw), med(zb)),
        (f"zoom round trip (1 h), p90 of {m}", GOAL_ZOOM, pct(zw, 90), pct(zb, 90)),
    ]
    print(
        f"\n{N_CH} channels x {DAYS} days at 1 Hz ({ROWS:,} rows); the month plotted at "
        f"{rows['month']:,} rows per line, an hour at {rows['hour']:,}; imports of a new "
        f"kernel (panel, HoloViews, the Explorer) {imports:.1f} s, not counted"
    )
    w = max(len(r[0]) for r in table)
    print(
        f"\n{'case':<{w}}  {'goal':>8}  {'measured':>9}  {'bare read':>9}  {'ratio':>6}  goal met"
    )
    failed = 0
    for case, goal, ours, base in table:
        ok = "yes" if ours <= goal else "NO"
        failed += ok == "NO"
        print(f"{case:<{w}}  {'<= ' + format(goal, 'g') + ' s':>8}  {ours:8.3f}s  {base:8.3f}s  "
              f"{ours / base:6.1f}  {ok}")  # fmt: skip

    def cpu(ts: list[Took]) -> tuple[float, float]:
        return med([t.cpu for t in ts]), med([t.server for t in ts])

    print("\nCPU seconds, medians (less sensitive to the other work on the machine):")
    print(f"{'case':<24}  {'kernel':>7}  {'server':>7}  {'sum':>6}  {'bare read: kernel':>17}  "
          f"{'server':>7}  {'sum':>6}  {'ratio':>6}")  # fmt: skip
    for case, ours_t, base_t in (
        (f"first render ({n})", renders[1:], render_bases[1:]),
        ("first in the kernel", renders[:1], render_bases[:1]),
        (f"zoom round trip ({m})", zooms, zoom_bases),
    ):
        (k, sv), (bk, bs) = cpu(ours_t), cpu(base_t)
        print(f"{case:<24}  {k:7.3f}  {sv:7.3f}  {k + sv:6.3f}  {bk:17.3f}  {bs:7.3f}  "
              f"{bk + bs:6.3f}  {(k + sv) / (bk + bs):6.1f}")  # fmt: skip

    op = openings[1:]
    plot_client = [r.client - o.client for r, o in zip(renders[1:], op, strict=True)]
    plot_kernel = [
        (r.wall - o.wall) - (r.client - o.client) for r, o in zip(renders[1:], op, strict=True)
    ]
    print(f"\nfirst render, phases (medians of {n}):")
    print(f"  Explorer(client) and the display of the screen  {med(o.wall for o in op):7.3f} s"
          f"  (client calls {med(o.client for o in op):.3f} s)")  # fmt: skip
    print(f"  plot(): client calls (facts, read points=900)  {med(plot_client):7.3f} s")
    print(f"  plot(): HoloViews, Bokeh, panel in the kernel   {med(plot_kernel):7.3f} s")
    print(f"  sent for the browser: {med(r.sent for r in renders[1:]) / 1e6:.1f} MB")
    print(f"zoom round trip, phases (medians of {m}):")
    print(
        f"  client.read (points=900)                        {med(z.client for z in zooms):7.3f} s"
    )
    print(f"  HoloViews, Bokeh, panel in the kernel           "
          f"{med(z.wall - z.client for z in zooms):7.3f} s")  # fmt: skip
    print(f"  sent for the browser: {med(z.sent for z in zooms) / 1e6:.2f} MB")
    for case, (total, spots) in prof.items():
        print(f"\nwhere the time of a {case} goes (cProfile, which slows Python code: "
              f"read the shares; total {total:.2f} s):")  # fmt: skip
        for label, ct, nc in spots:
            print(f"  {label:<48} {ct:7.3f} s  {100 * ct / total:5.1f} %  ({nc:,} calls)")
    (a1, a5, a15), (b1, b5, b15) = load
    print(
        f"\nratio = Explorer / bare read of the same channels, range and points in the same "
        f"run; the API in a subprocess over HTTP with a read token; load average (1, 5, "
        f"15 min) at the start {a1:.2f}, {a5:.2f}, {a15:.2f} and at the end {b1:.2f}, {b5:.2f}, "
        f"{b15:.2f} on {os.cpu_count()} cores"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
