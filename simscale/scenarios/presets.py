"""Named scenarios: the three classic scale-out cases, the two ways connections run out, and groups.

Each preset is a set of overrides on :class:`~simscale.config.scenario.Scenario`'s defaults; the
defaults themselves come from public sources, listed in docs/SOURCES.md (see
``simscale simulate PRESET --describe``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simscale.config.scenario import Scenario

__all__ = ["PRESETS", "Preset", "preset", "preset_names"]


@dataclass(frozen=True, slots=True)
class Preset:
    """A named scenario: what it shows and the fields it sets."""

    name: str
    summary: str
    overrides: dict[str, Any]


_WEB_TRAFFIC: dict[str, Any] = {
    "servers": 1,
    "clients": 20_000,
    "broadcast_rate_per_s": 30.0,
    "duration_s": 30.0,
    "web_request_rate_per_s": 100.0,
}
"""What the two web-traffic presets share: 20,000 clients, 30 broadcasts/s, 100 web requests/s."""

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "single-server",
            "One server: every broadcast reaches every connected client.",
            {"servers": 1, "clients": 1_000, "broadcast_rate_per_s": 20.0, "duration_s": 60.0},
        ),
        Preset(
            "no-backplane",
            "Three servers, no backplane: a broadcast reaches only the sender's server's clients (≈1/3).",
            {"servers": 3, "clients": 3_000, "broadcast_rate_per_s": 20.0, "duration_s": 60.0},
        ),
        Preset(
            "backplane",
            "Three servers joined by Redis pub/sub: everyone gets every broadcast; the backplane pays.",
            {"servers": 3, "clients": 3_000, "broadcast_rate_per_s": 20.0, "duration_s": 60.0, "backplane": "redis"},
        ),
        Preset(
            "port-exhaustion",
            "3,000 clients behind one NAT address reconnect every ~4 s: TIME_WAIT eats the 28,232 "
            "ephemeral ports and new connections are refused while the CPU idles.",
            {
                "servers": 1,
                "clients": 3_000,
                "client_addresses": 1,
                "connection_lifetime_s": 4.0,
                "broadcast_rate_per_s": 1.0,
                "duration_s": 90.0,
                "warmup_s": 5.0,
            },
        ),
        Preset(
            "thread-starvation",
            "Blocking hub methods starve the .NET thread pool: pings queue behind them, clients hit "
            "their 30 s server timeout and reconnect into the starved pool, while the CPU idles.",
            {
                "servers": 1,
                "clients": 2_000,
                "cores_per_server": 2,
                "invocation_rate_per_client_per_s": 0.2,
                "method_kind": "blocking",
                "method_wait_s": 1.0,
                "broadcast_rate_per_s": 0.5,
                "duration_s": 90.0,
                "warmup_s": 5.0,
            },
        ),
        # --- hosting and web traffic (docs/SOURCES.md#azure-signalr-service, #web-traffic-beside-signalr)
        Preset(
            "azure-signalr-service",
            "One hub on Azure SignalR Service in the default mode, broadcasts only: two app servers hold 5 "
            "server connections each, the service holds the 5,000 clients and fans out (billed per 2 KB).",
            {
                "servers": 2,
                "clients": 5_000,
                "broadcast_rate_per_s": 1.0,
                "message_bytes": 2_048,
                "duration_s": 60.0,
                "hosting": "azure-signalr",
            },
        ),
        Preset(
            "web-traffic-shared",
            "Web requests served by the SignalR server itself: they queue behind its fan-outs, p99 suffers.",
            {**_WEB_TRAFFIC, "web_servers": 0},
        ),
        Preset(
            "web-traffic-separate",
            "The same web requests on a web server of their own: the SignalR load cannot touch them.",
            {**_WEB_TRAFFIC, "web_servers": 1},
        ),
        Preset(
            "small-groups",
            "300 groups of 10 over three servers with Redis: a group's message goes on its own channel, and only "
            "the servers holding a member (about 3·(1 − (2/3)^10) ≈ 2.95 of 3) receive and fan it out.",
            {
                "servers": 3,
                "clients": 3_000,
                "backplane": "redis",
                "send_target": "group",
                "groups": 300,
                "group_size": 10,
                "groups_per_client": 1,
                "broadcast_rate_per_s": 200.0,
                "duration_s": 60.0,
            },
        ),
        Preset(
            "big-groups",
            "Three groups of 2,000 over three servers with Redis (each client in two): every server holds "
            "members of every group, so each send reaches all servers, as a broadcast does.",
            {
                "servers": 3,
                "clients": 3_000,
                "backplane": "redis",
                "send_target": "group",
                "groups": 3,
                "group_size": 2_000,
                "groups_per_client": 2,
                "broadcast_rate_per_s": 20.0,
                "duration_s": 60.0,
            },
        ),
        Preset(
            "sticky-sessions",
            "Clients negotiate, then open the transport: a round-robin balancer sends the second request "
            "to another server, which answers 404, for about 2 in 3 connects over three servers; a sticky "
            "balancer or WebSockets with skipNegotiation connect every time.",
            {
                "servers": 3,
                "clients": 3_000,
                "connect_ramp_s": 10.0,
                "skip_negotiation": False,
                "broadcast_rate_per_s": 5.0,
                "duration_s": 60.0,
                "warmup_s": 5.0,
            },
        ),
        Preset(
            "reconnect-storm",
            "One of three servers crashes at 20 s and is back at 40 s; its clients retry in lockstep into the "
            "survivors' thread pools, where handshakes block: late handshakes are done for clients that left, "
            "pings starve, the survivors' own clients time out too, and at 120 s, 80 s after the server is "
            "back, a third of the clients are still off. "
            "reconnect_jitter=0.5, max_concurrent_handshakes=150 or min_threads=40 end it.",
            {
                "servers": 3,
                "clients": 3_000,
                "server_failure_kind": "crash",
                "server_failure_at_s": 20.0,
                "server_failure_duration_s": 20.0,
                "handshake_wait_s": 1.0,
                "reconnect_delays_s": (10.0, 10.0, 30.0, 30.0, 30.0),
                "min_threads": 12,
                "thread_injection_interval_s": 5.0,
                "broadcast_rate_per_s": 1.0,
                "duration_s": 120.0,
                "warmup_s": 5.0,
            },
        ),
    )
}


def preset_names() -> list[str]:
    """The preset names, in teaching order.

    Example:

        >>> from simscale import preset_names
        >>> preset_names()  # doctest: +NORMALIZE_WHITESPACE
        ['single-server', 'no-backplane', 'backplane', 'port-exhaustion', 'thread-starvation',
         'azure-signalr-service', 'web-traffic-shared', 'web-traffic-separate', 'small-groups', 'big-groups',
         'sticky-sessions', 'reconnect-storm']
    """
    return list(PRESETS)


def preset(name: str, **overrides: Any) -> Scenario:
    """The scenario of preset ``name`` with optional field overrides (validated).

    Example:

        >>> from simscale import preset
        >>> scenario = preset("backplane", clients=30, seed=7)
        >>> scenario.name, scenario.servers, scenario.clients, scenario.backplane, scenario.seed
        ('backplane', 3, 30, 'redis', 7)
        >>> preset("backplane", servers=0)
        Traceback (most recent call last):
        ...
        ValueError: servers must be an integer >= 1 and <= 10000, got 0
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    fields = {"name": name, **PRESETS[name].overrides, **overrides}
    return Scenario(**fields)
