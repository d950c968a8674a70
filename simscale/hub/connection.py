"""One client connection as the server sees it: a sans-I/O protocol state plus a socket to write to.

Writes never await a drain, so a broadcast never waits for its slowest reader. The first frame a
connection gets in an event-loop turn goes to the socket at once (a paced broadcast waits for
nothing); frames behind it in the same turn are queued, and a :class:`WriteCoalescer` shared by the
server writes each connection's queue as one ``send()`` at the start of the next turn. A burst of 60
broadcasts thus costs each socket two system calls instead of 60 (like a kitchen that runs the first
dish out at once and the rest of the order together).

After each write the transport's buffer is checked, and a connection whose backlog passes
``max_buffered_bytes`` is aborted (a slow consumer), which keeps the server's memory bounded; a queue
that reaches :data:`EARLY_FLUSH_BYTES` within one turn is written at once, so the bytes held outside
the transport stay small. Timestamps are plain floats read by the server's keep-alive wheel, so a
connection owns no task or timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from simscale.protocol.messages import HubMessage
from simscale.protocol.websocket_frames import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    Opcode,
    close_payload,
    data_opcode,
    encode_frame,
    frame_header,
)

if TYPE_CHECKING:
    from simscale.hub.metrics import HubCounters
    from simscale.protocol.base import HubProtocol
    from simscale.protocol.connection import ServerConnection

__all__ = ["EARLY_FLUSH_BYTES", "HubConnection", "WriteCoalescer", "frame_records"]

_log = logging.getLogger(__name__)

EARLY_FLUSH_BYTES = 65_536
"""Queued bytes at which a connection writes its queue without waiting for the next turn."""

_CLOSE_NORMAL_FRAME = encode_frame(Opcode.CLOSE, close_payload(CLOSE_NORMAL))
_CLOSE_GOING_AWAY_FRAME = encode_frame(Opcode.CLOSE, close_payload(CLOSE_GOING_AWAY))


def frame_records(records: bytes, transfer_format: str) -> bytes:
    """``records`` as one whole server-to-client WebSocket frame (text or binary, never masked)."""
    return frame_header(data_opcode(transfer_format), len(records)) + records


class WriteCoalescer:
    """Write-through for a connection's first frame in an event-loop turn, coalescing behind it.

    A connection with nothing queued that has not written yet in this turn writes at once: at a
    paced rate every broadcast is alone in its turn, and holding it for the next turn would only add
    delay. Frames that follow in the same turn are queued and written together by one callback at the
    start of the next turn, so a burst costs at most two writes per socket per turn, not one per
    frame. One instance serves a whole server.
    """

    __slots__ = ("_dirty", "_turn_marked", "turn")

    def __init__(self) -> None:
        self._dirty: list[HubConnection] = []
        self.turn = 0
        """Counts event-loop turns in which something was written through (a connection compares
        it with the turn of its own last write-through)."""
        self._turn_marked = False

    def mark_written_through(self) -> int:
        """Note a write-through in the current turn; the turn number the connection should keep."""
        if not self._turn_marked:
            self._turn_marked = True
            asyncio.get_running_loop().call_soon(self._next_turn)
        return self.turn

    def _next_turn(self) -> None:
        self.turn += 1
        self._turn_marked = False

    def schedule(self, connection: HubConnection) -> None:
        """Have ``connection``'s queue written at the start of the next turn."""
        dirty = self._dirty
        dirty.append(connection)
        if len(dirty) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every registered connection's queue now."""
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            try:
                connection.flush_queued()
            except Exception:  # one broken transport must not keep the others' bytes back
                _log.exception("writing to %r failed", connection)
                connection.abort("An internal error closed the connection.")


class HubConnection:
    """One attached client: identity, liveness clocks and group memberships, around its socket.

    The hub protocol's state (handshake done, protocol, closed, why) has one home: the sans-I/O
    :class:`~simscale.protocol.ServerConnection` in ``protocol_connection``. This shell reads it and
    closes through it; what it keeps itself is only what a socket needs (the write queue, whether the
    socket is finished) and what the hub needs (ids, items, groups, streams, clocks).

    Hub methods see it as ``self.context``; ``connection_id``, ``user_id`` and ``items`` are the
    public part.

    Example (a hub method reads its caller's connection):

        >>> import asyncio
        >>> from simscale.client import HubClient
        >>> from simscale.hub import Hub, HubServer
        >>> class WhoAmI(Hub):
        ...     async def who(self) -> bool:
        ...         return bool(self.context.connection_id) and self.context.user_id is None
        >>> async def ask() -> bool:
        ...     server = HubServer({"/who": WhoAmI})
        ...     client = HubClient(f"{await server.listen('127.0.0.1', 0)}/who")
        ...     try:
        ...         await client.start()
        ...         return await client.invoke("Who")
        ...     finally:
        ...         await client.stop()
        ...         await server.close()
        >>> asyncio.run(ask())
        True
    """

    __slots__ = (
        "_coalescer",
        "_counters",
        "_groups",
        "_items",
        "_max_buffered_bytes",
        "_queued",
        "_queued_bytes",
        "_socket_finished",
        "_transport",
        "announced",
        "connection_id",
        "last_received_s",
        "last_sent_s",
        "opened_s",
        "ping_shortcut",
        "protocol_connection",
        "streams",
        "unyielded_work",
        "user_id",
        "wheel_tick",
        "written_through_turn",
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
        coalescer: WriteCoalescer,
    ) -> None:
        self.connection_id = connection_id
        """Public id other clients and ``Clients.client(id)`` use."""
        self.user_id = user_id
        """Who the authenticator said this is (``None`` = anonymous)."""
        self.protocol_connection = protocol_connection
        """The sans-I/O hub protocol state: the only place that knows handshake, protocol and closing."""
        self.announced = False
        """Whether the hub was told of this connection (``on_connected`` called), so it must be told
        of its end: a handshake followed by a Close in the same frame is never announced."""
        self.opened_s = now_s
        self.last_received_s = now_s
        self.last_sent_s = now_s
        """When bytes last went to the transport (a queued frame counts once it is written)."""
        self.wheel_tick: int | None = None
        """Where the server's keep-alive wheel has filed this connection (kept by the wheel)."""
        self.written_through_turn = -1
        """The coalescer's turn in which this connection last wrote a frame straight through."""
        self.ping_shortcut = False
        """Whether a frame holding just a JSON Ping may bypass the protocol (handshaken, JSON, and
        the frames so far ended on a record boundary); see :mod:`simscale.hub.websocket`."""
        self.unyielded_work = 0
        """Frames read and messages acted on since this connection's reader last gave the event loop
        a turn (the server's fair-reading budget)."""
        self.streams: dict[str, asyncio.Task[None]] | None = None
        """Running server-to-client streams by invocation id (created on first use)."""
        # Most connections never use items or groups: both are made on first use (~280 bytes).
        self._items: dict[str, Any] | None = None
        self._groups: set[str] | None = None
        self._queued: list[bytes] | None = None
        self._queued_bytes = 0
        self._socket_finished = False
        self._transport = transport
        self._max_buffered_bytes = max_buffered_bytes
        self._counters = counters
        self._coalescer = coalescer

    # ---- the protocol state, read from the sans-I/O connection ----------------------------------------

    @property
    def protocol(self) -> HubProtocol | None:
        """The negotiated hub protocol; ``None`` until the handshake is done."""
        return self.protocol_connection.negotiated_protocol

    @property
    def handshaken(self) -> bool:
        """Whether the handshake has completed."""
        return self.protocol_connection.negotiated_protocol is not None

    @property
    def closed(self) -> bool:
        """Whether the connection is closed: no more hub messages go out or are acted on."""
        return self.protocol_connection.closed

    @property
    def close_reason(self) -> str | None:
        """Why it closed (``None`` for a clean close or while open)."""
        return self.protocol_connection.close_reason

    # ---- hub-side state ---------------------------------------------------------------------------------

    @property
    def items(self) -> dict[str, Any]:
        """Free per-connection storage for hub code."""
        items = self._items
        if items is None:
            items = self._items = {}
        return items

    @property
    def groups(self) -> frozenset[str] | set[str]:
        """Names of the groups this connection is in (read-only; change them through the hub)."""
        return frozenset() if self._groups is None else self._groups

    def join_group(self, group: str) -> bool:
        """Record membership of ``group``; ``False`` if it was already a member."""
        groups = self._groups
        if groups is None:
            self._groups = {group}
            return True
        if group in groups:
            return False
        groups.add(group)
        return True

    def leave_group(self, group: str) -> None:
        """Forget membership of ``group`` (no error if it was not a member)."""
        groups = self._groups
        if groups is not None:
            groups.discard(group)
            if not groups:
                self._groups = None

    # ---- writing ------------------------------------------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        """Bytes queued in this turn and not yet handed to the transport."""
        return self._queued_bytes

    def write(self, records: bytes, *, messages: int = 1) -> bool:
        """Queue framed hub records as one WebSocket frame; ``False`` if the connection is gone."""
        protocol = self.protocol_connection.negotiated_protocol
        transfer_format = "Text" if protocol is None else protocol.transfer_format
        return self.write_frame(frame_records(records, transfer_format), len(records), messages=messages)

    def write_frame(self, frame: bytes, payload_bytes: int, *, messages: int = 1) -> bool:
        """Send a ready-made WebSocket frame (a broadcast frames its bytes once for everybody).

        The first frame of an event-loop turn goes to the transport at once; frames after it in the
        same turn are queued and reach the transport together at the start of the next turn (or at
        once when the queue reaches ``EARLY_FLUSH_BYTES``), always in the order they were sent.
        ``False`` if the connection is gone or turned out to be a slow consumer.
        """
        if self.protocol_connection.closed:
            return False  # a late fan-out to a closing peer is normal: nothing more goes out
        return self._enqueue(frame, payload_bytes, messages)

    def _enqueue(self, frame: bytes, payload_bytes: int, messages: int) -> bool:
        """Queue or write ``frame`` unless the socket is finished (the protocol state is not asked:
        its own last words, a Close or a handshake error, are written after it has closed)."""
        if self._socket_finished:
            return False
        counters = self._counters
        queued = self._queued
        if queued is None:
            if self._transport.is_closing():
                return False
            coalescer = self._coalescer
            if self.written_through_turn != coalescer.turn:
                self.written_through_turn = coalescer.mark_written_through()
                counters.deliveries += messages
                counters.bytes_sent += payload_bytes
                return self._to_transport(frame)
            self._queued = [frame]
            self._queued_bytes = len(frame)
            coalescer.schedule(self)
        else:
            queued.append(frame)
            self._queued_bytes += len(frame)
        counters.deliveries += messages
        counters.bytes_sent += payload_bytes
        if self._queued_bytes >= EARLY_FLUSH_BYTES:
            return self.flush_queued()
        return True

    def flush_queued(self) -> bool:
        """Hand the queued frames to the transport in one write; ``False`` if the connection is gone."""
        queued = self._queued
        if queued is None:
            return not self._socket_finished
        self._queued = None
        self._queued_bytes = 0
        if self._socket_finished or self._transport.is_closing():
            return False
        return self._to_transport(queued[0] if len(queued) == 1 else b"".join(queued))

    def _to_transport(self, data: bytes) -> bool:
        """Write ``data``; abort as a slow consumer when the outgoing buffer passes the limit."""
        transport = self._transport
        transport.write(data)
        self.last_sent_s = time.monotonic()
        if transport.get_write_buffer_size() > self._max_buffered_bytes:
            self._counters.slow_consumer_closes += 1
            self.abort("slow consumer: outgoing buffer passed max_buffered_bytes")
            return False
        return True

    def send(self, message: HubMessage) -> bool:
        """Send ``message`` through the protocol state (which encodes it); ``False`` if not open.

        A Close message closes the protocol state, as it would for any sender.
        """
        state = self.protocol_connection
        if state.negotiated_protocol is None or state.closed:
            return False
        state.send(message)
        return self.flush()

    def flush(self) -> bool:
        """Write whatever the protocol state has queued (handshake answer, replies, a Close) as one frame."""
        chunks = self.protocol_connection.data_to_send()
        if not chunks:
            return not self._socket_finished
        records = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        protocol = self.protocol_connection.negotiated_protocol
        transfer_format = "Text" if protocol is None else protocol.transfer_format  # a refused handshake is JSON text
        return self._enqueue(frame_records(records, transfer_format), len(records), len(chunks))

    # ---- closing ------------------------------------------------------------------------------------------

    def close(self, error: str | None = None, *, allow_reconnect: bool = False) -> None:
        """Say goodbye through the protocol state (a hub Close carrying ``error`` once handshaken),
        then close the WebSocket and the socket."""
        if self._socket_finished:
            return
        self.protocol_connection.close(error, allow_reconnect)
        self.flush()
        self.finish(error, going_away=allow_reconnect)

    def finish(self, reason: str | None, *, going_away: bool = False) -> None:
        """Close the WebSocket (close frame) and the socket, after what is already queued.

        The protocol state is closed too, with ``reason`` unless it already has one of its own.
        """
        if self._socket_finished:
            return
        self.flush_queued()
        if self._socket_finished:
            return  # the queue just made it a slow consumer: aborted, nothing more to say
        self._socket_finished = True
        self.protocol_connection.mark_closed(reason)
        transport = self._transport
        if not transport.is_closing():
            transport.write(_CLOSE_GOING_AWAY_FRAME if going_away else _CLOSE_NORMAL_FRAME)
            transport.close()  # close() still flushes what is buffered, abort() would not

    def abort(self, reason: str) -> None:
        """Drop the socket at once, without flushing (the peer is not reading anyway)."""
        if self._socket_finished:
            return
        self._socket_finished = True
        self.protocol_connection.mark_closed(reason)
        self._queued = None
        self._queued_bytes = 0
        self._transport.abort()

    def __repr__(self) -> str:
        return f"HubConnection({self.connection_id!r}, user={self.user_id!r})"
