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
    clients_ever_connected: int | None = None
    """How many distinct clients held a connection at some point of the run (``None``: not tracked).
    Connection events count connections, and a client that reconnects connects twice, so the
    number of clients that never got on cannot be read from them."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The headline figures of one run; ``None`` where a source cannot measure a figure.

    Which clients a figure counts matters: ``delivered_fraction`` is over the clients that were
    connected when each broadcast was sent, so it can read 1.000 while most clients never got on.
    Read it beside ``clients_connected``, ``clients_never_connected`` and
    ``delivered_fraction_all_clients``.
    """

    scenario: str
    """The scenario's name."""
    servers: int | None
    """App servers in the deployment (``None`` for a measurement that does not know)."""
    clients: int | None
    """Clients the scenario asked for, connected or not."""
    duration_s: float | None
    """Length of the broadcast phase; broadcasts before the warm-up are not counted."""
    broadcasts: int | None
    """Counted broadcasts (sent after the warm-up, before ``duration_s``)."""
    delivered_fraction: float | None
    """Deliveries / Σ(clients connected anywhere when each counted broadcast was sent): how many of the
    clients that were online got each message. Refused and not-yet-connected clients are not in it."""
    latency_p50_ms: float | None
    """Median latency from the sender's send to a recipient's receive, over counted deliveries."""
    latency_p99_ms: float | None
    """99th percentile of that latency."""
    connections_refused: int | None
    """Connection attempts refused (ports, connection limit, proxy ports, handshake timeout); a client
    retrying counts once per attempt."""
    connections_dropped: int | None
    """Established connections lost (timeouts, server gone), plus clients that gave up retrying."""
    cpu_utilization_max: float | None
    """The busiest server's mean CPU utilisation (0-1 of its cores) over the broadcast phase, from the
    warm-up to ``duration_s``: the drain is excluded, so an idle tail cannot dilute a saturated run."""
    wall_s: float | None
    """Wall-clock seconds the run took."""
    events: int | None
    """Simulation events processed (model runs only)."""
    deliveries: int | None = None
    """Messages delivered to clients for the counted broadcasts."""
    deliveries_per_s: float | None = None
    """``deliveries`` per second of the counted phase (warm-up to ``duration_s``)."""
    memory_per_connection_kb: float | None = None
    """Server memory above its base at the last sample, per connection then held, in kB."""
    clients_gave_up: int | None = None
    """Clients that stopped trying to connect (their reconnect delays ran out)."""
    source: Source = "model"
    """``model`` for a simulation, ``hub`` for a measurement of the real hub."""
    clients_connected: float | None = None
    """Mean number of clients connected (anywhere) when the counted broadcasts were sent."""
    clients_never_connected: int | None = None
    """Clients that never held a connection during the whole run."""
    delivered_fraction_all_clients: float | None = None
    """Counted deliveries / (counted broadcasts × ``clients``): the share of every client the scenario
    asked for, connected or not, that got each message."""
    cpu_utilization_peak: float | None = None
    """The highest single CPU sample (0-1) of the server behind ``cpu_utilization_max``, over the same
    broadcast phase."""
