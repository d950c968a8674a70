"""The record vocabulary shared by the model and the real hub's load generator.

A simulation and a load test both describe a run with the same four kinds of flat records, so one
``pandas.concat`` puts a prediction next to a measurement. This module imports neither simpy nor
pandas: the hub's load generator uses it without pulling in the simulator or a DataFrame library.

Kinds (the ``kind`` class attribute of each record type):

* ``broadcast``: one per broadcast sent; the denominator of ``delivered_fraction``.
* ``delivery``: one per (broadcast, server) fan-out; what that server's clients received.
* ``connection``: connection events (connected, refused, dropped, gave_up, closed) with a reason,
  one record per batch of clients that met the same fate at the same instant.
* ``resource``: resource samples over time per server (CPU, threads, queues, ports, memory).

Times are seconds from the start of the run; latencies are seconds; memory is bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from simscale.metrics.histogram import LatencyHistogram

__all__ = [
    "NO_SERVER",
    "BroadcastRecord",
    "ConnectionEvent",
    "ConnectionEventKind",
    "DeliveryRecord",
    "Record",
    "ResourceSample",
    "RunRecords",
    "RunSummary",
    "Source",
]

Source = Literal["model", "hub"]
"""Where a record comes from: a simulation (``model``) or a measurement of the real hub (``hub``)."""

NO_SERVER = -1
"""Server index used when an event happened before any server was chosen (e.g. a refused port)."""


class ConnectionEventKind(enum.StrEnum):
    """What happened to a connection (or a batch of connection attempts)."""

    CONNECTED = "connected"
    REFUSED = "refused"
    DROPPED = "dropped"
    GAVE_UP = "gave_up"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class BroadcastRecord:
    """One broadcast, as the sender sent it."""

    kind: ClassVar[str] = "broadcast"
    source: Source
    scenario: str
    broadcast_id: int
    origin_server: int
    sent_at_s: float
    """Sender's send time (client side)."""
    connected_clients: int
    """Clients connected anywhere when it was sent, the sender included."""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """What one server's fan-out of one broadcast delivered to that server's own clients."""

    kind: ClassVar[str] = "delivery"
    source: Source
    scenario: str
    broadcast_id: int
    server: int
    origin_server: int
    sent_at_s: float
    recipients: int
    """Clients connected to ``server`` when its fan-out started."""
    delivered: int
    latency_mean_s: float
    """Mean of (receive time at the recipient - send time at the sender)."""
    latency_max_s: float


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A batch of clients that met the same fate at the same instant."""

    kind: ClassVar[str] = "connection"
    source: Source
    scenario: str
    time_s: float
    server: int
    event: ConnectionEventKind
    reason: str
    """Why: e.g. ``ok``, ``ports_exhausted``, ``connection_limit``, ``server_timeout``,
    ``handshake_timeout``, ``retries_exhausted``, ``client_stop``."""
    clients: int = 1


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """A server's resources at one sampling instant (CPU is the mean over the last interval)."""

    kind: ClassVar[str] = "resource"
    source: Source
    scenario: str
    time_s: float
    server: int
    cpu_utilization: float
    """Fraction 0-1 of the server's cores busy over the last sampling interval."""
    connections: int
    memory_bytes: float
    threads: float = float("nan")
    threadpool_queue: float = float("nan")
    ports_in_use: float = float("nan")
    ports_time_wait: float = float("nan")
    backplane_queue: float = float("nan")


Record = BroadcastRecord | DeliveryRecord | ConnectionEvent | ResourceSample


@dataclass(slots=True)
class RunRecords:
    """Everything one run (simulated or measured) produced, before it becomes DataFrames."""

    broadcasts: list[BroadcastRecord] = field(default_factory=list)
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    connections: list[ConnectionEvent] = field(default_factory=list)
    resources: list[ResourceSample] = field(default_factory=list)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Every counted delivery's latency (after warm-up), as a histogram."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The headline figures of one run; ``None`` where a source cannot measure a figure."""

    scenario: str
    servers: int | None
    clients: int | None
    duration_s: float | None
    broadcasts: int | None
    delivered_fraction: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    connections_refused: int | None
    connections_dropped: int | None
    cpu_utilization_max: float | None
    wall_s: float | None
    events: int | None
    deliveries: int | None = None
    deliveries_per_s: float | None = None
    memory_per_connection_kb: float | None = None
    clients_gave_up: int | None = None
    source: Source = "model"
