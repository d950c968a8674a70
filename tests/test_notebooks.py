"""Every teaching notebook runs top to bottom, and what it shows works offline.

Each notebook is executed with nbclient into a temporary copy (the stored file keeps no outputs), by a
kernel that imports this checkout's simscale. Then its outputs are read the way GitHub, ``nbconvert``
or a reader without JavaScript would read them:

* the notebook calls ``notebook_setup()`` before anything else it runs, so the renderer is set once;
* every interactive plotly figure carries a static image in the same output (without it those readers
  see an empty cell);
* no HTML output loads a script from the network (a CDN plotly.js would leave figures blank offline);
* no cell errored.

This is the only place the notebooks are executed (``scripts/setup.sh test`` runs ``pytest tests``).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300
"""The longest a single cell may run (the real-hub cells of notebooks 5 and 6 are the slowest)."""

PLOTLY = "application/vnd.plotly.v1+json"
STATIC_IMAGES = ("image/png", "image/svg+xml")
REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.IGNORECASE)
SETUP_CALL = re.compile(r"^\s*notebook_setup\(", re.MULTILINE)


def _only_imports(source: str) -> bool:
    return all(isinstance(node, ast.Import | ast.ImportFrom) for node in ast.parse(source).body)


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _outputs(notebook: nbformat.NotebookNode) -> list[tuple[int, dict[str, Any]]]:
    return [
        (position, output)
        for position, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]


def _figures(notebook: nbformat.NotebookNode) -> tuple[int, list[int]]:
    """How many outputs carry plotly JSON, and the cells of those without a static image beside it."""
    figures = [
        (position, output["data"]) for position, output in _outputs(notebook) if PLOTLY in output.get("data", {})
    ]
    bare = [position for position, data in figures if not any(mime in data for mime in STATIC_IMAGES)]
    return len(figures), bare


def _executed(path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[nbformat.NotebookNode, float]:
    copy = workdir / path.name
    shutil.copyfile(path, copy)
    notebook = nbformat.read(copy, as_version=4)
    # The kernel inherits this environment: put the checkout under test first on its path.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=True,  # collect every error as an output, then report which cell failed
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.perf_counter()
    client.execute()
    elapsed_s = time.perf_counter() - started
    nbformat.write(notebook, copy)
    return notebook, elapsed_s


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_offline_with_a_static_image_beside_every_figure(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = nbformat.read(path, as_version=4)
    code = _code_cells(stored)
    if code:
        setup_at = next((n for n, cell in enumerate(code) if SETUP_CALL.search(cell.source)), None)
        assert setup_at is not None, f"{path.name} never calls notebook_setup()"
        # Only imports may run before it: anything else could draw with plotly's defaults.
        for cell in code[:setup_at]:
            assert _only_imports(cell.source), f"{path.name}: code runs before notebook_setup(): {cell.source[:80]!r}"

    notebook, elapsed_s = _executed(path, tmp_path, monkeypatch)
    print(f"{path.name}: executed in {elapsed_s:.1f} s")

    errors = [
        f"cell {position}: {output.get('ename')}: {output.get('evalue')}"
        for position, output in _outputs(notebook)
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{path.name} raised: {errors}"

    figures, bare = _figures(notebook)
    assert not bare, f"{path.name}: interactive figures without a PNG or SVG beside them in cells {bare}"
    for position, output in _outputs(notebook):
        html = output.get("data", {}).get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        assert not REMOTE_SCRIPT.search(html), f"{path.name} cell {position}: HTML loads a script from the network"
    if any("figure" in cell.source for cell in code):
        assert figures, f"{path.name} draws figures but no output carries plotly JSON"


def test_a_figure_drawn_without_notebook_setup_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # plotly's own mimetype renderer gives JSON only: exactly what the notebook test must reject.
    cells = [
        "import plotly.io as pio\npio.renderers.default = 'plotly_mimetype'",
        "import plotly.graph_objects as go\ngo.Figure(go.Scatter(x=[1, 2], y=[3, 4]))",
    ]
    bare_notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    path = tmp_path / "source" / "99.00-Bare.ipynb"
    path.parent.mkdir()
    nbformat.write(bare_notebook, path)
    notebook, _ = _executed(path, tmp_path, monkeypatch)
    assert _figures(notebook) == (1, [1])


def test_the_checks_can_fail() -> None:
    # The patterns above must catch what they exist for, or every notebook passes vacuously.
    assert REMOTE_SCRIPT.search('<script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>')
    assert REMOTE_SCRIPT.search("<script type='text/javascript' src='//cdn.example/x.js'>")
    assert not REMOTE_SCRIPT.search("<script type='text/javascript'>window.PlotlyConfig = {};</script>")
    assert SETUP_CALL.search("import x\nnotebook_setup()\n")
    assert not SETUP_CALL.search("# notebook_setup() later\n")
    assert _only_imports("import pandas as pd\nfrom simscale import preset\n")
    assert not _only_imports("import plotly.express as px\npx.line(x=[1, 2])\n")
