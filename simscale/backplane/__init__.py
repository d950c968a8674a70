"""What travels between hub servers and who receives it.

Pure rules (no asyncio, no redis; the SimPy model imports them): `envelope` (ASP.NET Core's Redis
message layout), `channels` (channel names), `routing` (local delivery and echo suppression).
Async transport: the `Backplane` interface, `MemoryBackplane` (default, in-process) and
`RedisBackplane`, built by `create_backplane`; `RedisServer` runs a throw-away redis-server.

Only the pure rules are imported eagerly: importing this package (as the model does) pulls in neither
asyncio nor redis-py; the transport names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from simscale.backplane.routing import (
    DEFAULT_ROUTING_MODE,
    RoutingMode,
    accepts_from_backplane,
    delivers_locally_on_send,
)

if TYPE_CHECKING:
    from simscale.backplane.base import Backplane, BackplaneState, BackplaneUnavailable, MessageHandler
    from simscale.backplane.factory import create_backplane
    from simscale.backplane.memory import MemoryBackplane, MemoryBus
    from simscale.backplane.redis_backplane import RedisBackplane
    from simscale.backplane.redis_server import RedisServer, RedisServerError, RedisTls, find_redis_server

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
    "RedisTls",
    "RoutingMode",
    "accepts_from_backplane",
    "create_backplane",
    "delivers_locally_on_send",
    "find_redis_server",
]

_LAZY_MODULES = {
    "Backplane": "base",
    "BackplaneState": "base",
    "BackplaneUnavailable": "base",
    "MessageHandler": "base",
    "create_backplane": "factory",
    "MemoryBackplane": "memory",
    "MemoryBus": "memory",
    "RedisBackplane": "redis_backplane",
    "RedisServer": "redis_server",
    "RedisServerError": "redis_server",
    "RedisTls": "redis_server",
    "find_redis_server": "redis_server",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
