"""Keep-alive and the server timeout: what an idle connection costs and how a dead one is noticed.

Each server runs one heartbeat a second (ASP.NET Core's connection manager checks keep-alives and
timeouts on a one-second heartbeat). Clients are split into ``phases`` (keep-alive interval / 1 s) groups; each tick
pings one group — a write to each of its clients and a read of their own ping, as one work item —
so the ping load is spread evenly instead of arriving as one burst every interval. When a group's
last ping or message is older than the server timeout (a starved thread pool delays pings), its
clients that connected before that are dropped and reconnect.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = ["HEARTBEAT_S", "KeepAlive", "keepalive_phases"]

HEARTBEAT_S = 1.0
"""ASP.NET Core's heartbeat: keep-alives and timeouts are checked once a second."""


def keepalive_phases(keepalive_interval_s: float) -> int:
    """How many one-second groups the clients' pings are spread over."""
    return max(1, round(keepalive_interval_s / HEARTBEAT_S))


class KeepAlive:
    """The servers' heartbeats: pings by phase, and the server timeout that drops silent clients."""

    def __init__(
        self,
        env: simpy.Environment,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        *,
        phases: int,
        keepalive_cpu_s: float,
        server_timeout_s: float,
        drop: Callable[[npt.NDArray[np.int64], str], None],
    ) -> None:
        self.env = env
        self.population = population
        self.servers = servers
        self.phases = phases
        self.keepalive_cpu_s = keepalive_cpu_s
        self.server_timeout_s = server_timeout_s
        self.drop = drop
        """Drops connections that timed out (the connections component decides what happens next)."""

    def start(self) -> None:
        """One heartbeat process per server."""
        for server in self.servers:
            self.env.process(self._heartbeat(server))

    def _heartbeat(self, server: SimServer) -> Generator[Any, Any, None]:
        tick = 0
        while True:
            yield self.env.timeout(HEARTBEAT_S)
            self._check_server_timeouts(server)
            phase = tick % self.phases
            tick += 1
            # One ping per client of this phase, and the clients' own pings read back.
            cost_s = int(self.population.per_server_phase[server.index, phase]) * self.keepalive_cpu_s * 2
            self.env.process(self._ping(server, phase, cost_s))

    def _ping(self, server: SimServer, phase: int, cost_s: float) -> Generator[Any, Any, None]:
        yield from server.work(cost_s)
        server.last_ping_at_s[phase] = self.env.now

    def _check_server_timeouts(self, server: SimServer) -> None:
        """Clients that heard nothing (no ping, no message) for ``server_timeout_s`` drop."""
        now = float(self.env.now)
        limit_s = self.server_timeout_s
        server.settle()  # vectorised fan-outs that have ended since
        heard = np.maximum(server.last_ping_at_s, server.last_message_at_s)
        silent_phases = np.flatnonzero((now - heard > limit_s) & (self.population.per_server_phase[server.index] > 0))
        if len(silent_phases) == 0:
            return
        population = self.population
        candidates = np.flatnonzero((population.server_of == server.index) & np.isin(population.phase, silent_phases))
        timed_out = candidates[population.connected_at[candidates] < now - limit_s]
        self.drop(timed_out.astype(np.int64), "server_timeout")
