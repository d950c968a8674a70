"""A reconnect storm read from connection records: how long it took, how hard it hit, what was lost.

Shared by the model and the load generator (both write the same :class:`ConnectionEvent`,
:class:`BroadcastRecord` and :class:`DeliveryRecord`), so ``simscale validate reconnect-storm`` puts
the same three numbers side by side. Each is read relative to the moment the server failed, on the
records' own clock, so a simulation (time 0: clients connected) and a load test (time 0: before the
clients connect) compare without aligning their clocks:

* :func:`recovery_s`: from the failure until 99 % of the clients connected just before it are
  connected again;
* :func:`peak_handshakes_per_s`: the most connections the surviving servers completed in any one
  second after the failure;
* :func:`broadcasts_lost`: broadcasts sent from the failure until the recovery that did not reach every
  one of those clients.

Pure: no pandas, no simpy.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from simscale.metrics.records import ConnectionEvent, ConnectionEventKind, RunRecords

__all__ = [
    "RECOVERED_FRACTION",
    "StormFigures",
    "broadcasts_lost",
    "connected_before",
    "connected_timeline",
    "peak_handshakes_per_s",
    "recovery_s",
    "storm_figures",
]

RECOVERED_FRACTION = 0.99
"""The storm is over once this share of the clients connected before the failure are back."""

_OPENS = (ConnectionEventKind.CONNECTED,)
_ENDS = (ConnectionEventKind.DROPPED, ConnectionEventKind.CLOSED)


def connected_timeline(connections: Iterable[ConnectionEvent]) -> list[tuple[float, int]]:
    """``(time_s, clients connected right after it)`` at every instant a connection opened or ended.

    Example (two clients connect, one drops, it comes back):

        >>> from simscale.metrics import ConnectionEvent, ConnectionEventKind
        >>> from simscale.metrics.reconnects import connected_timeline
        >>> events = [ConnectionEvent("hub", "x", 0.0, 0, ConnectionEventKind.CONNECTED, "ok", 2),
        ...           ConnectionEvent("hub", "x", 1.0, 0, ConnectionEventKind.DROPPED, "server_crash", 1),
        ...           ConnectionEvent("hub", "x", 1.5, 1, ConnectionEventKind.REFUSED, "connection_refused", 1),
        ...           ConnectionEvent("hub", "x", 3.0, 1, ConnectionEventKind.CONNECTED, "ok", 1)]
        >>> connected_timeline(events)
        [(0.0, 2), (1.0, 1), (3.0, 2)]
    """
    changes: dict[float, int] = {}
    for event in connections:
        if event.event in _OPENS:
            changes[event.time_s] = changes.get(event.time_s, 0) + event.clients
        elif event.event in _ENDS:
            changes[event.time_s] = changes.get(event.time_s, 0) - event.clients
    timeline: list[tuple[float, int]] = []
    connected = 0
    for time_s in sorted(changes):
        connected += changes[time_s]
        timeline.append((time_s, connected))
    return timeline


def connected_before(records: RunRecords, at_s: float) -> int:
    """Clients connected just before ``at_s`` (events at ``at_s`` itself not counted)."""
    connected = 0
    for time_s, count in connected_timeline(records.connections):
        if time_s >= at_s:
            break
        connected = count
    return connected


def recovery_s(records: RunRecords, failure_at_s: float, fraction: float = RECOVERED_FRACTION) -> float | None:
    """Seconds from ``failure_at_s`` until ``fraction`` of the clients connected just before it are
    connected again; 0 if the count never fell below that, ``None`` if it had not come back by the end.

    Example (100 clients, 50 drop at 10 s, 49 are back at 12.5 s and the last one at 20 s; counted from 1 s,
    the same recovery takes 11.5 s):

        >>> from simscale.metrics import ConnectionEvent, ConnectionEventKind, RunRecords
        >>> from simscale.metrics.reconnects import recovery_s
        >>> def event(time_s, kind, clients):
        ...     return ConnectionEvent("model", "x", time_s, 0, kind, "ok", clients)
        >>> records = RunRecords(connections=[event(0.0, ConnectionEventKind.CONNECTED, 100),
        ...     event(10.0, ConnectionEventKind.DROPPED, 50), event(12.5, ConnectionEventKind.CONNECTED, 49),
        ...     event(20.0, ConnectionEventKind.CONNECTED, 1)])
        >>> recovery_s(records, 10.0), recovery_s(records, 10.0, fraction=1.0), recovery_s(records, 1.0)
        (2.5, 10.0, 11.5)
        >>> recovery_s(RunRecords(connections=records.connections[:2]), 10.0) is None
        True
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    target = math.ceil(fraction * connected_before(records, failure_at_s))
    fell = False
    for time_s, count in connected_timeline(records.connections):
        if time_s < failure_at_s:
            continue
        if count < target:
            fell = True
        elif fell:
            return time_s - failure_at_s
    return None if fell else 0.0


def peak_handshakes_per_s(
    records: RunRecords, since_s: float, servers: Collection[int], window_s: float = 1.0
) -> float:
    """The most connections ``servers`` completed within any ``window_s`` after ``since_s``, per second.

    The window slides (it starts at each completion), so a burst split by a bin boundary counts whole.

    Example (30 connect at 5.2 s and 20 at 5.9 s on server 1; server 0's are not counted):

        >>> from simscale.metrics import ConnectionEvent, ConnectionEventKind, RunRecords
        >>> from simscale.metrics.reconnects import peak_handshakes_per_s
        >>> def connected(time_s, server, clients):
        ...     return ConnectionEvent("model", "x", time_s, server, ConnectionEventKind.CONNECTED, "ok", clients)
        >>> records = RunRecords(connections=[connected(5.2, 1, 30), connected(5.9, 1, 20), connected(5.5, 0, 99),
        ...                                   connected(7.0, 1, 5)])
        >>> peak_handshakes_per_s(records, 5.0, {1}), peak_handshakes_per_s(records, 5.0, {1}, window_s=0.5)
        (50.0, 60.0)
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0 seconds, got {window_s!r}")
    completions = sorted(
        (event.time_s, event.clients)
        for event in records.connections
        if event.event is ConnectionEventKind.CONNECTED and event.server in servers and event.time_s >= since_s
    )
    best = 0
    in_window = 0
    first = 0
    for time_s, clients in completions:
        in_window += clients
        while completions[first][0] <= time_s - window_s:
            in_window -= completions[first][1]
            first += 1
        best = max(best, in_window)
    return best / window_s


def broadcasts_lost(records: RunRecords, start_s: float, end_s: float, audience: int) -> int:
    """Broadcasts sent in ``[start_s, end_s]`` whose deliveries, over every server, reached fewer than
    ``audience`` clients (someone who should have had it did not).

    Example (broadcast 0 reached all 10 clients; broadcast 1, sent during the gap, only 6):

        >>> from simscale.metrics import BroadcastRecord, DeliveryRecord, RunRecords
        >>> from simscale.metrics.reconnects import broadcasts_lost
        >>> records = RunRecords(
        ...     broadcasts=[BroadcastRecord("hub", "x", 0, 0, 1.0, 10), BroadcastRecord("hub", "x", 1, 0, 5.0, 6)],
        ...     deliveries=[DeliveryRecord("hub", "x", 0, 0, 0, 1.0, 10, 10, 0.001, 0.002),
        ...                 DeliveryRecord("hub", "x", 1, 0, 0, 5.0, 6, 6, 0.001, 0.002)])
        >>> broadcasts_lost(records, 4.0, 9.0, 10), broadcasts_lost(records, 0.0, 9.0, 10)
        (1, 1)
    """
    delivered: dict[int, int] = {}
    for delivery in records.deliveries:
        delivered[delivery.broadcast_id] = delivered.get(delivery.broadcast_id, 0) + delivery.delivered
    return sum(
        1
        for broadcast in records.broadcasts
        if start_s <= broadcast.sent_at_s <= end_s and delivered.get(broadcast.broadcast_id, 0) < audience
    )


@dataclass(frozen=True, slots=True)
class StormFigures:
    """The three figures of one reconnect storm, plus what they were counted against.

    Example (what :func:`storm_figures` returns; these numbers are made up):

        >>> from simscale.metrics import StormFigures
        >>> figures = StormFigures(recovery_s=10.2, peak_handshakes_per_s=200.0, broadcasts_lost=15, clients_before=600)
        >>> figures.broadcasts_lost, figures.recovery_s is not None
        (15, True)
    """

    recovery_s: float | None
    """``None``: fewer than 99 % were back by the end of the run."""
    peak_handshakes_per_s: float
    broadcasts_lost: int
    """Counted up to the recovery (up to the end of the run when there was none)."""
    clients_before: int
    """Clients connected just before the failure (the 100 % of the recovery)."""


def storm_figures(
    records: RunRecords, failure_at_s: float, failed_server: int, servers: int, end_s: float
) -> StormFigures:
    """:func:`recovery_s`, :func:`peak_handshakes_per_s` on the other servers and :func:`broadcasts_lost`.

    Example (in the model: one of three servers crashes at 5 s; its 100 clients reconnect to the others):

        >>> from simscale import preset, simulate
        >>> from simscale.metrics.reconnects import storm_figures
        >>> result = simulate(preset("no-backplane", clients=300, duration_s=15.0, warmup_s=1.0, seed=1,
        ...     server_failure_kind="crash", server_failure_at_s=5.0, server_failure_server=1,
        ...     server_failure_duration_s=5.0, reconnect_delays_s=(2.0, 2.0)))
        >>> figures = storm_figures(result.records, 5.0, failed_server=1, servers=3, end_s=15.0)
        >>> figures.clients_before, 2.0 <= figures.recovery_s < 2.5, figures.peak_handshakes_per_s
        (300, True, 100.0)
    """
    recovered = recovery_s(records, failure_at_s)
    before = connected_before(records, failure_at_s)
    survivors = {server for server in range(servers) if server != failed_server}
    lost_until_s = end_s if recovered is None else failure_at_s + recovered
    return StormFigures(
        recovery_s=recovered,
        peak_handshakes_per_s=peak_handshakes_per_s(records, failure_at_s, survivors),
        broadcasts_lost=broadcasts_lost(records, failure_at_s, lost_until_s, before),
        clients_before=before,
    )
