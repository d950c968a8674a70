"""What went wrong in a run, in one line each: refused and dropped connections, their binding cause, the remedy.

A summary must not look good while clients failed: ``delivered_fraction`` counts only connected
clients, so a run where most clients were refused can still read 1.000. :func:`connection_warnings`
reads the run's connection events and its scenario and names, for each kind of failure, how many,
the limit that bound (with the number the scenario sets it to) and the field to change.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from simscale.metrics.records import ConnectionEventKind

if TYPE_CHECKING:
    from simscale.config.scenario import Scenario
    from simscale.scenarios.run import SimulationResult

__all__ = ["connection_warnings", "failure_cause", "failure_limit", "failure_reasons", "peak_cpu"]


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {plural or word + 's'}"


def failure_cause(reason: str, scenario: Scenario, cpu_utilization_peak: float | None = None) -> str:
    """The limit behind a refusal or drop ``reason``, with the scenario's number and the remedy.

    ``cpu_utilization_peak`` (the busiest server's highest CPU sample) tells a saturated CPU from a
    starved thread pool when work waited too long.
    """
    s = scenario
    if reason == "proxy_ports_exhausted":
        capacity = s.ephemeral_ports * s.proxy_addresses
        return (
            f"each backend holds at most {capacity:,} connections through "
            f"{_plural(s.proxy_addresses, 'proxy address', 'proxy addresses')} (raise proxy_addresses)"
        )
    if reason == "ports_exhausted":
        return (
            f"each client address ({s.client_addresses:,} here) opens at most {s.ephemeral_ports:,} connections to "
            f"the load balancer, and a closed connection holds its port for time_wait_s={s.time_wait_s:g} s "
            "(raise client_addresses)"
        )
    if reason == "connection_limit":
        return (
            f"each server accepts at most {s.max_connections_per_server:,} connections "
            "(raise max_connections_per_server or add servers)"
        )
    if reason == "negotiate_404":
        return (
            f"the transport request reached a server that did not negotiate it (404): load_balancer="
            f"{s.load_balancer!r} is not sticky (use sticky-ip or sticky-cookie, or WebSockets with skip_negotiation)"
        )
    if reason in ("no_server_up", "server_down", "server_crash", "server_drain"):
        return (
            f"servers went down (server_failure_kind={s.server_failure_kind!r} at {s.server_failure_at_s:g} s, "
            f"down {s.server_failure_duration_s:g} s)"
        )
    if reason == "handshake_limit":
        return f"a server admits at most max_concurrent_handshakes={s.max_concurrent_handshakes:,} handshakes at once"
    if reason in ("handshake_timeout", "server_timeout") and s.handshake_wait_s > 0:
        return (
            f"handshakes block a thread for handshake_wait_s={s.handshake_wait_s:g} s and retries queued them "
            "(add reconnect_jitter, set max_concurrent_handshakes or raise min_threads)"
        )
    if reason in ("handshake_timeout", "server_timeout"):
        what = (
            f"handshakes waited more than handshake_timeout_s={s.handshake_timeout_s:g} s"
            if reason == "handshake_timeout"
            else f"clients heard no keep-alive ping for server_timeout_s={s.server_timeout_s:g} s"
        )
        return f"{what}: {_busy_cause(s, cpu_utilization_peak)}"
    if reason == "client_timeout":
        return (
            f"servers heard nothing from silent clients for client_timeout_s={s.client_timeout_s:g} s "
            f"(silent_clients_fraction={s.silent_clients_fraction:g})"
        )
    if reason.startswith("retries_exhausted"):
        return f"the reconnect delays {list(s.reconnect_delays_s)} ran out (add delays to reconnect_delays_s)"
    return reason


def failure_limit(reason: str, cpu_utilization_peak: float | None = None) -> str | None:
    """The name of the limit behind a refusal or drop ``reason``, as ``simscale plan`` names it.

    ``ports`` (a proxy's or a client address's ephemeral ports), ``connection_limit``, ``threads``
    (work waited past a timeout while the CPU had room), ``cpu`` (it waited because the CPU was
    saturated) or ``service_units`` (Azure SignalR Service's connection quota); ``None`` for a
    reason no server limit explains (silent clients, a short run).

    Example:

        >>> from simscale.scenarios.diagnosis import failure_limit
        >>> failure_limit("proxy_ports_exhausted"), failure_limit("server_timeout", 0.97)
        ('ports', 'cpu')
    """
    if reason in ("proxy_ports_exhausted", "ports_exhausted"):
        return "ports"
    if reason == "connection_limit":
        return "connection_limit"
    if reason == "service_quota":
        return "service_units"
    if reason in ("handshake_timeout", "server_timeout"):
        saturated = cpu_utilization_peak is not None and cpu_utilization_peak >= _CPU_SATURATED
        return "cpu" if saturated else "threads"
    return None


def failure_reasons(result: SimulationResult) -> tuple[Counter[str], Counter[str]]:
    """Clients refused and clients dropped (or given up) in ``result``, by reason."""
    refused: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for event in result.records.connections:
        if event.event is ConnectionEventKind.REFUSED:
            refused[event.reason] += event.clients
        elif event.event is ConnectionEventKind.DROPPED or (
            event.event is ConnectionEventKind.GAVE_UP and event.reason == "retries_exhausted"
        ):
            dropped[event.reason] += event.clients
    return refused, dropped


_CPU_SATURATED = 0.9
"""A server whose highest CPU sample reaches this is taken as CPU-bound."""


def _busy_cause(scenario: Scenario, cpu_utilization_peak: float | None) -> str:
    if cpu_utilization_peak is not None and cpu_utilization_peak >= _CPU_SATURATED:
        return f"the CPU was saturated (peak {cpu_utilization_peak:.0%}; add servers or lower the message volume)"
    cpu_text = "" if cpu_utilization_peak is None else f" while the CPU peaked at {cpu_utilization_peak:.0%}"
    return (
        f"the thread pool was starved{cpu_text} (method_kind={scenario.method_kind!r}: make hub methods async "
        "or raise min_threads)"
    )


def connection_warnings(result: SimulationResult) -> list[str]:
    """One ``warning: …`` line per kind of connection failure in ``result`` (empty when none failed)."""
    refused, dropped = failure_reasons(result)
    lines = []
    peak = peak_cpu(result)
    never = result.summary.clients_never_connected or 0
    if refused:
        reason, _ = refused.most_common(1)[0]
        also = ", ".join(f"{count:,} {other}" for other, count in refused.most_common() if other != reason)
        never_text = f" ({_plural(never, 'client')} never connected)" if never else ""
        lines.append(
            f"warning: {_plural(refused.total(), 'connection attempt')} refused{never_text}: "
            f"{failure_cause(reason, result.scenario, peak)}" + (f"; also refused: {also}" if also else "")
        )
    elif never:
        lines.append(
            f"warning: {_plural(never, 'client')} never connected before the run ended (connect_ramp_s="
            f"{result.scenario.connect_ramp_s:g} s, duration_s={result.scenario.duration_s:g} s)"
        )
    if dropped:
        reason, _ = dropped.most_common(1)[0]
        also = ", ".join(f"{count:,} {other}" for other, count in dropped.most_common() if other != reason)
        lines.append(
            f"warning: {_plural(dropped.total(), 'connection')} dropped: {failure_cause(reason, result.scenario, peak)}"
            + (f"; also dropped: {also}" if also else "")
        )
    return lines


def peak_cpu(result: SimulationResult) -> float | None:
    """The highest CPU sample of any server over the whole run (a timeout can happen in the drain too)."""
    values = [sample.cpu_utilization for sample in result.records.resources if sample.cpu_utilization >= 0]
    return max(values) if values else None
