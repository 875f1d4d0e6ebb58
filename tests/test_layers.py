"""Imports point one way (../shared/DESIGN.md §1): a test that walks every import.

Every ``import`` in the package, at module level or inside a function, is read with
``ast`` and mapped to its layer; a module may import its own layer or lower ones. The
client, above the API's door, may import only the models at the bottom (and the alert
rule model with the formula compiler it validates with), never the store, the registry,
the API or the hub.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stream0d_nb"

# rank of each top-level part of the package: higher layers may import lower ones
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        [
            "specs",
            "records",
            "access",
            "errors",
            "settings",
            "units",
            "safetext",
            "views",
            "tables",
        ],
        0,
    ),
    **dict.fromkeys(["store", "ingest", "db"], 1),
    "formulas": 2,
    **dict.fromkeys(["recalibration", "alerts", "derived", "export", "hooks", "saved_views"], 3),
    **dict.fromkeys(["api", "cli", "hub", "platform", "demo"], 4),
    "client": 5,
    "plots": 6,
    **dict.fromkeys(["widgets", "dashboards"], 7),
}
# Modules whose layer is not their folder's: the helpers of the notebooks the scheduler
# runs are platform entry points (they open the platform).
MODULE_LAYERS = {"recalibration.notebook": 4}
# What the client may use of the platform's layers: pure models, no I/O.
CLIENT_MAY_IMPORT = {"alerts.rules", "formulas"}


def _part(module: str) -> str:
    """``stream0d_nb.store.reader`` -> ``store`` (``recalibration.notebook``: see MODULE_LAYERS)."""
    if not module.count("."):
        return "__init__"
    parts = module.split(".")
    two = ".".join(parts[1:3])
    return two if two in MODULE_LAYERS else parts[1]


def _layer(part: str) -> int:
    return MODULE_LAYERS.get(part, LAYERS.get(part.split(".")[0], -1))


def _name(path: Path) -> str:
    """``.../stream0d_nb/store/reader.py`` -> ``stream0d_nb.store.reader``."""
    return ".".join(["stream0d_nb", *path.relative_to(PACKAGE).with_suffix("").parts])


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported stream0d_nb module) of every import in ``path``, nested ones too."""
    here = "stream0d_nb." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("stream0d_nb")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                if node.module is None:  # `from . import x`: the submodules x
                    out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
                    continue
                name = f"{base}.{node.module}"
            else:
                name = node.module or ""
            if name.startswith("stream0d_nb"):
                # `from stream0d_nb import derived` imports the module stream0d_nb.derived
                if name == "stream0d_nb":
                    out += [
                        (node.lineno, f"stream0d_nb.{a.name}")
                        for a in node.names
                        if not a.name.startswith("__")
                    ]
                else:
                    out.append((node.lineno, name))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_part_has_a_layer() -> None:
    parts = {_part(_name(p)) for p in _modules()}
    parts.discard("__init__")
    assert all(_layer(p) >= 0 for p in parts), sorted(p for p in parts if _layer(p) < 0)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_point_down(path: Path) -> None:
    me = _part(_name(path))
    if me == "__init__":
        return
    upward = []
    for line, target in _imports(path):
        other = _part(target)
        if other in ("__init__", me):
            continue
        if me == "client":
            allowed = _layer(other) == 0 or any(
                target == f"stream0d_nb.{m}" or target.startswith(f"stream0d_nb.{m}.")
                for m in CLIENT_MAY_IMPORT
            )
        else:
            allowed = _layer(other) <= _layer(me)
        if not allowed:
            upward.append(f"line {line}: {target} ({other}, layer {_layer(other)})")
    assert not upward, f"{me} (layer {_layer(me)}) imports upward: {upward}"


def test_the_walker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The test itself can fail: nested and relative imports are found."""
    probe = PACKAGE / "formulas" / "kernels.py"
    found = {t for _, t in _imports(probe)}
    assert found, "kernels.py imports nothing of the package?"
    src = "def f():\n    from stream0d_nb.api import app\n    from . import x\n"
    fake = PACKAGE / "formulas" / "_probe_for_test.py"
    try:
        fake.write_text(src)
        got = {t for _, t in _imports(fake)}
    finally:
        fake.unlink()
    assert got == {"stream0d_nb.api", "stream0d_nb.formulas.x"}


def test_lazy_exports_are_not_shadowed_by_their_submodules() -> None:
    """A package exporting names lazily (PEP 562) must not name a submodule like one of
    them: once the submodule is imported, the package attribute is the module instead
    (``calibrate`` once was), whatever imported it first."""
    import importlib
    import subprocess
    import sys
    import types

    code = (
        "import importlib, types\n"
        "for pkg in ('stream0d_nb.recalibration', 'stream0d_nb.store'):\n"
        "    p = importlib.import_module(pkg)\n"
        "    lazy = getattr(p, '_LAZY', {})\n"
        "    for sub in set(lazy.values()):\n"
        "        importlib.import_module(f'{pkg}.{sub}')\n"
        "    bad = [n for n in lazy if isinstance(getattr(p, n), types.ModuleType)]\n"
        "    assert not bad, (pkg, bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert isinstance(importlib, types.ModuleType)
