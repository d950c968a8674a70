"""Handshakes one by one: what a reconnect storm does to a server that blocks while accepting.

By default a batch of connection attempts is one work item (cheap to simulate, and right while
accepting is pure CPU). When a handshake blocks its thread (``handshake_wait_s``: OnConnectedAsync
waiting on a database or an auth service, say), each handshake is its own work item instead, so a
burst of reconnects queues for the thread pool like any other burst of blocking work.

The client waits ``handshake_timeout_s`` and then gives up and retries on its reconnect delays; the
server cannot tell, so it still does the whole handshake of a client that left — the wasted work
that lets a storm feed itself (a *metastable* failure: the retries alone keep the queue full after
the trigger is gone). An admission limit (``max_concurrent_handshakes``) refuses attempts beyond it
at once, so the ones it admits finish in time.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from simscale.metrics.records import ConnectionEventKind
from simscale.model.connections import Connections
from simscale.model.server import SimServer

__all__ = ["PerClientHandshakes"]

IntArray = npt.NDArray[np.int64]


class PerClientHandshakes:
    """Runs each admitted handshake as its own blocking work item, with the client's own timeout.

    Example (one server with two threads; six clients whose handshakes each block for 10 s: two finish
    within the 15 s handshake timeout, the other four clients leave first and their handshakes are wasted):

        >>> import numpy as np
        >>> from simscale import preset
        >>> from simscale.model import Deployment
        >>> scenario = preset("single-server", clients=6, connect_ramp_s=0.001, handshake_wait_s=10.0, max_threads=2,
        ...                   duration_s=40.0, warmup_s=1.0, reconnect=False, broadcasts_enabled=False, seed=1)
        >>> run = Deployment(scenario, np.random.default_rng(1)).run()
        >>> sorted({(e.event.value, e.reason) for e in run.records.connections})
        [('connected', 'ok'), ('gave_up', 'retries_exhausted'), ('refused', 'handshake_timeout')]
        >>> sum(e.clients for e in run.records.connections if e.reason == "handshake_timeout")
        4
    """

    def __init__(
        self,
        env: simpy.Environment,
        connections: Connections,
        *,
        wait_s: float,
        cpu_s: float,
        timeout_s: float,
        max_concurrent: int,
    ) -> None:
        self.env = env
        self.connections = connections
        self.wait_s = wait_s
        self.cpu_s = cpu_s
        self.timeout_s = timeout_s
        self.max_concurrent = max_concurrent
        """0: no admission limit."""

    def __call__(self, server: SimServer, ids: IntArray, attempted_at_s: float) -> Generator[Any, Any, None]:
        """Process: admit ``ids`` on ``server``, start their handshakes, then time out the late ones."""
        connections = self.connections
        if self.max_concurrent > 0:
            room = max(self.max_concurrent - server.handshakes_in_progress, 0)
            refused, ids = ids[room:], ids[:room]
            connections._release_ports(server, refused)
            connections._fail(refused, server.index, "handshake_limit", ConnectionEventKind.REFUSED)
        if len(ids) == 0:
            return
        pending = np.ones(len(ids), dtype=bool)
        server.handshakes_in_progress += len(ids)
        for position in range(len(ids)):
            self.env.process(self._one(server, ids, pending, position))
        yield self.env.timeout(max(0.0, attempted_at_s + self.timeout_s - self.env.now))
        late = ids[pending]
        pending[:] = False
        connections._release_ports(server, late)
        connections._fail(late, server.index, "handshake_timeout", ConnectionEventKind.REFUSED)

    def _one(
        self, server: SimServer, ids: IntArray, pending: npt.NDArray[np.bool_], position: int
    ) -> Generator[Any, Any, None]:
        yield from server.work(self.cpu_s, self.wait_s)  # blocked for wait_s: holds the thread, uses no CPU
        server.handshakes_in_progress -= 1
        if not pending[position]:
            return  # the client gave up meanwhile: the work was wasted
        pending[position] = False
        client = ids[position : position + 1]
        if server.up:
            self.connections._attach(server, client)
        else:
            self.connections._release_ports(server, client)
            self.connections._fail(client, server.index, "server_down", ConnectionEventKind.REFUSED)
