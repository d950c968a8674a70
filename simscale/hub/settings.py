"""Limits and timers of the real hub, as one frozen, validated dataclass.

The defaults are ASP.NET Core's ``HubOptions`` defaults (docs/SOURCES.md#keep-alive-and-timeouts),
so a measurement taken with simscale's hub reads like one taken on Kestrel.
"""

from __future__ import annotations

from dataclasses import dataclass

from simscale.config.fields import setting, validate_fields

__all__ = ["HubSettings"]

_REF = "docs/SOURCES.md#keep-alive-and-timeouts"


@dataclass(frozen=True, slots=True)
class HubSettings:
    """What every connection of a hub server is allowed to do, and when it is timed out.

    Each field's ``help`` (in its metadata) says what it does; ``simscale.config.fields.describe``
    lists them with their units and limits.

    Example (settings are validated when they are made):

        >>> from simscale.hub import HubServer, HubSettings
        >>> server = HubServer(settings=HubSettings(keepalive_interval_s=5.0))
        >>> server.settings.keepalive_interval_s
        5.0
        >>> try:
        ...     HubSettings(keepalive_interval_s=-1.0)
        ... except ValueError as error:
        ...     print("keepalive_interval_s" in str(error))
        True
    """

    keepalive_interval_s: float = setting(
        15.0, gt=0, section="timers", source=f"{_REF} (KeepAliveInterval)",
        help="Send a hub Ping to a client that has been sent nothing for this long.",
    )  # fmt: skip
    client_timeout_s: float = setting(
        30.0, gt=0, section="timers", source=f"{_REF} (ClientTimeoutInterval)",
        help="Close a connection that has sent nothing for this long.",
    )  # fmt: skip
    handshake_timeout_s: float = setting(
        15.0, gt=0, section="timers", source=f"{_REF} (HandshakeTimeout)",
        help="Close a connection that has not completed its handshake by then.",
    )  # fmt: skip
    max_message_bytes: int = setting(
        32_768, ge=1, section="limits", source=f"{_REF} (MaximumReceiveMessageSize)",
        help="Largest single hub message a client may send.",
    )  # fmt: skip
    max_parallel_invocations: int = setting(
        1, ge=1, unit="invocations", section="limits", source=f"{_REF} (MaximumParallelInvocationsPerClient)",
        help="Invocations one connection may have running at once.",
    )  # fmt: skip
    max_buffered_bytes: int = setting(
        1_048_576, ge=1, section="limits", source="simscale (a slow-consumer bound)",
        help="Outgoing bytes a connection may have waiting in its socket buffer; a slower reader is closed "
        "(a slow consumer) so the server's memory stays bounded.",
    )  # fmt: skip
    max_connections: int = setting(
        100_000, ge=1, unit="connections", section="limits", source="simscale",
        help="Attached connections beyond which the server answers 503 (negotiated tokens do not count).",
    )  # fmt: skip
    max_groups_per_connection: int = setting(
        1_000, ge=1, unit="groups", section="limits", source="simscale (a per-connection memory bound)",
        help="Groups one connection may be in at once; a join beyond it completes with an error.",
    )  # fmt: skip
    max_group_name_bytes: int = setting(
        1_024, ge=1, section="limits", source="simscale (a per-connection memory bound)",
        help="Longest group name (UTF-8 bytes) a connection may join; a longer one completes with an error.",
    )  # fmt: skip
    max_streams_per_connection: int = setting(
        100, ge=1, unit="streams", section="limits", source="simscale (a per-connection memory bound)",
        help="Server-to-client streams one connection may have running at once (counted apart from "
        "max_parallel_invocations); one more completes with an error.",
    )  # fmt: skip
    max_reservations: int = setting(
        20_000, ge=1, unit="reservations", section="limits", source="simscale (about 300 bytes each)",
        help="Negotiated tokens not yet used by a WebSocket, over all clients; negotiate answers 503 beyond it. "
        "They never count against max_connections.",
    )  # fmt: skip
    max_reservations_per_address: int = setting(
        1_000, ge=1, unit="reservations", section="limits", source="simscale",
        help="Negotiated tokens not yet used by a WebSocket, per client IP address; negotiate answers 429 beyond it "
        "(behind a reverse proxy every client has the proxy's address: a burst of reconnects must fit).",
    )  # fmt: skip
    negotiate_ttl_s: float = setting(
        30.0, gt=0, section="timers", source="simscale",
        help="How long a negotiated but unused connection token stays valid (and holds a reservation).",
    )  # fmt: skip
    sweep_interval_s: float = setting(
        1.0, gt=0, section="timers", source="simscale",
        help="Period of the one per-server timer that runs keep-alive and timeouts.",
    )  # fmt: skip
    group_ack_timeout_s: float = setting(
        30.0, gt=0, section="timers", source="ASP.NET Core (30 s)",
        help="How long adding a connection of another server to a group waits for that server's acknowledgement.",
    )  # fmt: skip

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.client_timeout_s <= self.keepalive_interval_s:
            # A client whose own keep-alive matches ours would be timed out between two pings.
            raise ValueError(
                f"client_timeout_s ({self.client_timeout_s}) must be > keepalive_interval_s "
                f"({self.keepalive_interval_s})"
            )
