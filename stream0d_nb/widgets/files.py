"""Files the setup screen sends to ingest: the types it accepts, the API's size limit, and
the data files of the kernel user's home (never a path outside it).

Large files are better taken from the home (JupyterLab's file browser puts them there)
than dropped in the browser: the client streams them from disk to the API.
"""

from __future__ import annotations

import os
from pathlib import Path

ACCEPTED = {
    ".csv": "CSV",
    ".tsv": "TSV",
    ".txt": "TXT",
    ".dat": "DAT",
    ".xlsx": "XLSX",
    ".xlsm": "XLSM",
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".json": "JSON",
    ".jsonl": "JSON lines",
    ".ndjson": "JSON lines",
}
"""The extensions ingest reads (``stream0d_nb.ingest`` tells formats by them)."""
ACCEPTED_TEXT = "CSV, TSV, TXT, DAT, XLSX/XLSM, Parquet, JSON (JSONL)"
MAX_UPLOAD_BYTES = 256 * 2**20
"""The API's default ``max_upload_bytes`` (one ingest upload); a larger file is refused."""
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv"})
MAX_DEPTH = 4
MAX_FILES = 2000


def size_text(n: int) -> str:
    """``812 B``, ``107.7 KB``, ``1.2 MB``, ``256 MB`` (binary units, as the API counts)."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_name(name: str) -> str:
    """The file name if ingest reads its type; ValueError naming the accepted ones."""
    if Path(name).suffix.lower() not in ACCEPTED:
        raise ValueError(
            f"{name!r} is not a file ingest reads: accepted are {ACCEPTED_TEXT} "
            f"({', '.join(sorted(ACCEPTED))})"
        )
    return name


def check_size(name: str, size: int, limit: int = MAX_UPLOAD_BYTES) -> None:
    """ValueError when ``size`` is over what the API accepts in one upload."""
    if size > limit:
        raise ValueError(
            f"{name} has {size_text(size)}; the API accepts at most {size_text(limit)} per "
            "upload: split the file (e.g. by month) and add the parts one after the other"
        )


def data_files(home: Path, limit: int = MAX_FILES) -> list[str]:
    """Data files under ``home`` (relative POSIX paths, sorted): accepted extensions, at most
    ``MAX_DEPTH`` folders deep, hidden folders and package folders left out."""
    root = home.resolve()
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS and depth < MAX_DEPTH
        )
        for f in sorted(files):
            if not f.startswith(".") and Path(f).suffix.lower() in ACCEPTED:
                found.append((here / f).relative_to(root).as_posix())
                if len(found) >= limit:
                    return sorted(found)
    return sorted(found)


def home_file(home: Path, relative: str) -> Path:
    """``home / relative`` if it is an accepted file inside ``home`` (links resolved);
    ValueError otherwise, so that the screen never sends a file from outside the home."""
    root = home.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{relative!r} is outside your home folder {root}")
    if not path.is_file():
        raise ValueError(f"{relative!r} is not a file in your home folder {root}")
    check_name(path.name)
    return path
