"""Calibrated costs from measurements: pure functions, no processes, no I/O, no event loop.

Each function takes raw readings (:mod:`simscale.validation.records`) and returns costs, so each fit
can be checked on synthetic measurements made from known costs. How the readings become costs:

* memory per idle connection and the accept cost: differences of one hub's RSS and CPU before and
  after ``N`` clients connect (and, for the CPU, close again), so the interpreter's footprint cancels;
* CPU per keep-alive: the held idle clients' CPU beyond an empty hub's idling, per ping;
* the hub's per-message and per-recipient costs: its CPU beyond idling over the quiet broadcast
  runs, least squares on ``broadcasts·(read + serialise) + deliveries·send``; serialisation is
  timed on its own and taken out of the per-broadcast part; the cost per recipient again over the
  busy runs (the model uses that one while work is queued);
* the load generator's own CPU over all runs: ``broadcasts·send + wake-ups·per_wakeup +
  reads·per_read + messages·per_message`` by non-negative least squares on relative errors;
* its loop's stalls (:mod:`simscale.validation.stalls`) in the quiet and moderate runs;
* Redis: the per-PUBLISH service time, and half of what a round trip takes beyond it.

A replicated calibration fits each replicate on its own, then :func:`combine_replicates` takes each
cost's mean and its 95 % Student-t confidence interval over the replicates (few replicates, unknown
variance: the t distribution with ``n - 1`` degrees of freedom, not the normal one).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from simscale.scenarios.calibration import Calibration, calibrated_fields
from simscale.validation.records import BroadcastRun, CalibrationMeasurements
from simscale.validation.stalls import StallCount, count_stalls, fit_stalls

__all__ = [
    "MIN_STALL_S",
    "HubBroadcastCosts",
    "IdleCosts",
    "LoadgenCosts",
    "combine_replicates",
    "fit_busy_send_cpu_per_recipient_s",
    "fit_calibration",
    "fit_hub_broadcast_costs",
    "fit_idle_costs",
    "fit_loadgen_costs",
    "fit_publish_costs",
    "fit_stall_counts",
    "replicate_speed",
    "t_interval",
]

MIN_STALL_S = 0.5e-3
"""Gaps between two passes shorter than this are the loop's own rhythm, not a stall."""
_MIN_SEND_S = 1e-7
_MIN_INVOCATION_S = 1e-6


def _require(condition: bool, parameter: str, message: str, value: object) -> None:
    if not condition:
        raise ValueError(f"{parameter} {message}, got {value!r}")


def _check_runs(runs: Sequence[BroadcastRun], parameter: str, at_least: int) -> None:
    _require(len(runs) >= at_least, parameter, f"needs at least {at_least} broadcast runs", len(runs))
    for run in runs:
        _require(run.wall_s > 0, f"{parameter} wall_s", "must be positive", run.wall_s)
        _require(run.broadcasts >= 0 and run.deliveries >= 0, f"{parameter} counts", "must be >= 0", run)


@dataclass(frozen=True, slots=True)
class IdleCosts:
    """What idle connections cost the hub."""

    keepalive_cpu_s: float
    handshake_cpu_s: float
    memory_per_connection_bytes: float


def fit_idle_costs(measurements: CalibrationMeasurements) -> IdleCosts:
    """Per-ping, per-accept and per-connection costs from holding idle clients."""
    m = measurements
    _require(m.connections >= 1, "connections", "must be positive", m.connections)
    _require(m.empty_idle_s > 0, "empty_idle_s", "must be positive", m.empty_idle_s)
    _require(m.hold_s > 0, "hold_s", "must be positive", m.hold_s)
    _require(m.keepalive_interval_s > 0, "keepalive_interval_s", "must be positive", m.keepalive_interval_s)
    empty_idle_cpu_per_s = m.empty_idle_cpu_s / m.empty_idle_s
    pings = m.connections * m.hold_s / m.keepalive_interval_s
    return IdleCosts(
        keepalive_cpu_s=max(m.held_idle_cpu_s - empty_idle_cpu_per_s * m.hold_s, 0.0) / pings,
        handshake_cpu_s=m.connect_close_cpu_s / m.connections,
        memory_per_connection_bytes=max(m.connected_rss_delta_bytes / m.connections, 0.0),
    )


def _beyond_idle_s(run: BroadcastRun, idle_cpu_per_s: float) -> float:
    """The hub's CPU over a run's broadcast phase beyond what it spends idling."""
    return run.hub_cpu_s - run.wall_s * idle_cpu_per_s


@dataclass(frozen=True, slots=True)
class HubBroadcastCosts:
    """The hub's costs of a broadcast, fitted over quiet runs."""

    per_broadcast_s: float
    """Read, dispatch and serialise one broadcast (the raw fit, not floored)."""
    send_s: float
    """Write to one recipient (the raw fit, not floored)."""


def fit_hub_broadcast_costs(quiet: Sequence[BroadcastRun], idle_cpu_per_s: float) -> HubBroadcastCosts:
    """Least squares of the hub's CPU beyond idling on ``broadcasts·per_broadcast + deliveries·send``."""
    _check_runs(quiet, "quiet", 2)
    design = np.array([[run.broadcasts, run.deliveries] for run in quiet], dtype=np.float64)
    target = np.array([_beyond_idle_s(run, idle_cpu_per_s) for run in quiet])
    (per_broadcast_s, send_s), *_ = np.linalg.lstsq(design, target, rcond=None)
    return HubBroadcastCosts(float(per_broadcast_s), float(send_s))


def fit_busy_send_cpu_per_recipient_s(
    busy: Sequence[BroadcastRun], per_broadcast_s: float, idle_cpu_per_s: float
) -> float:
    """The per-recipient cost while work is queued: each busy run's CPU beyond idling and beyond
    its broadcasts' own cost, per delivery, averaged over the runs."""
    _check_runs(busy, "busy", 1)
    return statistics.fmean(
        max(
            (_beyond_idle_s(run, idle_cpu_per_s) - run.broadcasts * per_broadcast_s) / max(run.deliveries, 1),
            _MIN_SEND_S,
        )
        for run in busy
    )


@dataclass(frozen=True, slots=True)
class LoadgenCosts:
    """The load generator's CPU, split by what it does."""

    per_send_s: float
    per_wakeup_s: float
    per_read_s: float
    per_delivery_s: float


def fit_loadgen_costs(runs: Sequence[BroadcastRun]) -> LoadgenCosts:
    """Non-negative least squares of the load generator's CPU, each run weighted by its own size so
    that quiet runs count as much as busy ones."""
    _check_runs(runs, "runs", 1)
    for run in runs:
        _require(run.loadgen_cpu_s > 0, "runs loadgen_cpu_s", "must be positive", run.loadgen_cpu_s)
    loadgen_cpu = np.array([run.loadgen_cpu_s for run in runs])
    design = np.array([[run.broadcasts, run.wakeups, run.reads, run.deliveries] for run in runs], dtype=np.float64)
    (send_s, wakeup_s, read_s, message_s), _ = optimize.nnls(design / loadgen_cpu[:, None], np.ones(len(runs)))
    if read_s <= 0 or message_s <= 0:
        # The runs did not differ enough in messages per read to tell the two apart (a small
        # calibration's busy runs hit the rate cap alike): one cost per message, reads folded in.
        (send_s, wakeup_s, message_s), _ = optimize.nnls(
            design[:, [0, 1, 3]] / loadgen_cpu[:, None], np.ones(len(runs))
        )
        read_s = 0.0
    return LoadgenCosts(float(send_s), float(wakeup_s), float(read_s), float(message_s))


def fit_stall_counts(runs: Sequence[BroadcastRun], clients: int, send_cpu_per_recipient_s: float) -> list[StallCount]:
    """Stalled fan-outs per run: the loop waited more than half the hub's writing of a fan-out
    (at least :data:`MIN_STALL_S`) between two reads of it."""
    _require(clients >= 1, "clients", "must be positive", clients)
    _check_runs(runs, "runs", 1)
    threshold_s = max(0.5 * clients * send_cpu_per_recipient_s, MIN_STALL_S)
    return [
        StallCount(
            run.loadgen_cpu_s / run.wall_s, *count_stalls(run.sends_s, run.passes, clients, threshold_s), threshold_s
        )
        for run in runs
    ]


def fit_publish_costs(service_s: float, round_trip_s: float) -> tuple[float, float]:
    """(per-PUBLISH service time, one-way latency): a round trip is the service plus two one-way trips."""
    _require(service_s >= 0, "publish_service_s", "must be >= 0", service_s)
    _require(round_trip_s >= 0, "publish_round_trip_s", "must be >= 0", round_trip_s)
    return service_s, max(round_trip_s - service_s, 0.0) / 2


def fit_calibration(
    measurements: CalibrationMeasurements, *, host: str, created_at: str, simscale_version: str
) -> Calibration:
    """Every calibrated cost from one calibration's measurements."""
    m = measurements
    idle = fit_idle_costs(m)
    idle_cpu_per_s = m.empty_idle_cpu_s / m.empty_idle_s
    _require(len(m.quiet) >= 3, "quiet", "needs 3 broadcast runs (two at full size first)", len(m.quiet))
    _require(m.serialize_cpu_s >= 0, "serialize_cpu_s", "must be >= 0", m.serialize_cpu_s)
    hub = fit_hub_broadcast_costs(m.quiet, idle_cpu_per_s)
    send_cpu_per_recipient_s = max(hub.send_s, _MIN_SEND_S)
    invocation_cpu_s = max(hub.per_broadcast_s - m.serialize_cpu_s, _MIN_INVOCATION_S)
    busy_send_s = fit_busy_send_cpu_per_recipient_s(m.busy, hub.per_broadcast_s, idle_cpu_per_s)
    runs = [*m.quiet, *m.moderate, *m.busy]
    loadgen = fit_loadgen_costs(runs)
    # The two quiet runs at full size: the load at which the quiet costs were measured.
    low_load = sum(run.deliveries for run in m.quiet[:2]) / sum(run.wall_s for run in m.quiet[:2])
    high_load = m.busy[-1].deliveries / m.busy[-1].wall_s
    stall_counts = fit_stall_counts((m.quiet[0], m.quiet[1], *m.moderate), m.connections, send_cpu_per_recipient_s)
    stall_mean_s, stall_busy_scale = fit_stalls(stall_counts)
    publish_base_s, backplane_latency_s = fit_publish_costs(m.publish_service_s, m.publish_round_trip_s)
    return Calibration(
        invocation_cpu_s=invocation_cpu_s,
        serialize_cpu_s=m.serialize_cpu_s,
        send_cpu_per_recipient_s=send_cpu_per_recipient_s,
        keepalive_cpu_s=idle.keepalive_cpu_s,
        handshake_cpu_s=idle.handshake_cpu_s,
        memory_base_bytes=m.base_rss_bytes,
        memory_per_connection_bytes=idle.memory_per_connection_bytes,
        backplane_publish_base_s=publish_base_s,
        backplane_latency_s=backplane_latency_s,
        connections=m.connections,
        loadgen_cpu_per_delivery_s=loadgen.per_delivery_s,
        loadgen_cpu_per_read_s=loadgen.per_read_s,
        loadgen_cpu_per_wakeup_s=loadgen.per_wakeup_s,
        loadgen_cpu_per_send_s=loadgen.per_send_s,
        loadgen_stall_mean_s=stall_mean_s,
        loadgen_stall_busy_scale=stall_busy_scale,
        low_load_deliveries_per_s=low_load,
        high_load_deliveries_per_s=high_load,
        send_cpu_per_recipient_busy_s=busy_send_s,
        host=host,
        created_at=created_at,
        simscale_version=simscale_version,
        notes={
            "runs": [_run_note(run) for run in runs],
            "stalls": [
                {"busy": c.busy, "fan_outs": c.fan_outs, "stalled": c.stalled, "threshold_s": c.threshold_s}
                for c in stall_counts
            ],
        },
    )


def _run_note(run: BroadcastRun) -> dict[str, Any]:
    """A run's counts for the calibration file's notes (its traces are left out: they are large)."""
    return {
        "wall_s": run.wall_s,
        "clients": run.clients,
        "broadcasts": run.broadcasts,
        "deliveries": run.deliveries,
        "hub_cpu_s": run.hub_cpu_s,
        "loadgen_cpu_s": run.loadgen_cpu_s,
        "reads": run.reads,
        "wakeups": run.wakeups,
    }


def t_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t confidence interval of the mean of ``values`` (at least two).

    Example (three replicates of a cost; t = 4.30 for two degrees of freedom):

        >>> from simscale.validation.fitting import t_interval
        >>> mean, low, high = t_interval([10.0, 11.0, 12.0])
        >>> mean, round(low, 3), round(high, 3)
        (11.0, 8.516, 13.484)
    """
    _require(len(values) >= 2, "values", "needs at least 2 replicates for an interval", len(values))
    _require(0 < confidence < 1, "confidence", "must be between 0 and 1", confidence)
    mean = statistics.fmean(values)
    half_width = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * statistics.stdev(values)
    half_width /= math.sqrt(len(values))
    return mean, mean - half_width, mean + half_width


def combine_replicates(replicates: Sequence[Calibration]) -> Calibration:
    """One calibration from independently fitted replicates: each cost the replicates' mean, with its
    95 % Student-t interval (floored at 0: no cost is negative), the load levels averaged, the host's
    speed the replicates' median, the rest (connections, provenance) from the first; each replicate's
    costs are kept in ``notes``.

    Example (made-up replicates):

        >>> from simscale.scenarios import Calibration
        >>> from simscale.validation.fitting import combine_replicates
        >>> costs = dict(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4,
        ...              memory_base_bytes=40e6, memory_per_connection_bytes=12e3, backplane_publish_base_s=1.5e-5,
        ...              backplane_latency_s=2e-4, connections=300)
        >>> combined = combine_replicates([Calibration(**costs, send_cpu_per_recipient_s=send)
        ...                                for send in (9e-6, 10e-6, 11e-6)])
        >>> combined.replicates, round(combined.send_cpu_per_recipient_s * 1e6, 6)
        (3, 10.0)
        >>> [round(bound * 1e6, 2) for bound in combined.interval("send_cpu_per_recipient_s")]
        [7.52, 12.48]
    """
    _require(len(replicates) >= 1, "replicates", "needs at least one calibration", len(replicates))
    first = replicates[0]
    if len(replicates) == 1:
        return first
    costs = calibrated_fields(include_loadgen=True)
    values: dict[str, Any] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for name in costs:
        mean, low, high = t_interval([float(getattr(replicate, name)) for replicate in replicates])
        values[name] = mean
        intervals[name] = (max(low, 0.0), high)
    for name in ("low_load_deliveries_per_s", "high_load_deliveries_per_s"):
        values[name] = statistics.fmean(float(getattr(replicate, name)) for replicate in replicates)
    for name in ("host_time_slice_s", "host_parallel_speed"):
        measured = [getattr(replicate, name) for replicate in replicates if getattr(replicate, name) is not None]
        values[name] = statistics.median(measured) if measured else None
    notes = {
        **first.notes,
        "replicates": [
            {
                "created_at": replicate.created_at,
                **{name: float(getattr(replicate, name)) for name in costs},
                "runs": replicate.notes.get("runs", []),
            }
            for replicate in replicates
        ],
    }
    return dataclasses.replace(first, **values, intervals=intervals, replicates=len(replicates), notes=notes)


_SPEED_RUNS = 5
"""The quiet and moderate runs come first in a calibration's notes (the busy ones after): the speed
index reads those of them at full size, which one fan-out at a time keeps comparable."""


def replicate_speed(calibration: Calibration) -> tuple[float, float, float] | None:
    """(mean, low, high): one replicate's CPU per delivery, the hub's and the load generator's together,
    with its 95 % interval over that replicate's full-size quiet and moderate runs; a machine-speed index
    to compare replicates taken at different times. ``None`` without at least two such runs in its notes.

    Example (made-up runs; the slower machine needs more CPU per delivery):

        >>> from simscale.scenarios import Calibration
        >>> from simscale.validation.fitting import replicate_speed
        >>> def run(cpu_s): return dict(clients=300, deliveries=100_000, hub_cpu_s=cpu_s, loadgen_cpu_s=cpu_s)
        >>> costs = dict(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
        ...              keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6,
        ...              memory_per_connection_bytes=12e3, backplane_publish_base_s=1.5e-5,
        ...              backplane_latency_s=2e-4, connections=300)
        >>> calibration = Calibration(**costs, notes={"runs": [run(0.5), run(0.55), run(0.45)]})
        >>> [round(value * 1e6, 2) for value in replicate_speed(calibration)]
        [10.0, 7.52, 12.48]
    """
    runs = [
        run
        for run in calibration.notes.get("runs", [])[:_SPEED_RUNS]
        if run.get("clients") == calibration.connections and run.get("deliveries", 0) > 0
    ]
    if len(runs) < 2:
        return None
    return t_interval([(run["hub_cpu_s"] + run["loadgen_cpu_s"]) / run["deliveries"] for run in runs])
