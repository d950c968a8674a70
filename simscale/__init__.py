"""simscale: teach and predict how real-time hubs (ASP.NET Core SignalR style) scale.

The API, one line each:

* :class:`Scenario` — a whole run's configuration: a frozen, validated dataclass (units in names).
* :func:`preset` — a named scenario (``single-server``, ``backplane``, …) with optional overrides.
* :func:`preset_names` — the preset names, in teaching order.
* :func:`simulate` — run a scenario once with its seed; returns a ``SimulationResult``.
* :func:`replicate` — run it with independent seeds; mean and confidence interval per metric.
* :func:`sweep` — run the grid of factors (field name → list of values); one DataFrame row per point.
* :func:`plan` — the smallest deployment for a load and the limit that binds; returns a ``Plan``.

Example:

    >>> import simscale
    >>> scenario = simscale.preset("single-server", clients=20, duration_s=5.0, warmup_s=1.0, seed=1)
    >>> result = simscale.simulate(scenario)
    >>> result.summary.delivered_fraction
    1.0

The API is imported lazily, so ``import simscale`` stays cheap for the hub process, which needs
neither the simulator nor pandas.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from simscale._version import __version__

if TYPE_CHECKING:
    from simscale.planning import plan
    from simscale.scenarios import (
        Scenario,
        preset,
        preset_names,
        replicate,
        simulate,
        sweep,
    )

__all__ = [
    "Scenario",
    "__version__",
    "plan",
    "preset",
    "preset_names",
    "replicate",
    "simulate",
    "sweep",
]

_LAZY = {
    "Scenario": "simscale.scenarios",
    "plan": "simscale.planning",
    "preset": "simscale.scenarios",
    "preset_names": "simscale.scenarios",
    "replicate": "simscale.scenarios",
    "simulate": "simscale.scenarios",
    "sweep": "simscale.scenarios",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simscale' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    # The lazy names are not in the module's namespace until first used, so dir(), tab completion
    # and pydoc (which lists what dir() returns and __all__ allows) would not see them otherwise.
    # Helpers of this file (importlib, Any, TYPE_CHECKING) are left out: they would only be noise in
    # a completion list; subpackages already imported (simscale.scenarios, …) are kept.
    namespace = globals()
    subpackages = {
        name
        for name, value in namespace.items()
        if isinstance(value, ModuleType) and value.__name__.startswith(f"{__name__}.") and not name.startswith("_")
    }
    dunders = {name for name in namespace if name.startswith("__")}
    return sorted(dunders | subpackages | set(__all__))
