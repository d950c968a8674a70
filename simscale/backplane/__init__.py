"""What travels between hub servers and who receives it.

Pure rules (no asyncio, no redis; the SimPy model imports them): `envelope` (ASP.NET Core's Redis
message layout), `channels` (channel names), `routing` (local delivery and echo suppression).
Async transport: the `Backplane` interface, `MemoryBackplane` (default, in-process) and
`RedisBackplane` (imported on first use, so redis-py stays optional), built by `create_backplane`.
`RedisServer` runs a throw-away redis-server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simscale.backplane.base import Backplane, BackplaneState, BackplaneUnavailable, MessageHandler
from simscale.backplane.channels import DEFAULT_PREFIX, ChannelAddress, ChannelKind, ChannelNames
from simscale.backplane.envelope import (
    PROTOCOL_JSON,
    PROTOCOL_MESSAGEPACK,
    Envelope,
    EnvelopeError,
    GroupAck,
    GroupAction,
    GroupCommand,
)
from simscale.backplane.factory import create_backplane
from simscale.backplane.memory import MemoryBackplane, MemoryBus
from simscale.backplane.redis_server import RedisServer, RedisServerError, find_redis_server
from simscale.backplane.routing import (
    DEFAULT_ROUTING_MODE,
    RoutingMode,
    accepts_from_backplane,
    delivers_locally_on_send,
)

if TYPE_CHECKING:
    from simscale.backplane.redis_backplane import RedisBackplane

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_ROUTING_MODE",
    "PROTOCOL_JSON",
    "PROTOCOL_MESSAGEPACK",
    "Backplane",
    "BackplaneState",
    "BackplaneUnavailable",
    "ChannelAddress",
    "ChannelKind",
    "ChannelNames",
    "Envelope",
    "EnvelopeError",
    "GroupAck",
    "GroupAction",
    "GroupCommand",
    "MemoryBackplane",
    "MemoryBus",
    "MessageHandler",
    "RedisBackplane",
    "RedisServer",
    "RedisServerError",
    "RoutingMode",
    "accepts_from_backplane",
    "create_backplane",
    "delivers_locally_on_send",
    "find_redis_server",
]


def __getattr__(name: str) -> Any:
    # RedisBackplane imports redis-py; load it only when asked for.
    if name == "RedisBackplane":
        from simscale.backplane.redis_backplane import RedisBackplane

        return RedisBackplane
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
