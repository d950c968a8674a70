"""The package's front door: what ``import simscale`` costs and what dir(), completion and help() show."""

from __future__ import annotations

import pydoc
import subprocess
import sys

import pytest

import simscale

API = [name for name in simscale.__all__ if not name.startswith("_")]


def test_import_stays_cheap_for_the_hub_process() -> None:
    # A fresh interpreter: this test process has long imported pandas through other tests.
    code = "import simscale, sys; assert 'pandas' not in sys.modules and 'simpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_dir_lists_the_lazy_api_and_not_the_helpers() -> None:
    names = dir(simscale)
    assert set(simscale.__all__) <= set(names)
    assert not {"importlib", "Any", "TYPE_CHECKING", "annotations"} & set(names)


def test_help_lists_and_describes_every_name() -> None:
    text = pydoc.render_doc(simscale, renderer=pydoc.plaintext)
    functions = text.split("\nFUNCTIONS\n", 1)[1]
    for name in ["plan", "preset", "preset_names", "replicate", "simulate", "sweep"]:
        assert f"\n    {name}(" in functions, name
    assert "\n    class Scenario(" in text.split("\nCLASSES\n", 1)[1]
    # The module docstring gives each name a line of its own, so help() reads as an index.
    for name in API:
        assert f":{'class' if name == 'Scenario' else 'func'}:`{name}` — " in simscale.__doc__, name


def test_an_unknown_name_still_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        simscale.no_such_name  # noqa: B018
