"""Named scenarios: the three classic scale-out cases and the two ways connections run out.

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
        ['single-server', 'no-backplane', 'backplane', 'port-exhaustion', 'thread-starvation', 'sticky-sessions',
         'reconnect-storm']
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
