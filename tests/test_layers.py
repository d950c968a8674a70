"""The dependency direction of STYLE.md, enforced so it cannot rot.

Each check imports one module in a fresh interpreter and looks at what else got loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import simscale


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(output.stdout))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("simscale.metrics.records", {"simpy", "pandas", "plotly", "asyncio", "aiohttp"}),
        ("simscale.model", {"pandas", "plotly", "aiohttp"}),
        ("simscale.protocol", {"asyncio", "aiohttp", "simpy", "pandas"}),
        ("simscale.backplane.routing", {"asyncio", "redis", "simpy", "pandas"}),
        ("simscale.backplane.envelope", {"asyncio", "redis", "simpy", "pandas"}),
        ("simscale", {"simpy", "pandas", "plotly", "aiohttp"}),
        # The planner's search is pure: closed forms and rules, no simulator, no executor, no pandas.
        ("simscale.planning.search", {"simpy", "pandas", "plotly", "aiohttp", "distributed"}),
    ],
)
def test_module_does_not_pull_in(module: str, forbidden: set[str]) -> None:
    assert not top_level(loaded_after_import(module)) & forbidden


@pytest.mark.parametrize(
    ("module", "forbidden_ours"),
    [
        ("simscale.model", {"simscale.hub", "simscale.figures", "simscale.metrics.frames", "simscale.scenarios"}),
        ("simscale.config", {"simscale.model", "simscale.scenarios", "simscale.metrics", "simscale.hub",
                             "simscale.backplane", "simscale.protocol", "simscale.figures", "simscale.validation",
                             "simscale.loadgen", "simscale.client"}),
        ("simscale.metrics.records", {"simscale.model", "simscale.scenarios", "simscale.hub"}),
        ("simscale.protocol", {"simscale.hub", "simscale.model", "simscale.backplane", "simscale.scenarios"}),
        # The clients and the server meet only on the wire: neither imports the other.
        ("simscale.client", {"simscale.hub", "simscale.backplane", "simscale.model", "simscale.scenarios"}),
        ("simscale.hub", {"simscale.client", "simscale.loadgen", "simscale.model", "simscale.scenarios"}),
        ("simscale.planning", {"simscale.hub", "simscale.client", "simscale.loadgen", "simscale.validation"}),
    ],
)
def test_our_layers_point_one_way(module: str, forbidden_ours: set[str]) -> None:
    loaded = loaded_after_import(module)
    assert not {name for name in loaded if any(name.startswith(prefix) for prefix in forbidden_ours)}


def test_the_configuration_imports_nothing_of_simscale() -> None:
    ours = {name for name in loaded_after_import("simscale.config") if name.startswith("simscale.")}
    assert ours <= {"simscale._version", "simscale.config", "simscale.config.scenario", "simscale.config.fields",
                    "simscale.config.hosting"}


def test_the_scenarios_package_loads_its_runners_eagerly() -> None:
    # No lazy module __getattr__ hides an import cycle any more: the runners load with the package.
    import simscale.scenarios

    assert "__getattr__" not in vars(simscale.scenarios)
    assert "simscale.scenarios.run" in loaded_after_import("simscale.scenarios")


def test_public_api_is_pinned() -> None:
    assert sorted(simscale.__all__) == sorted(
        ["Scenario", "__version__", "plan", "preset", "preset_names", "replicate", "simulate", "sweep"]
    )
    for name in simscale.__all__:
        assert getattr(simscale, name) is not None
