"""Installing simscale prints no deprecation warning from our own packaging metadata.

setuptools 77 deprecated ``license = { file = ... }`` and license classifiers in favour of an SPDX
expression plus ``license-files`` (https://packaging.python.org/en/latest/guides/writing-pyproject-toml/#license).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_with_its_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]


def test_the_build_backend_understands_an_spdx_license() -> None:
    (requirement,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", requirement)
    assert match is not None and int(match.group(1)) >= 77, requirement


def test_setuptools_reads_the_metadata_without_a_deprecation_warning() -> None:
    import setuptools

    # scripts/setup.sh upgrades the venv's setuptools, so this checks what pip's build uses too.
    assert int(setuptools.__version__.split(".")[0]) >= 77, f"setuptools {setuptools.__version__} predates SPDX"
    script = (
        "from setuptools.config.pyprojecttoml import apply_configuration\n"
        "from setuptools.dist import Distribution\n"
        f"apply_configuration(Distribution(), {str(ROOT / 'pyproject.toml')!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
