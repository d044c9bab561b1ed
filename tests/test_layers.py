"""The layers of the house (DESIGN.md, "Layout"): `atcore` imports nothing of ours, `runtime`
only `atcore`, a service only `atcore` and `runtime`, and nothing but the tests and benches
imports the `skyloft` command line, which sits on top of them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("plc", "pds", "relay", "appview", "jetstream", "feedgen")
ALLOWED = {
    "atcore": {"atcore"},
    "runtime": {"atcore", "runtime"},
    **{service: {"atcore", "runtime", service} for service in SERVICES},
    "skyloft": {"atcore", "runtime", "skyloft", *SERVICES},
}


def imported_packages(path: Path) -> set[str]:
    """Every top-level package of ours that a module imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in imported_packages(path) - ALLOWED[package]
    }
    assert not wrong, sorted(wrong)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from relay.db import hosts\n    import skyloft.cli\n")
    assert imported_packages(module) == {"relay", "skyloft"}
