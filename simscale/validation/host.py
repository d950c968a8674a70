"""The host a validation runs on: how fast its cores are together, and which core runs what.

A loopback validation runs the hubs, redis-server and the load generator on one machine. Two of its
properties do not transfer from the machine the model was tuned on, so they are measured here:

* the scheduler's **time slice** as a busy process sees it (how long one runs while another waits for
  its core; the kernel's base slice is a default that virtual machines and neighbours change);
* the **parallel speed**: the work ``cores`` busy processes get done together per second, over
  ``cores`` times what one gets done alone (1.0: independent cores; less on shared or throttled hosts,
  hyper-threads, or with noisy neighbours).

Also the **share** of the hubs' cores that work outside the model takes (:func:`probe_hub_share`: a
CPU quota on the hubs, busy neighbours on their cores). And the **placement**: where the host has the
cores, the load generator gets a core of its own and the hubs (with redis-server) the rest, so that
the two sides take turns on no core.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HostSpeed",
    "Placement",
    "host_placement",
    "model_host_fields",
    "probe_host",
    "probe_hub_share",
    "probe_loadgen_share",
]

_WORKER = Path(__file__).with_name("host_worker.py")
_MIN_PERIODS = 3
"""Fewer run periods than this: the slice was not observed (the probe's other process never ran)."""


@dataclass(frozen=True)
class HostSpeed:
    """What :func:`probe_host` measured on this machine."""

    cores: int
    """Cores this process may run on (its affinity set)."""
    time_slice_s: float
    """Median stretch a busy process ran on a core another busy process was waiting for."""
    parallel_speed: float
    """Work per second of ``cores`` busy processes together / (``cores`` x that of one alone), in (0, 1]."""

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise ValueError(f"cores must be at least 1, got {self.cores!r}")
        if not self.time_slice_s > 0:
            raise ValueError(f"time_slice_s must be > 0, got {self.time_slice_s!r}")
        if not 0 < self.parallel_speed <= 1:
            raise ValueError(f"parallel_speed must be in (0, 1], got {self.parallel_speed!r}")


@dataclass(frozen=True)
class Placement:
    """Which cores the hubs (and redis-server) and the load generator are pinned to; None: not pinned."""

    hub_cores: frozenset[int] | None
    loadgen_cores: frozenset[int] | None

    def __post_init__(self) -> None:
        for name in ("hub_cores", "loadgen_cores"):
            cores = getattr(self, name)
            if cores is not None and (not cores or min(cores) < 0):
                raise ValueError(f"{name} must be None or a non-empty set of core numbers >= 0, got {cores!r}")
        if (self.hub_cores is None) != (self.loadgen_cores is None):
            raise ValueError("hub_cores and loadgen_cores must both be pinned or both be None")
        if self.hub_cores is not None and self.loadgen_cores is not None and self.hub_cores & self.loadgen_cores:
            overlap = sorted(self.hub_cores & self.loadgen_cores)
            raise ValueError(f"hub_cores and loadgen_cores must not overlap, both hold {overlap}")

    @property
    def pinned(self) -> bool:
        """Whether the two sides run on separate cores."""
        return self.hub_cores is not None


def available_cores() -> frozenset[int]:
    """The cores this process may run on."""
    return frozenset(os.sched_getaffinity(0))


def host_placement(available: frozenset[int] | None = None) -> Placement:
    """Pin when there are at least two cores: the load generator on the highest, the hubs on the rest.

    >>> host_placement(frozenset({0, 1, 2, 3}))
    Placement(hub_cores=frozenset({0, 1, 2}), loadgen_cores=frozenset({3}))
    >>> host_placement(frozenset({5}))
    Placement(hub_cores=None, loadgen_cores=None)
    """
    cores = available_cores() if available is None else available
    if len(cores) < 2:
        return Placement(hub_cores=None, loadgen_cores=None)
    loadgen = max(cores)
    return Placement(hub_cores=frozenset(cores - {loadgen}), loadgen_cores=frozenset({loadgen}))


def model_host_fields(speed: HostSpeed, placement: Placement) -> dict[str, object]:
    """The Scenario overrides that model this host and placement.

    Pinned: the hubs share ``len(hub_cores)`` cores and the load generator runs on a core of its own
    (``loadgen_own_cores``); not pinned: everything shares all the cores, as on an unpinned host.

    >>> speed = HostSpeed(cores=2, time_slice_s=0.002, parallel_speed=0.8)
    >>> model_host_fields(speed, host_placement(frozenset({0, 1})))["shared_host_cores"]
    1
    >>> model_host_fields(speed, host_placement(frozenset({0})))["shared_host_cores"]
    2
    """
    if placement.hub_cores is not None and placement.loadgen_cores is not None:
        shared, loadgen_own = len(placement.hub_cores), len(placement.loadgen_cores)
    else:
        shared, loadgen_own = speed.cores, 0
    return {
        "shared_host_cores": shared,
        "loadgen_own_cores": loadgen_own,
        "cpu_time_slice_s": speed.time_slice_s,
        "cpu_parallel_speed": speed.parallel_speed,
    }


class _Workers:
    """Busy worker processes (``host_worker.py``) driven by JSON lines; stopped on exit."""

    def __init__(self, count: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-I", str(_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]

    def __enter__(self) -> _Workers:
        for process in self.processes:
            self._read(process)  # "ready"
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def _read(self, process: subprocess.Popen[str]) -> str:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("a host probe worker exited early")
        return line

    def run(self, commands: list[tuple[int, frozenset[int], str]], duration_s: float) -> list[dict[str, object]]:
        """Start ``(worker, cores, mode)`` commands together for ``duration_s``; their results in order."""
        start_at = time.monotonic() + 0.02  # time for every worker to read its command first
        for worker, cores, mode in commands:
            stdin = self.processes[worker].stdin
            assert stdin is not None
            line = {"cores": sorted(cores), "start_at": start_at, "end_at": start_at + duration_s, "mode": mode}
            stdin.write(json.dumps(line) + "\n")
            stdin.flush()
        return [json.loads(self._read(self.processes[worker])) for worker, _, _ in commands]


def _rate_per_s(result: dict[str, object]) -> float:
    iterations, elapsed_s = result["iterations"], result["elapsed_s"]
    assert isinstance(iterations, int) and isinstance(elapsed_s, float)
    return iterations / elapsed_s if elapsed_s > 0 else 0.0


def probe_host(*, budget_s: float = 2.0, available: frozenset[int] | None = None) -> HostSpeed:
    """Measure this host's time slice and parallel speed in about ``budget_s`` of wall time.

    Two busy processes pinned to the lowest core report how long each ran between pauses (the slice: the
    median of those run periods); then, twice in turn, one busy process alone and ``cores`` busy
    processes each pinned to a core of its own count their work (the parallel speed: the ratio of the
    medians, clipped to (0, 1]; 1.0 on one core). Processes start a little before each phase, so
    the total is ``budget_s`` plus their start-up.
    """
    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s!r}")
    cores = sorted(available_cores() if available is None else available)
    if not cores:
        raise ValueError("available must name at least one core")
    slice_core = frozenset({cores[0]})  # a hub core (host_placement): where processes take turns
    slice_phase_s = 0.4 * budget_s
    count_phase_s = 0.15 * budget_s  # four of them: alone, together, alone, together
    with _Workers(max(2, len(cores)), timeout_s=5.0 + budget_s) as workers:
        periods: list[float] = []
        for result in workers.run([(0, slice_core, "slice"), (1, slice_core, "slice")], slice_phase_s):
            values = result["periods_s"]
            assert isinstance(values, list)
            periods.extend(float(value) for value in values)
        alone: list[float] = []
        together: list[float] = []
        if len(cores) > 1:
            for _ in range(2):
                alone.append(_rate_per_s(workers.run([(0, frozenset(cores), "count")], count_phase_s)[0]))
                results = workers.run(
                    [(index, frozenset({core}), "count") for index, core in enumerate(cores)], count_phase_s
                )
                together.append(sum(_rate_per_s(result) for result in results))
    # Never preempted within the phase (too few periods): the slice is at least the phase.
    time_slice_s = statistics.median(periods) if len(periods) >= _MIN_PERIODS else slice_phase_s
    if alone and statistics.median(alone) > 0:
        ratio = statistics.median(together) / (len(cores) * statistics.median(alone))
        parallel_speed = min(1.0, max(ratio, 1e-3))
    else:
        parallel_speed = 1.0
    return HostSpeed(cores=len(cores), time_slice_s=time_slice_s, parallel_speed=parallel_speed)


def probe_hub_share(placement: Placement, *, budget_s: float = 0.5) -> float:
    """The share of the hubs' cores that work outside the model takes from a busy hub, in [0, 0.95].

    A busy process placed as a hub is (pinned to ``hub_cores`` and, when ``SIMSCALE_HUB_CGROUP`` is set,
    in that cgroup, as :func:`~simscale.validation.processes.place_hub_process` does) spins for about
    ``budget_s``; the share is 1 - the CPU time it was given / the wall time (a CPU quota of half a core,
    or one busy neighbour on its core: about 0.5), clipped (``shared_host_neighbour_share``).
    """
    return _core_share(placement.hub_cores or available_cores(), as_hub=True, budget_s=budget_s)


def probe_loadgen_share(placement: Placement, *, budget_s: float = 0.5) -> float:
    """As :func:`probe_hub_share`, on the load generator's own cores (``loadgen_neighbour_share``); 0 when
    it has none (not pinned: it shares the hubs' cores and their share)."""
    if placement.loadgen_cores is None:
        return 0.0
    return _core_share(placement.loadgen_cores, as_hub=False, budget_s=budget_s)


def _core_share(cores: frozenset[int], *, as_hub: bool, budget_s: float) -> float:
    """1 - CPU time / wall time of a busy process on ``cores`` (placed as a hub when ``as_hub``), clipped."""
    from simscale.validation.processes import place_hub_process

    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s!r}")
    with _Workers(1, timeout_s=5.0 + budget_s) as workers:
        if as_hub:
            place_hub_process(workers.processes[0].pid, cores)
        result = workers.run([(0, cores, "count")], budget_s)[0]
    cpu_s, elapsed_s = result["cpu_s"], result["elapsed_s"]
    assert isinstance(cpu_s, float) and isinstance(elapsed_s, float)
    if elapsed_s <= 0:
        return 0.0
    return min(0.95, max(0.0, 1.0 - cpu_s / elapsed_s))
