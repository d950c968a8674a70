"""Headline figures from records, without pandas (the model and the load generator both use it)."""

from __future__ import annotations

import math

from simscale.metrics.records import NO_SERVER, ConnectionEventKind, RunRecords, RunSummary, Source

__all__ = [
    "clients_connected_mean",
    "cpu_utilization_by_server",
    "cpu_utilization_peak",
    "delivered_fraction",
    "delivered_fraction_all_clients",
    "servers_reached_per_send",
    "summarize",
]


def delivered_fraction(records: RunRecords) -> float:
    """Deliveries / Σ(clients connected when each counted broadcast was sent), from the records.

    Counted from the delivery records of each server's own fan-out, never from a formula; NaN when
    no broadcast was counted.
    """
    expected = sum(record.connected_clients for record in records.broadcasts)
    if expected == 0:
        return math.nan
    counted = {record.broadcast_id for record in records.broadcasts}
    delivered = sum(record.delivered for record in records.deliveries if record.broadcast_id in counted)
    return delivered / expected


def delivered_fraction_all_clients(records: RunRecords, clients: int | None) -> float | None:
    """Counted deliveries / (counted broadcasts × every client the scenario asked for); ``None`` when
    there was no counted broadcast or the number of clients is unknown."""
    if not clients or not records.broadcasts:
        return None
    counted = {record.broadcast_id for record in records.broadcasts}
    delivered = sum(record.delivered for record in records.deliveries if record.broadcast_id in counted)
    return delivered / (len(records.broadcasts) * clients)


def servers_reached_per_send(records: RunRecords) -> float | None:
    """Mean, over the counted sends, of the servers that delivered the send to at least one client.

    ``None`` when no send was counted.

    Example (send 0 reached servers 0 and 2, send 1 only server 1):

        >>> from simscale.metrics import BroadcastRecord, DeliveryRecord, RunRecords
        >>> from simscale.metrics.summary import servers_reached_per_send
        >>> sent = [BroadcastRecord("model", "demo", i, 0, 1.0, 4, "group") for i in (0, 1)]
        >>> got = [DeliveryRecord("model", "demo", b, s, 0, 1.0, 2, 2, 0.001, 0.001, "group") for b, s in
        ...        [(0, 0), (0, 2), (1, 1)]]
        >>> servers_reached_per_send(RunRecords(broadcasts=sent, deliveries=got))
        1.5
    """
    if not records.broadcasts:
        return None
    counted = {record.broadcast_id for record in records.broadcasts}
    reached = {
        (record.broadcast_id, record.server)
        for record in records.deliveries
        if record.delivered > 0 and record.broadcast_id in counted
    }
    return len(reached) / len(counted)


def clients_connected_mean(records: RunRecords, start_s: float = 0.0, end_s: float = math.inf) -> float | None:
    """Mean number of clients connected anywhere when the counted broadcasts were sent.

    A broadcast to everyone records that number itself. A send to a group, a user or a connection
    records only its audience's connected members, so then the connections the servers held, summed
    at each resource sample in (``start_s``, ``end_s``], are averaged instead.
    """
    if not records.broadcasts:
        return None
    if all(record.audience == "all" for record in records.broadcasts):
        return sum(record.connected_clients for record in records.broadcasts) / len(records.broadcasts)
    held: dict[float, int] = {}
    for sample in records.resources:
        if sample.server != NO_SERVER and start_s < sample.time_s <= end_s:
            held[sample.time_s] = held.get(sample.time_s, 0) + sample.connections
    return sum(held.values()) / len(held) if held else None


def cpu_utilization_by_server(records: RunRecords, start_s: float, end_s: float) -> dict[int, float]:
    """Mean CPU utilisation per server over samples taken in (start_s, end_s]."""
    totals: dict[int, list[float]] = {}
    for sample in records.resources:
        if sample.server == NO_SERVER or not start_s < sample.time_s <= end_s:
            continue
        if math.isnan(sample.cpu_utilization):
            continue
        totals.setdefault(sample.server, []).append(sample.cpu_utilization)
    return {server: sum(values) / len(values) for server, values in totals.items()}


def cpu_utilization_peak(records: RunRecords, server: int, start_s: float, end_s: float) -> float | None:
    """``server``'s highest CPU sample taken in (start_s, end_s]; ``None`` without samples."""
    values = [
        sample.cpu_utilization
        for sample in records.resources
        if sample.server == server and start_s < sample.time_s <= end_s and not math.isnan(sample.cpu_utilization)
    ]
    return max(values) if values else None


def summarize(
    records: RunRecords,
    *,
    scenario: str,
    servers: int | None,
    clients: int | None,
    duration_s: float | None,
    warmup_s: float,
    wall_s: float | None,
    events: int | None,
    source: Source = "model",
    memory_base_bytes: float = 0.0,
) -> RunSummary:
    """The run's :class:`RunSummary` (each field's meaning is documented there).

    ``cpu_utilization_max`` is the busiest server's mean utilisation over the broadcast phase
    (after warm-up, until ``duration_s``; the drain excluded), as a fraction 0-1 of that server's
    cores, and ``cpu_utilization_peak`` that server's highest sample in the same window.
    """
    fraction = delivered_fraction(records)
    deliveries = sum(record.delivered for record in records.deliveries)
    refused = sum(e.clients for e in records.connections if e.event is ConnectionEventKind.REFUSED)
    dropped = sum(e.clients for e in records.connections if e.event is ConnectionEventKind.DROPPED)
    gave_up_never_connected = sum(
        e.clients
        for e in records.connections
        if e.event is ConnectionEventKind.GAVE_UP and e.reason == "retries_exhausted"
    )
    gave_up = sum(e.clients for e in records.connections if e.event is ConnectionEventKind.GAVE_UP)
    end_s = duration_s if duration_s is not None else math.inf
    cpu = cpu_utilization_by_server(records, warmup_s, end_s) if records.resources else {}
    busiest = max(cpu, key=lambda server: cpu[server]) if cpu else None
    measured_s = (duration_s - warmup_s) if duration_s is not None else None
    memory_per_connection_kb = _memory_per_connection_kb(records, memory_base_bytes)
    return RunSummary(
        scenario=scenario,
        servers=servers,
        clients=clients,
        duration_s=duration_s,
        broadcasts=len(records.broadcasts),
        delivered_fraction=None if math.isnan(fraction) else fraction,
        latency_p50_ms=_ms(records.latency.quantile_s(0.5)),
        latency_p99_ms=_ms(records.latency.quantile_s(0.99)),
        connections_refused=refused,
        connections_dropped=dropped + gave_up_never_connected,
        cpu_utilization_max=max(cpu.values()) if cpu else None,
        wall_s=wall_s,
        events=events,
        deliveries=deliveries,
        deliveries_per_s=deliveries / measured_s if measured_s else None,
        memory_per_connection_kb=memory_per_connection_kb,
        clients_gave_up=gave_up,
        source=source,
        clients_connected=clients_connected_mean(records, warmup_s, duration_s if duration_s is not None else math.inf),
        clients_never_connected=(
            clients - records.clients_ever_connected
            if clients is not None and records.clients_ever_connected is not None
            else None
        ),
        delivered_fraction_all_clients=delivered_fraction_all_clients(records, clients),
        cpu_utilization_peak=(None if busiest is None else cpu_utilization_peak(records, busiest, warmup_s, end_s)),
        servers_reached_per_send=servers_reached_per_send(records),
        backplane_messages_received=(
            sum(records.backplane_messages_received_per_server)
            if records.backplane_messages_received_per_server
            else None
        ),
        first_connect_failed_fraction=(
            records.first_connects_failed / records.first_connects_attempted
            if records.first_connects_attempted and records.first_connects_failed is not None
            else None
        ),
    )


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else seconds * 1000.0


def _memory_per_connection_kb(records: RunRecords, memory_base_bytes: float) -> float | None:
    """Memory above each server's base at the last sample, per connection held then."""
    samples = [s for s in records.resources if s.server != NO_SERVER and not math.isnan(s.memory_bytes)]
    if not samples:
        return None
    last_by_server: dict[int, tuple[float, int]] = {}
    for sample in samples:
        last_by_server[sample.server] = (sample.memory_bytes, sample.connections)
    memory = sum(m - memory_base_bytes for m, _ in last_by_server.values())
    connections = sum(c for _, c in last_by_server.values())
    return None if connections == 0 else memory / connections / 1000.0
