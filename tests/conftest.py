"""Shared test setup: the server fixtures live in tests/servers.py; ``cli`` runs the command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["tests.servers", "tests.hub_servers"]

CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CliRun:
    """``cli(*args, home=tmp_path)`` runs ``stream0d --home HOME *args``: (exit code, out, err)."""
    from stream0d_nb.cli import main

    def run(*args: str, home: Path | str | None = None) -> tuple[int, str, str]:
        code = main(["--home", str(home or tmp_path), *args])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run
