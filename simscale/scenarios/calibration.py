"""Calibration files: costs measured on the real hub that the ``asyncio-hub`` profile loads.

A calibration is JSON with the measured costs, where and when they were measured, and a SHA-256
``hash`` over the rest, so a hand-edited or truncated file is refused instead of silently used.
A replicated calibration also holds each cost's 95 % confidence interval over its replicates
(:meth:`Calibration.interval`); a file written before replication existed loads with none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simscale.config.fields import setting, validate_fields
from simscale.config.scenario import Scenario

__all__ = [
    "CALIBRATED_FIELDS",
    "HUB_COSTS",
    "LOADGEN_COSTS",
    "LOADGEN_FIELDS",
    "Calibration",
    "apply_calibration",
    "calibrated_costs",
    "calibrated_fields",
    "load_calibration",
    "save_calibration",
]

HUB_COSTS = "hub costs"
"""Section of the Calibration fields that are measured costs of the hub (Scenario fields of that name)."""

LOADGEN_COSTS = "load generator costs"
"""Section of the measured costs of simscale's load generator (Scenario fields of that name)."""

_RENAMED_KEYS = {"send_cpu_per_recipient_high_load_s": "send_cpu_per_recipient_busy_s"}
"""Keys of older calibration files and the field each is now called (the Scenario's name)."""

_MEASURED = "simscale calibrate"


def _hub_cost(help: str, default: Any = dataclasses.MISSING) -> Any:
    return setting(default, ge=0, section=HUB_COSTS, source=_MEASURED, help=help)


def _loadgen_cost(help: str, default: float = 0.0, *, ge: float | None = 0, gt: float | None = None) -> Any:
    return setting(default, ge=ge, gt=gt, section=LOADGEN_COSTS, source=_MEASURED, help=help)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Costs of the real hub on one machine (seconds of CPU, bytes).

    A field in the ``hub costs`` or ``load generator costs`` section is a cost the calibration
    measured, and has the name of the Scenario field it replaces; :func:`calibrated_fields` lists
    them. The other fields say at what load and where the costs were measured.

    Example (``simscale calibrate`` measures these; here they are made up):

        >>> from simscale.scenarios import Calibration
        >>> costs = dict(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
        ...              keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6,
        ...              memory_per_connection_bytes=12e3, backplane_publish_base_s=1.5e-5,
        ...              backplane_latency_s=2e-4)
        >>> Calibration(**costs, connections=300).memory_per_connection_bytes
        12000.0
        >>> Calibration(**costs, connections=0)
        Traceback (most recent call last):
        ...
        ValueError: calibration connections must be an integer >= 1, got 0
    """

    invocation_cpu_s: float = _hub_cost("CPU to read and dispatch one incoming hub message.")
    serialize_cpu_s: float = _hub_cost("CPU to serialise one outgoing message.")
    send_cpu_per_recipient_s: float = _hub_cost("CPU to write one serialised message to one connection.")
    keepalive_cpu_s: float = _hub_cost("CPU per keep-alive ping.")
    handshake_cpu_s: float = _hub_cost("CPU to accept one connection.")
    memory_base_bytes: float = _hub_cost("Resident memory of a hub with no connections.")
    memory_per_connection_bytes: float = _hub_cost("Resident memory each idle connection adds.")
    backplane_publish_base_s: float = _hub_cost("Redis service time per PUBLISH.")
    backplane_latency_s: float = _hub_cost("One-way hub-Redis latency.")
    connections: int = setting(
        ge=1, unit="connections", section="measurement", source=_MEASURED, help="Clients the costs were measured with."
    )
    send_cpu_per_recipient_busy_s: float = _hub_cost(
        "The per-recipient write cost while more work waits behind the fan-out (measured at the busier load; "
        "0: measured at one load only). Older files call it send_cpu_per_recipient_high_load_s.",
        0.0,
    )
    loadgen_cpu_per_delivery_s: float = _loadgen_cost(
        "The load generator's CPU per message received (to predict a loopback run, not a hub)."
    )
    loadgen_cpu_per_read_s: float = _loadgen_cost(
        "The load generator's CPU per socket read, shared by the messages that read carries."
    )
    loadgen_cpu_per_wakeup_s: float = _loadgen_cost(
        "The load generator's CPU per event-loop wake-up that read something."
    )
    loadgen_cpu_per_send_s: float = _loadgen_cost("The load generator's CPU to send one broadcast.")
    loadgen_stall_mean_s: float = _loadgen_cost(
        "Mean wait of the load generator's loop on a writing hub's core when the loop is idle (0: none seen)."
    )
    loadgen_stall_busy_scale: float = _loadgen_cost(
        "That wait shrinks as exp(-busy / this) with the loop's busy fraction.", 1.0, ge=None, gt=0
    )
    low_load_deliveries_per_s: float = setting(
        0.0, ge=0, unit="deliveries/s", section="measurement", source=_MEASURED,
        help="Deliveries per second per process at which the per-delivery costs were measured.",
    )  # fmt: skip
    high_load_deliveries_per_s: float = setting(
        0.0, ge=0, unit="deliveries/s", section="measurement", source=_MEASURED,
        help="A second, busier load level (0: costs measured at one load only).",
    )  # fmt: skip
    host: str = setting("", section="provenance", source=_MEASURED, help="The machine measured.")
    created_at: str = setting("", section="provenance", source=_MEASURED, help="When (ISO 8601, UTC).")
    simscale_version: str = setting("", section="provenance", source=_MEASURED, help="simscale that measured.")
    notes: dict[str, Any] = setting(
        default_factory=dict, section="provenance", source=_MEASURED, help="The raw runs behind the fits."
    )
    replicates: int = setting(
        1, ge=1, unit="replicates", section="uncertainty", source=_MEASURED,
        help="Independent calibration runs behind each cost (each cost is their mean).",
    )  # fmt: skip
    intervals: dict[str, tuple[float, float]] = setting(
        default_factory=dict, section="uncertainty", source=_MEASURED,
        help="Each cost's 95 % Student-t confidence interval (low, high) over the replicates "
        "(empty: one replicate, or a file older than replication).",
    )  # fmt: skip
    host_time_slice_s: float | None = setting(
        None, gt=0, section="host", source=_MEASURED,
        help="The scheduler's time slice measured on the host at calibration (None: not measured, probe it).",
    )  # fmt: skip
    host_parallel_speed: float | None = setting(
        None, gt=0, section="host", source=_MEASURED,
        help="How many cores' worth of work the host ran in parallel at calibration (None: not measured).",
    )  # fmt: skip

    def __post_init__(self) -> None:
        validate_fields(self, context="calibration ")
        # JSON has no tuples: a loaded file's [low, high] lists become pairs, so a round trip is equal.
        intervals = {str(name): tuple(map(float, pair)) for name, pair in self.intervals.items()}
        costs = calibrated_fields(include_loadgen=True)
        for name, pair in intervals.items():
            if name not in costs:
                raise ValueError(f"calibration intervals names a cost that is not calibrated: {name!r}")
            if len(pair) != 2 or not all(math.isfinite(bound) for bound in pair) or not pair[0] <= pair[1]:
                raise ValueError(
                    f"calibration intervals[{name!r}] must be finite (low, high) with low <= high, got {pair}"
                )
        object.__setattr__(self, "intervals", intervals)

    def interval(self, name: str) -> tuple[float, float]:
        """Cost ``name``'s 95 % confidence interval; ``(value, value)`` when it has none (one replicate).

        Example:

            >>> from simscale.scenarios import Calibration
            >>> costs = dict(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
            ...              keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6,
            ...              memory_per_connection_bytes=12e3, backplane_publish_base_s=1.5e-5,
            ...              backplane_latency_s=2e-4, connections=300)
            >>> replicated = Calibration(**costs, replicates=3, intervals={"invocation_cpu_s": (4e-6, 6e-6)})
            >>> replicated.interval("invocation_cpu_s")
            (4e-06, 6e-06)
            >>> Calibration(**costs).interval("serialize_cpu_s")
            (2e-06, 2e-06)
        """
        value = float(getattr(self, name))
        low, high = self.intervals.get(name, (value, value))
        return low, high


def calibrated_fields(*, include_loadgen: bool = False) -> tuple[str, ...]:
    """Names of the costs a calibration measures, each also the Scenario field it replaces.

    The hub's costs, and the load generator's when ``include_loadgen`` (those predict a loopback
    load test, not a hub). Read from the Calibration's own field sections, so this is the one list.
    """
    sections = {HUB_COSTS, LOADGEN_COSTS} if include_loadgen else {HUB_COSTS}
    return tuple(spec.name for spec in dataclasses.fields(Calibration) if spec.metadata.get("section") in sections)


CALIBRATED_FIELDS = calibrated_fields()
"""Scenario fields a calibration replaces: the hub's own costs."""

LOADGEN_FIELDS = tuple(name for name in calibrated_fields(include_loadgen=True) if name not in CALIBRATED_FIELDS)
"""Scenario fields that describe the load generator; set only when predicting a loopback load test."""


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save_calibration(calibration: Calibration, path: str | Path) -> str:
    """Write ``calibration`` as JSON with its hash; returns the hash.

    Example:

        >>> import tempfile
        >>> from pathlib import Path
        >>> from simscale.scenarios import Calibration, load_calibration, save_calibration
        >>> calibration = Calibration(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
        ...     keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6, memory_per_connection_bytes=12e3,
        ...     backplane_publish_base_s=1.5e-5, backplane_latency_s=2e-4, connections=300)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "calibration.json"
        ...     digest = save_calibration(calibration, path)
        ...     load_calibration(path) == calibration
        True
        >>> len(digest)  # SHA-256, hex
        64
    """
    body = dataclasses.asdict(calibration)
    digest = _digest(body)
    Path(path).write_text(json.dumps({**body, "hash": digest}, indent=2, sort_keys=True) + "\n")
    return digest


def load_calibration(path: str | Path) -> Calibration:
    """Read and verify a calibration file; ``ValueError`` on a missing file, bad JSON or a wrong hash.

    Example (:func:`save_calibration` shows a round trip):

        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from simscale.scenarios import load_calibration
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "edited.json"
        ...     _ = path.write_text(json.dumps({"connections": 300, "hash": "0" * 64}))
        ...     load_calibration(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: calibration_file '.../edited.json' does not match its hash (edited or truncated?)
    """
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
    # Renamed only now: the hash is over the file as it was written, old names and all.
    data = {_RENAMED_KEYS.get(key, key): value for key, value in data.items()}
    known = {spec.name for spec in dataclasses.fields(Calibration)}
    try:
        return Calibration(**{key: value for key, value in data.items() if key in known})
    except TypeError as error:
        raise ValueError(f"calibration_file {str(path)!r} is incomplete: {error}") from None


def calibrated_costs(calibration: Calibration, *, include_loadgen: bool = False) -> dict[str, float | str]:
    """Scenario fields from a calibration: the hub's costs, and the load generator's when asked.

    The hub's cost per recipient was measured at a quiet and at a busy load; the model uses the busy
    one while work is queued (the hub then writes several frames per socket in one system call). The
    load generator's cost is split into a part per message and a part per socket read; its loop's
    stalls on a writing hub's core come with it. With the load generator's costs comes
    ``client_host="one-loop"``: those costs describe our one-loop load generator, and the model only
    charges them on that client host, so costs without it would predict a load test they cannot.
    """
    costs: dict[str, float | str] = {
        name: float(getattr(calibration, name)) for name in calibrated_fields(include_loadgen=include_loadgen)
    }
    if include_loadgen:
        costs["client_host"] = "one-loop"
    return costs


def apply_calibration(scenario: Scenario) -> Scenario:
    """The scenario with its calibration file's costs in place of the defaults (if it names one)."""
    if not scenario.calibration_file:
        return scenario
    return scenario.replace(**calibrated_costs(load_calibration(scenario.calibration_file)))
