"""Prediction against measurement: calibrate the model on the real hub, then validate it.

Three parts: :mod:`~simscale.validation.measuring` runs real processes and returns plain records
(:mod:`~simscale.validation.records`), :mod:`~simscale.validation.fitting` turns them into costs
(pure), :mod:`~simscale.validation.comparing` holds the one table of metrics and tolerances (pure).

* :func:`~simscale.validation.calibrate.calibrate` measures the real hub's costs on this machine
  and returns a :class:`~simscale.scenarios.calibration.Calibration` for the ``asyncio-hub`` profile;
* :func:`~simscale.validation.validate.validate` runs a seed scenario for real on loopback (hub
  processes + the load generator) and simulated with the same parameters, and compares them;
* :func:`~simscale.validation.cluster.live_cluster` starts N real hub processes (and a redis-server)
  for a ``with`` block and stops them all on the way out;
* :func:`~simscale.validation.reconnect.validate_reconnect_storm` kills one of them under load and
  compares the clients' return with the model's ``reconnect-storm``.
"""

from __future__ import annotations

from simscale.validation.calibrate import calibrate
from simscale.validation.cluster import LiveCluster, live_cluster
from simscale.validation.reconnect import ReconnectValidationResult, validate_reconnect_storm
from simscale.validation.validate import VALIDATED_PRESETS, ValidationResult, agreement, validate

__all__ = [
    "VALIDATED_PRESETS",
    "LiveCluster",
    "ReconnectValidationResult",
    "ValidationResult",
    "agreement",
    "calibrate",
    "live_cluster",
    "validate",
    "validate_reconnect_storm",
]
