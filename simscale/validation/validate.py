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

import dataclasses
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
from simscale.validation.calibrate import DEFAULT_REPLICATES
from simscale.validation.comparing import (
    COLUMNS,
    SATURATION_P99_MS,
    Side,
    agreement,
    calibrated_loadgen_cpu_s,
    comparison_frame,
    drift_reason,
    latency_limit_per_s,
    machine_speed_drift,
    median_side,
    saturation_from_points,
    verdict,
    width_reason,
    with_intervals,
)
from simscale.validation.fitting import combine_replicates, replicate_speed
from simscale.validation.host import (
    HostSpeed,
    Placement,
    available_cores,
    host_placement,
    model_host_fields,
    probe_host,
    probe_hub_share,
    probe_loadgen_share,
)
from simscale.validation.measuring import measure_loopback
from simscale.validation.records import LoadRun

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
    untrusted_reason: str | None = None
    """Why the run cannot be trusted (the machine's speed drifted beyond the calibration replicates'
    intervals, or the prediction interval is wider than a tolerance band); ``None``: it can."""
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
        judged = verdict(self)
        return {
            "scenario": self.scenario,
            "comparisons": rows,
            "rates_per_s": self.rates_per_s,
            "wall_s": self.wall_s,
            "machine_speed_drift": self.machine_speed_drift,
            "host": host_json(self.host, self.placement, self.hub_share, self.loadgen_share),
            "calibration_replicates": self.calibration.replicates,
            "overall": judged["overall"],
            "reason": self.untrusted_reason,
            "verdict": judged,
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


def host_speed(calibration: Calibration) -> HostSpeed:
    """The host as the calibration measured it (its time slice and parallel speed, on the cores this
    process may use now); :func:`~simscale.validation.host.probe_host` for a file that did not measure it.

    Example (a calibration that measured the host: nothing is probed):

        >>> from simscale.scenarios import Calibration
        >>> from simscale.validation.validate import host_speed
        >>> costs = dict(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
        ...              keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6,
        ...              memory_per_connection_bytes=12e3, backplane_publish_base_s=1.5e-5,
        ...              backplane_latency_s=2e-4, connections=300)
        >>> speed = host_speed(Calibration(**costs, host_time_slice_s=2e-3, host_parallel_speed=0.9))
        >>> speed.time_slice_s, speed.parallel_speed
        (0.002, 0.9)
    """
    if calibration.host_time_slice_s is None or calibration.host_parallel_speed is None:
        return probe_host()
    return HostSpeed(
        cores=len(available_cores()),
        time_slice_s=calibration.host_time_slice_s,
        parallel_speed=min(calibration.host_parallel_speed, 1.0),
    )


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


def _predicted_saturation(scenario: Scenario, high_per_s: float, *, precision: float = 1.02) -> float:
    """Bisect the model's broadcast rate for p99 = threshold (the model is cheap to run), to within
    a factor ``precision``."""

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
        if high / low < precision:
            break
    return math.sqrt(low * high)


def _drawn(calibration: Calibration, rng: np.random.Generator) -> Calibration:
    """The calibration with every cost drawn uniformly from its 95 % interval (kept above zero where
    the cost must be positive)."""
    from simscale.config.scenario import Scenario

    # A wide interval can reach past what the field allows (a busy scale above 100, say): clip to the limits.
    limits: dict[str, Mapping[str, Any]] = {spec.name: spec.metadata for spec in dataclasses.fields(Scenario)}
    drawn: dict[str, Any] = {}
    for name, (low, high) in calibration.intervals.items():
        value = float(rng.uniform(low, high)) if high > low else low
        if name == "loadgen_stall_busy_scale":
            value = max(value, 1e-3 * float(getattr(calibration, name)))
        metadata = limits.get(name, {})
        upper, lower = metadata.get("le"), metadata.get("ge")
        value = value if upper is None else min(value, float(upper))
        drawn[name] = value if lower is None else max(value, float(lower))
    return dataclasses.replace(calibration, **drawn)


def _model_side(
    scenario: Scenario,
    rates: Sequence[float],
    *,
    warmup_s: float,
    duration_s: float,
    seed: int,
    saturation: float,
    counts_compared: bool,
    memory_per_connection_kb: float,
) -> Side:
    """The model's side at ``rates``, each run replaying the load generator's own Poisson schedule
    (same function, same seed): the two sides then differ in how they serve the broadcasts, not in
    how many there were."""
    summaries: list[RunSummary] = []
    cpu: list[dict[int, float | None]] = []
    received: list[dict[int, float | None]] = []
    for rate in rates:
        offsets = poisson_offsets_s(rate, warmup_s + duration_s, np.random.default_rng(seed))
        model = simulate(scenario.replace(broadcast_rate_per_s=rate, broadcast_offsets_s=tuple(offsets.tolist())))
        summaries.append(model.summary)
        cpu.append(dict(cpu_utilization_by_server(model.records, warmup_s, warmup_s + duration_s)))
        received.append(dict(enumerate(map(float, model.records.backplane_messages_received_per_server))))
    return Side(
        summaries=tuple(summaries),
        cpu_utilization=tuple(cpu),
        memory_per_connection_kb={server: memory_per_connection_kb for server in range(scenario.servers)},
        saturation_broadcast_rate=saturation,
        backplane_messages_received=tuple(received) if counts_compared else (),
    )


def _rate_groups(rates: Sequence[float], groups: int) -> list[list[float]]:
    """``rates`` in ``groups`` consecutive groups, as even as they split (none empty)."""
    groups = max(1, min(groups, len(rates)))
    return [list(map(float, part)) for part in np.array_split(np.asarray(rates, dtype=np.float64), groups)]


_DRAW_SPAN = 1.25
"""A draw's saturation is bisected within the means' own ÷/× this: a prediction interval reaching either
end is wider than saturation's ±15 % band anyway (untrusted), and far-off rates are slow to simulate."""


def _saturation_within(scenario: Scenario, low_per_s: float, high_per_s: float, *, precision: float = 1.05) -> float:
    """The model's saturation rate bisected between ``low_per_s`` and ``high_per_s`` (an end if beyond it)."""

    def saturated(rate: float) -> bool:
        value = simulate(scenario.replace(broadcast_rate_per_s=rate)).summary.latency_p99_ms
        return value is None or value > SATURATION_P99_MS

    if not saturated(high_per_s):
        return high_per_s
    if saturated(low_per_s):
        return low_per_s
    low, high = low_per_s, high_per_s
    while high / low >= precision:
        middle = math.sqrt(low * high)
        low, high = (low, middle) if saturated(middle) else (middle, high)
    return math.sqrt(low * high)


def validate(
    name: str,
    *,
    servers: int | None = None,
    clients: int | None = None,
    rates_per_s: Sequence[float] | None = None,
    calibration: Calibration | None = None,
    duration_s: float = 4.0,
    warmup_s: float = 1.0,
    seed: int = 0,
    replicates: int = 2,
    calibration_replicates: int = DEFAULT_REPLICATES,
    prediction_draws: int = 4,
    stop_when_untrusted: bool = False,
) -> ValidationResult:
    """Run ``name`` for real and simulated; compare delivered fraction, latency, throughput, CPU, memory.

    Without a ``calibration``, it calibrates ``calibration_replicates`` times, interleaved with the
    measured rates (one replicate before the first rate, one between each group of rates, one after
    the last), so that a machine whose speed drifts during the validation shows it; the prediction
    uses all replicates. Every rate is measured ``replicates`` times (``measured`` is the median,
    ``measured_low``/``measured_high`` the spread); the prediction interval comes from
    ``prediction_draws`` model runs with costs drawn from their intervals (seeded). A run that cannot
    be trusted (:func:`~simscale.validation.comparing.drift_reason`,
    :func:`~simscale.validation.comparing.width_reason`) has an ``untrusted_reason``; with
    ``stop_when_untrusted``, a given calibration whose saturation interval is already too wide returns
    before anything is measured (its comparisons hold that one row).

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
    from simscale.validation.calibrate import calibrate_once

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
    for label, value, least in (
        ("replicates", replicates, 1),
        ("calibration_replicates", calibration_replicates, 2),
        ("prediction_draws", prediction_draws, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= 20:
            raise ValueError(f"{label} must be an integer from {least} to 20, got {value!r}")
    placement = host_placement()
    interleaved: list[Calibration] = []
    if calibration is None:
        interleaved.append(calibrate_once(placement=placement))
    reference = calibration if calibration is not None else interleaved[0]
    # The host's speed as measured with the costs (probed now for a calibration that did not measure it).
    host = host_speed(reference)
    hub_share = probe_hub_share(placement)
    loadgen_share = probe_loadgen_share(placement)
    clients = 3 * reference.connections if clients is None else clients
    if not isinstance(clients, int) or clients < 1:
        raise ValueError(f"clients must be a positive integer, got {clients!r}")

    def scenario_of(costs: Calibration) -> Scenario:
        return model_scenario(
            name, servers, clients, costs, duration_s=duration_s, warmup_s=warmup_s, seed=seed,
            host=host, placement=placement, hub_share=hub_share, loadgen_share=loadgen_share,
        )  # fmt: skip

    # The model's saturation rate is needed twice: to place the default rates around it, and as a result.
    predicted_saturation = _predicted_saturation(scenario_of(reference), 20.0)
    if rates_per_s is None:
        rates_per_s = [round(predicted_saturation * factor, 2) for factor in (0.25, 0.5, 0.8, 1.2, 1.8)]
    rates = sorted(float(rate) for rate in rates_per_s)
    if len(rates) < 1 or any(not math.isfinite(rate) or rate <= 0 for rate in rates):
        raise ValueError(f"broadcast rates must be positive numbers, got {list(rates_per_s)!r}")
    rng = np.random.default_rng(seed)
    draws: list[Calibration] = []
    draw_saturations: list[float] = []

    def draw_predictions(costs: Calibration, point_saturation: float) -> None:
        """Draw the costs and bisect each draw's saturation (near the means' own)."""
        draws.clear()
        draw_saturations.clear()
        if not costs.intervals:
            return
        for _ in range(prediction_draws):
            drawn = _drawn(costs, rng)
            draws.append(drawn)
            draw_saturations.append(
                _saturation_within(scenario_of(drawn), point_saturation / _DRAW_SPAN, point_saturation * _DRAW_SPAN)
            )

    def saturation_span() -> tuple[float, float]:
        values = [predicted_saturation, *draw_saturations]
        return min(values), max(values)

    groups = group_fields(name, clients)
    scenario = scenario_of(reference)
    if calibration is not None:
        # A calibration given up front can be judged before anything is measured: too wide, the CLI
        # (which would show nothing but the reason) stops here; a caller may want the comparison anyway.
        draw_predictions(calibration, predicted_saturation)
        low, high = saturation_span()
        early = _frame(
            [
                {
                    "metric": "saturation_broadcast_rate",
                    "load": None,
                    "server": None,
                    "predicted": predicted_saturation,
                    "predicted_low": low,
                    "predicted_high": high,
                }
            ]
        )
        reason = width_reason(early)
        if reason is not None and stop_when_untrusted:
            return ValidationResult(
                scenario=name, comparisons=early.reindex(columns=list(COLUMNS)), calibration=calibration,
                measured=[], predicted=[], rates_per_s=rates, wall_s=time.perf_counter() - started,
                untrusted_reason=reason,
            )  # fmt: skip

    # Measure: the rates in groups, a calibration replicate between groups and after the last; each
    # rate `replicates` times, the replicates alternating over a group's rates so drift spreads evenly.
    rate_groups = _rate_groups(rates, calibration_replicates - 1 if calibration is None else 1)
    runs_by_rate: dict[float, list[LoadRun]] = {rate: [] for rate in rates}
    base_rss: tuple[float, ...] | None = None
    connected_rss: tuple[float, ...] | None = None
    for group in rate_groups:
        measurements = measure_loopback(
            name,
            servers,
            clients,
            group * replicates,
            duration_s=duration_s,
            warmup_s=warmup_s,
            drain_s=_DRAIN_S,
            seed=seed,
            redis=scenario.backplane == "redis",
            load_fields={"send_target": "group", **groups} if groups else None,
            placement=placement,
        )
        if base_rss is None:
            base_rss, connected_rss = measurements.base_rss_bytes, measurements.connected_rss_bytes
        for run in measurements.runs:
            runs_by_rate[run.rate_per_s].append(run)
        if calibration is None:
            interleaved.append(calibrate_once(placement=placement))
    if calibration is None:
        calibration = combine_replicates(interleaved)
        host = host_speed(calibration)  # scenario_of reads it: the replicates' median host
        scenario = scenario_of(calibration)
        predicted_saturation = _predicted_saturation(scenario, predicted_saturation / 2)
        draw_predictions(calibration, predicted_saturation)
    assert base_rss is not None

    # Group sends pick the same group and sender on both sides (one stream, one rule), so each server's
    # count is comparable exactly; a broadcast's sender comes from the model's main stream, so only the
    # total would be, and the per-server split is not judged.
    counts_compared = scenario.backplane == "redis" and scenario.send_target != "all"
    memory_kb = calibration.memory_per_connection_bytes / 1000
    sides = dict(warmup_s=warmup_s, duration_s=duration_s, seed=seed, counts_compared=counts_compared)
    model_side = _model_side(scenario, rates, saturation=predicted_saturation, memory_per_connection_kb=memory_kb,
                             **sides)  # type: ignore[arg-type]  # fmt: skip
    drawn_sides = [
        _model_side(scenario_of(drawn), rates, saturation=saturation,
                    memory_per_connection_kb=drawn.memory_per_connection_bytes / 1000, **sides)  # type: ignore[arg-type]
        for drawn, saturation in zip(draws, draw_saturations, strict=True)
    ]  # fmt: skip
    per_server_clients = clients / servers
    hub_sides = []
    for replicate in range(replicates):
        runs = [runs_by_rate[rate][replicate] for rate in rates]
        summaries = [run.summary for run in runs]
        hub_sides.append(
            Side(
                summaries=tuple(summaries),
                cpu_utilization=tuple(dict(enumerate(run.hub_cpu_utilization)) for run in runs),
                memory_per_connection_kb={
                    server: (connected_rss[server] - base_rss[server]) / per_server_clients / 1000
                    if connected_rss is not None
                    else None
                    for server in range(servers)
                },
                saturation_broadcast_rate=saturation_from_points(rates, [run.latency_p99_ms for run in summaries]),
                backplane_messages_received=tuple(
                    {server: float(count) for server, count in enumerate(run.backplane_messages_received)}
                    for run in runs
                )
                if counts_compared
                else (),
            )
        )
    hub_side = median_side(hub_sides)
    # The machine's own drift between calibration and measurement (shared hosts speed up and slow
    # down by several per cent within minutes): the load generator's CPU for the work it counted, in
    # runs below saturation busy enough (a fifth of a core) for its fixed overheads not to dominate.
    phase_s = warmup_s + duration_s
    loadgen_work_s = [
        (run.rate_per_s, run.broadcast_cpu_s, calibrated_loadgen_cpu_s(calibration, run, _sends(run, phase_s, seed)))
        for rate in rates
        for run in runs_by_rate[rate]
    ]  # fmt: skip
    drift = machine_speed_drift(
        loadgen_work_s, latency_limit_per_s(model_side, hub_side), _DRIFT_MIN_BUSY * (warmup_s + duration_s)
    )
    frame = with_intervals(
        comparison_frame(rates, servers, model_side, hub_side), rates, [model_side, *drawn_sides], hub_sides
    )
    speeds = [speed for speed in map(replicate_speed, interleaved) if speed is not None]
    reason = drift_reason(speeds) or width_reason(frame)
    return ValidationResult(
        scenario=name,
        comparisons=frame,
        calibration=calibration,
        measured=[summary for side in hub_sides for summary in side.summaries],
        predicted=list(model_side.summaries),
        rates_per_s=rates,
        wall_s=time.perf_counter() - started,
        machine_speed_drift=drift,
        untrusted_reason=reason,
        host=host,
        placement=placement,
        hub_share=hub_share,
        loadgen_share=loadgen_share,
    )


def _sends(run: LoadRun, phase_s: float, seed: int) -> int:
    """The broadcasts the load generator's schedule holds for ``run`` (the same function and seed)."""
    return len(poisson_offsets_s(run.rate_per_s, phase_s, np.random.default_rng(seed)))


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A comparisons frame from rows (pandas imported only when a validation runs)."""
    import pandas as pd

    return pd.DataFrame(rows)
