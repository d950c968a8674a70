"""Counters of one hub server, rendered as JSON for ``/health`` and Prometheus text for ``/metrics``.

Plain integer attributes bumped in place: the hot path pays one attribute add per event, and the
endpoints read them only when scraped.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

__all__ = ["HubCounters", "render_prometheus"]


@dataclass(slots=True)
class HubCounters:
    """Monotonic counters (since start) plus the latest event-loop lag sample.

    Example (a fresh server's counters; ``/metrics`` serves them in Prometheus' text format):

        >>> from simscale.hub import HubServer
        >>> counters = HubServer().counters
        >>> counters.connections_opened, counters.deliveries
        (0, 0)
    """

    connections_opened: int = 0
    connections_closed: int = 0
    invocations: int = 0
    invocation_errors: int = 0
    deliveries: int = 0
    """Hub messages written to local sockets (a broadcast to 100 local clients counts 100)."""
    bytes_sent: int = 0
    backplane_messages_received: int = 0
    backplane_missed: int = 0
    """Envelopes other servers published on ``all`` that never arrived here (told by their sequence)."""
    protocol_errors: int = 0
    slow_consumer_closes: int = 0
    timeouts: int = 0
    rejected_connections: int = 0
    group_refusals: int = 0
    """Joins refused at max_groups_per_connection."""
    group_name_refusals: int = 0
    """Joins refused for a name longer than max_group_name_bytes."""
    stream_refusals: int = 0
    """Stream invocations refused at max_streams_per_connection."""
    reservation_refusals: int = 0
    """Negotiate requests refused at max_reservations or max_reservations_per_address."""
    event_loop_lag_s: float = 0.0
    """How late the last sweep tick woke up: a direct measure of event-loop saturation."""


def render_prometheus(
    counters: HubCounters,
    *,
    connections: int,
    publishes: int,
    losses: int,
    backplane_connected: bool,
    gaps: int = 0,
    gap_seconds: float = 0.0,
) -> str:
    """The Prometheus text exposition (format 0.0.4) of a server's counters and gauges.

    ``losses`` are the publishes the backplane could not send; ``backplane_losses_total`` adds the
    envelopes this server can tell it missed (``counters.backplane_missed``).
    """
    samples: list[tuple[str, str, str, float]] = [
        ("simscale_hub_connections", "gauge", "Connections currently attached.", connections),
        (
            "simscale_hub_connections_opened_total",
            "counter",
            "Connections that completed the handshake.",
            counters.connections_opened,
        ),
        (
            "simscale_hub_connections_closed_total",
            "counter",
            "Connections closed, for any reason.",
            counters.connections_closed,
        ),
        (
            "simscale_hub_invocations_total",
            "counter",
            "Hub method invocations received.",
            counters.invocations,
        ),
        (
            "simscale_hub_invocation_errors_total",
            "counter",
            "Invocations that completed with an error.",
            counters.invocation_errors,
        ),
        (
            "simscale_hub_deliveries_total",
            "counter",
            "Hub messages written to local connections.",
            counters.deliveries,
        ),
        (
            "simscale_hub_sent_bytes_total",
            "counter",
            "Bytes written to local connections.",
            counters.bytes_sent,
        ),
        (
            "simscale_hub_backplane_received_total",
            "counter",
            "Envelopes received from the backplane.",
            counters.backplane_messages_received,
        ),
        (
            "simscale_hub_backplane_publishes_total",
            "counter",
            "Envelopes published on the backplane.",
            publishes,
        ),
        (
            "simscale_hub_backplane_losses_total",
            "counter",
            "Messages lost: publishes the backplane could not send, plus messages of other servers "
            "that never arrived (told from their publish sequence on the all channel).",
            losses + counters.backplane_missed,
        ),
        (
            "simscale_hub_backplane_missed_total",
            "counter",
            "Messages of other servers on the all channel that never arrived (part of the losses).",
            counters.backplane_missed,
        ),
        (
            "simscale_hub_backplane_gaps_total",
            "counter",
            "Times the backplane link was lost (each a stretch in which messages were missed).",
            gaps,
        ),
        (
            "simscale_hub_backplane_gap_seconds_total",
            "counter",
            "Seconds the backplane link was silent, from its last sign of life until it was back.",
            float(gap_seconds),
        ),
        (
            "simscale_hub_backplane_up",
            "gauge",
            "1 when the backplane is connected.",
            int(backplane_connected),
        ),
        (
            "simscale_hub_protocol_errors_total",
            "counter",
            "Connections closed for a protocol violation.",
            counters.protocol_errors,
        ),
        (
            "simscale_hub_slow_consumer_closes_total",
            "counter",
            "Connections closed because their outgoing buffer overflowed.",
            counters.slow_consumer_closes,
        ),
        (
            "simscale_hub_timeouts_total",
            "counter",
            "Connections closed by the handshake or client timeout.",
            counters.timeouts,
        ),
        (
            "simscale_hub_rejected_connections_total",
            "counter",
            "Requests answered 503 at max_connections.",
            counters.rejected_connections,
        ),
        (
            "simscale_hub_group_refusals_total",
            "counter",
            "Group joins refused at max_groups_per_connection.",
            counters.group_refusals,
        ),
        (
            "simscale_hub_group_name_refusals_total",
            "counter",
            "Group joins refused for a name longer than max_group_name_bytes.",
            counters.group_name_refusals,
        ),
        (
            "simscale_hub_stream_refusals_total",
            "counter",
            "Stream invocations refused at max_streams_per_connection.",
            counters.stream_refusals,
        ),
        (
            "simscale_hub_reservation_refusals_total",
            "counter",
            "Negotiate requests refused at max_reservations or max_reservations_per_address.",
            counters.reservation_refusals,
        ),
        (
            "simscale_hub_event_loop_lag_seconds",
            "gauge",
            "Lateness of the last periodic sweep.",
            counters.event_loop_lag_s,
        ),
    ]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    samples += [
        (
            "simscale_hub_process_cpu_seconds_total",
            "counter",
            "CPU time of the server process (user + system).",
            usage.ru_utime + usage.ru_stime,
        ),
        (
            "simscale_hub_process_max_resident_memory_bytes",
            "gauge",
            "Peak resident memory of the server process.",
            usage.ru_maxrss * 1024,
        ),
    ]
    lines: list[str] = []
    for name, kind, help_text, value in samples:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}")
    return "\n".join(lines) + "\n"
