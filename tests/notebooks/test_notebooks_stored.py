"""The teaching notebooks as stored: named in reading order, without outputs, indexed, importing simscale.

The notebooks themselves are executed by ``tests/test_notebooks.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from simscale.report import INDEX_NAME, NOTEBOOK_NAME, notebook_index

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _load(path: Path) -> dict[str, Any]:
    notebook: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return notebook


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def test_there_are_notebooks_and_an_index() -> None:
    names = [path.name for path in PATHS]
    assert INDEX_NAME in names
    assert len(names) >= 5


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_name_follows_the_pattern(path: Path) -> None:
    assert NOTEBOOK_NAME.match(path.name), f"{path.name} is not CC.SS-Title.ipynb"


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_stored_without_outputs(path: Path) -> None:
    for position, cell in enumerate(_load(path)["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {position} has stored outputs"
        assert cell.get("execution_count") is None, f"{path.name} cell {position} has an execution count"


@pytest.mark.parametrize("path", [p for p in PATHS if p.name != INDEX_NAME], ids=lambda path: path.name)
def test_imports_simscale_and_defines_nothing_reusable(path: Path) -> None:
    code = "\n".join(_source(cell) for cell in _load(path)["cells"] if cell["cell_type"] == "code")
    assert re.search(r"^(import simscale|from simscale[. ])", code, re.MULTILINE), f"{path.name} must import simscale"
    assert not re.search(r"^\s*(async\s+def|def|class)\s", code, re.MULTILINE), (
        f"{path.name} defines a function or class: put reusable code in the simscale package"
    )


def test_index_is_up_to_date() -> None:
    stored = (NOTEBOOKS / INDEX_NAME).read_text(encoding="utf-8")
    assert stored == notebook_index(NOTEBOOKS), (
        "notebooks/00.00-Index.ipynb is stale: run `simscale figures --notebooks notebooks` "
        "(or simscale.report.write_notebook_index())"
    )


def test_index_lists_every_notebook_in_order() -> None:
    text = "".join(_load(NOTEBOOKS / INDEX_NAME)["cells"][0]["source"])
    listed = re.findall(r"\]\(([^)]+\.ipynb)\)", text)
    assert listed == [path.name for path in PATHS if path.name != INDEX_NAME]


def test_notebook_index_is_generated_from_titles(tmp_path: Path) -> None:
    cell = {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# A title\n", "text"]}
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "02.00-Second.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "01.00-First-One.ipynb").write_text(json.dumps({**notebook, "cells": []}))
    text = notebook_index(tmp_path)
    assert text.index("[First One](01.00-First-One.ipynb)") < text.index("[A title](02.00-Second.ipynb)")
