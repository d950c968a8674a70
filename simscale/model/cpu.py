"""CPU: cores as a SimPy resource, and a meter that turns busy time into utilisation samples.

Think of a host's cores as checkout lanes: a work item queues for a free lane, holds it for its CPU
time, and the meter notes how long each lane was busy within each sampling interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy
from simpy.resources.resource import Request

__all__ = ["BusyMeter", "Cpu", "HostCores", "linux_time_slice_s", "own_machine"]


class BusyMeter:
    """Busy core-seconds per fixed sampling bin (time is split exactly across bin edges)."""

    def __init__(self, horizon_s: float, interval_s: float) -> None:
        self.interval_s = interval_s
        self._bins = np.zeros(math.ceil(horizon_s / interval_s) + 2, dtype=np.float64)

    def add(self, start_s: float, duration_s: float) -> None:
        """Count ``duration_s`` of one core busy from ``start_s``."""
        if duration_s <= 0:
            return
        end_s = start_s + duration_s
        first = int(start_s / self.interval_s)
        last = int(end_s / self.interval_s)
        size = len(self._bins)
        if first == last:
            if first < size:
                self._bins[first] += duration_s
            return
        for index in range(first, min(last, size - 1) + 1):
            lo = max(start_s, index * self.interval_s)
            hi = min(end_s, (index + 1) * self.interval_s)
            if hi > lo:
                self._bins[index] += hi - lo

    def busy_s(self, bin_index: int) -> float:
        """Busy core-seconds in bin ``bin_index`` (0 beyond the horizon)."""
        return float(self._bins[bin_index]) if 0 <= bin_index < len(self._bins) else 0.0


class HostCores:
    """The cores of one machine, whose speed falls as more of them are busy at once.

    ``parallel_speed`` is the work per second of all ``cores`` busy together over ``cores`` times that
    of one alone (as :func:`simscale.validation.host.probe_host` measures it). With ``k`` of them busy
    each runs at ``1 - (1 - parallel_speed) * (k - 1) / (cores - 1)`` of full speed: 1 alone, and
    ``parallel_speed`` with all busy, so the total is ``k`` times that. Several :class:`Cpu` (the hubs'
    shared cores, the load generator's own) may sit on one machine and count toward the same ``k``.

    >>> host = HostCores(cores=2, parallel_speed=0.6)
    >>> host.busy = 2
    >>> host.speed()
    0.6
    """

    def __init__(self, cores: int, parallel_speed: float) -> None:
        if cores < 1:
            raise ValueError(f"cores must be at least 1, got {cores!r}")
        if not 0 < parallel_speed <= 1:
            raise ValueError(f"parallel_speed must be in (0, 1], got {parallel_speed!r}")
        self.cores = cores
        self.parallel_speed = parallel_speed
        self.busy = 0
        """Cores of this machine running a slice now."""
        self._changed: simpy.Event | None = None
        """Succeeds when ``busy`` next changes (what running work waits for beside its own end)."""

    def speed(self) -> float:
        """Each busy core's speed (fraction of full) with ``busy`` cores running."""
        busy = min(self.busy, self.cores)
        if busy <= 1:
            return 1.0
        return 1.0 - (1.0 - self.parallel_speed) * (busy - 1) / (self.cores - 1)

    def run(self, env: simpy.Environment, cpu_s: float) -> Generator[Any, Any, None]:
        """Run ``cpu_s`` of work on one of these cores, at the speed of the moment: each time a core of
        the machine starts or stops, every running piece of work goes on at the new speed."""
        self._change(env, +1)
        remaining_s = cpu_s
        try:
            while remaining_s > 0:
                speed, since_s, changed = self.speed(), float(env.now), self._changed
                assert changed is not None
                done = env.timeout(remaining_s / speed)
                fired = yield done | changed
                if done in fired:
                    break
                remaining_s -= (float(env.now) - since_s) * speed
        finally:
            self._change(env, -1)

    def _change(self, env: simpy.Environment, delta: int) -> None:
        """One more or one fewer busy core: wake the running work so that it re-times itself."""
        self.busy += delta
        changed, self._changed = self._changed, env.event()
        if changed is not None:
            changed.succeed()


class Cpu:
    """Cores shared by the work of one or more servers (several servers may share one host).

    ``time_slice_s`` > 0 makes the cores time-shared, as an operating system's scheduler does: a work
    item that has run for a slice while others wait for a core goes to the back of the queue. 0: a
    work item holds its core until it is done.

    ``host``: the machine these cores belong to, when its cores slow each other down
    (:class:`HostCores`).
    """

    def __init__(
        self, env: simpy.Environment, cores: int, time_slice_s: float = 0.0, host: HostCores | None = None
    ) -> None:
        self.env = env
        self.cores = cores
        self.time_slice_s = time_slice_s
        self.host = host if host is not None and host.parallel_speed < 1.0 else None
        self.lanes = simpy.Resource(env, capacity=cores)

    def others_waiting(self) -> bool:
        """Whether some work item is queued for a core (a time-shared core would switch to it)."""
        return bool(self.lanes.queue)

    def hold(
        self,
        lane: Request,
        cpu_s: float,
        *,
        on_pause: Callable[[float, float], None] | None = None,
        on_run: Callable[[float, float], None] | None = None,
    ) -> Generator[Any, Any, Request]:
        """Run ``cpu_s`` of work on the core ``lane`` was granted; returns the request holding a core at the end.

        On time-shared cores the work steps aside at the end of a slice when others wait, and queues
        again; ``on_pause(cpu_done_s, paused_s)`` is called when it resumes. ``on_run(start_s, ran_s)``
        is called for each stretch it ran (what a utilisation meter counts). The caller releases the lane.
        """
        if self.host is not None:
            return (yield from self._hold_on_host(self.host, lane, cpu_s, on_pause=on_pause, on_run=on_run))
        run_from_s = float(self.env.now)
        done_s = run_done_s = 0.0
        slices = self.slices(cpu_s)
        for index, slice_s in enumerate(slices):
            yield self.env.timeout(slice_s)
            done_s += slice_s
            if index + 1 < len(slices) and self.others_waiting():
                if on_run is not None:
                    on_run(run_from_s, done_s - run_done_s)
                self.lanes.release(lane)
                paused_at_s = float(self.env.now)
                lane = self.lanes.request()
                yield lane
                run_from_s, run_done_s = float(self.env.now), done_s
                if on_pause is not None:
                    on_pause(done_s, run_from_s - paused_at_s)
        if on_run is not None:
            on_run(run_from_s, cpu_s - run_done_s)
        return lane

    def _hold_on_host(
        self,
        host: HostCores,
        lane: Request,
        cpu_s: float,
        *,
        on_pause: Callable[[float, float], None] | None,
        on_run: Callable[[float, float], None] | None,
    ) -> Generator[Any, Any, Request]:
        """:meth:`hold` on cores that slow down while others of the machine are busy (:meth:`HostCores.run`).

        The extra time of a slow slice is reported to ``on_pause`` at the CPU done when it began (what
        the work writes in that slice and later comes that much later); ``on_run`` counts wall time.
        """
        run_from_s = float(self.env.now)
        done_s = 0.0
        slices = self.slices(cpu_s)
        for index, slice_s in enumerate(slices):
            began_s = float(self.env.now)
            yield from host.run(self.env, slice_s)
            wall_s = float(self.env.now) - began_s
            if wall_s > slice_s and on_pause is not None:
                on_pause(done_s, wall_s - slice_s)
            done_s += slice_s
            if index + 1 < len(slices) and self.others_waiting():
                if on_run is not None:
                    on_run(run_from_s, float(self.env.now) - run_from_s)
                self.lanes.release(lane)
                paused_at_s = float(self.env.now)
                lane = self.lanes.request()
                yield lane
                run_from_s = float(self.env.now)
                if on_pause is not None:
                    on_pause(done_s, run_from_s - paused_at_s)
        if on_run is not None:
            on_run(run_from_s, float(self.env.now) - run_from_s)
        return lane

    def neighbour(self, share: float, phase_s: float) -> Generator[Any, Any, None]:
        """Work outside the model that takes ``share`` of a core (a busy process, a CPU quota): from
        ``phase_s`` on, once every ``hold / share`` it queues for a core and holds it for ``hold`` = one
        slice, or ``slice x share / (1 - share)`` when it takes more than half (a busy core alternates
        between it and the work that waits, one slice each, so one slice per turn cannot take more).

        Work that wants the core meanwhile waits behind it for at most ``hold`` (as a woken task waits
        for the running one's slice to end), and a busy core gives it ``share`` of its time.
        """
        if not 0 < share < 1 or self.time_slice_s <= 0:
            raise ValueError(f"a neighbour needs 0 < share < 1 and time-shared cores, got {share!r}")
        hold_s = self.time_slice_s * max(1.0, share / (1 - share))
        period_s = hold_s / share
        yield self.env.timeout(phase_s)
        next_s = float(self.env.now)
        while True:
            lane = self.lanes.request()
            yield lane
            yield self.env.timeout(hold_s)
            self.lanes.release(lane)
            next_s += period_s
            if next_s > self.env.now:
                yield self.env.timeout(next_s - float(self.env.now))

    def slices(self, cpu_s: float) -> list[float]:
        """``cpu_s`` cut into time slices (the last one shorter); one piece when cores are not time-shared."""
        if self.time_slice_s <= 0 or cpu_s <= self.time_slice_s:
            return [cpu_s]
        whole = math.ceil(cpu_s / self.time_slice_s) - 1
        return [self.time_slice_s] * whole + [cpu_s - whole * self.time_slice_s]


def linux_time_slice_s(cores: int) -> float:
    """The time slice Linux's EEVDF scheduler (6.6+) gives a task on a host with ``cores`` cores.

    ``sysctl_sched_base_slice`` is 0.75 ms, scaled by ``1 + log2(cores)`` with cores capped at 8
    (``SCHED_TUNABLESCALING_LOG``, kernel/sched/fair.c): 1.5 ms on 2 cores, 3 ms on 8 or more.
    """
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores!r}")
    return 0.75e-3 * (1 + math.floor(math.log2(min(cores, 8))))


def own_machine(cores: int, *, parallel_speed: float) -> HostCores | None:
    """A machine of ``cores`` of its own, whose cores slow each other down when ``parallel_speed`` < 1.

    ``None`` at 1.0 (independent cores: the plain :class:`Cpu` path) and for no cores at all.
    """
    return HostCores(cores, parallel_speed) if parallel_speed < 1.0 and cores > 0 else None
