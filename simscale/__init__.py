"""simscale: teach and predict how real-time hubs (ASP.NET Core SignalR style) scale.

The public API is imported lazily, so ``import simscale`` stays cheap for the hub process, which
needs neither the simulator nor pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simscale._version import __version__

if TYPE_CHECKING:
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
    "preset",
    "preset_names",
    "replicate",
    "simulate",
    "sweep",
]

_LAZY = {
    "Scenario": "simscale.scenarios",
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
