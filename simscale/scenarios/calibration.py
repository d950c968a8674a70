"""Calibration files: costs measured on the real hub that the ``asyncio-hub`` profile loads.

A calibration is JSON with the measured costs, where and when they were measured, and a SHA-256
``hash`` over the rest, so a hand-edited or truncated file is refused instead of silently used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simscale.config.scenario import Scenario

__all__ = [
    "CALIBRATED_FIELDS",
    "LOADGEN_FIELDS",
    "Calibration",
    "apply_calibration",
    "calibrated_costs",
    "load_calibration",
    "save_calibration",
]

CALIBRATED_FIELDS = (
    "invocation_cpu_s",
    "serialize_cpu_s",
    "send_cpu_per_recipient_s",
    "keepalive_cpu_s",
    "handshake_cpu_s",
    "memory_base_bytes",
    "memory_per_connection_bytes",
    "backplane_publish_base_s",
    "backplane_latency_s",
)
"""Scenario fields a calibration replaces: the hub's own costs."""

LOADGEN_FIELDS = (
    "loadgen_cpu_per_delivery_s",
    "loadgen_cpu_per_read_s",
    "loadgen_cpu_per_wakeup_s",
    "loadgen_cpu_per_send_s",
    "loadgen_stall_mean_s",
    "loadgen_stall_busy_scale",
)
"""Scenario fields that describe the load generator; set only when predicting a loopback load test."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """Costs of the real hub on one machine (seconds of CPU, bytes)."""

    invocation_cpu_s: float
    serialize_cpu_s: float
    send_cpu_per_recipient_s: float
    keepalive_cpu_s: float
    handshake_cpu_s: float
    memory_base_bytes: float
    memory_per_connection_bytes: float
    backplane_publish_base_s: float
    backplane_latency_s: float
    connections: int
    loadgen_cpu_per_delivery_s: float = 0.0
    """The load generator's CPU per message received (to predict a loopback run, not a hub)."""
    loadgen_cpu_per_read_s: float = 0.0
    """The load generator's CPU per socket read, shared by the messages that read carries."""
    loadgen_cpu_per_wakeup_s: float = 0.0
    """The load generator's CPU per event-loop wake-up that read something."""
    loadgen_cpu_per_send_s: float = 0.0
    loadgen_stall_mean_s: float = 0.0
    """Mean wait of the load generator's loop on a writing hub's core when the loop is idle (0: none seen)."""
    loadgen_stall_busy_scale: float = 1.0
    """That wait shrinks as ``exp(-busy / this)`` with the loop's busy fraction."""
    low_load_deliveries_per_s: float = 0.0
    """Deliveries per second per process at which the per-delivery costs above were measured."""
    high_load_deliveries_per_s: float = 0.0
    """A second, busier load level (0: costs measured at one load only)."""
    send_cpu_per_recipient_high_load_s: float = 0.0
    host: str = ""
    created_at: str = ""
    simscale_version: str = ""
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in CALIBRATED_FIELDS + LOADGEN_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"calibration {name} must be a non-negative number, got {value!r}")
        if self.loadgen_stall_busy_scale <= 0:
            raise ValueError(f"calibration loadgen_stall_busy_scale must be > 0, got {self.loadgen_stall_busy_scale!r}")
        if self.connections < 1:
            raise ValueError(f"calibration connections must be >= 1, got {self.connections}")


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save_calibration(calibration: Calibration, path: str | Path) -> str:
    """Write ``calibration`` as JSON with its hash; returns the hash."""
    body = dataclasses.asdict(calibration)
    digest = _digest(body)
    Path(path).write_text(json.dumps({**body, "hash": digest}, indent=2, sort_keys=True) + "\n")
    return digest


def load_calibration(path: str | Path) -> Calibration:
    """Read and verify a calibration file; ``ValueError`` on a missing file, bad JSON or a wrong hash."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"calibration_file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"calibration_file {str(path)!r} is not JSON: {error}") from None
    if not isinstance(data, dict) or "hash" not in data:
        raise ValueError(f"calibration_file {str(path)!r} has no hash")
    digest = data.pop("hash")
    if _digest(data) != digest:
        raise ValueError(f"calibration_file {str(path)!r} does not match its hash (edited or truncated?)")
    known = {spec.name for spec in dataclasses.fields(Calibration)}
    try:
        return Calibration(**{key: value for key, value in data.items() if key in known})
    except TypeError as error:
        raise ValueError(f"calibration_file {str(path)!r} is incomplete: {error}") from None


def calibrated_costs(calibration: Calibration, *, include_loadgen: bool = False) -> dict[str, float]:
    """Scenario fields from a calibration: the hub's costs, and the load generator's when asked.

    The hub's cost per recipient was measured at a quiet and at a busy load; the model uses the busy
    one while work is queued (the hub then writes several frames per socket in one system call). The
    load generator's cost is split into a part per message and a part per socket read; its loop's
    stalls on a writing hub's core come with it.
    """
    costs = {name: float(getattr(calibration, name)) for name in CALIBRATED_FIELDS}
    costs["send_cpu_per_recipient_busy_s"] = calibration.send_cpu_per_recipient_high_load_s
    if include_loadgen:
        costs.update({name: float(getattr(calibration, name)) for name in LOADGEN_FIELDS})
    return costs


def apply_calibration(scenario: Scenario) -> Scenario:
    """The scenario with its calibration file's costs in place of the defaults (if it names one)."""
    if not scenario.calibration_file:
        return scenario
    return scenario.replace(**calibrated_costs(load_calibration(scenario.calibration_file)))
