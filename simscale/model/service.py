"""Azure SignalR Service: a managed tier of *units* that holds the clients' connections and fans out.

Think of a telephone exchange that the company rents: the callers (clients) dial the exchange, not
the office; each office (app server) keeps a few trunk lines (server connections, 5 per hub by
default) open to it, and every caller is patched onto one trunk line for the whole call. When the
office speaks to everyone, it says it once down a trunk line and the exchange repeats it to every
caller. If a trunk line is cut, every caller patched onto it is hung up and dials again.

What this component models (sources in docs/SOURCES.md#azure-signalr-service):

* **Units.** Each unit holds ``connections_per_unit`` concurrent connections, client *and* server
  connections counted; an attempt beyond the quota is refused (reason ``service_quota``).
* **Message capacity.** Each unit is one FIFO worker that passes ``messages_per_unit_per_s`` 2 KB
  messages a second (in or out); a message under 1 KB costs as much as a 1 KB one, a bigger one in
  proportion. A broadcast is one message into the service and one out to every connected client,
  the fan-out split evenly over the units (one event per unit, never one per recipient).
* **The path of a broadcast.** client → service (one unit reads it) → the sender's app server over
  its server connection → the hub method → one send back to the service → every unit fans out.
* **Billing, as published.** Only messages *out of* the service count, pings are free, and a
  message counts once per started 2 KB (2,048 bytes) of its payload: :func:`billed_messages`.
* **Pinning.** Client ``i`` on app server ``s`` rides server connection ``i mod k`` of ``s``
  (``k = server_connections_per_hub``); dropping one disconnects exactly those clients.
* **Group, user and connection sends** (:class:`ServiceAudiences`) take the same path as a broadcast,
  but the units write only to the audience's connected clients (client ``i``'s connection is held by
  unit ``i mod units``), and only those are billed. An echo is a send to one connection: one message
  in, one out. The service keeps no per-group routing cost of its own: the published tables' cap on
  many small groups ("Unit100 can't improve further by design") is not in the model.

Simplifications: other hub-method calls (``invocations``) still go straight to the app servers and
are not billed, and the app servers keep paying the keep-alive ticks of their logical connections
(on the real service, the service pings the clients).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from simscale.model.audiences import Audiences
from simscale.model.broadcasts import Broadcasts
from simscale.model.cpu import Cpu
from simscale.model.fanout import FanOut
from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = [
    "BILLING_CHUNK_BYTES",
    "ServiceAudiences",
    "ServiceBroadcasts",
    "ServiceStats",
    "SignalRService",
    "billed_messages",
]

BILLING_CHUNK_BYTES = 2_048
"""A message counts once per started 2 KB of its payload."""
_SMALLEST_COST_BYTES = 1_024
"""Messages under 1 KB cost the service about as much as 1 KB messages."""
SECONDS_PER_DAY = 86_400.0


def billed_messages(message_bytes: int, outbound_messages: int = 1) -> int:
    """Billed messages for ``outbound_messages`` messages of ``message_bytes`` out of the service.

    Example (the published one: one server, three clients, a client's 4 KB message broadcast →
    one message to the server plus three to the clients, each counted twice):

        >>> from simscale.model.service import billed_messages
        >>> billed_messages(4_096, outbound_messages=1 + 3)
        8
        >>> billed_messages(1_024, 3), billed_messages(2_049)
        (3, 2)
    """
    return outbound_messages * max(1, math.ceil(message_bytes / BILLING_CHUNK_BYTES))


@dataclass(frozen=True, slots=True)
class ServiceStats:
    """What the service held and billed in one run (``simulate --json`` reports these keys).

    Example:

        >>> from simscale.model.service import ServiceStats
        >>> ServiceStats(1, 1_005, 16, 86_400.0, 1.61).service_cost_per_day_usd
        1.61
    """

    service_units: int
    service_connections: int
    """Peak concurrent connections on the service, client plus server connections."""
    service_billed_messages: int
    """Billed messages of the counted broadcasts (sent after the warm-up)."""
    service_billed_messages_per_day: float
    service_cost_per_day_usd: float


class SignalRService:
    """The units, their connection quota and message capacity, and the billing counter."""

    def __init__(
        self,
        env: simpy.Environment,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        *,
        units: int,
        connections_per_unit: int,
        server_connections_per_hub: int,
        messages_per_unit_per_s: float,
        message_bytes: int,
        horizon_s: float,
        sample_interval_s: float,
        phases: int,
    ) -> None:
        self.env = env
        self.population = population
        self.servers = servers
        self.units = units
        self.server_connections_per_hub = server_connections_per_hub
        self.server_connections = len(servers) * server_connections_per_hub
        self.quota = units * connections_per_unit
        self.message_cost_s = max(message_bytes, _SMALLEST_COST_BYTES) / BILLING_CHUNK_BYTES / messages_per_unit_per_s
        """A unit's busy time per message passed."""
        self.message_bytes = message_bytes
        self.unit_servers = [
            SimServer(
                env,
                len(servers) + unit,
                profile="asyncio-hub",  # one FIFO worker per unit
                cpu=Cpu(env, 1),
                cores=1,
                min_threads=1,
                max_threads=1,
                injection_interval_s=1.0,
                horizon_s=horizon_s,
                sample_interval_s=sample_interval_s,
                phases=phases,
                proxy_pools=[],
            )
            for unit in range(units)
        ]
        self.billed = 0
        self.connections_peak = self.server_connections

    def room(self) -> int:
        """Client connections the quota still admits (handshakes under way hold their slot)."""
        held = self.population.connected + sum(server.handshakes_in_progress for server in self.servers)
        self.connections_peak = max(self.connections_peak, held + self.server_connections)
        return max(0, self.quota - self.server_connections - held)

    def bill(self, outbound_messages: int) -> None:
        """Count ``outbound_messages`` messages of the run's size out of the service."""
        self.billed += billed_messages(self.message_bytes, outbound_messages)

    def shares(self, recipients: int) -> list[int]:
        """``recipients`` split as evenly as possible over the units."""
        base, extra = divmod(recipients, self.units)
        return [base + (1 if unit < extra else 0) for unit in range(self.units)]

    def pinned_clients(self, server: int, connection: int) -> npt.NDArray[np.int64]:
        """The clients riding server connection ``connection`` of app server ``server``."""
        ids: npt.NDArray[np.int64] = np.flatnonzero(self.population.server_of == server).astype(np.int64)
        pinned: npt.NDArray[np.int64] = ids[ids % self.server_connections_per_hub == connection]
        return pinned

    def stats(self, *, measured_s: float, included_per_unit_per_day: int, unit_price_per_day_usd: float,
              price_per_million_usd: float) -> ServiceStats:  # fmt: skip
        """The run's totals, with the day's bill at the given prices."""
        self.room()  # the peak, counted once more at the end
        per_day = self.billed / measured_s * SECONDS_PER_DAY if measured_s > 0 else 0.0
        extra = max(0.0, per_day - included_per_unit_per_day * self.units)
        cost = self.units * unit_price_per_day_usd + extra / 1e6 * price_per_million_usd
        return ServiceStats(self.units, self.connections_peak, self.billed, per_day, cost)


def _unit_fan_out(client_host: Any, fan_out: FanOut) -> Generator[Any, Any, None]:
    """One unit writes its share of a send to the clients whose connections it holds."""
    unit = fan_out.server
    yield unit.pool.acquire()
    write = client_host.write(fan_out)
    started = yield from unit.use_cpu(fan_out.recipients * fan_out.send_s, on_start=write.on_start,
                                      on_pause=write.on_pause)  # fmt: skip
    write.written()
    unit.pool.release()
    if fan_out.recipients:
        write.delivered(started)


class ServiceBroadcasts(Broadcasts):
    """Broadcasts through the service: the app server sends once, the units fan out.

    Built like :class:`~simscale.model.broadcasts.Broadcasts`, with the service first.
    """

    def __init__(self, service: SignalRService, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service

    def _deliver(
        self, broadcast_id: int, origin: SimServer, sent_at_s: float, counted: bool, delay_s: float
    ) -> Generator[Any, Any, None]:
        service = self.service
        if delay_s > 0:
            yield self.env.timeout(delay_s)
        yield self.env.timeout(self.network.delay_s())  # client → service
        yield from service.unit_servers[broadcast_id % service.units].work(service.message_cost_s)
        yield self.env.timeout(self.network.delay_s())  # service → the pinned app server
        # The hub method, then ONE send to the service (not one per client).
        yield from origin.work(self.invocation_cpu_s + self.serialize_cpu_s + self.send_cpu_per_recipient_s)
        yield self.env.timeout(self.network.delay_s())  # app server → service
        recipients = int(self.population.connected)
        if counted:
            service.bill(1 + recipients)  # the copy to the app server, then one per client
        for unit, share in zip(service.unit_servers, service.shares(recipients), strict=True):
            fan_out = FanOut(unit, broadcast_id, origin.index, sent_at_s, counted, share, 0.0, service.message_cost_s)
            self.env.process(_unit_fan_out(self.client_host, fan_out))

    def drop_server_connection(self, at_s: float, drop: Any) -> Generator[Any, Any, None]:
        """Process: server connection 0 of app server 0 drops at ``at_s``; its clients are disconnected."""
        yield self.env.timeout(at_s)
        drop(self.service.pinned_clients(0, 0), "server_connection_dropped")


class ServiceAudiences(Audiences):
    """Group, user and connection sends through the service: the app server sends once, the units
    holding a recipient write to their own.

    Built like :class:`~simscale.model.audiences.Audiences` (with no backplane), with the service first.
    """

    def __init__(self, service: SignalRService, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service

    def _deliver(
        self, send_id: int, origin: SimServer, sent_at_s: float, counted: bool, delay_s: float
    ) -> Generator[Any, Any, None]:
        service = self.service
        if delay_s > 0:
            yield self.env.timeout(delay_s)
        yield self.env.timeout(self.network.delay_s())  # client → service
        yield from service.unit_servers[send_id % service.units].work(service.message_cost_s)
        yield self.env.timeout(self.network.delay_s())  # service → the pinned app server
        yield from origin.work(self.invocation_cpu_s + self.serialize_cpu_s + self.send_cpu_per_recipient_s)
        self.sends += 1
        yield self.env.timeout(self.network.delay_s())  # app server → service
        audience = self._audience[send_id]
        connected = audience[self.population.server_of[audience] >= 0]
        if counted:
            service.bill(1 + len(connected))  # the copy to the app server, then one per recipient
        per_unit = np.bincount(connected % service.units, minlength=service.units)
        for unit_index in np.flatnonzero(per_unit).tolist():
            fan_out = FanOut(service.unit_servers[unit_index], send_id, origin.index, sent_at_s, counted,
                             int(per_unit[unit_index]), 0.0, service.message_cost_s)  # fmt: skip
            self.env.process(_unit_fan_out(self.client_host, fan_out))
