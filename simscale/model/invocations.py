"""Other hub-method calls: what starves a thread pool.

Clients call a hub method at Poisson times (thinned: candidates at the all-clients rate, kept when
the chosen client is connected), one at a time per connection — ASP.NET Core's
``MaximumParallelInvocationsPerClient`` is 1 by default, so further calls queue on the connection.
How the method waits decides what it holds: ``async`` gives its thread back while it awaits I/O,
``blocking`` holds the thread (no CPU) for the wait, ``sync-over-async`` holds it too and also makes
the .NET pool inject threads faster (it notices the blocked task).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import simpy

from simscale.model.network import Network
from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = ["Invocations"]

_MAX_INVOCATION_BACKLOG = 1_000
"""Calls queued on one connection beyond this are dropped (a client that far behind has given up)."""


class Invocations:
    """The clients' hub-method calls and the work each costs its server."""

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        network: Network,
        *,
        rate_per_client_per_s: float,
        duration_s: float,
        method_kind: str,
        method_wait_s: float,
        method_cpu_s: float,
        invocation_cpu_s: float,
        serialize_cpu_s: float,
        send_cpu_per_recipient_s: float,
    ) -> None:
        self.env = env
        self.rng = rng
        self.population = population
        self.servers = servers
        self.network = network
        self.rate_per_client_per_s = rate_per_client_per_s
        self.duration_s = duration_s
        self.method_kind = method_kind
        self.method_wait_s = method_wait_s
        self.read_cpu_s = invocation_cpu_s + method_cpu_s / 2
        """Reading and dispatching the call, and the method's first half."""
        self.reply_cpu_s = method_cpu_s / 2 + serialize_cpu_s + send_cpu_per_recipient_s
        """The method's second half, serialising and writing the completion."""

    def source(self) -> Generator[Any, Any, None]:
        """Process: calls fall due until ``duration_s``."""
        population = self.population
        # Thinning: candidates at the all-clients rate, kept only when the client is connected.
        mean_gap_s = 1.0 / (self.rate_per_client_per_s * population.size)
        while True:
            yield self.env.timeout(self.rng.exponential(mean_gap_s))
            if self.env.now >= self.duration_s:
                return
            client = int(self.rng.integers(population.size))
            server_index = int(population.server_of[client])
            if server_index < 0:
                continue
            # One invocation at a time per connection (MaximumParallelInvocationsPerClient = 1).
            if population.invocation_busy[client]:
                if population.invocation_backlog[client] < _MAX_INVOCATION_BACKLOG:
                    population.invocation_backlog[client] += 1
                continue
            population.invocation_busy[client] = True
            self.env.process(self._invoke(client, self.servers[server_index]))

    def _invoke(self, client: int, server: SimServer) -> Generator[Any, Any, None]:
        population = self.population
        while True:
            yield self.env.timeout(self.network.delay_s())
            if self.method_kind == "async":
                # The thread goes back to the pool while the method awaits its I/O.
                yield from server.work(self.read_cpu_s)
                yield self.env.timeout(self.method_wait_s)
                yield from server.work(self.reply_cpu_s)
            else:
                yield from server.work(
                    self.read_cpu_s + self.reply_cpu_s,
                    self.method_wait_s,
                    blocking_on_task=self.method_kind == "sync-over-async",
                )
            if population.invocation_backlog[client] > 0 and population.server_of[client] == server.index:
                population.invocation_backlog[client] -= 1
                continue
            population.invocation_backlog[client] = 0
            population.invocation_busy[client] = False
            return
