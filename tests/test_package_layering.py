"""Imports across rs_ssl go one way: `rs_ssl.pretrain` is a command, reached only from the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "rs_ssl"


def _imports_pretrain(path: Path) -> list[int]:
    """Line numbers where `path` imports rs_ssl.pretrain (functions included), or names it as a string."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            hit = any(a.name == "rs_ssl.pretrain" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            hit = node.module == "rs_ssl.pretrain" or (
                node.module == "rs_ssl" and any(a.name == "pretrain" for a in node.names)
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            hit = node.value.startswith(
                "rs_ssl.pretrain"
            )  # importlib.import_module("rs_ssl.pretrain")
        else:
            continue
        if hit:
            lines.append(node.lineno)
    return sorted(lines)


def test_no_module_but_the_cli_imports_rs_ssl_pretrain():
    allowed = {PKG / "cli.py", PKG / "pretrain.py"}
    found = {
        str(p.relative_to(PKG)): lines
        for p in sorted(PKG.rglob("*.py"))
        if p not in allowed and (lines := _imports_pretrain(p))
    }
    assert found == {}, f"modules importing rs_ssl.pretrain (use rs_ssl.training): {found}"


def test_the_check_sees_an_import_of_rs_ssl_pretrain(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from rs_ssl.pretrain import run\n\nimport rs_ssl.pretrain\n")
    assert _imports_pretrain(f) == [2, 4]
    f.write_text("from rs_ssl import pretrain\nfrom rs_ssl.training import train\n")
    assert _imports_pretrain(f) == [1]
