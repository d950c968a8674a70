"""The fan-out path every send shares: a server receives a message and writes it to its own recipients.

Broadcasts (:mod:`simscale.model.broadcasts`) and group, user and connection sends
(:mod:`simscale.model.audiences`) differ only in who the recipients are on each server; this module is
the one place that turns "server S writes message M to n of its clients" into a work item (a thread,
then ``overhead + n × send`` of CPU), hands it to the client host and records it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from simscale.backplane.routing import RoutingMode, accepts_from_backplane
from simscale.model.backplane import SimBackplane
from simscale.model.client_host import ClientHost
from simscale.model.fanout import FanOut
from simscale.model.server import SimServer

__all__ = ["FanOutCosts", "FanOutPath", "RecipientCount"]

RecipientCount = Callable[[int], int]
"""How many recipients of the send server ``index`` holds now."""


@dataclass(frozen=True, slots=True)
class FanOutCosts:
    """What one fan-out costs its server."""

    message_bytes: int
    """One recipient's copy, buffered until it is written."""
    payload_bytes: int
    """What one publish carries through the backplane."""
    invocation_cpu_s: float
    """CPU to read a copy from the backplane (or to read and drop our own echo)."""
    send_cpu_per_recipient_s: float
    send_cpu_per_recipient_busy_s: float
    """0: always ``send_cpu_per_recipient_s``; > 0: the per-recipient cost while work waits behind the fan-out."""

    def __post_init__(self) -> None:
        for name in ("message_bytes", "payload_bytes", "invocation_cpu_s", "send_cpu_per_recipient_s",
                     "send_cpu_per_recipient_busy_s"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


class FanOutPath:
    """A send's way from its server's receipt to its recipients, one work item per server."""

    def __init__(
        self,
        env: simpy.Environment,
        servers: list[SimServer],
        backplane: SimBackplane | None,
        client_host: ClientHost,
        costs: FanOutCosts,
        *,
        routing: RoutingMode,
    ) -> None:
        self.env = env
        self.servers = servers
        self.backplane = backplane
        self.client_host = client_host
        self.costs = costs
        self.routing = routing

    def receive_publish(
        self,
        server_index: int,
        broadcast_id: int,
        origin: SimServer,
        sent_at_s: float,
        counted: bool,
        recipients: RecipientCount,
        *,
        skip_empty: bool = False,
    ) -> Generator[Any, Any, None]:
        """Process body: server ``server_index`` takes the publish from the backplane and fans it out
        (or, when it is the origin's own echo, reads it and drops it)."""
        server = self.servers[server_index]
        assert self.backplane is not None
        if accepts_from_backplane(self.routing, origin.name, server.name):
            self.backplane.received[server_index] += 1
            yield from self.fan_out(
                server, broadcast_id, origin.index, sent_at_s, counted, recipients,
                from_backplane=True, skip_empty=skip_empty,
            )  # fmt: skip
            return
        # Our own echo: read it and drop it (it still costs a read).
        yield from server.work(self.costs.invocation_cpu_s)
        self.backplane.consumed(server_index, self.costs.payload_bytes)

    def fan_out(
        self,
        server: SimServer,
        broadcast_id: int,
        origin_index: int,
        sent_at_s: float,
        counted: bool,
        recipients: RecipientCount,
        *,
        from_backplane: bool = False,
        skip_empty: bool = False,
    ) -> Generator[Any, Any, None]:
        """Process body: ``server`` writes the send to its recipients (counted again once it holds a thread).

        ``skip_empty``: with no local recipient and not from the backplane, nothing is done (the hub finds
        an empty set and writes nothing).
        """
        costs = self.costs
        local = recipients(server.index)
        if skip_empty and local == 0 and not from_backplane:
            return
        # Until the writes are done, every local recipient's copy sits in an outgoing buffer.
        queued_bytes = float(local * costs.message_bytes)
        server.buffered_bytes += queued_bytes
        yield server.pool.acquire()
        if from_backplane and self.backplane is not None:
            self.backplane.consumed(server.index, costs.payload_bytes)
        local = recipients(server.index)
        # Work waiting behind this fan-out means writes batch up: the busy per-recipient cost applies.
        send_s = costs.send_cpu_per_recipient_s
        if costs.send_cpu_per_recipient_busy_s > 0 and server.pool.queue_length > 0:
            send_s = costs.send_cpu_per_recipient_busy_s
        # The message was serialised once at the origin; a copy from the backplane costs a read.
        overhead_s = costs.invocation_cpu_s if from_backplane else 0.0
        fan_out = FanOut(server, broadcast_id, origin_index, sent_at_s, counted, local, overhead_s, send_s)
        write = self.client_host.write(fan_out)
        started = yield from server.use_cpu(
            overhead_s + local * send_s, on_start=write.on_start, on_pause=write.on_pause
        )
        write.written()
        server.pool.release()
        server.buffered_bytes -= queued_bytes
        if local == 0:
            return
        server.last_message_at_s = float(self.env.now)
        write.delivered(started)
