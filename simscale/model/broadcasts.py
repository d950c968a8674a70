"""Broadcasts: a client sends, its server runs the hub method, and every server that should fans out.

How a broadcast travels (one event per server, never one per recipient):

1. the source picks a random connected client at Poisson times (or replays a schedule) and tells
   the client host the send is due; the host sends it (at once, or when its loop gets to it);
2. after the uplink delay the sender's server runs the hub method and serialises the message once
   per protocol (a work item: thread, then CPU);
3. routing (:mod:`simscale.backplane.routing`, the same rule the real hub uses) decides who fans
   out: with direct-local routing the origin writes its own clients first and only then publishes,
   as simscale's hub does; every server that receives the publish from the backplane fans out to its
   clients (the origin drops its own echo, which still costs a read);
4. each fan-out (:mod:`simscale.model.fanout`) is one work item costing ``overhead + recipients ×
   send``; a busy server (work queued behind the fan-out) writes at the busy per-recipient cost, as
   the real hub batches frames per socket then. The client host says when the clients read them.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import simpy

from simscale.backplane.routing import RoutingMode, delivers_locally_on_send
from simscale.model.backplane import SimBackplane
from simscale.model.client_host import ClientHost
from simscale.model.fanout_path import FanOutCosts, FanOutPath
from simscale.model.network import Network
from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = ["BACKPLANE_ENVELOPE_OVERHEAD_BYTES", "Broadcasts"]

BACKPLANE_ENVELOPE_OVERHEAD_BYTES = 64
"""What the backplane envelope adds to the payloads it carries (both protocols' copies)."""


class Broadcasts:
    """The broadcast source, the publish through the backplane and every server's fan-out."""

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        network: Network,
        backplane: SimBackplane | None,
        client_host: ClientHost,
        *,
        routing: RoutingMode,
        rate_per_s: float,
        offsets_s: tuple[float, ...],
        duration_s: float,
        warmup_s: float,
        message_bytes: int,
        invocation_cpu_s: float,
        serialize_cpu_s: float,
        send_cpu_per_recipient_s: float,
        send_cpu_per_recipient_busy_s: float,
    ) -> None:
        self.env = env
        self.rng = rng
        self.population = population
        self.servers = servers
        self.network = network
        self.backplane = backplane
        self.client_host = client_host
        self.routing = routing
        self.rate_per_s = rate_per_s
        self.offsets_s = offsets_s
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.message_bytes = message_bytes
        self.invocation_cpu_s = invocation_cpu_s
        self.serialize_cpu_s = serialize_cpu_s
        self.send_cpu_per_recipient_s = send_cpu_per_recipient_s
        self.send_cpu_per_recipient_busy_s = send_cpu_per_recipient_busy_s
        self.payload_bytes = message_bytes * 2 + BACKPLANE_ENVELOPE_OVERHEAD_BYTES
        """What one publish carries: the message in both protocols plus the envelope."""
        costs = FanOutCosts(
            message_bytes, self.payload_bytes, invocation_cpu_s, send_cpu_per_recipient_s, send_cpu_per_recipient_busy_s
        )
        self.path = FanOutPath(env, list(servers), backplane, client_host, costs, routing=routing)
        """Every server's receipt and fan-out (shared with group, user and connection sends)."""
        self._next_id = 0

    def source(self) -> Generator[Any, Any, None]:
        """Process: broadcasts fall due until ``duration_s``, each from a random connected client."""
        mean_gap_s = 1.0 / self.rate_per_s
        replay = iter(self.offsets_s)
        while True:
            if self.offsets_s:
                next_s = next(replay, None)
                if next_s is None:
                    return
                yield self.env.timeout(max(0.0, next_s - self.env.now))
            else:
                yield self.env.timeout(self.rng.exponential(mean_gap_s))
            if self.env.now >= self.duration_s:
                return
            sender = self.population.random_connected(self.rng)
            if sender < 0:
                continue
            broadcast_id = self._next_id
            self._next_id += 1
            due_at_s = float(self.env.now)
            origin = int(self.population.server_of[sender])
            self.client_host.broadcast_due(broadcast_id, origin, due_at_s, due_at_s >= self.warmup_s, self.send)

    def send(
        self, broadcast_id: int, origin_index: int, sent_at_s: float, counted: bool, *, delay_s: float = 0.0
    ) -> None:
        """The sender's client sends the broadcast ``delay_s`` from now."""
        self.env.process(self._deliver(broadcast_id, self.servers[origin_index], sent_at_s, counted, delay_s))

    def _deliver(
        self, broadcast_id: int, origin: SimServer, sent_at_s: float, counted: bool, delay_s: float
    ) -> Generator[Any, Any, None]:
        if delay_s > 0:
            yield self.env.timeout(delay_s)
        yield self.env.timeout(self.network.delay_s())
        # Read and dispatch SendMessage, serialise the outgoing message once per protocol.
        yield from origin.work(self.invocation_cpu_s + self.serialize_cpu_s)
        backplane = self.backplane
        if backplane is None:
            self.env.process(self._fan_out(origin, broadcast_id, origin.index, sent_at_s, counted))
            return
        if delivers_locally_on_send(self.routing):
            # The hub writes to its own clients first and publishes for the others once it has.
            yield from self._fan_out(origin, broadcast_id, origin.index, sent_at_s, counted)

        def deliver(server_index: int) -> None:
            self.env.process(self._receive_publish(server_index, broadcast_id, origin, sent_at_s, counted))

        self.env.process(backplane.publish(self.payload_bytes, deliver))

    def _recipients(self, server_index: int) -> int:
        return int(self.population.per_server[server_index])

    def _receive_publish(
        self, server_index: int, broadcast_id: int, origin: SimServer, sent_at_s: float, counted: bool
    ) -> Generator[Any, Any, None]:
        yield from self.path.receive_publish(server_index, broadcast_id, origin, sent_at_s, counted, self._recipients)

    def _fan_out(
        self, server: SimServer, broadcast_id: int, origin_index: int, sent_at_s: float, counted: bool
    ) -> Generator[Any, Any, None]:
        yield from self.path.fan_out(server, broadcast_id, origin_index, sent_at_s, counted, self._recipients)
