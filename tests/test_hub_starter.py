"""The starter notebook a new user's JupyterLab opens on (``hub.starter``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from stream0d_nb.hub.config import HubPlaces, hub_config
from stream0d_nb.hub.partners import Partners
from stream0d_nb.hub.starter import DEFAULT_URL, STARTER_NAME, seed_home, starter_notebook


def test_the_starter_opens_the_studio_and_is_valid() -> None:
    nb = starter_notebook()
    nbformat.validate(nb)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code == ["from stream0d_nb.widgets import Studio\n\nStudio()"]
    assert all(not c.get("outputs") for c in nb.cells)
    assert DEFAULT_URL == "/lab/tree/Studio.ipynb"


def test_seeding_never_overwrites_the_users_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    written = seed_home(home)
    assert written == home / STARTER_NAME and nbformat.read(written, as_version=4).cells
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    written.write_text("my own edits")
    assert seed_home(home) is None
    assert written.read_text() == "my own edits"


def test_seeding_does_not_follow_a_planted_link(tmp_path: Path) -> None:
    """A user who links Studio.ipynb to a platform file cannot make the hub write there."""
    target = tmp_path / "platform-file"
    target.write_text("precious")
    home = tmp_path / "home"
    home.mkdir()
    (home / STARTER_NAME).symlink_to(target)
    assert seed_home(home) is None
    assert target.read_text() == "precious"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_seeding_gives_the_file_to_the_account(tmp_path: Path) -> None:
    written = seed_home(tmp_path, uid=65534, gid=65534)
    assert written is not None and written.stat().st_uid == 65534


def test_servers_land_on_the_starter_without_news(tmp_path: Path) -> None:
    partners = Partners.model_validate({"partners": [{"slug": "fersa", "name": "Fersa"}]})
    places = HubPlaces.from_env(partners, {"STREAM0D_HOME": str(tmp_path)})
    spawn = hub_config(partners, places, {})["Spawner"]
    assert spawn["default_url"] == DEFAULT_URL
    assert "--LabApp.news_url=None" in spawn["args"]
    assert any(a.endswith("NeverCheckForUpdate") for a in spawn["args"])
    settings = next(a for a in spawn["args"] if a.startswith("--LabApp.app_settings_dir="))
    overrides = json.loads((Path(settings.split("=", 1)[1]) / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
