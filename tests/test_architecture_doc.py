"""docs/ARCHITECTURE.md names modules and their parts: each must exist, so the walk-through cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def test_every_module_path_named_exists() -> None:
    text = DOC.read_text()
    paths = set(re.findall(r"`(simscale/[\w/]+\.py)`", text))
    assert paths, "the walk-through names no module"
    missing = sorted(path for path in paths if not (ROOT / path).is_file())
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"


def test_every_bare_model_module_named_exists() -> None:
    # The model walk-through names its modules without the package prefix (`broadcasts.py`).
    section = DOC.read_text().split("## One broadcast through the model", 1)[1]
    names = set(re.findall(r"`(\w+\.py)`", section))
    missing = sorted(n for n in names if not (ROOT / "simscale" / "model" / n).is_file())
    assert not missing, f"model modules named but absent: {missing}"


def test_every_class_and_method_named_is_defined() -> None:
    source = "\n".join(path.read_text() for path in (ROOT / "simscale").rglob("*.py"))
    text = DOC.read_text()
    for owner, member in set(re.findall(r"`([A-Z]\w+)\.(\w+)`", text)):
        assert re.search(rf"^class {owner}\b", source, re.M), f"class {owner} named in the doc is not defined"
        assert re.search(rf"def {member}\b|^\s+{member}\s*[:=]", source, re.M), f"{owner}.{member} is not defined"
    for name in set(re.findall(r"`([A-Z][a-z]\w+)`", text)):
        assert re.search(rf"^class {name}\b|^{name}\s*=", source, re.M), f"{name} named in the doc is not defined"


def test_the_readme_package_map_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## A map of the package", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"^  (\w+(?:/|\.py))", block, re.M))
    package = ROOT / "simscale"
    present = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    present |= {p.name for p in package.glob("*.py") if not p.name.startswith("_")}
    assert named == present, f"named, absent: {sorted(named - present)}; present, unnamed: {sorted(present - named)}"
