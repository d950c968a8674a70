"""Protocols by handshake name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from simscale.protocol.base import HubProtocol
from simscale.protocol.errors import HandshakeError
from simscale.protocol.json_protocol import JsonHubProtocol
from simscale.protocol.msgpack_protocol import MessagePackHubProtocol

__all__ = ["SUPPORTED_PROTOCOLS", "get_protocol"]

SUPPORTED_PROTOCOLS: Mapping[str, HubProtocol] = MappingProxyType(
    {"json": JsonHubProtocol(), "messagepack": MessagePackHubProtocol()}
)
"""One shared, stateless instance of each protocol, by handshake name."""


def get_protocol(name: str) -> HubProtocol:
    """The protocol a handshake asked for.

    Raises:
        HandshakeError: ``Requested protocol 'x' is not available.`` (ASP.NET Core's wording).
    """
    try:
        return SUPPORTED_PROTOCOLS[name]
    except KeyError:
        raise HandshakeError(f"Requested protocol '{name}' is not available.") from None
