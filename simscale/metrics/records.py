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

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from simscale.metrics.display import html_table
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
    """What happened to a connection (or a batch of connection attempts).

    A string enum, so a DataFrame column of them compares with plain text.

    Example:

        >>> from simscale.metrics import ConnectionEventKind
        >>> ConnectionEventKind("refused") is ConnectionEventKind.REFUSED, ConnectionEventKind.REFUSED == "refused"
        (True, True)
        >>> [kind.value for kind in ConnectionEventKind]
        ['connected', 'refused', 'dropped', 'gave_up', 'closed']
    """

    CONNECTED = "connected"
    REFUSED = "refused"
    DROPPED = "dropped"
    GAVE_UP = "gave_up"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class BroadcastRecord:
    """One broadcast, as the sender sent it.

    Example:

        >>> from simscale.metrics import BroadcastRecord
        >>> record = BroadcastRecord("model", "demo", broadcast_id=0, origin_server=1, sent_at_s=2.5,
        ...                          connected_clients=30)
        >>> record.kind, record.origin_server, record.connected_clients
        ('broadcast', 1, 30)
    """

    kind: ClassVar[str] = "broadcast"
    source: Source
    scenario: str
    broadcast_id: int
    origin_server: int
    sent_at_s: float
    """Sender's send time (client side)."""
    connected_clients: int
    """Recipients connected when it was sent: for ``audience`` ``all`` every client connected anywhere,
    the sender included; for a group, a user or a connection, the connected members of that audience."""
    audience: str = "all"
    """Who the send went to: ``all``, ``group``, ``user`` or ``connection`` (the hub's channel kinds)."""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """What one server's fan-out of one broadcast delivered to that server's own clients.

    Example (server 2 delivered broadcast 0, sent from server 1, to all of its 10 clients):

        >>> from simscale.metrics import DeliveryRecord
        >>> record = DeliveryRecord("model", "demo", broadcast_id=0, server=2, origin_server=1, sent_at_s=2.5,
        ...                         recipients=10, delivered=10, latency_mean_s=0.002, latency_max_s=0.004)
        >>> record.kind, record.delivered / record.recipients
        ('delivery', 1.0)
    """

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
    audience: str = "all"
    """Who the send went to: ``all``, ``group``, ``user`` or ``connection``."""


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A batch of clients that met the same fate at the same instant.

    Example (25 clients refused at once: no ephemeral port left, so no server was chosen):

        >>> from simscale.metrics import NO_SERVER, ConnectionEvent, ConnectionEventKind
        >>> event = ConnectionEvent("model", "demo", time_s=4.0, server=NO_SERVER,
        ...                         event=ConnectionEventKind.REFUSED, reason="ports_exhausted", clients=25)
        >>> event.kind, event.event, event.clients
        ('connection', <ConnectionEventKind.REFUSED: 'refused'>, 25)
    """

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
    """A server's resources at one sampling instant (CPU is the mean over the last interval).

    Example (what a source cannot measure stays NaN):

        >>> from simscale.metrics import ResourceSample
        >>> sample = ResourceSample("hub", "demo", time_s=1.0, server=0, cpu_utilization=0.25, connections=100,
        ...                         memory_bytes=51.5e6)
        >>> sample.kind, sample.cpu_utilization, sample.threads
        ('resource', 0.25, nan)
    """

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


@dataclass(slots=True, repr=False)
class RunRecords:
    """Everything one run (simulated or measured) produced, before it becomes DataFrames.

    Its ``repr`` counts the records rather than printing them (a run holds hundreds of thousands).

    Example:

        >>> from simscale.metrics import BroadcastRecord, RunRecords
        >>> records = RunRecords(broadcasts=[BroadcastRecord("model", "demo", 0, 0, 1.0, 20)])
        >>> records
        RunRecords(broadcasts=1, deliveries=0, connections=0, resources=0, latencies=0, clients_ever_connected=None)
        >>> from simscale.metrics.frames import to_frames
        >>> to_frames(records)["broadcasts"][["broadcast_id", "connected_clients"]]
           broadcast_id  connected_clients
        0             0                 20
    """

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
    backplane_messages_received_per_server: list[int] = field(default_factory=list)
    """Per server: publishes it received from the backplane and delivered (its own echoes not counted, as
    the hub's ``backplane_messages_received`` counter); empty when the run had no backplane counter."""
    first_connects_attempted: int | None = None
    """Clients that made the first connect attempt of their life during the run (``None``: not tracked)."""
    first_connects_failed: int | None = None
    """How many of those first attempts failed (refused for any reason)."""

    def __repr__(self) -> str:
        return f"RunRecords({self.describe()}, clients_ever_connected={self.clients_ever_connected})"

    def describe(self) -> str:
        """How many records of each kind, e.g. ``broadcasts=86, deliveries=86, …, latencies=1,720``."""
        return (
            f"broadcasts={len(self.broadcasts):,}, deliveries={len(self.deliveries):,}, "
            f"connections={len(self.connections):,}, resources={len(self.resources):,}, "
            f"latencies={round(self.latency.count):,}"
        )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The headline figures of one run; ``None`` where a source cannot measure a figure.

    Which clients a figure counts matters: ``delivered_fraction`` is over the clients that were
    connected when each broadcast was sent, so it can read 1.000 while most clients never got on.
    Read it beside ``clients_connected``, ``clients_never_connected`` and
    ``delivered_fraction_all_clients``. In a notebook it displays as a table of every figure.

    Example:

        >>> from simscale import preset, simulate
        >>> summary = simulate(preset("single-server", clients=20, duration_s=5.0, warmup_s=1.0, seed=1)).summary
        >>> summary.servers, summary.clients, summary.broadcasts, summary.delivered_fraction
        (1, 20, 77, 1.0)
        >>> summary.latency_p50_ms < summary.latency_p99_ms
        True
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
    # --- hosting (Azure SignalR Service) and web traffic: None when not modelled
    service_units: int | None = None
    """Azure SignalR Service units (``hosting='azure-signalr'``)."""
    service_connections: int | None = None
    """Peak concurrent connections on the service: client plus server connections."""
    service_billed_messages: int | None = None
    """Billed messages out of the service for the counted broadcasts (2 KB chunks, pings free)."""
    service_billed_messages_per_day: float | None = None
    """``service_billed_messages`` per day of the counted phase's rate."""
    service_cost_per_day_usd: float | None = None
    """Units × price per unit-day, plus billed messages beyond the included ones × price per million."""
    web_latency_p50_ms: float | None = None
    """Median latency of the ordinary web requests (arrival to response)."""
    web_latency_p99_ms: float | None = None
    """99th percentile of that latency."""
    web_requests_failed: int | None = None
    """Web requests not answered within ``web_request_timeout_s``."""
    servers_reached_per_send: float | None = None
    """Mean, over the counted sends, of the servers that wrote the send to at least one of their clients."""
    backplane_messages_received: int | None = None
    """Publishes the servers received from the backplane and delivered, all servers together (own echoes not
    counted); 0 without a backplane, ``None`` when the source does not count them."""
    first_connect_failed_fraction: float | None = None
    """First connect attempts that failed / first connect attempts made (``None`` when none was made): with
    negotiation behind a balancer that is not sticky, the share of clients whose very first connect got a 404."""

    def _repr_html_(self) -> str:
        """What Jupyter displays: every figure, formatted, in a two-column table."""
        return html_table(
            f"RunSummary: {self.scenario}", [(spec.name, getattr(self, spec.name)) for spec in dataclasses.fields(self)]
        )
