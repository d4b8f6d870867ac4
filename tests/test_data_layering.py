"""rs_ssl.data imports one way: no cycle (imports inside functions count), base types import nothing
of the package, every module imports alone, and formats are registered objects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "rs_ssl" / "data"
MODULES = sorted(
    f"rs_ssl.data.{p.stem}" if p.stem != "__init__" else "rs_ssl.data" for p in PKG.glob("*.py")
)


def _imports(module: str) -> set[str]:
    """Modules of rs_ssl.data that `module` imports anywhere in its source (functions included)."""
    path = PKG / ("__init__.py" if module == "rs_ssl.data" else module.rsplit(".", 1)[1] + ".py")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from rs_ssl.data import tiles` imports the submodule; `from rs_ssl.data import scan` the package
            sub = [
                f"{node.module}.{a.name}"
                for a in node.names
                if f"{node.module}.{a.name}" in MODULES
            ]
            names = sub or [node.module]
        else:
            continue
        out |= {n for n in names if n in MODULES and n != module}
    return out


def test_no_import_cycle_in_rs_ssl_data_counting_function_level_imports():
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(m) :], m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, [*path, m])
        state[m] = 2

    for m in MODULES:
        visit(m, [])


def test_base_types_import_nothing_else_of_the_package():
    assert _imports("rs_ssl.data.base") == set()


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_in_a_fresh_interpreter(module):
    r = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_formats_are_registered_objects_in_detection_order():
    from rs_ssl.data import registry
    from rs_ssl.data.base import Format

    assert all(isinstance(f, Format) for f in registry.FORMATS)
    assert len(set(registry.NAMES)) == len(registry.NAMES)
    order = list(registry.NAMES)
    # specific layouts before the general ones they also match
    assert order.index("ssl4eo") < order.index("sentinel2") and order.index("folder") < order.index(
        "images"
    )
    assert order.index("millionaid") < order.index("folder")
