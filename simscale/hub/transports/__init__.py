"""The hub's two HTTP transports besides WebSockets: Server-Sent Events and long polling.

Both are *half* transports: the server talks to the client over a long-lived ``GET`` (an event
stream, or one poll after another), and the client talks back with a ``POST`` per batch of
records; a long-polling client says goodbye with ``DELETE``. Every request names its connection
by the negotiated token in ``?id=``, so all of them must reach the server that negotiated it (why
a load balancer in front must be sticky: docs/SOURCES.md#hub-transports).

The hub protocol state stays where it is for a WebSocket, in the sans-I/O
:class:`~simscale.protocol.ServerConnection` under a :class:`~simscale.hub.connection.HubConnection`:
these modules only carry bytes. Reading order: :mod:`~simscale.hub.transports.types` (names and
settings), :mod:`~simscale.hub.transports.sse` (event framing, pure),
:mod:`~simscale.hub.transports.http` (the byte sink and the request handlers).
"""

from __future__ import annotations

from simscale.hub.transports.http import FrameSink, HttpSession, HttpTransports
from simscale.hub.transports.sse import format_event
from simscale.hub.transports.types import ALL_TRANSPORTS, TransportSettings, TransportType, parse_transports

__all__ = [
    "ALL_TRANSPORTS",
    "FrameSink",
    "HttpSession",
    "HttpTransports",
    "TransportSettings",
    "TransportType",
    "format_event",
    "parse_transports",
]
