"""Scenarios: validated configuration, named presets, and simulate / replicate / sweep.

``config`` (the Scenario dataclass) is the vocabulary the model is built from, so it is imported
eagerly; the runners import the model and are loaded on first use to keep the import graph acyclic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simscale.scenarios.calibration import Calibration, load_calibration, save_calibration
from simscale.scenarios.config import Scenario, describe_fields, parse_field_value
from simscale.scenarios.presets import PRESETS, preset, preset_names

if TYPE_CHECKING:
    from simscale.scenarios.run import ReplicationResult, SimulationResult, replicate, simulate, sweep

__all__ = [
    "PRESETS",
    "Calibration",
    "ReplicationResult",
    "Scenario",
    "SimulationResult",
    "describe_fields",
    "load_calibration",
    "parse_field_value",
    "preset",
    "preset_names",
    "replicate",
    "save_calibration",
    "simulate",
    "sweep",
]

_RUNNERS = {"ReplicationResult", "SimulationResult", "replicate", "simulate", "sweep"}


def __getattr__(name: str) -> Any:
    if name in _RUNNERS:
        return getattr(importlib.import_module("simscale.scenarios.run"), name)
    raise AttributeError(f"module 'simscale.scenarios' has no attribute {name!r}")
