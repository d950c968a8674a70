"""What a load test does, as one frozen, validated value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["LoadConfig"]

ProtocolName = Literal["json", "messagepack"]


def _check(condition: bool, field: str, flag: str, rule: str, value: object) -> None:
    if not condition:
        raise ValueError(f"{field} ({flag}) must be {rule}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
    """

    urls: tuple[str, ...]
    clients: int
    broadcast_rate_per_s: float = 1.0
    duration_s: float = 10.0
    protocol: ProtocolName = "json"
    message_bytes: int = 64
    warmup_s: float = 0.0
    seed: int = 0
    scenario: str = "loadgen"
    connect_concurrency: int = 200
    connect_timeout_s: float = 15.0
    drain_s: float = 2.0
    access_token: str | None = None
    trace_loop_passes: bool = False

    def __post_init__(self) -> None:
        _check(
            isinstance(self.urls, tuple)
            and len(self.urls) > 0
            and all(isinstance(u, str) and u.startswith(("http://", "https://", "ws://", "wss://")) for u in self.urls),
            "urls",
            "--url",
            "one or more http(s):// or ws(s):// URLs",
            self.urls,
        )
        _check(
            isinstance(self.clients, int) and not isinstance(self.clients, bool) and 1 <= self.clients <= 1_000_000,
            "clients",
            "--clients",
            "an integer within 1-1000000",
            self.clients,
        )
        _check(
            _is_number(self.broadcast_rate_per_s) and 0 <= self.broadcast_rate_per_s <= 100_000,
            "broadcast_rate_per_s",
            "--broadcast-rate",
            "a number within 0-100000",
            self.broadcast_rate_per_s,
        )
        _check(
            _is_number(self.duration_s) and 0 < self.duration_s <= 86_400,
            "duration_s",
            "--duration",
            "a number of seconds within (0, 86400]",
            self.duration_s,
        )
        _check(self.protocol in ("json", "messagepack"), "protocol", "--protocol", "json or messagepack", self.protocol)
        _check(
            isinstance(self.message_bytes, int)
            and not isinstance(self.message_bytes, bool)
            and 0 <= self.message_bytes <= 16_000,
            "message_bytes",
            "--message-bytes",
            "an integer within 0-16000",
            self.message_bytes,
        )
        _check(
            _is_number(self.warmup_s) and 0 <= self.warmup_s <= 86_400,
            "warmup_s",
            "--warmup",
            "a number of seconds within 0-86400",
            self.warmup_s,
        )
        _check(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
            "seed",
            "--seed",
            "an integer >= 0",
            self.seed,
        )
        _check(
            isinstance(self.connect_concurrency, int) and self.connect_concurrency >= 1,
            "connect_concurrency",
            "--connect-concurrency",
            "an integer >= 1",
            self.connect_concurrency,
        )
        _check(
            _is_number(self.connect_timeout_s) and self.connect_timeout_s > 0,
            "connect_timeout_s",
            "--connect-timeout",
            "a number of seconds > 0",
            self.connect_timeout_s,
        )
        _check(
            _is_number(self.drain_s) and 0 <= self.drain_s <= 60,
            "drain_s",
            "--drain",
            "a number of seconds within 0-60",
            self.drain_s,
        )

    @property
    def servers(self) -> int:
        """How many hub URLs (servers) the clients are spread over."""
        return len(self.urls)
