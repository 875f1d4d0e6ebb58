"""The notebook a new user's JupyterLab opens on: the Studio, one cell away.

Written into the user's home at each spawn when missing (never over the user's own
edits), so that the hub's ``default_url`` always has something to open.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

STARTER_NAME = "Studio.ipynb"
LAB_SETTINGS = Path(__file__).with_name("lab_settings")
"""JupyterLab settings of users' servers (``overrides.json``: no news prompt, no update check)."""
DEFAULT_URL = f"/lab/tree/{STARTER_NAME}"

_INTRO = """\
# stream0d Studio

Run the cell below (**Shift + Enter**) to open the Studio: explore your datasets, plot
channels, save views. Everything here acts as you, through the platform's API: you see
what your partner's grants let you see.

Each screen also works alone, for example `Explorer()` from `stream0d_nb.widgets`."""

_CODE = "from stream0d_nb.widgets import Studio\n\nStudio()"


def starter_notebook() -> nbformat.NotebookNode:
    """The starter notebook: a short introduction and the one line that opens the Studio."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(_INTRO), nbformat.v4.new_code_cell(_CODE)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def seed_home(home: Path, uid: int | None = None, gid: int | None = None) -> Path | None:
    """Write the starter notebook into ``home`` unless a file of that name is there.

    Returns the path written, or None. ``uid``/``gid`` (when the hub is root) make it the
    user's; the file is created exclusively, so a concurrent spawn or a symlink planted
    by the user is never followed or overwritten.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / STARTER_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        nbformat.write(starter_notebook(), f)
    if uid is not None:
        os.chown(path, uid, -1 if gid is None else gid)
    return path
