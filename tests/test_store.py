"""The store on local disk and on Azurite: writes, idempotency, policies, time travel, deletes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

from stream0d_nb.errors import (
    ChannelNotFoundError,
    ConfirmationRequiredError,
    DatasetExistsError,
    DatasetNotFoundError,
    IngestError,
    ValidationError,
)
from stream0d_nb.ingest.frames import frame_source
from stream0d_nb.settings import Settings
from stream0d_nb.specs import ChannelSpec, DatasetSpec, IngestOptions
from stream0d_nb.store import Store
from stream0d_nb.store.grid import Grid
from stream0d_nb.store.writer import Staging

ROOT = Path(__file__).resolve().parents[1]


def make_settings(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Local store under tmp_path, or a fresh container on the session's Azurite."""
    if kind == "local":
        return Settings(home=tmp_path / "home")
    az = request.getfixturevalue("azurite")
    container = az.container(f"t{abs(hash(request.node.nodeid)) % 10**10}")
    return Settings(
        home=tmp_path / "home",
        storage_url=f"az://{container}/stores/a",
        azure_account=az.account,
        azure_key=az.key,
        azure_endpoint=az.endpoint,
    )


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azure)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings(request.param, tmp_path, request)


@pytest.fixture
def store(settings: Settings):
    st = Store(settings)
    yield st
    st.close()


SPEC = DatasetSpec(
    id="line-1",
    interval="1s",
    tz="UTC",
    partner="fersa",
    title="Line 1",
    channels=[
        ChannelSpec(name="temp", units="degC"),
        ChannelSpec(name="Volume Flow RateRMS", units="m**3/h"),
    ],
)


def frame(start: str, n: int, seed: int = 0, freq: str = "1s") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC").as_unit("ns")
    return pd.DataFrame(
        {
            "temp": np.round(rng.normal(60, 5, n), 3),
            "Volume Flow RateRMS": np.round(rng.normal(10, 1, n), 3),
        },
        index=idx,
    )


def stored(store: Store, ds_id: str = "line-1", **kw: object) -> pd.DataFrame:
    ds = store.read(ds_id, **kw)  # type: ignore[arg-type]
    df = ds.to_dataframe()
    df.index = pd.DatetimeIndex(df.index).tz_localize("UTC")
    return df


def test_create_show_and_refuse_duplicates(store: Store) -> None:
    rec = store.create_dataset(SPEC, actor="alice")
    assert rec.spec.id == "line-1" and rec.created_by == "alice"
    assert {c.name: c.units for c in store.channels("line-1")} == {
        "temp": "degC",
        "Volume Flow RateRMS": "m**3/h",
    }
    summ = store.summary("line-1")
    assert summ["start"] is None and summ["samples"] == 0 and summ["chunk"] == "1D"
    with pytest.raises(DatasetExistsError):
        store.create_dataset(SPEC)
    with pytest.raises(DatasetNotFoundError):
        store.read("nope")
    actions = [e.action for e in store.registry.audit_log("line-1")]
    assert "dataset.create" in actions


def test_write_read_roundtrip_half_open(store: Store) -> None:
    store.create_dataset(SPEC)
    df = frame("2024-01-01 23:00", 7200)  # crosses a chunk (day) boundary
    df.iloc[10:20, 0] = np.nan
    rep = store.write("line-1", df, actor="bob")
    assert rep.values_written == int(df.notna().sum().sum()) and rep.commit
    assert rep.start == pd.Timestamp("2024-01-01 23:00", tz="UTC")
    out = stored(store)
    pd.testing.assert_frame_equal(out[df.columns], df, check_freq=False, check_names=False)
    part = stored(store, start="2024-01-01 23:30", end="2024-01-01 23:30:05")
    assert list(part.index) == list(
        pd.date_range("2024-01-01 23:30", periods=5, freq="1s", tz="UTC")
    )
    assert store.read("line-1", ["temp"]).temp.attrs["units"] == "degC"
    msg = store.history("line-1")[0].message
    assert "bob" in msg and f"{rep.values_written:,} values" in msg


def test_reingest_is_a_noop(store: Store) -> None:
    store.create_dataset(SPEC)
    df = frame("2024-01-01", 3000)
    first = store.write("line-1", df)
    n_commits = len(store.history("line-1"))
    again = store.write("line-1", df)
    assert again.unchanged and again.values_written == 0
    assert again.values_unchanged == first.values_written
    assert again.commit == first.commit
    assert len(store.history("line-1")) == n_commits


def test_late_out_of_order_and_growth_at_both_ends(store: Store) -> None:
    store.create_dataset(SPEC)
    full = frame("2024-01-02", 3 * 86400, seed=3)
    day = [full.iloc[i * 86400 : (i + 1) * 86400] for i in range(3)]
    store.write("line-1", day[1])
    store.write("line-1", day[0])  # earlier: the axis grows at the start
    shuffled = day[2].sample(frac=1.0, random_state=1)  # out of order
    store.write("line-1", shuffled)
    pd.testing.assert_frame_equal(
        stored(store)[full.columns], full, check_freq=False, check_names=False
    )
    summ = store.summary("line-1")
    assert summ["start"] == full.index[0] and summ["end"] == full.index[-1]


def test_on_existing_policies(store: Store) -> None:
    store.create_dataset(SPEC)
    df = frame("2024-01-01", 100)
    store.write("line-1", df)
    changed = df.copy()
    changed.iloc[5, 0] += 1
    with pytest.raises(IngestError, match="differ from stored"):
        store.write("line-1", changed, options=IngestOptions(on_existing="error"))
    rep = store.write("line-1", changed, options=IngestOptions(on_existing="keep"))
    assert rep.values_kept == 1 and rep.unchanged
    rep = store.write("line-1", changed)  # default: overwrite (late corrections)
    assert rep.values_changed == 1 and rep.values_new == 0
    assert stored(store).temp.iloc[5] == changed.temp.iloc[5]
    # a missing value in new data never erases a stored one
    holes = df.copy()
    holes.iloc[:, :] = np.nan
    holes.iloc[0, 0] = df.iloc[0, 0]
    assert store.write("line-1", holes).unchanged


def test_duplicate_policies(store: Store) -> None:
    store.create_dataset(SPEC)
    df = frame("2024-01-01", 10)
    dup = pd.concat([df, df.iloc[[3]], df.iloc[[4]].assign(temp=99.0)])
    with pytest.raises(IngestError) as err:
        store.write("line-1", dup)
    text = str(err.value)
    assert "duplicate timestamps with different values" in text and "'temp'" in text
    assert "line 5 has" in text and "line 12 has 99.0" in text  # rows of the frame, 1-based
    assert err.value.locations[0].line == 12
    assert store.summary("line-1")["start"] is None  # nothing stored
    last = store.write("line-1", dup, options=IngestOptions(duplicates="last"))
    assert (
        last.duplicates_dropped == 2 + 1 and last.duplicates_resolved == 1
    )  # row 3 twice; row 4 flow equal
    assert stored(store).temp.iloc[4] == 99.0
    store.write("line-1", dup, options=IngestOptions(duplicates="first"))
    assert stored(store).temp.iloc[4] == df.temp.iloc[4]
    store.write("line-1", dup, options=IngestOptions(duplicates="mean"))
    assert stored(store).temp.iloc[4] == pytest.approx((df.temp.iloc[4] + 99.0) / 2)


def test_off_grid_policies(store: Store) -> None:
    store.create_dataset(SPEC)
    idx = pd.DatetimeIndex(
        [
            "2024-01-01 00:00:00",
            "2024-01-01 00:00:01.2",
            "2024-01-01 00:00:01.9",
            "2024-01-01 00:00:03",
        ],
        tz="UTC",
    )
    df = pd.DataFrame({"temp": [1.0, 2.0, 4.0, 5.0]}, index=idx)
    with pytest.raises(IngestError, match="off the dataset's 1 s grid") as err:
        store.write("line-1", df)
    assert [loc.line for loc in err.value.locations] == [2, 3]
    with pytest.raises(
        IngestError, match="duplicate timestamps"
    ):  # same time twice, different values
        store.write(
            "line-1",
            df.iloc[[0, 1, 2]].assign(temp=[1.0, 2.0, 3.0]).set_axis(idx[[0, 1, 1]]),
            options=IngestOptions(off_grid="nearest"),
        )
    rep = store.write("line-1", df, options=IngestOptions(off_grid="nearest"))
    assert rep.values_snapped == 2  # two rows off the grid, one channel
    assert stored(store, channels=["temp"]).temp.tolist() == [1.0, 2.0, 4.0, 5.0]
    store2 = pd.DataFrame(
        {"temp": [10.0, 20.0]},
        index=pd.DatetimeIndex(["2024-01-02 00:00:00.2", "2024-01-01 23:59:59.9"], tz="UTC"),
    )
    store.write("line-1", store2, options=IngestOptions(off_grid="mean"))
    assert stored(store, channels=["temp"], start="2024-01-02").temp.iloc[0] == 15.0
    tol = pd.DataFrame(
        {"temp": [7.0]}, index=pd.DatetimeIndex(["2024-01-03 00:00:00.05"], tz="UTC")
    )
    store.write("line-1", tol, options=IngestOptions(off_grid_tolerance="100ms"))
    assert stored(store, channels=["temp"], start="2024-01-03").temp.iloc[0] == 7.0


def test_units_declared_converted_and_refused(store: Store) -> None:
    store.create_dataset(SPEC)
    df = pd.DataFrame(
        {"temp": [32.0, 212.0]}, index=pd.date_range("2024-01-01", periods=2, freq="1s", tz="UTC")
    )
    store.write("line-1", df, units={"temp": "degF"})
    assert stored(store, channels=["temp"]).temp.round(9).tolist() == [0.0, 100.0]
    with pytest.raises(IngestError, match="stored in 'degC'"):
        store.write("line-1", df, units={"temp": "bar"})
    new = pd.DataFrame({"speed": [1.0]}, index=df.index[:1])
    with pytest.raises(IngestError, match="no units for new channels 'speed'"):
        store.write("line-1", new)
    with pytest.raises(IngestError, match="unknown units"):
        store.write("line-1", new, units={"speed": "furlongs per blorp"})
    store.write("line-1", new, units={"speed": "rpm"})
    assert {c.name: c.units for c in store.channels("line-1")}["speed"] == "rpm"


def test_as_of_snapshot_and_time(store: Store) -> None:
    store.create_dataset(SPEC)
    a = frame("2024-01-01", 60, seed=1)
    r1 = store.write("line-1", a)
    t_between = pd.Timestamp.now(tz="UTC")
    time.sleep(0.05)
    b = a.copy()
    b.temp += 1
    store.write("line-1", b)
    assert stored(store).temp.tolist() == b.temp.tolist()
    assert stored(store, as_of=r1.commit).temp.tolist() == a.temp.tolist()
    assert stored(store, as_of=t_between).temp.tolist() == a.temp.tolist()
    assert stored(store, as_of=t_between.isoformat()).temp.tolist() == a.temp.tolist()
    from stream0d_nb.errors import SnapshotNotFoundError

    with pytest.raises(SnapshotNotFoundError):
        store.read("line-1", as_of="1999-01-01")


@pytest.mark.parametrize("how", ["mean", "min", "max", "sum", "count", "first", "last"])
def test_aggregation_matches_pandas(store: Store, how: str) -> None:
    store.create_dataset(SPEC)
    df = frame("2024-01-01 00:07:13", 5000, seed=2)
    df.iloc[100:400, 0] = np.nan  # a whole empty 1-minute bin and partial ones
    store.write("line-1", df)
    got = stored(store, channels=["temp"], every="1min", how=how)["temp"]
    grouped = df.temp.resample("1min")
    want = (
        getattr(grouped, how)()
        if how not in ("first", "last")
        else getattr(grouped, how)(skipna=True)
    )
    if how == "sum":
        want[grouped.count() == 0] = np.nan
    pd.testing.assert_series_equal(
        got,
        want.astype(float),
        check_freq=False,
        check_names=False,
        check_index_type=False,
        check_exact=False,
        rtol=1e-12,
    )
    with pytest.raises(ValidationError, match="multiple of the dataset interval"):
        store.read("line-1", every="1500ms")


def test_delete_channel_and_dataset_need_confirmation(store: Store, settings: Settings) -> None:
    store.create_dataset(SPEC)
    r = store.write("line-1", frame("2024-01-01", 10))
    with pytest.raises(ConfirmationRequiredError):
        store.delete_channel("line-1", "temp", confirm=None)
    store.delete_channel("line-1", "temp", confirm="temp", actor="carol")
    assert [c.name for c in store.channels("line-1")] == ["Volume Flow RateRMS"]
    with pytest.raises(ChannelNotFoundError, match="did you mean"):
        store.read("line-1", ["Volume Flow Rate RMS"])
    assert stored(store, as_of=r.commit).temp.notna().sum() == 10  # history keeps it
    with pytest.raises(ConfirmationRequiredError):
        store.delete_dataset("line-1", confirm="line-2")
    store.delete_dataset("line-1", confirm="line-1", actor="carol")
    with pytest.raises(DatasetNotFoundError):
        store.get_dataset("line-1")
    log = store.registry.audit_log("line-1")
    assert [e.action for e in log][:1] == ["dataset.delete"] and log[0].actor == "carol"
    assert any(e.action == "channel.delete" for e in log)
    if settings.storage_url is None:
        assert not (settings.home / "datasets" / "line-1").exists()
    store.create_dataset(SPEC)  # the id can be reused
    assert store.summary("line-1")["start"] is None


def test_staging_spills_to_disk_with_same_result(tmp_path: Path) -> None:
    grid = Grid.for_interval(10**9)
    df = frame("2024-01-01", 5 * 86400, seed=5).sample(frac=1.0, random_state=2)
    opts = IngestOptions()

    def staged(budget: int) -> tuple[dict[int, bytes], int]:
        got: dict[int, bytes] = {}
        st = Staging(
            grid,
            list(df.columns),
            opts,
            "x",
            memory_budget=budget,
            spill_dir=tmp_path,
            sink=lambda c, buf: got.__setitem__(c, buf.values.tobytes() + buf.count.tobytes()),
        )
        for b in frame_source(df.iloc[:200_000]).batches():
            st.add(b)
        for b in frame_source(df.iloc[200_000:]).batches():
            st.add(b)
        spilled = len(st.spilled)
        st.finish()
        st.close()
        return got, spilled

    (big, n_big), (small, n_small) = staged(1 << 30), staged(3 * 86400 * 2 * 10)
    assert n_big == 0 and n_small > 0
    assert sorted(big) == sorted(small) and len(big) == 5  # 5 whole days
    assert all(big[c] == small[c] for c in big)
    assert not list(tmp_path.glob("stream0d-stage-*"))


def test_early_writes_fall_back_when_input_goes_back(store: Store) -> None:
    store.create_dataset(SPEC)
    a, b = frame("2024-01-03", 86400, seed=1), frame("2024-01-01", 86400, seed=2)
    dup = b.iloc[[5]].assign(temp=b.temp.iloc[5])  # equal duplicate far back in the input
    rep = store.write("line-1", pd.concat([a, b, a.iloc[:10], dup]))
    assert rep.duplicates_dropped == 10 * 2 + 2 and rep.gaps == 1
    pd.testing.assert_frame_equal(
        stored(store, start="2024-01-01", end="2024-01-02")[b.columns],
        b,
        check_freq=False,
        check_names=False,
    )


WRITER = textwrap.dedent("""
    import json, sys
    import numpy as np, pandas as pd
    from stream0d_nb.settings import Settings
    from stream0d_nb.store import Store
    cfg = json.loads(sys.argv[1]); col = sys.argv[2]; rounds = int(sys.argv[3])
    st = Store(Settings(**cfg))
    for r in range(rounds):
        idx = pd.date_range("2024-01-01", periods=600, freq="1s", tz="UTC") + pd.Timedelta(seconds=600 * r)
        st.write("line-1", pd.DataFrame({col: np.arange(600.0) + 1000 * r}, index=idx), actor=col)
    print("done", flush=True)
""")


def _cfg(settings: Settings) -> str:
    return settings.model_dump_json(exclude_none=True)


@pytest.mark.slow
def test_two_processes_write_same_chunks_without_loss(store: Store, settings: Settings) -> None:
    store.create_dataset(SPEC)
    rounds = 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, _cfg(settings), col, str(rounds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for col in ("temp", "Volume Flow RateRMS")
    ]
    for p in procs:
        _, e = p.communicate(timeout=180)
        assert p.returncode == 0, e
    out = stored(store)
    expected = np.concatenate([np.arange(600.0) + 1000 * r for r in range(rounds)])
    assert out.temp.tolist() == expected.tolist()
    assert out["Volume Flow RateRMS"].tolist() == expected.tolist()
    ingests = [h for h in store.history("line-1") if h.metadata.get("action") == "ingest"]
    assert len(ingests) == 2 * rounds


KILLED = textwrap.dedent("""
    import json, sys, time
    import numpy as np, pandas as pd
    from stream0d_nb.settings import Settings
    from stream0d_nb.store import Store
    from stream0d_nb.store import repo
    real = repo.WriteView.write_many
    def slow(self, start, columns):
        real(self, start, columns)
        print("wrote-a-run", flush=True)
        time.sleep(30)
    repo.WriteView.write_many = slow
    st = Store(Settings(**json.loads(sys.argv[1])))
    idx = pd.date_range("2024-01-01", periods=40 * 86400, freq="1s", tz="UTC")
    st.write("line-1", pd.DataFrame({"temp": np.ones(len(idx))}, index=idx))
""")


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_previous_snapshot(store: Store, settings: Settings) -> None:
    store.create_dataset(SPEC)
    before = store.write("line-1", frame("2024-01-01", 100))
    p = subprocess.Popen(
        [sys.executable, "-c", KILLED, _cfg(settings)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "wrote-a-run", p.stderr.read() if p.stderr else ""
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    fresh = Store(settings)
    try:
        assert fresh.data("line-1").head() == before.commit
        pd.testing.assert_frame_equal(
            stored(fresh)[["temp"]],
            frame("2024-01-01", 100)[["temp"]],
            check_freq=False,
            check_names=False,
        )
        # the lock died with the process: the next writer goes through
        after = fresh.write("line-1", frame("2024-01-05", 10))
        assert after.commit and after.commit != before.commit
    finally:
        fresh.close()


@pytest.mark.postgres
def test_store_on_postgres_registry(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url")
    st = Store(Settings(home=tmp_path, database_url=url))
    try:
        st.create_dataset(SPEC)
        st.write("line-1", frame("2024-01-01", 10))
        assert [r.spec.id for r in st.list_datasets()] == ["line-1"]
        assert st.registry.audit_log("line-1")[0].action == "ingest"
    finally:
        st.close()


DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.mark.skipif(not (DATA / "nab").is_dir(), reason=f"real recordings not found at {DATA}")
def test_real_nab_file_refused_then_accepted(store: Store) -> None:
    """On every backend: the conflicting duplicate hour stores nothing, a policy resolves it."""
    nab = DATA / "nab" / "machine_temperature_system_failure.csv"
    store.create_dataset(DatasetSpec(id="nab", interval="5min"))
    head = store.data("nab").head()
    with pytest.raises(
        IngestError, match=r"line 10139 has 94\.42340604, line 10151 has 94\.13972336"
    ):
        store.ingest("nab", nab, IngestOptions(units={"value": "1"}))
    assert store.data("nab").head() == head and store.channels("nab") == []
    rep = store.ingest("nab", nab, IngestOptions(units={"value": "1"}, duplicates="first"))
    assert rep.rows_read == 22695 and rep.values_written == 22683 and rep.duplicates_resolved == 12
    got = stored(store, "nab", start="2014-01-07 02:00", end="2014-01-07 02:10")
    assert got.value.tolist() == [94.42340604, 94.69872971]  # the first copy of the hour
    assert store.ingest(
        "nab", nab, IngestOptions(units={"value": "1"}, duplicates="first")
    ).unchanged


def test_create_clears_an_empty_orphan_repository_but_not_one_with_data(
    store: Store, settings: Settings
) -> None:
    """A crash between repository and registry row must not block the id forever."""
    from stream0d_nb.store.repo import DatasetData
    from stream0d_nb.store.storage import dataset_location

    loc = dataset_location(store.root, "line-1")
    DatasetData.create("line-1", 10**9, loc, settings, "crashed", "lz4")  # no registry row
    store.create_dataset(SPEC)
    assert "crashed" not in store.history("line-1")[-2].message
    store.write("line-1", frame("2024-01-01", 10))
    store.registry.delete_dataset("line-1", "someone")  # registry row lost, data remains
    with pytest.raises(DatasetExistsError, match="not empty"):
        store.create_dataset(SPEC)


def test_channel_order_is_creation_order_in_every_process(store: Store, settings: Settings) -> None:
    names = [f"ch{i:02d}" for i in range(12)][::-1]
    store.create_dataset(
        DatasetSpec(
            id="many", interval="1s", channels=[ChannelSpec(name=n, units="1") for n in names]
        )
    )
    store.set_channels("many", [ChannelSpec(name="added", units="1")])
    code = (
        f"from stream0d_nb.settings import Settings; from stream0d_nb.store import Store; "
        f"s = Store(Settings(**__import__('json').loads({_cfg(settings)!r}))); "
        f"print(','.join(c.name for c in s.channels('many')))"
    )
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        assert out.split(",") == [*names, "added"]


def test_bad_read_arguments_are_validation_errors(store: Store) -> None:
    store.create_dataset(SPEC)
    store.write("line-1", frame("2024-01-01", 600))
    empty = store.read(
        "line-1", start="2024-01-01T00:00:05Z", end="2024-01-01T00:00:05Z", every="1min"
    )
    assert empty.sizes["time"] == 0
    with pytest.raises(ValidationError, match="'often' is not a duration"):
        store.read("line-1", every="often")
    with pytest.raises(ValidationError, match="is not a time"):
        store.read("line-1", start="yesterday-ish")
    with pytest.raises(ValidationError, match="aggregation 'median' unknown"):
        store.read("line-1", how="median")


def test_mean_of_more_than_65535_samples_per_grid_point(store: Store) -> None:
    store.create_dataset(DatasetSpec(id="hourly", interval="1h"))
    n = 140_000
    idx = pd.date_range("2024-01-01 00:10", periods=n, freq="1ms", tz="UTC").as_unit("ns")
    df = pd.DataFrame({"v": np.r_[np.zeros(n // 2), np.ones(n // 2)]}, index=idx)
    rep = store.write("hourly", df, units={"v": "1"}, options=IngestOptions(off_grid="mean"))
    assert stored(store, "hourly").v.tolist() == [0.5]
    assert not any("resolved" in w for w in rep.warnings)  # averaging is what was asked


def test_report_warnings_and_unit_conversion_digits(store: Store) -> None:
    store.create_dataset(SPEC)
    df = pd.DataFrame(
        {"temp": [71.6], "new": [1.0]}, index=pd.DatetimeIndex(["2024-01-01"], tz="UTC")
    )
    rep = store.write(
        "line-1", df, units={"temp": "degF"}, options=IngestOptions(allow_missing_units=True)
    )
    assert rep.warnings == ["channels created without units: new"]
    assert stored(store, channels=["temp"]).temp.iloc[0] == pytest.approx(22.0, abs=1e-12)


def test_write_back_what_was_read_in_a_dataset_with_a_local_zone(settings: Settings) -> None:
    """An xarray Dataset from a read (naive UTC times) writes back to the same instants."""
    st = Store(settings)
    try:
        st.create_dataset(SPEC.model_copy(update={"id": "madrid", "tz": "Europe/Madrid"}))
        st.write("madrid", frame("2024-01-01", 60))
        ds = st.read("madrid", ["temp"])
        st.create_dataset(SPEC.model_copy(update={"id": "copy", "tz": "Europe/Madrid"}))
        st.write("copy", ds)
        assert stored(st, "copy").index[0] == pd.Timestamp("2024-01-01", tz="UTC")
        assert stored(st, "copy").temp.tolist() == stored(st, "madrid").temp.tolist()
    finally:
        st.close()


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_direct_chunk_writes_store_what_zarr_stores(store: Store, compression: str) -> None:
    """Whole chunks are compressed and stored by WriteView itself: the bytes are zarr's own
    (so any zarr reader decodes them); partial and empty blocks go through zarr."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync as zsync

    from stream0d_nb.store.repo import WriteView

    store.create_dataset(SPEC.model_copy(update={"compression": compression}))
    data = store.data("line-1")
    length = data.snapshot().grid.chunk_len
    values = np.round(np.random.default_rng(3).normal(60, 5, length), 3)
    values[::7] = np.nan
    a, b = "temp", "Volume Flow RateRMS"

    def work(view: WriteView) -> list[bytes | None]:
        view.ensure_stop(4 * length)
        assert view._encoder(a) is not None
        view.write_many(length, {a: values})  # direct
        view.arrays[b][length : 2 * length] = values  # zarr
        view.write_many(2 * length, {a: np.full(length, np.nan)})  # empty: no chunk
        view.write_many(3 * length + 5, {a: values[:100], b: values[:100]})  # partial: zarr
        keys = [f"{a}/c/1", f"{b}/c/1", f"{a}/c/2"]
        proto = default_buffer_prototype()
        got = [zsync(view.session.store.get(k, proto)) for k in keys]
        return [None if g is None else g.to_bytes() for g in got]

    (direct, via_zarr, empty), _ = data.transact(work, lambda r: "test", lambda r: {})
    assert direct is not None and direct == via_zarr
    assert empty is None
    snap = data.snapshot()
    for name in (a, b):
        arr = snap.array(name)
        np.testing.assert_array_equal(arr[length : 2 * length], values)
        assert np.isnan(arr[2 * length : 3 * length]).all()
        np.testing.assert_array_equal(arr[3 * length + 5 : 3 * length + 105], values[:100])


def test_compression_is_chosen_at_creation_and_kept(store: Store) -> None:
    """lz4 (Blosc, byte shuffle) by default, zstd on request; plain zarr reads both; the
    registry and every later channel follow the dataset's choice."""
    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    frame = pd.DataFrame(
        {"temp": np.round(np.linspace(20, 30, 7200), 3)},
        index=pd.date_range("2024-01-01", periods=7200, freq="1s", tz="UTC"),
    )
    for ds, comp, codec in (("fast", None, BloscCodec), ("small", "zstd", ZstdCodec)):
        spec = DatasetSpec(id=ds, interval="1s", channels=[ChannelSpec(name="temp", units="K")])
        if comp:
            spec = spec.model_copy(update={"compression": comp})
        rec = store.create_dataset(spec)
        assert rec.spec.compression == (comp or "lz4")
        assert store.registry.get_dataset(ds).spec.compression == (comp or "lz4")
        store.write(ds, frame)
        store.set_channels(ds, [ChannelSpec(name="later", units="K")])
        snap = store.data(ds).snapshot()
        for name in ("temp", "later"):
            compressor = snap.array(name).metadata.codecs[1]
            assert isinstance(compressor, codec)
            if codec is BloscCodec:
                assert (compressor.cname, compressor.shuffle) in (("lz4", "shuffle"),)
        # any zarr reader decodes the chunks (here zarr-python on the icechunk session);
        # arrays start at the epoch
        group = zarr.open_group(store.data(ds).repo.readonly_session("main").store, mode="r")
        i0 = frame.index[0].value // 10**9
        stored = group["temp"][i0 : i0 + 7200]
        np.testing.assert_array_equal(stored, frame["temp"].to_numpy())
    with pytest.raises(pydantic.ValidationError, match="compression"):
        DatasetSpec(id="bad", interval="1s", compression="gzip")  # type: ignore[arg-type]


def test_repository_from_before_the_choice_keeps_zstd(store: Store) -> None:
    """A repository whose metadata has no ``compression`` (made before the choice existed) gets zstd
    channels, like the ones it has."""
    from zarr.codecs import ZstdCodec

    store.create_dataset(SPEC)
    data = store.data("line-1")

    def forget(view: Any) -> None:
        view.meta.pop("compression")
        view.group.attrs["stream0d"] = view.meta

    data.transact(forget, lambda r: "as before 0006", lambda r: {})
    store.set_channels("line-1", [ChannelSpec(name="new", units="K")])
    compressor = data.snapshot().array("new").metadata.codecs[1]
    assert isinstance(compressor, ZstdCodec)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_chunk_encode_pool_works_in_a_forked_child() -> None:
    from stream0d_nb.store import repo

    assert repo._encode_pool().submit(lambda: 1).result() == 1  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: the parent's threads are gone; a new pool must be made
        ok = repo._encode_pool().submit(lambda: 2).result(timeout=10) == 2
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("layout", ["multi-chunk", "bom-crlf-metadata", "latin-1", "parquet"])
def test_ingest_checksum_is_the_files_sha256(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """The sha256 in the report, the commit and the audit is the whole file's, however it
    is read: CSV readers hash the bytes they read (small chunks here, so read buffers are
    reused while the hash thread works); other formats are hashed on the side."""
    import hashlib

    from stream0d_nb.ingest import readers

    monkeypatch.setattr(readers, "CHUNK_BYTES", 1 << 12)

    class SlowSha256:
        """sha256 whose updates lag, as on a busy machine: buffers must wait for it."""

        def __init__(self) -> None:
            self.h = hashlib.sha256()

        def update(self, data: bytes) -> None:
            time.sleep(0.002)
            self.h.update(data)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    monkeypatch.setattr(readers, "hashlib", SimpleNamespace(sha256=SlowSha256))
    times = pd.date_range("2024-01-01", periods=5000, freq="1s", tz="UTC")
    frame = pd.DataFrame({"temp": np.round(np.linspace(20, 30, 5000), 3)}, index=times)
    path = tmp_path / ("f.parquet" if layout == "parquet" else "f.csv")
    if layout == "parquet":
        frame.rename_axis("time").reset_index().to_parquet(path)
    else:
        rows = [f"{t:%Y-%m-%d %H:%M:%S},{v}" for t, v in zip(times, frame.temp, strict=True)]
        text = "\n".join(["time,temp", *rows]) + "\n"
        if layout == "bom-crlf-metadata":
            text = "\ufeffplant: Línea 1\nexported by: SCADA\n" + text.replace("\n", "\r\n")
            path.write_bytes(text.encode("utf-8"))
        elif layout == "latin-1":
            path.write_bytes(("# Línea señal °C\n" + text).encode("latin-1"))
        else:
            path.write_text(text)
    opts = {"bom-crlf-metadata": {"skip_rows": 2}, "latin-1": {"skip_rows": 1}}.get(layout, {})
    store.create_dataset(DatasetSpec(id="sums", interval="1s"))
    rep = store.ingest("sums", path, IngestOptions(units={"temp": "degC"}, **opts))
    assert rep.values_written == 5000
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep.checksum == expected
    commit = store.history("sums")[0]
    assert commit.metadata["sha256"] == expected and expected[:12] in commit.message
    assert store.registry.audit_log("sums", action="ingest")[0].detail["sha256"] == expected


@pytest.mark.parametrize("how", ["mean", "min", "max", "sum", "count", "first", "last"])
def test_aggregation_goes_window_by_window_across_chunks(
    store: Store, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows of one chunk (1 min at 1 ms) with bins of 90 s that span two windows, and
    bins wider than the whole range, equal pandas; memory is measured by bench_bounds."""
    from stream0d_nb.store import reader

    monkeypatch.setattr(reader, "AGGREGATE_WINDOW", 1)
    store.create_dataset(
        DatasetSpec(id="fast", interval="1ms", channels=[ChannelSpec(name="x", units="1")])
    )
    rng = np.random.default_rng(5)
    n = 200_000  # 3 min 20 s: four 1-minute chunks
    idx = pd.date_range("2024-01-01 00:00:30", periods=n, freq="1ms", tz="UTC").as_unit("ns")
    x = pd.Series(np.round(rng.normal(0, 1, n), 3), index=idx)
    x.iloc[1_000:70_000] = np.nan  # across a chunk edge
    store.write("fast", pd.DataFrame({"x": x}))
    for every in ("90s", "1h"):
        got = stored(store, "fast", channels=["x"], every=every, how=how)["x"]
        grouped = x.resample(every, origin="epoch")
        want = getattr(grouped, how)() if how != "sum" else grouped.sum(min_count=1)
        np.testing.assert_allclose(got.to_numpy(), want.astype(float).to_numpy(), rtol=1e-12)
        assert got.index.tolist() == want.index.tolist()


def test_a_failing_storage_is_not_reported_as_an_existing_dataset(tmp_path: Path) -> None:
    """Creating a dataset where the storage fails (here: its root is a file) says that
    the storage failed, not that the dataset exists, and leaves no registry row."""
    from stream0d_nb.errors import StorageUnavailableError

    (tmp_path / "not-a-folder").write_text("x")
    settings = Settings(home=tmp_path, storage_url=str(tmp_path / "not-a-folder" / "sub"))
    with Store(settings) as store:
        with pytest.raises(
            StorageUnavailableError, match=r"dataset 'line': the storage at .* failed"
        ):
            store.create_dataset(DatasetSpec(id="line", interval="1s"))
        assert store.list_datasets() == []


@pytest.mark.azure
def test_azure_refusing_the_credentials_is_not_an_existing_dataset(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A wrong account key (Azure answers 403) is a failing storage naming the cause, not
    'exists already'; no registry row is left, and the id is free with the right key."""
    from stream0d_nb.errors import StorageUnavailableError

    good = make_settings("azure", tmp_path, request)
    bad = good.model_copy(update={"azure_key": "d3Jvbmcga2V5"})  # base64 of "wrong key"
    with Store(bad) as store:
        with pytest.raises(StorageUnavailableError, match=r"the storage at az://.* failed: .*403"):
            store.create_dataset(SPEC)
        assert store.list_datasets() == []
    with Store(good) as store:
        assert store.create_dataset(SPEC).spec.channels == SPEC.channels


def test_a_failed_creation_leaves_neither_row_nor_repository(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Channels are made in the repository before the registry row (which is written with
    them, in one transaction): a bad unit is refused before anything exists, a storage
    failure while making them removes the repository, and the id stays free either way."""
    from stream0d_nb.errors import StorageUnavailableError
    from stream0d_nb.store.repo import DatasetData
    from stream0d_nb.store.storage import dataset_location

    loc = dataset_location(store.root, SPEC.id)

    def repository_exists() -> bool:
        try:
            DatasetData.open(SPEC.id, loc, store.settings)
        except DatasetNotFoundError:
            return False
        return True

    bad_units = SPEC.model_copy(update={"channels": [ChannelSpec(name="t", units="bogus")]})
    with pytest.raises(ValidationError, match="unknown units 'bogus'"):
        store.create_dataset(bad_units)
    assert store.list_datasets() == [] and not repository_exists()

    def broken(*args: object, **kw: object) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as m:
        m.setattr(DatasetData, "transact", broken)
        with pytest.raises(StorageUnavailableError, match="failed: disk gone"):
            store.create_dataset(SPEC)
    assert store.list_datasets() == [] and not repository_exists()
    rec = store.create_dataset(SPEC, actor="alice")
    assert [c.name for c in rec.spec.channels] == [c.name for c in SPEC.channels]
    assert [e.action for e in store.registry.audit_log(SPEC.id)] == ["dataset.create"]
    assert store.registry.audit_log(SPEC.id)[0].detail["channels"] == [
        c.name for c in SPEC.channels
    ]
