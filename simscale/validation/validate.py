"""``simscale validate``: run a seed scenario for real on loopback and simulated, side by side.

The real run: ``servers`` hub processes (``memory`` backplanes are independent servers — the
no-backplane case for real; ``backplane`` starts its own ``redis-server``) driven by the load
generator at several broadcast rates. The prediction: the ``asyncio-hub`` profile with the
calibration's costs, every process on this host's cores (the hubs and the load generator share
them, as they do for real). Both produce the same records; the comparison is one tidy DataFrame.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simscale.loadgen.runner import poisson_offsets_s
from simscale.metrics.records import RunSummary
from simscale.metrics.summary import cpu_utilization_by_server
from simscale.model.cpu import linux_time_slice_s
from simscale.scenarios import Scenario, preset, simulate
from simscale.scenarios.calibration import Calibration, calibrated_costs
from simscale.validation.processes import CpuSampler, HubProcesses, run_blocking

if TYPE_CHECKING:
    import pandas as pd

    from simscale.loadgen import LoadResult

__all__ = [
    "SATURATION_P99_MS",
    "VALIDATED_PRESETS",
    "ValidationResult",
    "agreement",
    "model_scenario",
    "validate",
]

VALIDATED_PRESETS = ("single-server", "no-backplane", "backplane")
SATURATION_P99_MS = 250.0
"""The broadcast rate where p99 latency passes this is the saturation rate."""

_DEFAULT_SERVERS = {"single-server": 1, "no-backplane": 2, "backplane": 2}
_LOOPBACK_LATENCY_S = 30e-6
_LOOPBACK_JITTER_S = 20e-6
_DRAIN_S = 2.0
_DRIFT_MIN_BUSY = 0.2


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The comparison table and what produced it."""

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

    def to_json_dict(self) -> dict[str, Any]:
        """``{"scenario": …, "comparisons": [{metric, load, server, predicted, measured, …}, …]}``."""
        rows = self.comparisons.astype(object).where(self.comparisons.notna(), None).to_dict(orient="records")
        return {
            "scenario": self.scenario,
            "comparisons": rows,
            "rates_per_s": self.rates_per_s,
            "wall_s": self.wall_s,
            "machine_speed_drift": self.machine_speed_drift,
        }


def model_scenario(
    name: str, servers: int, clients: int, calibration: Calibration, *, duration_s: float, warmup_s: float, seed: int
) -> Scenario:
    """The ``asyncio-hub`` scenario that predicts a loopback run of ``name``."""
    return preset(
        name,
        servers=servers,
        clients=clients,
        server_profile="asyncio-hub",
        shared_host_cores=os.cpu_count() or 1,
        # The hubs, the load generator (and redis-server) outnumber the cores: they take turns.
        cpu_time_slice_s=linux_time_slice_s(os.cpu_count() or 1),
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


def _saturation_from_points(rates: Sequence[float], p99_ms: Sequence[float | None]) -> float | None:
    """Where p99 crosses the threshold, interpolated in log space between the bracketing rates."""
    points = [(rate, p99) for rate, p99 in zip(rates, p99_ms, strict=True) if p99 is not None]
    for (low_rate, low_p99), (high_rate, high_p99) in itertools.pairwise(points):
        if low_p99 <= SATURATION_P99_MS < high_p99:
            weight = (math.log(SATURATION_P99_MS) - math.log(max(low_p99, 1e-9))) / (
                math.log(high_p99) - math.log(max(low_p99, 1e-9))
            )
            return low_rate + weight * (high_rate - low_rate)
    if points and points[0][1] > SATURATION_P99_MS:
        return points[0][0]  # saturated already at the lowest rate measured
    return None


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


def _relative_error(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return None
    if measured == 0:
        return 0.0 if predicted == 0 else None
    return (predicted - measured) / abs(measured)


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
    """Run ``name`` for real and simulated; compare delivered fraction, latency, throughput, CPU, memory."""
    import pandas as pd

    from simscale.backplane.redis_server import RedisServer
    from simscale.loadgen import LoadConfig, run_load
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
    if calibration is None:
        calibration = calibrate()
    clients = 3 * calibration.connections if clients is None else clients
    if not isinstance(clients, int) or clients < 1:
        raise ValueError(f"clients must be a positive integer, got {clients!r}")
    scenario = model_scenario(name, servers, clients, calibration, duration_s=duration_s, warmup_s=warmup_s, seed=seed)
    # The model's saturation rate is needed twice: to place the default rates around it, and as a result.
    predicted_saturation = _predicted_saturation(scenario, 20.0)
    if rates_per_s is None:
        rates_per_s = [round(predicted_saturation * factor, 2) for factor in (0.25, 0.5, 0.8, 1.2, 1.8)]
    rates = sorted(float(rate) for rate in rates_per_s)
    if len(rates) < 1 or any(not math.isfinite(rate) or rate <= 0 for rate in rates):
        raise ValueError(f"broadcast rates must be positive numbers, got {list(rates_per_s)!r}")

    measured: list[RunSummary] = []
    predicted: list[RunSummary] = []
    loadgen_work_s: list[tuple[float, float, float]] = []
    """(rate, the load generator's CPU seconds, what the calibration's costs say its work should take)."""
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        backplane = "memory"
        if name == "backplane":
            redis_server = stack.enter_context(RedisServer())
            backplane = redis_server.url
        hubs = stack.enter_context(HubProcesses(servers, backplane))
        base_rss = [hub.rss_bytes() for hub in hubs.servers]
        connected_rss: list[float] | None = None
        for rate in rates:
            config = LoadConfig(
                urls=hubs.urls,
                clients=clients,
                broadcast_rate_per_s=rate,
                duration_s=duration_s,
                warmup_s=warmup_s,
                drain_s=_DRAIN_S,
                seed=seed,
                scenario=name,
            )
            with CpuSampler(hubs.servers) as sampler:
                called_at = time.perf_counter()
                result = run_blocking(run_load(config))
            sends = [record.sent_at_s for record in result.records.broadcasts]
            if connected_rss is None:
                # Memory per idle connection: RSS once everyone is connected, before messages pile up.
                first_send_s = called_at + (min(sends) if sends else 0.0)
                connected_rss = [sampler.rss_bytes_at(i, first_send_s) for i in range(servers)]
            measured.append(result.summary)
            # Replay the load generator's own Poisson schedule (same function, same seed): the two
            # runs then differ in how they serve the broadcasts, not in how many there were.
            offsets = poisson_offsets_s(rate, warmup_s + duration_s, np.random.default_rng(seed))
            loadgen_work_s.append(
                (rate, result.broadcast_cpu_s, _calibrated_loadgen_cpu_s(calibration, result, len(offsets)))
            )
            model = simulate(
                scenario.replace(
                    broadcast_rate_per_s=rate,
                    broadcast_offsets_s=tuple(offsets.tolist()),
                )
            )
            predicted.append(model.summary)
            predicted_cpu = cpu_utilization_by_server(model.records, warmup_s, warmup_s + duration_s)
            for metric in ("delivered_fraction", "latency_p50_ms", "latency_p99_ms", "deliveries_per_s"):
                rows.append(
                    {
                        "metric": metric,
                        "load": rate,
                        "server": None,
                        "predicted": getattr(model.summary, metric),
                        "measured": getattr(result.summary, metric),
                    }
                )
            for server in range(servers):
                measured_cpu = (
                    sampler.utilization(server, called_at + min(sends), called_at + max(sends))
                    if len(sends) > 1
                    else None
                )
                rows.append(
                    {
                        "metric": "cpu_utilization",
                        "load": rate,
                        "server": server,
                        "predicted": predicted_cpu.get(server),
                        "measured": measured_cpu,
                    }
                )
    per_server_clients = clients / servers
    for server in range(servers):
        rows.append(
            {
                "metric": "memory_per_connection_kb",
                "load": None,
                "server": server,
                "predicted": calibration.memory_per_connection_bytes / 1000,
                "measured": (connected_rss[server] - base_rss[server]) / per_server_clients / 1000
                if connected_rss is not None
                else None,
            }
        )
    measured_saturation = _saturation_from_points(rates, [summary.latency_p99_ms for summary in measured])
    rows.append(
        {
            "metric": "saturation_broadcast_rate",
            "load": None,
            "server": None,
            "predicted": predicted_saturation,
            "measured": measured_saturation,
        }
    )
    frame = pd.DataFrame(rows, columns=["metric", "load", "server", "predicted", "measured"])
    # Latency is compared only below saturation — the model's and the hub's — since beyond it both
    # sides mostly measure their queue and drain.
    limit = min(predicted_saturation, measured_saturation if measured_saturation is not None else math.inf)
    is_latency = frame.metric.isin(["latency_p50_ms", "latency_p99_ms"])
    frame = frame[~is_latency | (frame.load.astype(float) < limit)].reset_index(drop=True)
    frame["relative_error"] = [_relative_error(p, m) for p, m in zip(frame.predicted, frame.measured, strict=True)]
    frame["calibrated_input"] = frame.metric.eq("memory_per_connection_kb")
    frame["load"] = frame.load.astype("float64")
    frame["server"] = frame.server.astype("Int64")
    frame["predicted"] = frame.predicted.astype("float64")
    frame["measured"] = frame.measured.astype("float64")
    frame["relative_error"] = frame.relative_error.astype("float64")
    # The machine's own drift between calibration and measurement (shared hosts speed up and slow
    # down by several per cent within minutes): the load generator's CPU for the work it counted, in
    # runs below saturation busy enough (a fifth of a core) for its fixed overheads not to dominate.
    busy_enough_s = _DRIFT_MIN_BUSY * (warmup_s + duration_s)
    ratios = [
        spent_s / expected_s
        for rate, spent_s, expected_s in loadgen_work_s
        if rate < limit and expected_s >= busy_enough_s
    ]
    return ValidationResult(
        scenario=name,
        comparisons=frame,
        calibration=calibration,
        measured=measured,
        predicted=predicted,
        rates_per_s=rates,
        wall_s=time.perf_counter() - started,
        machine_speed_drift=float(np.median(ratios)) - 1.0 if ratios else None,
    )


def _calibrated_loadgen_cpu_s(calibration: Calibration, result: LoadResult, sends: int) -> float:
    """The load generator's CPU for one run's work, at the calibration's costs.

    Reads and passes are counted over the whole broadcast phase; deliveries only after the warm-up,
    so they are scaled up by all ``sends`` over the counted ones.
    """
    counted = len(result.records.broadcasts)
    deliveries = (result.summary.deliveries or 0) * (sends / counted if counted else 0.0)
    return (
        sends * calibration.loadgen_cpu_per_send_s
        + result.loop_wakeups * calibration.loadgen_cpu_per_wakeup_s
        + result.socket_reads * calibration.loadgen_cpu_per_read_s
        + deliveries * calibration.loadgen_cpu_per_delivery_s
    )


def agreement(result: ValidationResult) -> dict[str, bool | None]:
    """The issue's agreement targets, checked on a result (None where a figure is missing)."""
    frame = result.comparisons

    def within(metric: str, tolerance: float) -> bool | None:
        errors = frame[frame.metric == metric].relative_error.dropna()
        return None if errors.empty else bool((errors.abs() <= tolerance).all())

    return {
        "delivered_fraction": within("delivered_fraction", 0.02),
        "saturation_broadcast_rate": within("saturation_broadcast_rate", 0.15),
        "latency_p50_ms": within("latency_p50_ms", 0.25),
        "memory_per_connection_kb": within("memory_per_connection_kb", 0.20),
    }
