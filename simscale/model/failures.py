"""Server loss: a crash, a network partition, or a rolling deploy, and what the clients then do.

* ``crash``: the process dies; its clients' sockets close, so they notice at once and reconnect.
* ``partition``: the server is cut off but its sockets stay open; each client notices only when it
  has heard nothing for ``server_timeout_s`` (its last ping was up to a keep-alive interval earlier).
* ``deploy``: every server is restarted in turn, ``deploy_interval_s`` apart; each stops taking new
  connections and drains (closes) its clients first.

A failed server is down for ``server_failure_duration_s``; meanwhile the balancer sends no one there
(its health checks notice), and the dropped clients reconnect with their policy (the reconnect
delays and jitter) through the balancer to the servers that are up. When it is back it takes new
connections; nobody moves back by themselves.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import simpy

from simscale.metrics.records import ConnectionEventKind
from simscale.model.connections import Connections
from simscale.model.keepalive import HEARTBEAT_S
from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = ["ServerFailures"]


class ServerFailures:
    """Process that fails the chosen server (or redeploys them all) and brings it back.

    Example (three servers, server 1 crashes at 5 s for 5 s: its clients reconnect to the other two):

        >>> from simscale import preset, simulate
        >>> result = simulate(preset("no-backplane", clients=300, duration_s=15.0, warmup_s=1.0, seed=1,
        ...                          server_failure_kind="crash", server_failure_at_s=5.0,
        ...                          server_failure_server=1, server_failure_duration_s=5.0))
        >>> [(e.server, e.reason, e.clients) for e in result.records.connections if e.event == "dropped"]
        [(1, 'server_crash', 100)]
        >>> frame = result.frames()["resources"]
        >>> frame[frame["time_s"] == 8.0].set_index("server")["connections"].tolist()
        [150, 0, 150]
    """

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        connections: Connections,
        *,
        kind: str,
        at_s: float,
        server: int,
        duration_s: float,
        deploy_interval_s: float,
        keepalive_interval_s: float,
        server_timeout_s: float,
    ) -> None:
        if kind not in ("crash", "partition", "deploy"):
            raise ValueError(f"server_failure_kind must be one of 'crash', 'partition', 'deploy', got {kind!r}")
        self.env = env
        self.rng = rng
        self.population = population
        self.servers = servers
        self.connections = connections
        self.kind = kind
        self.at_s = at_s
        self.server = server
        self.duration_s = duration_s
        self.deploy_interval_s = deploy_interval_s
        self.keepalive_interval_s = keepalive_interval_s
        self.server_timeout_s = server_timeout_s

    def run(self) -> Generator[Any, Any, None]:
        """Process: the failure (or the deploy's restarts, one after another)."""
        yield self.env.timeout(self.at_s)
        if self.kind != "deploy":
            self.env.process(self._down(self.servers[self.server], self.kind))
            return
        for step in range(len(self.servers)):
            self.env.process(self._down(self.servers[(self.server + step) % len(self.servers)], "deploy"))
            yield self.env.timeout(self.deploy_interval_s)

    def _clients_of(self, server: SimServer) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.flatnonzero(self.population.server_of == server.index).astype(np.int64)

    def _down(self, server: SimServer, kind: str) -> Generator[Any, Any, None]:
        server.up = False
        back_at_s = float(self.env.now) + self.duration_s
        if kind == "crash":
            self.connections.disconnect(self._clients_of(server), "server_crash", ConnectionEventKind.DROPPED)
        elif kind == "deploy":
            self.connections.disconnect(self._clients_of(server), "server_drain", ConnectionEventKind.DROPPED)
        else:
            yield from self._partition(server, back_at_s)
        yield self.env.timeout(max(0.0, back_at_s - self.env.now))
        server.up = True

    def _partition(self, server: SimServer, back_at_s: float) -> Generator[Any, Any, None]:
        """Each client drops when its server timeout runs out, unless the partition heals first."""
        clients = self._clients_of(server)
        now = float(self.env.now)
        last_heard_s = now - self.rng.uniform(0.0, self.keepalive_interval_s, len(clients))
        ticks = np.ceil((last_heard_s + self.server_timeout_s) / HEARTBEAT_S)
        for tick in np.unique(ticks).tolist():
            if tick * HEARTBEAT_S >= back_at_s:
                return  # healed: the rest never noticed
            yield self.env.timeout(max(0.0, tick * HEARTBEAT_S - self.env.now))
            batch = clients[ticks == tick]
            batch = batch[self.population.server_of[batch] == server.index]
            self.connections.disconnect(batch, "server_timeout", ConnectionEventKind.DROPPED)
