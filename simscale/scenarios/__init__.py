"""Scenarios: validated configuration, named presets, and simulate / replicate / sweep.

The Scenario itself lives in :mod:`simscale.config` (below the model, which is built from it);
it is re-exported here because this is where users look for it.
"""

from __future__ import annotations

from simscale.config.scenario import Scenario, describe_fields, parse_field_value
from simscale.scenarios.calibration import Calibration, load_calibration, save_calibration
from simscale.scenarios.hosting import hosting_comparison_frame, published_capacity_frame
from simscale.scenarios.presets import PRESETS, preset, preset_names
from simscale.scenarios.run import ReplicationResult, SimulationResult, replicate, simulate, sweep

__all__ = [
    "PRESETS",
    "Calibration",
    "ReplicationResult",
    "Scenario",
    "SimulationResult",
    "describe_fields",
    "hosting_comparison_frame",
    "load_calibration",
    "parse_field_value",
    "preset",
    "preset_names",
    "published_capacity_frame",
    "replicate",
    "save_calibration",
    "simulate",
    "sweep",
]
