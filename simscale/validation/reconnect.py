"""``simscale validate reconnect-storm``: kill a hub under load, for real and in the model, side by side.

The real run: ``servers`` hub processes joined by a real ``redis-server`` (:func:`live_cluster`), the load
generator's clients spread over them with a broadcast load; some seconds into the broadcasts one hub
process gets SIGKILL, and its clients reconnect to the survivors on the reconnect delays (the load
generator's ``reconnect_delays_s``/``reconnect_jitter``, the preset's by default). The prediction: the
``reconnect-storm`` preset at the same sizes on the ``asyncio-hub`` profile with the calibration's
costs, its failure at the same moment of the same broadcast schedule (a crash that lasts to the end of
the run: the killed process does not come back), and no blocking handshake (``handshake_wait_s=0``:
the real hub's accept is pure CPU on its one loop).

Both sides' records give :func:`~simscale.metrics.reconnects.storm_figures`: ``recovery_s``,
``peak_handshakes_per_s`` on the survivors and ``broadcasts_lost`` during the gap, compared in the
table and verdict form of every validation (:mod:`simscale.validation.comparing`), with the
refused and dropped connections beside them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from simscale.loadgen.runner import LoadResult, poisson_offsets_s
from simscale.metrics.reconnects import StormFigures, connected_timeline, storm_figures
from simscale.metrics.records import RunRecords, RunSummary
from simscale.model.cpu import linux_time_slice_s
from simscale.scenarios import Scenario, preset, simulate
from simscale.scenarios.calibration import Calibration
from simscale.validation.comparing import METRICS, Metric, Side, comparison_frame, verdict
from simscale.validation.host import HostSpeed, Placement
from simscale.validation.processes import run_blocking
from simscale.validation.validate import model_scenario

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "RECONNECT_METRICS",
    "ReconnectValidationResult",
    "StormSide",
    "storm_scenario",
    "validate_reconnect_storm",
]

PRESET = "reconnect-storm"
_DRAIN_S = 2.0
_FAILED_SERVER = 0
"""Which server is killed (the preset's ``server_failure_server``)."""
_MAX_SERVERS = 4
"""Processes beyond this on a small host measure the scheduler, not the storm."""


@dataclass(frozen=True, slots=True)
class StormSide(Side):
    """A :class:`~simscale.validation.comparing.Side` that also holds one storm's figures."""

    storm: StormFigures | None = None


def _storm(name: str) -> Callable[[Side, int, int], float | None]:
    def read(side: Side, rate: int, server: int) -> float | None:
        figures = cast(StormSide, side).storm
        value = None if figures is None else getattr(figures, name)
        return None if value is None else float(value)

    return read


def _summary(name: str) -> Callable[[Side, int, int], float | None]:
    def read(side: Side, rate: int, server: int) -> float | None:
        value = getattr(side.summaries[rate], name)
        return None if value is None else float(value)

    return read


RECONNECT_METRICS: tuple[Metric, ...] = (
    Metric("recovery_s", "s", _storm("recovery_s"), tolerance=0.25),
    Metric("peak_handshakes_per_s", "handshakes/s", _storm("peak_handshakes_per_s"), tolerance=0.5),
    Metric("broadcasts_lost", "broadcasts", _storm("broadcasts_lost"), tolerance=0.3),
    next(metric for metric in METRICS if metric.name == "delivered_fraction"),
    Metric("connections_refused", "attempts", _summary("connections_refused")),
    Metric("connections_dropped", "connections", _summary("connections_dropped")),
)
"""What a reconnect storm compares. The delays decide the recovery, so it is held to 25 %; the peak of
handshakes also depends on how fast the load generator opens connections, so only to 50 %; a lost
broadcast is a whole one, so a few more or fewer are 30 % of a short gap. The refused and dropped counts
are shown, not judged."""


@dataclass(frozen=True, slots=True)
class ReconnectValidationResult:
    """The comparison table of a reconnect storm and what produced it (the form of every validation).

    Example (made-up numbers; :func:`validate_reconnect_storm` measures real ones):

        >>> import pandas as pd
        >>> from simscale.validation.reconnect import ReconnectValidationResult
        >>> comparisons = pd.DataFrame({"metric": ["recovery_s", "broadcasts_lost"], "load": [2.0, 2.0],
        ...     "server": [None, None], "predicted": [10.1, 20.0], "measured": [10.6, 21.0],
        ...     "relative_error": [-0.05, -0.05], "calibrated_input": [False, False]})
        >>> result = ReconnectValidationResult("reconnect-storm", comparisons, rates_per_s=[2.0], wall_s=60.0)
        >>> result.to_json_dict()["verdict"]["overall"], result.to_json_dict()["verdict"]["metrics"]["recovery_s"]
        ('agree', {'verdict': 'agree', 'tolerance': 0.25, 'unit': 's'})
    """

    scenario: str
    comparisons: pd.DataFrame
    """Columns: metric, load, server, predicted, measured, relative_error, calibrated_input."""
    rates_per_s: list[float]
    wall_s: float
    calibration: Calibration | None = None
    measured: list[RunSummary] = field(default_factory=list)
    predicted: list[RunSummary] = field(default_factory=list)
    killed_at_s: float | None = None
    """When the hub process was killed, in seconds from the start of the broadcasts."""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    """Connected clients over time on both sides: ``{"source", "time_s", "connected"}`` from the kill on."""
    machine_speed_drift: float | None = None
    """Not estimated for a storm (kept so the JSON has the same keys as every validation)."""

    def to_json_dict(self) -> dict[str, Any]:
        """``{"scenario": …, "comparisons": [{metric, load, server, predicted, measured, …}, …], …,
        "verdict": {"overall": …, "metrics": {…}}}``, as every ``simscale validate --json``."""
        rows = self.comparisons.astype(object).where(self.comparisons.notna(), None).to_dict(orient="records")
        return {
            "scenario": self.scenario,
            "comparisons": rows,
            "rates_per_s": self.rates_per_s,
            "wall_s": self.wall_s,
            "machine_speed_drift": self.machine_speed_drift,
            "killed_at_s": self.killed_at_s,
            "verdict": verdict(self, RECONNECT_METRICS),
        }


def storm_scenario(
    servers: int,
    clients: int,
    calibration: Calibration,
    *,
    rate_per_s: float,
    duration_s: float,
    warmup_s: float,
    kill_at_s: float,
    reconnect_delays_s: tuple[float, ...],
    reconnect_jitter: float,
    seed: int,
) -> Scenario:
    """``reconnect-storm`` at a loopback run's sizes on ``asyncio-hub``: server 0 crashes at ``kill_at_s``
    (from the start of the broadcasts) and stays down to the end of the run.

    Example:

        >>> from simscale.scenarios import Calibration
        >>> from simscale.validation.reconnect import storm_scenario
        >>> calibration = Calibration(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
        ...     keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6, memory_per_connection_bytes=12e3,
        ...     backplane_publish_base_s=1.5e-5, backplane_latency_s=2e-4, connections=300)
        >>> scenario = storm_scenario(3, 600, calibration, rate_per_s=2.0, duration_s=30.0, warmup_s=1.0,
        ...     kill_at_s=5.0, reconnect_delays_s=(10.0, 10.0, 30.0), reconnect_jitter=0.0, seed=0)
        >>> scenario.server_profile, scenario.server_failure_kind, scenario.server_failure_at_s
        ('asyncio-hub', 'crash', 5.0)
        >>> scenario.server_failure_duration_s, scenario.handshake_wait_s, scenario.backplane
        (26.0, 0.0, 'redis')
    """
    total_s = warmup_s + duration_s
    cores = os.cpu_count() or 1
    return model_scenario(
        PRESET,
        servers,
        clients,
        calibration,
        duration_s=duration_s,
        warmup_s=warmup_s,
        seed=seed,
        # The storm's processes are not pinned (live_cluster) and the host is not probed: as before.
        host=HostSpeed(cores=cores, time_slice_s=linux_time_slice_s(cores), parallel_speed=1.0),
        placement=Placement(hub_cores=None, loadgen_cores=None),
        hub_share=0.0,
        loadgen_share=0.0,
        overrides={
            "broadcast_rate_per_s": rate_per_s,
            "server_failure_kind": "crash",
            "server_failure_server": _FAILED_SERVER,
            "server_failure_at_s": kill_at_s,
            "server_failure_duration_s": total_s - kill_at_s,
            "handshake_wait_s": 0.0,
            "reconnect_delays_s": reconnect_delays_s,
            "reconnect_jitter": reconnect_jitter,
            "backplane": "redis",
        },
    )


def _measure(
    servers: int,
    clients: int,
    *,
    rate_per_s: float,
    duration_s: float,
    warmup_s: float,
    kill_at_s: float,
    reconnect_delays_s: tuple[float, ...],
    reconnect_jitter: float,
    seed: int,
) -> tuple[LoadResult, float]:
    """The real storm: returns the load generator's result and the kill time on its records' clock."""
    from simscale.loadgen import LoadConfig, run_load
    from simscale.validation.cluster import live_cluster

    with live_cluster(servers, backplane="redis") as cluster:
        config = LoadConfig(
            urls=cluster.urls,
            clients=clients,
            broadcast_rate_per_s=rate_per_s,
            duration_s=duration_s,
            warmup_s=warmup_s,
            drain_s=_DRAIN_S,
            seed=seed,
            scenario=PRESET,
            reconnect_delays_s=reconnect_delays_s,
            reconnect_jitter=reconnect_jitter,
        )
        victim = cluster.servers[_FAILED_SERVER].process
        broadcasting = threading.Event()
        finished = threading.Event()
        broadcast_start: list[float] = []
        killed_at: list[float] = []

        def kill_later() -> None:
            # Waits for the broadcasts (or the end of a run that failed before them); bounded by both.
            while not broadcasting.wait(0.05):
                if finished.is_set():
                    return
            deadline = broadcast_start[0] + kill_at_s
            while (left := deadline - time.perf_counter()) > 0:
                if finished.wait(min(left, 0.05)):
                    return
            killed_at.append(time.perf_counter())
            victim.kill()  # SIGKILL: no Close message, the kernel resets the sockets

        def on_phase(phase: str) -> None:
            if phase == "broadcast_start":
                broadcast_start.append(time.perf_counter())
                broadcasting.set()

        killer = threading.Thread(target=kill_later, daemon=True)
        killer.start()
        try:
            result = run_blocking(run_load(config, on_phase=on_phase))
        finally:
            finished.set()
            killer.join(5.0)
    if not killed_at:
        raise RuntimeError("the hub was not killed: the run ended before the kill time")
    return result, killed_at[0] - result.started_at_s


def _timeline(source: str, records: RunRecords, from_s: float) -> list[dict[str, Any]]:
    return [
        {"source": source, "time_s": round(time_s - from_s, 4), "connected": connected}
        for time_s, connected in connected_timeline(records.connections)
        if time_s >= from_s
    ]


def validate_reconnect_storm(
    *,
    servers: int = 3,
    clients: int = 600,
    rate_per_s: float = 2.0,
    calibration: Calibration | None = None,
    duration_s: float = 30.0,
    warmup_s: float = 1.0,
    kill_at_s: float = 5.0,
    reconnect_delays_s: Sequence[float] | None = None,
    reconnect_jitter: float | None = None,
    seed: int = 0,
) -> ReconnectValidationResult:
    """Kill one of ``servers`` hub processes ``kill_at_s`` into the broadcasts, for real and in the model.

    ``reconnect_delays_s`` and ``reconnect_jitter`` default to the preset's (10, 10, 30, 30, 30 s, none).
    A real run starts processes and takes about ``duration_s`` plus half a minute (``simscale validate
    reconnect-storm`` from a shell); the arguments are checked before anything starts.

    Example:

        >>> from simscale.validation.reconnect import validate_reconnect_storm
        >>> validate_reconnect_storm(servers=1)
        Traceback (most recent call last):
        ...
        ValueError: servers must be 2 to 4 (one is killed, the others take its clients), got 1
        >>> validate_reconnect_storm(kill_at_s=40.0)
        Traceback (most recent call last):
        ...
        ValueError: kill_at_s must be > warmup_s (1.0) and < warmup_s + duration_s (31.0), got 40.0
    """
    from simscale.validation.calibrate import calibrate

    started = time.perf_counter()
    if not isinstance(servers, int) or not 2 <= servers <= _MAX_SERVERS:
        raise ValueError(
            f"servers must be 2 to {_MAX_SERVERS} (one is killed, the others take its clients), got {servers!r}"
        )
    if not isinstance(clients, int) or not servers <= clients <= 100_000:
        raise ValueError(f"clients must be an integer from servers ({servers}) to 100000, got {clients!r}")
    if not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ValueError(f"rate_per_s must be a positive number of broadcasts/s, got {rate_per_s!r}")
    if not (duration_s > 0 and warmup_s >= 0):
        raise ValueError(f"duration_s must be > 0 and warmup_s >= 0, got {duration_s!r} and {warmup_s!r}")
    if not warmup_s < kill_at_s < warmup_s + duration_s:
        raise ValueError(
            f"kill_at_s must be > warmup_s ({warmup_s}) and < warmup_s + duration_s ({warmup_s + duration_s}), "
            f"got {kill_at_s!r}"
        )
    storm = preset(PRESET)
    delays = storm.reconnect_delays_s if reconnect_delays_s is None else tuple(float(d) for d in reconnect_delays_s)
    jitter = storm.reconnect_jitter if reconnect_jitter is None else float(reconnect_jitter)
    if calibration is None:
        calibration = calibrate()
    # Built first: it validates the delays and the jitter before any process starts.
    scenario = storm_scenario(
        servers, clients, calibration, rate_per_s=rate_per_s, duration_s=duration_s, warmup_s=warmup_s,
        kill_at_s=kill_at_s, reconnect_delays_s=delays, reconnect_jitter=jitter, seed=seed,
    )  # fmt: skip
    result, killed_at_s = _measure(
        servers, clients, rate_per_s=rate_per_s, duration_s=duration_s, warmup_s=warmup_s, kill_at_s=kill_at_s,
        reconnect_delays_s=delays, reconnect_jitter=jitter, seed=seed,
    )  # fmt: skip
    # The model replays the load generator's own send schedule (same function, same seed).
    offsets = poisson_offsets_s(rate_per_s, warmup_s + duration_s, np.random.default_rng(seed))
    model = simulate(scenario.replace(broadcast_offsets_s=tuple(offsets.tolist())))
    # Time 0 of the model is the start of the broadcasts; the load generator's is before it connects.
    broadcast_start_s = result.broadcast_started_at_s - result.started_at_s
    hub_end_s = broadcast_start_s + warmup_s + duration_s
    predicted = storm_figures(model.records, kill_at_s, _FAILED_SERVER, servers, warmup_s + duration_s)
    measured = storm_figures(result.records, killed_at_s, _FAILED_SERVER, servers, hub_end_s)
    model_side = StormSide((model.summary,), ({},), {}, None, storm=predicted)
    hub_side = StormSide((result.summary,), ({},), {}, None, storm=measured)
    return ReconnectValidationResult(
        scenario=PRESET,
        comparisons=comparison_frame([rate_per_s], servers, model_side, hub_side, RECONNECT_METRICS),
        rates_per_s=[rate_per_s],
        wall_s=time.perf_counter() - started,
        calibration=calibration,
        measured=[result.summary],
        predicted=[model.summary],
        killed_at_s=killed_at_s - broadcast_start_s,
        timeline=_timeline("model", model.records, kill_at_s) + _timeline("hub", result.records, killed_at_s),
    )


def run_command(args: Any) -> int:
    """``simscale validate reconnect-storm``: parse its flags (bad ones: ValueError naming the flag), run, print."""
    import json
    from pathlib import Path

    from simscale.loadgen.cli import parse_delays
    from simscale.scenarios.calibration import load_calibration, save_calibration

    delays = None if args.reconnect_delays is None else parse_delays(args.reconnect_delays)
    jitter: float | None = None
    if args.reconnect_jitter is not None:
        try:
            jitter = float(args.reconnect_jitter)
        except ValueError:
            raise ValueError(f"--reconnect-jitter must be a number, got {args.reconnect_jitter!r}") from None
        if not 0 <= jitter <= 1:
            raise ValueError(f"--reconnect-jitter must be a number >= 0 and <= 1, got {args.reconnect_jitter}")
    if delays is not None and (not delays or any(delay < 0 for delay in delays)):
        raise ValueError(f"--reconnect-delays must be seconds >= 0, got {args.reconnect_delays!r}")
    options: dict[str, Any] = {}
    if args.broadcast_rates is not None:
        try:
            rates = [float(part) for part in args.broadcast_rates.split(",")]
        except ValueError:
            raise ValueError(f"--broadcast-rates takes a number, got {args.broadcast_rates!r}") from None
        if len(rates) != 1 or not (math.isfinite(rates[0]) and rates[0] > 0):
            raise ValueError(
                f"reconnect-storm takes one positive rate in --broadcast-rates, got {args.broadcast_rates!r}"
            )
        options["rate_per_s"] = rates[0]
    if args.duration is not None:
        if not args.duration > 0:
            raise ValueError(f"--duration must be > 0, got {args.duration}")
        options["duration_s"] = args.duration
    if args.servers is not None:
        options["servers"] = args.servers
    if args.clients is not None:
        options["clients"] = args.clients
    result = validate_reconnect_storm(
        calibration=load_calibration(args.calibration) if args.calibration else None,
        reconnect_delays_s=delays,
        reconnect_jitter=jitter,
        seed=args.seed,
        **options,
    )
    if args.out:
        import pandas as pd

        directory = Path(args.out)
        directory.mkdir(parents=True, exist_ok=True)
        result.comparisons.to_csv(directory / "comparisons.csv", index=False)
        pd.DataFrame(result.timeline).to_csv(directory / "timeline.csv", index=False)
        if result.calibration is not None:
            save_calibration(result.calibration, directory / "calibration.json")
    if args.json:
        print(json.dumps(result.to_json_dict()))
        return 0
    import pandas as pd

    with pd.option_context("display.width", 140, "display.max_rows", 200):
        print(result.comparisons.to_string(index=False))
    judged = result.to_json_dict()["verdict"]
    words = ", ".join(f"{name} {entry['verdict']}" for name, entry in judged["metrics"].items())
    print(
        f"\n{PRESET}: hub killed {result.killed_at_s:.1f} s into the broadcasts; validated in {result.wall_s:.0f} s; "
        f"{judged['overall']} ({words})"
    )
    return 0
