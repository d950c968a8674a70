"""A hub server: a thread pool (or one event loop) in front of CPU cores, plus its bookkeeping.

Every piece of server work — a handshake, a hub method, a keep-alive tick, a broadcast fan-out —
is a *work item*: it waits for a thread, may hold that thread while blocked (no CPU), then queues
for a core for its CPU time. The two profiles differ only in the pool:

* ``aspnetcore``: a .NET thread pool starting at min threads = cores and growing when starved;
* ``asyncio-hub``: one event loop — a pool of exactly one "thread" that never grows, so the process
  uses at most one core and anything that blocks stalls every connection.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from simscale.model.cpu import BusyMeter, CoreTimeline, Cpu
from simscale.model.ports import PortPool
from simscale.model.threadpool import ThreadPool

__all__ = ["SimServer"]


class SimServer:
    """One hub server process."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        *,
        profile: str,
        cpu: Cpu,
        cores: int,
        min_threads: int,
        max_threads: int,
        injection_interval_s: float,
        horizon_s: float,
        sample_interval_s: float,
        phases: int,
        proxy_pools: list[PortPool],
    ) -> None:
        self.env = env
        self.index = index
        self.name = f"server-{index}"
        self.profile = profile
        self.cpu = cpu
        self.meter = BusyMeter(horizon_s, sample_interval_s)
        if profile == "asyncio-hub":
            self.cores = 1
            self.pool = ThreadPool(env, 1, 1, injection_interval_s, inject=False, cores=1)
        else:
            self.cores = cores
            self.pool = ThreadPool(
                env,
                min_threads,
                max_threads,
                injection_interval_s,
                inject=True,
                cores=cores,
                cpu_utilization=self.recent_cpu_utilization,
            )
        self.proxy_pools = proxy_pools
        self.last_message_at_s = 0.0
        self.last_ping_at_s = np.zeros(phases, dtype=np.float64)
        self.handshakes_in_progress = 0
        self.up = True
        """False while the server is down (crashed, partitioned, restarting): the balancer skips it."""
        self.buffered_bytes = 0.0
        """Copies waiting in outgoing buffers until their fan-out has written them."""
        self.timeline: CoreTimeline | None = None
        """Set when fan-outs are vectorised: every CPU part is booked on it, not queued for a SimPy lane."""

    def attach(self, timeline: CoreTimeline | None) -> None:
        """Book this server's CPU on ``timeline`` (vectorised fan-outs); ``None``: SimPy lanes, the reference."""
        self.timeline = timeline
        if timeline is not None:
            timeline.adopt(self.index, self.meter)

    @property
    def outgoing_bytes(self) -> float:
        """Copies waiting in outgoing buffers, vectorised fan-outs' included (call :meth:`settle` first)."""
        if self.timeline is None:
            return self.buffered_bytes
        return self.buffered_bytes + float(self.timeline.buffered_bytes[self.index])

    def settle(self) -> None:
        """Apply the vectorised fan-outs that have ended by now (their buffers, the last message time)."""
        if self.timeline is not None:
            self.timeline.settle(float(self.env.now))
            self.last_message_at_s = max(self.last_message_at_s, float(self.timeline.last_message_at_s[self.index]))

    def recent_cpu_utilization(self) -> float:
        """Utilisation of this server's cores over the last complete sampling interval."""
        current = int(self.env.now / self.meter.interval_s)
        return self.meter.busy_s(current - 1) / (self.meter.interval_s * self.cores)

    def work(self, cpu_s: float, hold_s: float = 0.0, *, blocking_on_task: bool = False) -> Generator[Any, Any, float]:
        """Process body of one work item; returns the time its CPU part started."""
        if self.timeline is not None and hold_s <= 0:
            # Vectorised fan-outs: nothing holds a thread without CPU, so with at least as many threads as
            # cores a thread is free whenever a core is; the work queues for the cores alone.
            started = yield from self.use_cpu(cpu_s)
            return started
        yield self.pool.acquire()
        if hold_s > 0:
            if blocking_on_task:
                self.pool.notify_blocking()
            yield self.env.timeout(hold_s)
        started = yield from self.use_cpu(cpu_s)
        self.pool.release()
        return started

    def work_unless(self, cpu_s: float, gave_up: Callable[[float], bool]) -> Generator[Any, Any, bool]:
        """Process body of a work item whose requester may have given up by the time it starts
        (``gave_up(now)`` then is true): it then spends no CPU. Returns whether it ran."""
        if self.timeline is not None:
            now = float(self.env.now)
            starts_s = self.timeline.next_start_s(self.index, now) if cpu_s > 0 else now
            if gave_up(starts_s):
                if starts_s > now:
                    yield self.env.timeout(starts_s - now)
                return False
            yield from self.use_cpu(cpu_s)
            return True
        yield self.pool.acquire()
        if gave_up(float(self.env.now)):
            self.pool.release()
            return False
        yield from self.use_cpu(cpu_s)
        self.pool.release()
        return True

    def use_cpu(
        self,
        cpu_s: float,
        *,
        on_start: Callable[[float], None] | None = None,
        on_pause: Callable[[float, float], None] | None = None,
    ) -> Generator[Any, Any, float]:
        """Hold one core for ``cpu_s`` (the caller already holds a thread); returns the start time.

        ``on_start`` is called with the start time as soon as a core is free (before the work ends).
        On time-shared cores the work may be paused: ``on_pause(cpu_done_s, paused_s)`` is called when
        it resumes, with the CPU time it had done and how long it waited.
        """
        if cpu_s <= 0:
            if on_start is not None:
                on_start(float(self.env.now))
            return float(self.env.now)
        if self.timeline is not None:
            # Vectorised fan-outs: the start is known at once, so the whole CPU part is one timeout.
            now = float(self.env.now)
            started = self.timeline.book(self.index, now, cpu_s)
            self.meter.add(started, cpu_s)
            if on_start is not None:
                on_start(started)
            yield self.env.timeout(started + cpu_s - now)
            return started
        lane = self.cpu.lanes.request()
        yield lane
        started = float(self.env.now)
        if on_start is not None:
            on_start(started)
        lane = yield from self.cpu.hold(lane, cpu_s, on_pause=on_pause, on_run=self.meter.add)
        self.cpu.lanes.release(lane)
        return started
