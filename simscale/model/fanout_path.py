"""The fan-out path every send shares: a server receives a message and writes it to its own recipients.

Broadcasts (:mod:`simscale.model.broadcasts`) and group, user and connection sends
(:mod:`simscale.model.audiences`) differ only in who the recipients are on each server; this module is
the one place that turns "server S writes message M to n of its clients" into CPU work and records it.
The Scenario's ``fan_out_mode`` picks one of two paths:

* ``per-server`` (the reference): each server's fan-out is a work item of its own — a SimPy process
  that takes a thread, queues for a core, holds it for ``overhead + n × send`` and records the
  deliveries. Events per broadcast grow with the servers (about six per server).
* ``vectorised`` (the default where it applies): think of a post office that stamps every branch's
  copy of a circular in one pass instead of queueing at each branch. Every server's CPU is a
  :class:`~simscale.model.cpu.CoreTimeline` (when each core falls free); a publish reaching K servers
  books the K fan-outs in one numpy step (the Kiefer-Wolfowitz recursion of a FIFO c-core queue) and
  records them at once. No SimPy event is spent per server, so events per broadcast stay constant.

What is exact and what is approximated in ``vectorised``:

* Each server still pays ``overhead + n × send`` on its own cores, FIFO behind all the work booked on
  them before (other work items, handshakes, pings, hub methods, book their CPU on the same timeline,
  so they queue behind fan-outs and fan-outs behind them). With cores held until the work is done and
  its CPU known on arrival this gives the start a SimPy ``Resource`` gives. Delivery counts are exact.
* No work takes a thread: with at least as many threads as cores and nothing holding a thread
  without CPU, a thread is free whenever a core is, so queueing for the cores is the whole story. Where
  that fails the scenario falls back to ``per-server`` (below). The thread pool's queue samples
  therefore read 0 (the work waits on the cores' timeline instead).
* The recipients are counted when the publish arrives, not when the fan-out starts (a client that
  leaves in between still gets the message), and what a fan-out does at its end (its buffers empty,
  the server's last message time for keep-alives, the backplane read at its start) is applied lazily
  when someone looks (:meth:`~simscale.model.server.SimServer.settle`).
* Latencies come from other random draws than on the per-server path (so runs differ draw by draw,
  not in distribution), and one send's sample budget (``latency_samples_per_fanout``) is spread over
  the servers that write it, at least one sample each; delivery records keep one row per server, whose
  mean and max come from that server's smaller sample. A fan-out that would end after the run's
  horizon is not delivered, as on the per-server path.

``vectorised`` falls back to ``per-server`` automatically
(:attr:`~simscale.config.scenario.Scenario.fan_out_per_server_reasons` says why): time-shared cores
(``shared_host_cores`` > 0, ``cpu_time_slice_s`` > 0: a fan-out's progress depends on the others), cores that
slow each other down (``cpu_parallel_speed`` < 1), the
``one-loop`` client host (it reads as the server writes), Azure SignalR Service hosting (its units fan
out), ``send_cpu_per_recipient_busy_s`` > 0 (the cost depends on each server's queue at the start), and
work that holds a thread without CPU (blocking or sync-over-async hub methods, blocking web requests on
the SignalR servers, ``handshake_wait_s`` > 0), and fewer threads than cores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from simscale.backplane.routing import RoutingMode, accepts_from_backplane
from simscale.model.backplane import SimBackplane
from simscale.model.client_host import ClientHost, FreeClientHost
from simscale.model.cpu import CoreTimeline
from simscale.model.fanout import FanOut
from simscale.model.server import SimServer

__all__ = ["FanOutCosts", "FanOutPath", "RecipientCount", "RecipientCounts"]

IntArray = npt.NDArray[np.int64]

RecipientCount = Callable[[int], int]
"""How many recipients of the send server ``index`` holds now."""
RecipientCounts = Callable[[IntArray], IntArray]
"""The same for an array of server indices at once (vectorised fan-outs)."""


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
        timeline: CoreTimeline | None = None,
        horizon_s: float = math.inf,
    ) -> None:
        self.env = env
        self.servers = servers
        self.backplane = backplane
        self.client_host = client_host
        self.costs = costs
        self.routing = routing
        self.timeline = timeline
        """The servers' cores when fan-outs are vectorised (``None``: one work item per server)."""
        self.horizon_s = horizon_s

    @property
    def vectorised(self) -> bool:
        """Whether the fan-outs of one send are booked together (the servers carry a core timeline)."""
        return self.timeline is not None

    def receive_together(
        self,
        server_indices: IntArray,
        broadcast_id: int,
        origin: SimServer,
        sent_at_s: float,
        counted: bool,
        recipients: RecipientCounts,
    ) -> None:
        """Vectorised :meth:`receive_publish` for every server the publish reached, at once (no event)."""
        assert self.backplane is not None and self.timeline is not None
        # The routing rule depends only on whether the receiver is the origin: ask it once for each case.
        others = server_indices[server_indices != origin.index]
        takes_own = accepts_from_backplane(self.routing, origin.name, origin.name)
        takes_other = len(others) == 0 or accepts_from_backplane(
            self.routing, origin.name, self.servers[int(others[0])].name
        )
        own = server_indices[server_indices == origin.index]
        accepted = np.concatenate([own if takes_own else own[:0], others if takes_other else others[:0]])
        if len(own) and not takes_own:
            # Our own echo: read it and drop it (a read booked on the origin's cores).
            now, read_s = float(self.env.now), self.costs.invocation_cpu_s
            started_s = self.timeline.book(origin.index, now, read_s) if read_s > 0 else now
            origin.meter.add(started_s, read_s)
            self.backplane.consumed_at(own, np.array([started_s + read_s]), self.costs.payload_bytes)
        if len(accepted) == 0:
            return
        received = self.backplane.received
        for index in accepted.tolist():
            received[index] += 1
        self.fan_out_together(accepted, recipients(accepted), broadcast_id, origin.index, sent_at_s, counted,
                              from_backplane=True)  # fmt: skip

    def fan_out_together(
        self,
        server_indices: IntArray,
        recipients: IntArray,
        broadcast_id: int,
        origin_index: int,
        sent_at_s: float,
        counted: bool,
        *,
        from_backplane: bool = False,
    ) -> float:
        """Vectorised :meth:`fan_out`: one send's fan-outs on ``server_indices`` booked in one numpy step on
        their cores (no SimPy event); returns when the last of them has written its sockets."""
        assert self.timeline is not None
        costs, now = self.costs, float(self.env.now)
        overhead_s = costs.invocation_cpu_s if from_backplane else 0.0
        send_s = costs.send_cpu_per_recipient_s
        cpu_s = (overhead_s + recipients * send_s).astype(np.float64)
        busy = cpu_s > 0  # a fan-out with nothing to do is over at once, as on the per-server path
        if not busy.all():
            server_indices, recipients, cpu_s = server_indices[busy], recipients[busy], cpu_s[busy]
        if len(server_indices) == 0:
            return now
        started_s = self.timeline.book_many(server_indices, now, cpu_s)
        ended_s = started_s + cpu_s
        self.timeline.count_busy(server_indices, started_s, cpu_s)
        buffered = (recipients * costs.message_bytes).astype(np.float64)
        self.timeline.book_writes(server_indices, ended_s, buffered, recipients)
        if from_backplane and self.backplane is not None:
            self.backplane.consumed_at(server_indices, started_s, costs.payload_bytes)
        # Only what is written before the run's horizon is delivered (the per-server path never gets there).
        delivered = (recipients > 0) & (ended_s < self.horizon_s)
        if counted and delivered.any():
            assert isinstance(self.client_host, FreeClientHost)
            self.client_host.written_together(
                server_indices[delivered], recipients[delivered], started_s[delivered] + overhead_s, send_s,
                broadcast_id=broadcast_id, origin_index=origin_index, sent_at_s=sent_at_s,
            )  # fmt: skip
        return float(ended_s.max())

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
