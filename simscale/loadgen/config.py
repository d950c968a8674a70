"""What a load test does, as one frozen, validated value.

The fields are declared with :func:`simscale.config.fields.setting`, which names the ``simscale
loadgen`` flag that sets each one, so a bad value's error message says which flag to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simscale.config.fields import setting, validate_fields

__all__ = ["LoadConfig"]

ProtocolName = Literal["json", "messagepack"]
LoadTarget = Literal["all", "group", "user", "connection"]

_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")


def _are_hub_urls(urls: tuple[str, ...]) -> bool:
    return len(urls) > 0 and all(url.startswith(_URL_SCHEMES) for url in urls)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """A load test: who connects where, how often a broadcast is sent, and for how long.

    Attributes:
        urls: hub URLs (e.g. ``http://127.0.0.1:5000/chatHub``); client ``i`` connects to
            ``urls[i % len(urls)]`` and that index is its ``server`` in the records.
        clients: connections to open.
        broadcast_rate_per_s: total rate of the Poisson stream of ``SendMessage`` broadcasts.
        duration_s: length of the measured window, after the warm-up.
        protocol: ``json`` or ``messagepack``.
        message_bytes: the broadcast payload is padded to this many characters.
        warmup_s: broadcasts sent in this first window are sent but not counted.
        seed: seeds the one random generator of the run (send times and senders).
        scenario: label written into every record.
        connect_concurrency: connection attempts in flight at once.
        connect_timeout_s: bound on one client's negotiate + upgrade + handshake.
        drain_s: after the last send, wait at most this long for outstanding deliveries.
        access_token: bearer token for every client.
        trace_loop_passes: keep every pass of the event loop that read something (when, how many
            reads) in :attr:`LoadResult.loop_passes`.
        send_target: ``all`` (``SendMessage`` broadcasts), ``group`` (every client joins its groups
            through ``JoinGroup`` before the sends, and each send is a ``SendToGroup`` from a member) or
            ``user`` (client ``c`` connects as user ``c // connections_per_user`` and each send is a
            ``SendToUser`` from a random client to a random user; the hub must take a bearer token as
            its user id, as ``simscale hub serve --users-from-tokens`` does) or ``connection`` (each send
            is a ``SendToConnection`` from a random client to a random client's connection).
        groups, group_size, groups_per_client: the groups, drawn by
            :func:`simscale.config.membership.draw_membership` from ``seed``, exactly as the model draws
            them for a Scenario with the same seed and sizes.
        join_settle_s: after the joins are sent, wait this long for the servers' subscriptions.
        reconnect_delays_s: a client whose connection dropped tries again after each of these delays in
            turn (the first attempt after the first delay, the next after a failed attempt, …) and gives up
            after the last: the model's ``reconnect_delays_s`` and the official clients'
            ``withAutomaticReconnect()`` (0, 2, 10, 30 s). A first connect that fails is not retried, as
            the official clients' ``start()``.
        reconnect_jitter: 0: the delays as they are; f: each delay × U(1 - f, 1 + f), drawn from a
            stream of its own (the model's ``reconnect_jitter``; the send schedule does not change).
        connections_per_user: with ``send_target="user"``, the connections of one user (several tabs),
            mapped by :func:`simscale.config.membership.user_of_clients` as the model maps them.

    Example:

        >>> from simscale.loadgen import LoadConfig
        >>> config = LoadConfig(urls=("http://127.0.0.1:5000/chatHub", "http://127.0.0.1:5001/chatHub"), clients=100)
        >>> config.servers, config.broadcast_rate_per_s, config.duration_s
        (2, 1.0, 10.0)
        >>> LoadConfig(urls=("http://127.0.0.1:5000/chatHub",), clients=0)
        Traceback (most recent call last):
        ...
        ValueError: clients (--clients) must be an integer >= 1 and <= 1000000, got 0
    """

    urls: tuple[str, ...] = setting(
        flag="--url", check=_are_hub_urls, allowed="one or more http(s):// or ws(s):// URLs",
        section="target", source="user", help="Hub URLs; client i connects to urls[i % len(urls)].",
    )  # fmt: skip
    clients: int = setting(
        ge=1, le=1_000_000, unit="clients", flag="--clients", section="load", source="user",
        help="Connections to open.",
    )  # fmt: skip
    broadcast_rate_per_s: float = setting(
        1.0, ge=0, le=100_000, unit="broadcasts/s", flag="--broadcast-rate", section="load", source="user",
        help="Total rate of the Poisson stream of SendMessage broadcasts.",
    )  # fmt: skip
    duration_s: float = setting(
        10.0, gt=0, le=86_400, flag="--duration", section="run", source="user",
        help="Length of the measured window, after the warm-up.",
    )  # fmt: skip
    protocol: ProtocolName = setting(
        "json", flag="--protocol", section="load", source="user", help="The hub protocol every client speaks."
    )
    message_bytes: int = setting(
        64, ge=0, le=16_000, flag="--message-bytes", section="load", source="user",
        help="The broadcast payload is padded to this many characters.",
    )  # fmt: skip
    warmup_s: float = setting(
        0.0, ge=0, le=86_400, flag="--warmup", section="run", source="user",
        help="Broadcasts sent in this first window are sent but not counted.",
    )  # fmt: skip
    seed: int = setting(
        0, ge=0, flag="--seed", section="run", source="user",
        help="Seeds the one random generator of the run (send times and senders).",
    )  # fmt: skip
    scenario: str = setting(
        "loadgen", flag="--scenario", section="run", source="user", help="Label written into every record."
    )
    connect_concurrency: int = setting(
        200, ge=1, unit="connections", flag="--connect-concurrency", section="target", source="simscale",
        help="Connection attempts in flight at once.",
    )  # fmt: skip
    connect_timeout_s: float = setting(
        15.0, gt=0, flag="--connect-timeout", section="target", source="simscale",
        help="Bound on one client's negotiate + upgrade + handshake.",
    )  # fmt: skip
    drain_s: float = setting(
        2.0, ge=0, le=60, flag="--drain", section="run", source="simscale",
        help="After the last send, wait at most this long for outstanding deliveries.",
    )  # fmt: skip
    access_token: str | None = setting(
        None, flag="--access-token", section="target", source="user", help="Bearer token for every client."
    )
    trace_loop_passes: bool = setting(
        False, section="run", source="user",
        help="Keep every pass of the event loop that read something in LoadResult.loop_passes.",
    )  # fmt: skip

    send_target: LoadTarget = setting(
        "all", flag="--send-target", section="load", source="user",
        help="all: SendMessage broadcasts; group: clients JoinGroup first, each send is a SendToGroup from a member; "
        "user: each client connects as its user, each send is a SendToUser; connection: each send is a "
        "SendToConnection to a random client.",
    )  # fmt: skip
    groups: int = setting(
        1, ge=1, le=10_000_000, unit="groups", flag="--groups", section="load", source="user",
        help="With --send-target group: how many groups.",
    )  # fmt: skip
    group_size: int = setting(
        10, ge=1, le=1_000_000, unit="clients", flag="--group-size", section="load", source="user",
        help="With --send-target group: members of each group, exactly.",
    )  # fmt: skip
    groups_per_client: int = setting(
        1, ge=1, le=100_000, unit="groups", flag="--groups-per-client", section="load", source="user",
        help="With --send-target group: the most groups one client is in.",
    )  # fmt: skip
    join_settle_s: float = setting(
        1.0, ge=0, le=60, flag="--join-settle", section="run", source="simscale",
        help="After the JoinGroup calls are sent, wait this long for the servers to subscribe.",
    )  # fmt: skip

    reconnect_delays_s: tuple[float, ...] = setting(
        (0.0, 2.0, 10.0, 30.0), ge=0.0, le=86_400.0, flag="--reconnect-delays", section="load",
        source="docs/SOURCES.md#client-reconnect-policy (DefaultReconnectPolicy)",
        help="Delays before reconnect attempts 1..n after a drop; after the last, the client gives up.",
    )  # fmt: skip
    reconnect_jitter: float = setting(
        0.0, unit="fraction", ge=0.0, le=1.0, flag="--reconnect-jitter", section="load",
        source="docs/SOURCES.md#client-reconnect-policy",
        help="0: no jitter (the default policy); f: each delay × U(1-f, 1+f).",
    )  # fmt: skip
    connections_per_user: int = setting(
        1, ge=1, le=1_000_000, unit="connections", flag="--connections-per-user", section="load", source="user",
        help="With --send-target user: the connections of one user (client c is a connection of user c // N).",
    )  # fmt: skip

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.reconnect_delays_s:
            raise ValueError("reconnect_delays_s (--reconnect-delays) must hold at least one delay, got ()")
        if self.send_target == "user":
            if self.connections_per_user > self.clients:
                raise ValueError(
                    f"connections_per_user (--connections-per-user) must be <= clients ({self.clients}) with "
                    f"--send-target user, got {self.connections_per_user}"
                )
            if self.access_token is not None:
                raise ValueError(
                    "access_token (--access-token) must be unset with --send-target user: each client sends its "
                    "user's own token"
                )
        if self.send_target == "group":
            if self.group_size > self.clients:
                raise ValueError(
                    f"group_size (--group-size) must be <= clients ({self.clients}) with --send-target group, "
                    f"got {self.group_size}"
                )
            if self.groups * self.group_size > self.clients * self.groups_per_client:
                raise ValueError(
                    f"groups (--groups) × group_size ({self.groups * self.group_size}) must not exceed clients × "
                    f"groups_per_client ({self.clients * self.groups_per_client}), got groups={self.groups}"
                )

    @property
    def users(self) -> int:
        """How many users the clients belong to (``clients`` unless several connections share a user)."""
        return -(-self.clients // self.connections_per_user)

    @property
    def servers(self) -> int:
        """How many hub URLs (servers) the clients are spread over."""
        return len(self.urls)
