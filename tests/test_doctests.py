"""Every public function and class shows an example in its docstring, and every example runs.

"Public" is the ``__all__`` of :mod:`simscale` and of its user-facing packages, plus the result
classes a user meets without importing them (what ``simulate`` returns, the model's run, the
summary). Only functions and classes are checked: a constant (``PRESETS``) or a type alias
(``InvocationHandler``) has no docstring of its own to hold an example.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import time
from collections.abc import Iterator

import pytest

import simscale

PACKAGES = [
    "simscale",
    "simscale.scenarios",
    "simscale.metrics",
    "simscale.figures",
    "simscale.config",
    "simscale.model",
    "simscale.client",
    "simscale.loadgen",
    "simscale.validation",
    "simscale.backplane",
    "simscale.hub",
    "simscale.planning",
]
RESULT_CLASSES = [
    ("simscale.scenarios", "SimulationResult"),
    ("simscale.model", "ModelRun"),
    ("simscale.metrics", "RunSummary"),
]


def _documentable(value: object) -> bool:
    return (inspect.isclass(value) or inspect.isfunction(value)) and getattr(value, "__module__", "").startswith(
        "simscale"
    )


def public_objects(packages: list[str]) -> dict[str, object]:
    """Qualified name (where it is defined) → object; an object exported twice is listed once."""
    found: dict[str, object] = {}
    pairs = [(package, name) for package in packages for name in importlib.import_module(package).__all__]
    for package, name in [*pairs, *RESULT_CLASSES]:
        value = getattr(importlib.import_module(package), name)
        if _documentable(value):
            found[f"{value.__module__}.{value.__qualname__}"] = value  # type: ignore[attr-defined]
    return dict(sorted(found.items()))


def has_example(value: object) -> bool:
    return ">>>" in (inspect.getdoc(value) or "")


def names_without_examples(packages: list[str]) -> list[str]:
    return [name for name, value in public_objects(packages).items() if not has_example(value)]


PUBLIC = public_objects(PACKAGES)


def test_the_collection_finds_the_api() -> None:
    # Guards the test below: a collection that found nothing would pass it vacuously.
    assert {"simscale.scenarios.run.simulate", "simscale.scenarios.run.SimulationResult"} <= set(PUBLIC)
    assert "simscale.model.run.ModelRun" in PUBLIC and "simscale.metrics.records.RunSummary" in PUBLIC
    assert len(PUBLIC) > 40


def test_every_public_function_and_class_has_an_example() -> None:
    missing = names_without_examples(PACKAGES)
    assert not missing, "no '>>>' example in the docstring of: " + ", ".join(missing)


def _doctests() -> Iterator[doctest.DocTest]:
    # recurse=False: the object's own docstring; globs empty, so each example imports what it
    # uses and can be pasted into a session as it stands.
    finder = doctest.DocTestFinder(recurse=False)
    yield from finder.find(simscale, "simscale", globs={})
    for name, value in PUBLIC.items():
        yield from finder.find(value, name, module=inspect.getmodule(value), globs={})


DOCTESTS = [test for test in _doctests() if test.examples]


@pytest.mark.parametrize("test", DOCTESTS, ids=[test.name for test in DOCTESTS])
def test_example_runs(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.REPORT_NDIFF)
    output: list[str] = []
    started_s = time.perf_counter()
    result = runner.run(test, out=output.append)
    elapsed_s = time.perf_counter() - started_s
    assert result.failed == 0, "".join(output)
    # Examples must stay cheap: the whole set runs in the suite (tiny scenarios, seconds at most).
    assert elapsed_s < 15.0, f"{test.name} took {elapsed_s:.1f} s"
