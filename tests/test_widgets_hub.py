"""The Studio in a browser on ``make run``'s hub, clicked as a new user would.

ana (fersa) logs in, lands on the starter notebook, runs its one cell, and in the
Explorer picks the dataset holding the real SKAB pump recording, plots channels, zooms
(the status line counts the new plot-sized read), switches to scatter, carpet and
histogram, saves a view and reopens it. Screenshots go to ``STREAM0D_SCREENSHOTS`` (or
the test's folder); axe-core checks the Studio's part of the page at each screen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stream0d_nb.demo import OVEN, oven_frame
from stream0d_nb.hub.accounts import can_switch_users
from stream0d_nb.recalibration.models import FirstOrderThermalModel
from stream0d_nb.recalibration.service import Recalibration
from stream0d_nb.settings import Settings
from stream0d_nb.specs import DatasetSpec, IngestOptions
from stream0d_nb.store import Store
from tests.hub_servers import axe_violations, start_run_hub, stop_run_hub
from tests.servers import free_port
from tests.test_hub_isolation import _login_and_spawn
from tests.test_widgets import SKAB, SKAB_UNITS, TZ

pytestmark = [
    pytest.mark.hub,
    pytest.mark.skipif(not SKAB.is_file(), reason="SKAB recording missing"),
]
STUDIO = ".jp-OutputArea-output"
OVEN_END = pd.Timestamp("2026-11-20", tz="UTC")  # where the cell's output (the Studio) is


@pytest.fixture(scope="module")
def studio_hub(hub_workdir: Path) -> Iterator[tuple[str, str]]:
    """make run's hub on a store with fersa's pump line (SKAB) and zf's line."""
    if not can_switch_users():
        pytest.skip("make run's hub isolates users with OS accounts: needs root")
    home = hub_workdir / "studio"
    home.mkdir()
    with Store(Settings(home=home)) as store:
        for ds, partner in (("fersa-pump", "fersa"), ("zf-pump", "zf")):
            store.create_dataset(DatasetSpec(id=ds, interval="1s", tz=TZ, partner=partner))
            store.ingest(ds, SKAB, IngestOptions(units=SKAB_UNITS))
        # fersa's oven and its thermal model, for the recalibration screen
        store.create_dataset(OVEN.model_copy(update={"id": "fersa-oven", "partner": "fersa"}))
        store.write("fersa-oven", oven_frame(OVEN_END))
        model = FirstOrderThermalModel(
            ["heater_power", "ambient_temp"], "zone_temp", initial={"gain": 3.0, "tau": 600.0}
        )
        Recalibration(store).define_model("fersa-oven", "zone", model, actor="test")
    (home / "secret.key").write_text("k" * 44)
    url = f"http://localhost:{free_port()}"
    proc, banner = start_run_hub(home, url)
    password = re.search(r"password for all: (\S+)\)", banner)
    assert password, banner[-2000:]
    try:
        yield url, password.group(1)
    finally:
        stop_run_hub(proc)


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("STREAM0D_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _status(page: Any, text: str, timeout: float = 90_000) -> None:
    """Wait until the Studio's status line says ``text`` (a regular expression)."""
    page.get_by_role("status").filter(has_text=re.compile(text)).first.wait_for(timeout=timeout)


def _no_serious_axe(page: Any, where: str) -> None:
    bad = [v for v in axe_violations(page, STUDIO) if v[1] in ("serious", "critical")]
    if bad:  # name the elements, so that the failure says what to mend
        nodes = page.evaluate(
            "(w) => axe.run({include: [[w]]}).then((r) => r.violations.flatMap("
            "(v) => v.nodes.map((n) => [v.id, n.html.slice(0, 300), n.failureSummary])))",
            STUDIO,
        )
        raise AssertionError(f"{where}: {bad}\n" + "\n".join(map(str, nodes)))


def test_a_new_user_explores_a_dataset_in_the_studio(
    browser: Any, studio_hub: tuple[str, str], tmp_path: Path
) -> None:
    url, password = studio_hub
    shots = _shots(tmp_path)
    ctx, page = _login_and_spawn(browser, url, "ana", password)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        page.set_viewport_size({"width": 1500, "height": 1000})
        assert page.url.endswith("/lab/tree/Studio.ipynb")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        assert page.get_by_text("official Jupyter news").count() == 0  # no prompt (offline plants)
        cell = page.locator(".jp-CodeCell .jp-Editor").first
        cell.click()
        page.keyboard.press("Shift+Enter")
        page.get_by_text("Signed in as").wait_for(timeout=120_000)
        _status(page, "newest data")
        page.screenshot(path=str(shots / "studio-1-opened.png"))
        assert page.get_by_text("could not load resources").count() == 0  # no red warning
        dataset = page.get_by_label("Dataset", exact=True)
        options = dataset.locator("option").all_text_contents()
        assert options == ["fersa-oven", "fersa-pump"], options  # only what ana may read
        dataset.select_option("fersa-pump")

        page.get_by_label("Time range", exact=True).select_option("All data")
        page.get_by_role("button", name="Plot", exact=True).click()
        _status(page, r"Showing time series of .* 1 plot-sized read")
        canvas = page.locator(f"{STUDIO} canvas").first
        canvas.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "studio-2-timeseries.png"))
        _no_serious_axe(page, "time series")

        box = canvas.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(6):
            page.mouse.wheel(0, -400)
            page.wait_for_timeout(200)
        _status(page, r"[2-9] plot-sized read|\d\d plot-sized read")  # zoom read again
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        page.wait_for_timeout(1000)  # the last frame drawn
        page.screenshot(path=str(shots / "studio-3-zoomed.png"))

        kind = page.get_by_label("Plot kind", exact=True)
        for label, shot in (
            ("Scatter (x, y)", "scatter"),
            ("Carpet (hour x day)", "carpet"),
            ("Histogram", "histogram"),
        ):
            kind.select_option(label=label)
            page.wait_for_timeout(1000)  # the kind reaches the kernel (it may trim channels)
            page.get_by_role("button", name="Plot", exact=True).click()
            _status(page, f"Showing {label.lower().replace('(', '.').replace(')', '.')}")
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / f"studio-4-{shot}.png"))
            _no_serious_axe(page, shot)

        page.get_by_label("Name of the view to save", exact=True).click()
        page.keyboard.type("pump histogram", delay=20)
        page.keyboard.press("Enter")
        page.wait_for_timeout(2000)
        page.get_by_role("button", name="Save view", exact=True).click()
        _status(page, "Saved view 'pump histogram'")
        kind.select_option(label="Time series")
        page.get_by_label("Saved views", exact=True).select_option("pump histogram")
        page.get_by_role("button", name="Open view", exact=True).click()
        _status(page, "Showing histogram")
        page.screenshot(path=str(shots / "studio-5-view-reopened.png"))
        _no_serious_axe(page, "view reopened")
    except Exception:
        page.screenshot(path=str(shots / "studio-failed.png"))
        (shots / "studio-console.txt").write_text("\n".join(console))
        raise
    finally:
        ctx.close()


def test_a_user_of_another_partner_sees_only_their_line(
    browser: Any, studio_hub: tuple[str, str], tmp_path: Path
) -> None:
    """zoe (zf) on the same hub: the Studio offers zf's line only, and plots it."""
    url, password = studio_hub
    shots = _shots(tmp_path)
    ctx, page = _login_and_spawn(browser, url, "zoe", password)
    try:
        page.set_viewport_size({"width": 1500, "height": 1000})
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        page.locator(".jp-CodeCell .jp-Editor").first.click()
        page.keyboard.press("Shift+Enter")
        page.get_by_text("Signed in as").wait_for(timeout=120_000)
        _status(page, "newest data")
        dataset = page.get_by_label("Dataset", exact=True)
        assert dataset.locator("option").all_text_contents() == ["zf-pump"]
        page.get_by_label("Time range", exact=True).select_option("All data")
        page.get_by_role("button", name="Plot", exact=True).click()
        _status(page, r"Showing time series of .* 1 plot-sized read")
        page.locator(f"{STUDIO} canvas").first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / "studio-zoe-timeseries.png"))
        assert page.get_by_text("fersa-pump").count() == 0  # nowhere on zoe's page
        _no_serious_axe(page, "zoe's time series")
    except Exception:
        page.screenshot(path=str(shots / "studio-zoe-failed.png"))
        raise
    finally:
        ctx.close()


VALVE = SKAB.with_name("valve1_1.csv")
FIRST_PART = 700
"""Lines of the valve file the plant sends first (the fault's low flow starts at line 633)."""


def _tab(page: Any, title: str) -> None:
    page.locator(f"{STUDIO} .bk-tab", has_text=re.compile(f"^{title}$")).click()
    page.wait_for_timeout(500)


def _type(page: Any, label: str, text: str) -> None:
    """Type into a text input as a person does; Enter sends it to the kernel."""
    box = page.get_by_label(label, exact=True)
    box.click()
    box.fill("")
    page.keyboard.type(text, delay=10)
    page.keyboard.press("Enter")
    page.wait_for_timeout(1500)


def _button(page: Any, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def test_a_new_user_sets_up_a_line_in_the_studio(
    browser: Any, studio_hub: tuple[str, str], tmp_path: Path
) -> None:
    """marco (fersa) creates a dataset, uploads the first part of the real valve recording
    into his home, previews it, fixes the mapping and ingests (the report); the formula,
    alert, access and recalibration screens open on fersa's datasets only. Every screen
    passes axe-core."""
    url, password = studio_hub
    shots = _shots(tmp_path)
    first = tmp_path / "valve1_1-first-part.csv"
    first.write_bytes(b"".join(VALVE.read_bytes().splitlines(keepends=True)[:FIRST_PART]))
    ctx, page = _login_and_spawn(browser, url, "marco", password)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))

    def shot(name: str, axe: bool = True) -> None:
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / f"setup-{name}.png"), full_page=True)
        if axe:
            _no_serious_axe(page, name)

    def upload(path: Path) -> None:
        """Upload with JupyterLab's own button into the home folder, then choose it."""
        with page.expect_file_chooser() as chooser:
            page.locator(".jp-FileBrowser-toolbar [title^='Upload']").first.click()
        chooser.value.set_files(str(path))
        page.locator(".jp-DirListing-item", has_text=path.name).wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # JupyterLab may open the new file in a tab: go back
        page.locator(".lm-TabBar-tab", has_text="Studio.ipynb").click()
        _button(page, "Rescan my home")
        page.wait_for_timeout(2000)
        page.get_by_label("File in your home folder", exact=True).select_option(path.name)
        _status(page, f"Preview of {path.name}")

    try:
        page.set_viewport_size({"width": 1500, "height": 1100})
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        page.locator(".jp-CodeCell .jp-Editor").first.click()
        page.keyboard.press("Shift+Enter")
        page.get_by_text("Signed in as").wait_for(timeout=120_000)
        _status(page, "newest data")

        # -- a dataset and its first data
        _tab(page, "Datasets")
        page.get_by_text("Create a dataset").click()
        _type(page, "Id of the new dataset", "fersa-valve")
        page.get_by_label("Time zone of the new dataset", exact=True).select_option(TZ)
        _type(page, "Title of the new dataset", "Valve test rig")
        _button(page, "Create dataset")
        _status(page, "Created fersa-valve")
        upload(first)
        shot("1-preview")
        page.get_by_role("button", name=re.compile("^Fix .*allow_missing_units")).first.click()
        _status(page, "no problem found: ready to ingest")
        page.get_by_label("Columns to skip", exact=True).select_option(["anomaly", "changepoint"])
        page.get_by_text("skipped (skip_columns)").first.wait_for(timeout=60_000)
        shot("2-mapping-fixed")
        _button(page, "Ingest")
        _status(page, "Ingested", timeout=180_000)
        shot("3-ingested")
        page.get_by_text("rows read: 699").wait_for(timeout=10_000)

        # -- the other setup screens open on the new dataset, with its channels
        for title in ("Formulas", "Alerts", "Access", "Recalibration"):
            _tab(page, title)
            dataset = page.get_by_label("Dataset", exact=True)
            dataset.wait_for(timeout=60_000)
            options = dataset.locator("option").all_text_contents()
            assert "fersa-valve" in options and "zf-pump" not in options, (title, options)
            if title != "Recalibration":  # (models: the oven's)
                dataset.select_option("fersa-valve")
                _status(page, "fersa-valve|Ready")
            shot(f"4-{title.lower()}")
    except Exception:
        page.screenshot(path=str(shots / "setup-failed.png"), full_page=True)
        (shots / "setup-console.txt").write_text("\n".join(console))
        raise
    finally:
        ctx.close()
