"""Limits and timers of the real hub, as one frozen, validated dataclass.

The defaults are ASP.NET Core's ``HubOptions`` defaults (REFERENCE.md §1.6), so a measurement taken
with simscale's hub reads like one taken on Kestrel.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HubSettings:
    """What every connection of a hub server is allowed to do, and when it is timed out.

    Attributes:
        keepalive_interval_s: send a hub Ping to a client that has been sent nothing for this long.
        client_timeout_s: close a connection that has sent nothing for this long.
        handshake_timeout_s: close a connection that has not completed its handshake by then.
        max_message_bytes: largest single hub message a client may send.
        max_parallel_invocations: invocations one connection may have running at once.
        max_buffered_bytes: outgoing bytes a connection may have waiting in its socket buffer;
            a slower reader is closed (a slow consumer) so the server's memory stays bounded.
        max_connections: connections (attached or negotiated) beyond which the server answers 503.
        negotiate_ttl_s: how long a negotiated but unused connection token stays valid.
        sweep_interval_s: period of the one per-server timer that runs keep-alive and timeouts.
        group_ack_timeout_s: how long adding a connection of another server to a group waits for
            that server's acknowledgement (ASP.NET Core: 30 s).
    """

    keepalive_interval_s: float = 15.0
    client_timeout_s: float = 30.0
    handshake_timeout_s: float = 15.0
    max_message_bytes: int = 32_768
    max_parallel_invocations: int = 1
    max_buffered_bytes: int = 1_048_576
    max_connections: int = 100_000
    negotiate_ttl_s: float = 30.0
    sweep_interval_s: float = 1.0
    group_ack_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        positive_floats = {
            "keepalive_interval_s": self.keepalive_interval_s,
            "client_timeout_s": self.client_timeout_s,
            "handshake_timeout_s": self.handshake_timeout_s,
            "negotiate_ttl_s": self.negotiate_ttl_s,
            "sweep_interval_s": self.sweep_interval_s,
            "group_ack_timeout_s": self.group_ack_timeout_s,
        }
        for name, value in positive_floats.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        positive_ints = {
            "max_message_bytes": self.max_message_bytes,
            "max_parallel_invocations": self.max_parallel_invocations,
            "max_buffered_bytes": self.max_buffered_bytes,
            "max_connections": self.max_connections,
        }
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.client_timeout_s <= self.keepalive_interval_s:
            # A client whose own keep-alive matches ours would be timed out between two pings.
            raise ValueError(
                f"client_timeout_s ({self.client_timeout_s}) must be > keepalive_interval_s "
                f"({self.keepalive_interval_s})"
            )
