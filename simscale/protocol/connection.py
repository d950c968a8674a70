"""Sans-I/O connection state machines: bytes in, messages out, bytes to send.

Like the websockets library's protocol objects, a connection here owns no socket and no task. The
transport shell feeds it whatever arrived (``receive_data``), dispatches the messages it returns,
and writes out ``data_to_send()``. The states go one way::

    AWAITING_HANDSHAKE --handshake ok--> OPEN --violation / close() / sending a Close--> CLOSED
             \\                            \\--the client's Close--> CLOSING --close()--^
              \\--------------------handshake refused-------------------------------------^

CLOSING is the server's only: the client said goodbye, nothing more is read, yet the replies to
what it sent before its Close (in the same frame) may still be queued, as ASP.NET Core answers them.

On the server any violation (bad handshake, malformed or oversized message) becomes a queued
reply carrying the reason, a handshake error or a Close message, and the state becomes CLOSED; the
shell sends the bytes and drops the socket. :class:`ClientConnection` mirrors it for a client.
"""

from __future__ import annotations

import enum

from simscale.protocol.base import DEFAULT_MAX_MESSAGE_BYTES, FrameParser, HubProtocol
from simscale.protocol.errors import HandshakeError, ProtocolError
from simscale.protocol.handshake import (
    HandshakeRequest,
    encode_handshake_request,
    encode_handshake_response,
    parse_handshake_request,
    parse_handshake_response,
)
from simscale.protocol.messages import CloseMessage, HubMessage
from simscale.protocol.registry import get_protocol

__all__ = ["ClientConnection", "ConnectionState", "ConnectionStateError", "ServerConnection"]


class ConnectionState(enum.Enum):
    """Where a connection is in its life."""

    AWAITING_HANDSHAKE = "awaiting_handshake"
    OPEN = "open"
    CLOSING = "closing"
    """The client's Close arrived (a server's state only): replies may still go out, nothing is read."""
    CLOSED = "closed"


_CLOSED = ConnectionState.CLOSED  # read on every write of a fan-out: a module global is the cheapest lookup


class ConnectionStateError(RuntimeError):
    """An operation that the connection's current state does not allow (a bug in the caller)."""


class _Connection:
    """What both ends share: state, parser, outgoing queue, close reason."""

    __slots__ = ("_outgoing", "_parser", "_protocol", "_state", "close_reason", "max_message_bytes")

    _STATE_AFTER_PEER_CLOSE = ConnectionState.CLOSED
    """Where the peer's Close message takes this end."""

    def __init__(self, max_message_bytes: int) -> None:
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be >= 1, got {max_message_bytes!r}")
        self.max_message_bytes = max_message_bytes
        self._state = ConnectionState.AWAITING_HANDSHAKE
        self._protocol: HubProtocol | None = None
        self._parser: FrameParser | None = None
        self._outgoing: list[bytes] = []
        self.close_reason: str | None = None
        """Why the connection closed (``None`` for a clean close or while open)."""

    @property
    def state(self) -> ConnectionState:
        """The current state."""
        return self._state

    @property
    def closed(self) -> bool:
        """Whether the connection is CLOSED (no more messages either way)."""
        return self._state is _CLOSED

    @property
    def negotiated_protocol(self) -> HubProtocol | None:
        """The protocol the handshake settled on; ``None`` while it is awaited (or was refused)."""
        return self._protocol if self._state is not ConnectionState.AWAITING_HANDSHAKE else None

    @property
    def protocol(self) -> HubProtocol:
        """The negotiated protocol.

        Raises:
            ConnectionStateError: before the handshake chose one.
        """
        if self._protocol is None:
            raise ConnectionStateError("no protocol before the handshake")
        return self._protocol

    def data_to_send(self) -> list[bytes]:
        """Take every queued record (one framed record each; several may share a frame)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def send(self, message: HubMessage) -> None:
        """Queue ``message``; a no-op once CLOSED (a late fan-out to a closing peer is normal).

        Raises:
            ConnectionStateError: before the handshake completed.
        """
        if self._state is ConnectionState.OPEN or self._state is ConnectionState.CLOSING:
            self._outgoing.append(self.protocol.encode(message))
            if isinstance(message, CloseMessage):
                self._move_to_closed(message.error)
        elif self._state is ConnectionState.AWAITING_HANDSHAKE:
            raise ConnectionStateError("cannot send hub messages before the handshake completed")

    def send_encoded(self, record: bytes) -> None:
        """Queue a record already encoded with this connection's protocol (a shared broadcast)."""
        if self._state is ConnectionState.OPEN or self._state is ConnectionState.CLOSING:
            self._outgoing.append(record)
        elif self._state is ConnectionState.AWAITING_HANDSHAKE:
            raise ConnectionStateError("cannot send hub messages before the handshake completed")

    def close(self, error: str | None = None, allow_reconnect: bool = False) -> None:
        """Queue a Close message (when OPEN; a peer that said goodbye gets none) and move to CLOSED; idempotent."""
        if self._state is ConnectionState.OPEN:
            self.send(CloseMessage(error, allow_reconnect))
        self._move_to_closed(error)

    def mark_closed(self, reason: str | None) -> None:
        """The transport ended (or was dropped) under the connection: CLOSED, nothing more to send.

        Unlike :meth:`close` it queues no Close message; a connection already CLOSED keeps its reason.
        """
        self._outgoing.clear()
        self._move_to_closed(reason)

    def _move_to_closed(self, reason: str | None) -> None:
        state = self._state
        if state is not ConnectionState.CLOSED:
            self._state = ConnectionState.CLOSED
            if state is not ConnectionState.CLOSING:  # a goodbye keeps the reason the peer gave
                self.close_reason = reason

    def _receive_messages(self, data: bytes) -> list[HubMessage]:
        assert self._parser is not None
        try:
            messages = self._parser.feed(data)
        except ProtocolError as error:
            self.close(error.reason)
            return []
        for index, message in enumerate(messages):
            if isinstance(message, CloseMessage):
                if self._STATE_AFTER_PEER_CLOSE is ConnectionState.CLOSING:
                    self._state = ConnectionState.CLOSING
                    self.close_reason = message.error
                else:
                    self._move_to_closed(message.error)
                return messages[: index + 1]
        return messages


class ServerConnection(_Connection):
    """The server end of one hub connection (sans-I/O).

    Args:
        max_message_bytes: the largest record accepted.
        transfer_formats: what the transport can carry; a handshake for a protocol of another format
            is refused (an event stream carries ``Text`` only, so MessagePack cannot use it).
    """

    __slots__ = ("_handshake_buffer", "handshake", "transfer_formats")

    _STATE_AFTER_PEER_CLOSE = ConnectionState.CLOSING

    def __init__(
        self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, transfer_formats: tuple[str, ...] = ("Text", "Binary")
    ) -> None:
        super().__init__(max_message_bytes)
        self._handshake_buffer = b""
        self.handshake: HandshakeRequest | None = None
        """The client's handshake request, once received."""
        self.transfer_formats = transfer_formats

    def receive_data(self, data: bytes) -> list[HubMessage]:
        """Feed bytes from the peer; return the hub messages they complete.

        The first bytes are the handshake; whatever follows its 0x1E is parsed as hub messages. A
        Close from the peer is returned (last) and moves the connection to CLOSING. After that,
        data is ignored. Never raises ``ProtocolError``: a violation queues the reply and closes.
        """
        if self._state is ConnectionState.CLOSED or self._state is ConnectionState.CLOSING:
            return []
        if self._state is ConnectionState.AWAITING_HANDSHAKE:
            rest = self._receive_handshake(data)
            if rest is None:
                return []
            data = rest
            if not data:
                return []
        return self._receive_messages(data)

    def _receive_handshake(self, data: bytes) -> bytes | None:
        buffer = self._handshake_buffer + data
        try:
            request, rest = parse_handshake_request(buffer, self.max_message_bytes)
            if request is None:
                self._handshake_buffer = buffer
                return None
            protocol = get_protocol(request.protocol)
            if request.version > protocol.version:
                raise HandshakeError(
                    f"Requested protocol version {request.version} of '{protocol.name}' is not "
                    f"supported (0-{protocol.version})."
                )
            if protocol.transfer_format not in self.transfer_formats:
                raise HandshakeError(
                    f"Cannot use the '{protocol.name}' protocol on the current transport. The transport does "
                    f"not support '{protocol.transfer_format}' transfer format."
                )
        except ProtocolError as error:
            self._handshake_buffer = b""
            self._outgoing.append(encode_handshake_response(error.reason))
            self._move_to_closed(error.reason)
            return None
        self._handshake_buffer = b""
        self.handshake = request
        self._protocol = protocol
        self._parser = protocol.new_parser(self.max_message_bytes)
        self._outgoing.append(encode_handshake_response())
        self._state = ConnectionState.OPEN
        return rest


class ClientConnection(_Connection):
    """The client end of one hub connection (sans-I/O); queues its handshake on creation."""

    __slots__ = ("_handshake_buffer",)

    def __init__(
        self,
        protocol: str | HubProtocol = "json",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        version: int = 1,
    ) -> None:
        super().__init__(max_message_bytes)
        self._protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
        self._parser = self._protocol.new_parser(max_message_bytes)
        self._handshake_buffer = b""
        self._outgoing.append(encode_handshake_request(self._protocol.name, version))

    def receive_data(self, data: bytes) -> list[HubMessage]:
        """Feed bytes from the server; return the hub messages they complete.

        A handshake error or a protocol violation moves the connection to CLOSED with
        ``close_reason`` set (a violation also queues a Close); never raises ``ProtocolError``.
        """
        if self._state is ConnectionState.CLOSED:
            return []
        if self._state is ConnectionState.AWAITING_HANDSHAKE:
            buffer = self._handshake_buffer + data
            try:
                response, rest = parse_handshake_response(buffer, self.max_message_bytes)
            except ProtocolError as error:
                self._move_to_closed(error.reason)
                return []
            if response is None:
                self._handshake_buffer = buffer
                return []
            self._handshake_buffer = b""
            if response.error is not None:
                self._move_to_closed(response.error)
                return []
            self._state = ConnectionState.OPEN
            if not rest:
                return []
            data = rest
        return self._receive_messages(data)
