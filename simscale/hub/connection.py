"""One client connection as the server sees it: a sans-I/O protocol state plus a socket to write to.

Writes go straight to the asyncio transport as ready-made WebSocket frames, without awaiting a
drain: a broadcast never waits for its slowest reader. Instead every write checks the transport's
buffer and a connection whose backlog passes ``max_buffered_bytes`` is aborted (a slow consumer),
which keeps the server's memory bounded. Timestamps are plain floats compared by the server's
single periodic sweep, so a connection owns no task or timer of its own.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import TYPE_CHECKING, Any

from simscale.protocol.messages import CloseMessage, HubMessage

if TYPE_CHECKING:
    from simscale.hub.metrics import HubCounters
    from simscale.protocol.base import HubProtocol
    from simscale.protocol.connection import ServerConnection

__all__ = ["HubConnection", "frame_records", "websocket_frame_header"]

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_CLOSE_NORMAL_FRAME = b"\x88\x02\x03\xe8"  # FIN + close opcode, status 1000, unmasked (server side)
_CLOSE_GOING_AWAY_FRAME = b"\x88\x02\x03\xe9"  # status 1001


def websocket_frame_header(first_byte: int, length: int) -> bytes:
    """The header of an unmasked server-to-client WebSocket frame (RFC 6455 §5.2)."""
    if length < 126:
        return bytes((first_byte, length))
    if length < 65536:
        return struct.pack("!BBH", first_byte, 126, length)
    return struct.pack("!BBQ", first_byte, 127, length)


def frame_records(records: bytes, transfer_format: str) -> bytes:
    """``records`` as one whole server-to-client WebSocket frame (text or binary)."""
    first = _FIN_BINARY if transfer_format == "Binary" else _FIN_TEXT
    return websocket_frame_header(first, len(records)) + records


class HubConnection:
    """State of one attached client: identity, protocol, liveness clocks and group memberships.

    Hub methods see it as ``self.context``; ``connection_id``, ``user_id`` and ``items`` are the
    public part.
    """

    __slots__ = (
        "_counters",
        "_max_buffered_bytes",
        "_transport",
        "close_reason",
        "closed",
        "connection_id",
        "groups",
        "items",
        "last_received_s",
        "last_sent_s",
        "opened_s",
        "protocol",
        "protocol_connection",
        "streams",
        "user_id",
    )

    def __init__(
        self,
        connection_id: str,
        user_id: str | None,
        transport: asyncio.Transport,
        protocol_connection: ServerConnection,
        *,
        now_s: float,
        max_buffered_bytes: int,
        counters: HubCounters,
    ) -> None:
        self.connection_id = connection_id
        """Public id other clients and ``Clients.client(id)`` use."""
        self.user_id = user_id
        """Who the authenticator said this is (``None`` = anonymous)."""
        self.items: dict[str, Any] = {}
        """Free per-connection storage for hub code."""
        self.protocol: HubProtocol | None = None
        """The negotiated hub protocol, once the handshake is done."""
        self.protocol_connection = protocol_connection
        self.opened_s = now_s
        self.last_received_s = now_s
        self.last_sent_s = now_s
        self.groups: set[str] = set()
        self.streams: dict[str, asyncio.Task[None]] | None = None
        """Running server-to-client streams by invocation id (created on first use)."""
        self.closed = False
        self.close_reason: str | None = None
        self._transport = transport
        self._max_buffered_bytes = max_buffered_bytes
        self._counters = counters

    @property
    def handshaken(self) -> bool:
        """Whether the handshake has completed."""
        return self.protocol is not None

    def write(self, records: bytes, *, messages: int = 1) -> bool:
        """Write framed hub records in one WebSocket frame; ``False`` if the connection is gone.

        Aborts the connection as a slow consumer when its outgoing buffer passes the limit.
        """
        protocol = self.protocol
        binary = protocol is not None and protocol.transfer_format == "Binary"
        header = websocket_frame_header(_FIN_BINARY if binary else _FIN_TEXT, len(records))
        return self.write_frame(header + records, len(records), messages=messages)

    def write_frame(self, frame: bytes, payload_bytes: int, *, messages: int = 1) -> bool:
        """Write a ready-made WebSocket frame (a broadcast frames its bytes once for everybody)."""
        transport = self._transport
        if self.closed or transport.is_closing():
            return False
        transport.write(frame)
        self.last_sent_s = time.monotonic()
        counters = self._counters
        counters.deliveries += messages
        counters.bytes_sent += payload_bytes
        if transport.get_write_buffer_size() > self._max_buffered_bytes:
            counters.slow_consumer_closes += 1
            self.abort("slow consumer: outgoing buffer passed max_buffered_bytes")
            return False
        return True

    def send(self, message: HubMessage) -> bool:
        """Encode ``message`` with this connection's protocol and write it."""
        protocol = self.protocol
        if protocol is None:
            return False
        return self.write(protocol.encode(message))

    def flush(self) -> None:
        """Write whatever the sans-I/O protocol state has queued (handshake answer, Close)."""
        chunks = self.protocol_connection.data_to_send()
        if chunks:
            self.write(b"".join(chunks), messages=len(chunks))

    def close(self, error: str | None = None, *, allow_reconnect: bool = False) -> None:
        """Say goodbye with a hub Close (carrying ``error``), then close the WebSocket and socket."""
        if self.closed:
            return
        if self.protocol is not None:
            self.send(CloseMessage(error=error, allow_reconnect=allow_reconnect))
        else:
            self.flush()
        self.finish(error, going_away=allow_reconnect)

    def finish(self, reason: str | None, *, going_away: bool = False) -> None:
        """Close the WebSocket (close frame) and the socket, after what is already buffered."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        transport = self._transport
        if not transport.is_closing():
            transport.write(_CLOSE_GOING_AWAY_FRAME if going_away else _CLOSE_NORMAL_FRAME)
            transport.close()  # close() still flushes what is buffered, abort() would not

    def abort(self, reason: str) -> None:
        """Drop the socket at once, without flushing (the peer is not reading anyway)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._transport.abort()

    def __repr__(self) -> str:
        return f"HubConnection({self.connection_id!r}, user={self.user_id!r})"
