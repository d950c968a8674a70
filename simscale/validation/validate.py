"""``simscale validate``: run a seed scenario for real on loopback and simulated, side by side.

The real run (:func:`~simscale.validation.measuring.measure_loopback`): ``servers`` hub processes
(``memory`` backplanes are independent servers — the no-backplane case for real; ``backplane``
starts its own ``redis-server``) driven by the load generator at several broadcast rates. The
prediction: the ``asyncio-hub`` profile with the calibration's costs on this host as measured
(:mod:`simscale.validation.host`: its time slice and parallel speed, and the placement — with two
cores or more the load generator has a core of its own and the hubs share the rest; with one they
all take turns). The comparison and its
verdict come from the one table of :mod:`simscale.validation.comparing`. This module only
orchestrates: measure → simulate → compare.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simscale.loadgen.runner import poisson_offsets_s
from simscale.metrics.records import RunSummary
from simscale.metrics.summary import cpu_utilization_by_server
from simscale.scenarios import Scenario, preset, simulate
from simscale.scenarios.calibration import Calibration, calibrated_costs
from simscale.validation.comparing import (
    SATURATION_P99_MS,
    Side,
    agreement,
    calibrated_loadgen_cpu_s,
    comparison_frame,
    latency_limit_per_s,
    machine_speed_drift,
    saturation_from_points,
    verdict,
)
from simscale.validation.host import (
    HostSpeed,
    Placement,
    host_placement,
    model_host_fields,
    probe_host,
    probe_hub_share,
    probe_loadgen_share,
)
from simscale.validation.measuring import measure_loopback

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SATURATION_P99_MS",
    "VALIDATED_PRESETS",
    "ValidationResult",
    "agreement",
    "model_scenario",
    "validate",
]

VALIDATED_PRESETS = ("single-server", "no-backplane", "backplane", "small-groups", "big-groups")

_DEFAULT_SERVERS = {"single-server": 1, "no-backplane": 2, "backplane": 2, "small-groups": 2, "big-groups": 2}
_LOOPBACK_LATENCY_S = 30e-6
_LOOPBACK_JITTER_S = 20e-6
_DRAIN_S = 2.0
_DRIFT_MIN_BUSY = 0.2


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The comparison table and what produced it.

    Example (made-up numbers; :func:`validate` measures real ones):

        >>> import pandas as pd
        >>> from simscale.scenarios import Calibration
        >>> from simscale.validation import ValidationResult, agreement
        >>> calibration = Calibration(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
        ...     keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6, memory_per_connection_bytes=12e3,
        ...     backplane_publish_base_s=1.5e-5, backplane_latency_s=2e-4, connections=300)
        >>> comparisons = pd.DataFrame({
        ...     "metric": ["delivered_fraction", "latency_p50_ms"], "load": [5.0, 5.0], "server": [None, None],
        ...     "predicted": [1.0, 2.0], "measured": [0.99, 3.0], "relative_error": [0.01, -0.33],
        ...     "calibrated_input": [False, False]})
        >>> result = ValidationResult("single-server", comparisons, calibration, measured=[], predicted=[],
        ...                           rates_per_s=[5.0], wall_s=12.0)
        >>> result.to_json_dict()["verdict"]["overall"]
        'disagree'
    """

    scenario: str
    comparisons: pd.DataFrame
    """Columns: metric, load, server, predicted, measured, relative_error, calibrated_input."""
    calibration: Calibration
    measured: list[RunSummary]
    predicted: list[RunSummary]
    rates_per_s: list[float]
    wall_s: float
    machine_speed_drift: float | None = None
    """How much more CPU the load generator needed for its work during the measurement than the
    calibration's costs say (0.1: 10 % slower); ``None`` when no run below saturation kept it busy
    a fifth of the time (below that its fixed overheads, not the work, decide its CPU)."""
    host: HostSpeed | None = None
    """The host as measured for the prediction (:func:`~simscale.validation.host.probe_host`)."""
    placement: Placement | None = None
    """Where the hubs and the load generator ran (:func:`~simscale.validation.host.host_placement`)."""
    hub_share: float | None = None
    """The share of the hubs' cores other work took (:func:`~simscale.validation.host.probe_hub_share`)."""
    loadgen_share: float | None = None
    """The share of the load generator's own cores other work took (``probe_loadgen_share``)."""

    def to_json_dict(self) -> dict[str, Any]:
        """``{"scenario": …, "comparisons": [{metric, load, server, predicted, measured, …}, …], …,
        "verdict": {"overall": …, "metrics": {…}}}``."""
        rows = self.comparisons.astype(object).where(self.comparisons.notna(), None).to_dict(orient="records")
        return {
            "scenario": self.scenario,
            "comparisons": rows,
            "rates_per_s": self.rates_per_s,
            "wall_s": self.wall_s,
            "machine_speed_drift": self.machine_speed_drift,
            "host": host_json(self.host, self.placement, self.hub_share, self.loadgen_share),
            "verdict": verdict(self),
        }


def host_json(
    host: HostSpeed | None,
    placement: Placement | None,
    hub_share: float | None = None,
    loadgen_share: float | None = None,
) -> dict[str, Any] | None:
    """The measured host and the placement as JSON: ``cores``, ``time_slice_s``, ``parallel_speed``,
    ``hub_share``, ``loadgen_share``, ``hub_cores`` and ``loadgen_cores`` (sorted lists, or null when not
    pinned).

    Example:

        >>> from simscale.validation.validate import host_json
        >>> host_json(HostSpeed(2, 0.003, 0.6), host_placement(frozenset({0, 1})))["loadgen_cores"]
        [1]
    """
    if host is None:
        return None

    def cores(chosen: frozenset[int] | None) -> list[int] | None:
        return None if chosen is None else sorted(chosen)

    return {
        "cores": host.cores,
        "time_slice_s": host.time_slice_s,
        "parallel_speed": host.parallel_speed,
        "hub_share": hub_share,
        "loadgen_share": loadgen_share,
        "hub_cores": cores(placement.hub_cores) if placement is not None else None,
        "loadgen_cores": cores(placement.loadgen_cores) if placement is not None else None,
    }


def group_fields(name: str, clients: int) -> dict[str, Any]:
    """The group sizes of preset ``name`` scaled to ``clients`` (the model and the load generator both get
    them, so both draw the same membership from the seed); empty for a broadcast preset.

    ``small-groups`` keeps groups of 10, one per client; ``big-groups`` keeps three groups of two thirds
    of the clients, two per client.

    Example:

        >>> from simscale.validation.validate import group_fields
        >>> group_fields("small-groups", 600)
        {'groups': 60, 'group_size': 10, 'groups_per_client': 1}
        >>> group_fields("big-groups", 600), group_fields("backplane", 600)
        ({'groups': 3, 'group_size': 400, 'groups_per_client': 2}, {})
    """
    if name == "small-groups":
        size = min(10, clients)
        return {"groups": max(1, clients // size), "group_size": size, "groups_per_client": 1}
    if name == "big-groups":
        return {"groups": 3, "group_size": max(1, 2 * clients // 3), "groups_per_client": 2}
    return {}


def model_scenario(
    name: str,
    servers: int,
    clients: int,
    calibration: Calibration,
    *,
    duration_s: float,
    warmup_s: float,
    seed: int,
    host: HostSpeed | None = None,
    placement: Placement | None = None,
    hub_share: float | None = None,
    loadgen_share: float | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """The ``asyncio-hub`` scenario that predicts a loopback run of ``name`` on this host.

    ``host``: the host's time slice and parallel speed (measured by
    :func:`~simscale.validation.host.probe_host` when None); ``placement``: where the processes run
    (:func:`~simscale.validation.host.host_placement` when None); ``hub_share``: the share of the hubs'
    cores that other work takes (:func:`~simscale.validation.host.probe_hub_share` when None), and
    ``loadgen_share`` of the load generator's own (:func:`~simscale.validation.host.probe_loadgen_share`);
    ``overrides``: more fields of that run, such as a reconnect storm's failure, validated together with
    the rest.
    """
    host = probe_host() if host is None else host
    placement = host_placement() if placement is None else placement
    hub_share = probe_hub_share(placement) if hub_share is None else hub_share
    loadgen_share = probe_loadgen_share(placement) if loadgen_share is None else loadgen_share
    return preset(
        name,
        **group_fields(name, clients),
        **dict(overrides or {}),
        servers=servers,
        clients=clients,
        server_profile="asyncio-hub",
        # The hubs (and redis-server) take turns on their cores; the load generator on its own or with them.
        **model_host_fields(host, placement),  # type: ignore[arg-type]
        shared_host_neighbour_share=hub_share,
        loadgen_neighbour_share=loadgen_share,
        proxy_hop=False,
        network_latency_s=_LOOPBACK_LATENCY_S,
        network_jitter_s=_LOOPBACK_JITTER_S,
        backplane_routing="direct-local",
        duration_s=warmup_s + duration_s,
        warmup_s=warmup_s,
        drain_s=_DRAIN_S,
        message_bytes=64,
        latency_samples_per_fanout=1_000,
        seed=seed,
        **calibrated_costs(calibration, include_loadgen=True),
    )


def _predicted_saturation(scenario: Scenario, high_per_s: float) -> float:
    """Bisect the model's broadcast rate for p99 = threshold (the model is cheap to run)."""

    def p99(rate: float) -> float:
        value = simulate(scenario.replace(broadcast_rate_per_s=rate)).summary.latency_p99_ms
        return math.inf if value is None else value

    low, high = 0.5, high_per_s
    while p99(high) <= SATURATION_P99_MS and high < 1e5:
        low, high = high, high * 2
    for _ in range(12):
        middle = math.sqrt(low * high)
        if p99(middle) > SATURATION_P99_MS:
            high = middle
        else:
            low = middle
        if high / low < 1.02:
            break
    return math.sqrt(low * high)


def validate(
    name: str,
    *,
    servers: int | None = None,
    clients: int | None = None,
    rates_per_s: Sequence[float] | None = None,
    calibration: Calibration | None = None,
    duration_s: float = 8.0,
    warmup_s: float = 1.0,
    seed: int = 0,
) -> ValidationResult:
    """Run ``name`` for real and simulated; compare delivered fraction, latency, throughput, CPU, memory.

    A real run starts hub processes and a load generator on this machine and takes minutes
    (``simscale validate NAME`` from a shell); the arguments are checked before anything starts.

    Example:

        >>> from simscale.validation import VALIDATED_PRESETS, validate
        >>> VALIDATED_PRESETS
        ('single-server', 'no-backplane', 'backplane', 'small-groups', 'big-groups')
        >>> validate("port-exhaustion")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: validate takes one of single-server, no-backplane, backplane, ..., got 'port-exhaustion'
    """
    from simscale.validation.calibrate import calibrate

    started = time.perf_counter()
    if name not in VALIDATED_PRESETS:
        raise ValueError(f"validate takes one of {', '.join(VALIDATED_PRESETS)}, got {name!r}")
    servers = _DEFAULT_SERVERS[name] if servers is None else servers
    if not isinstance(servers, int) or not 1 <= servers <= 2:
        raise ValueError(f"servers must be 1 or 2 (a 2-core host), got {servers!r}")
    if name != "single-server" and servers < 2:
        raise ValueError(f"{name} needs servers = 2, got {servers}")
    if name == "single-server" and servers != 1:
        raise ValueError(f"single-server needs servers = 1, got {servers}")
    placement = host_placement()
    if calibration is None:
        calibration = calibrate(placement=placement)
    host = probe_host()  # once per run, just before the measurement it models
    hub_share = probe_hub_share(placement)
    loadgen_share = probe_loadgen_share(placement)
    clients = 3 * calibration.connections if clients is None else clients
    if not isinstance(clients, int) or clients < 1:
        raise ValueError(f"clients must be a positive integer, got {clients!r}")
    scenario = model_scenario(
        name, servers, clients, calibration, duration_s=duration_s, warmup_s=warmup_s, seed=seed,
        host=host, placement=placement, hub_share=hub_share, loadgen_share=loadgen_share,
    )  # fmt: skip
    # The model's saturation rate is needed twice: to place the default rates around it, and as a result.
    predicted_saturation = _predicted_saturation(scenario, 20.0)
    if rates_per_s is None:
        rates_per_s = [round(predicted_saturation * factor, 2) for factor in (0.25, 0.5, 0.8, 1.2, 1.8)]
    rates = sorted(float(rate) for rate in rates_per_s)
    if len(rates) < 1 or any(not math.isfinite(rate) or rate <= 0 for rate in rates):
        raise ValueError(f"broadcast rates must be positive numbers, got {list(rates_per_s)!r}")

    groups = group_fields(name, clients)
    measurements = measure_loopback(
        name,
        servers,
        clients,
        rates,
        duration_s=duration_s,
        warmup_s=warmup_s,
        drain_s=_DRAIN_S,
        seed=seed,
        redis=scenario.backplane == "redis",
        load_fields={"send_target": "group", **groups} if groups else None,
        placement=placement,
    )
    predicted: list[RunSummary] = []
    predicted_cpu: list[dict[int, float | None]] = []
    predicted_received: list[dict[int, float | None]] = []
    loadgen_work_s: list[tuple[float, float, float]] = []
    """(rate, the load generator's CPU seconds, what the calibration's costs say its work should take)."""
    for run in measurements.runs:
        # Replay the load generator's own Poisson schedule (same function, same seed): the two
        # runs then differ in how they serve the broadcasts, not in how many there were.
        offsets = poisson_offsets_s(run.rate_per_s, warmup_s + duration_s, np.random.default_rng(seed))
        loadgen_work_s.append(
            (run.rate_per_s, run.broadcast_cpu_s, calibrated_loadgen_cpu_s(calibration, run, len(offsets)))
        )
        model = simulate(
            scenario.replace(broadcast_rate_per_s=run.rate_per_s, broadcast_offsets_s=tuple(offsets.tolist()))
        )
        predicted.append(model.summary)
        predicted_cpu.append(dict(cpu_utilization_by_server(model.records, warmup_s, warmup_s + duration_s)))
        predicted_received.append(dict(enumerate(map(float, model.records.backplane_messages_received_per_server))))

    measured = [run.summary for run in measurements.runs]
    # Group sends pick the same group and sender on both sides (one stream, one rule), so each server's
    # count is comparable exactly; a broadcast's sender comes from the model's main stream, so only the
    # total would be, and the per-server split is not judged.
    counts_compared = scenario.backplane == "redis" and scenario.send_target != "all"
    per_server_clients = clients / servers
    connected_rss = measurements.connected_rss_bytes
    model_side = Side(
        summaries=tuple(predicted),
        cpu_utilization=tuple(predicted_cpu),
        memory_per_connection_kb={server: calibration.memory_per_connection_bytes / 1000 for server in range(servers)},
        saturation_broadcast_rate=predicted_saturation,
        backplane_messages_received=tuple(predicted_received) if counts_compared else (),
    )
    hub_side = Side(
        summaries=tuple(measured),
        cpu_utilization=tuple(dict(enumerate(run.hub_cpu_utilization)) for run in measurements.runs),
        memory_per_connection_kb={
            server: (connected_rss[server] - measurements.base_rss_bytes[server]) / per_server_clients / 1000
            if connected_rss is not None
            else None
            for server in range(servers)
        },
        saturation_broadcast_rate=saturation_from_points(rates, [summary.latency_p99_ms for summary in measured]),
        backplane_messages_received=tuple(
            {server: float(count) for server, count in enumerate(run.backplane_messages_received)}
            for run in measurements.runs
        )
        if counts_compared
        else (),
    )
    # The machine's own drift between calibration and measurement (shared hosts speed up and slow
    # down by several per cent within minutes): the load generator's CPU for the work it counted, in
    # runs below saturation busy enough (a fifth of a core) for its fixed overheads not to dominate.
    drift = machine_speed_drift(
        loadgen_work_s, latency_limit_per_s(model_side, hub_side), _DRIFT_MIN_BUSY * (warmup_s + duration_s)
    )
    return ValidationResult(
        scenario=name,
        comparisons=comparison_frame(rates, servers, model_side, hub_side),
        calibration=calibration,
        measured=measured,
        predicted=predicted,
        rates_per_s=rates,
        wall_s=time.perf_counter() - started,
        machine_speed_drift=drift,
        host=host,
        placement=placement,
        hub_share=hub_share,
        loadgen_share=loadgen_share,
    )
