"""The pure parts of validation stay pure: they import no event loop, process or hub code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "simscale" / "validation"
PURE = ("fitting.py", "comparing.py", "records.py", "stalls.py")
FORBIDDEN = ("asyncio", "subprocess", "aiohttp", "psutil", "simscale.hub", "simscale.client", "simscale.loadgen",
             "simscale.validation.measuring", "simscale.validation.processes")  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_nothing_that_runs_processes(module: str) -> None:
    bad = sorted(
        name for name in _imports(PACKAGE / module) for forbidden in FORBIDDEN
        if name == forbidden or name.startswith(forbidden + ".")
    )  # fmt: skip
    assert not bad, f"{module} imports {bad}"


def test_the_orchestrators_leave_processes_to_measuring() -> None:
    for module in ("calibrate.py", "validate.py"):
        imported = _imports(PACKAGE / module)
        assert "simscale.validation.processes" not in imported and "asyncio" not in imported, module
