"""The MessagePack hub protocol: each message is a VarInt length then a MessagePack array.

The length prefix is 7 bits per byte, low group first, high bit set on every byte but the last,
1 to 5 bytes (so 2 GB at most): ``0c`` then 12 bytes of body. Because the length comes first the
parser can refuse an oversized message from its prefix alone, before a single byte of the body
arrives. Messages are positional arrays, ``[type, headers, invocationId, ...]``; a Ping is always
the two bytes ``91 06``. Invocations are read with 5 (JavaScript client) or 6 elements and
written with 6, as ASP.NET Core does, because some clients index the 6th element blindly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import msgpack

from simscale.protocol import _checks as check
from simscale.protocol.base import DEFAULT_MAX_MESSAGE_BYTES, FrameParser, HubProtocol, TransferFormat
from simscale.protocol.errors import MessageTooLargeError, ProtocolError
from simscale.protocol.messages import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    PingMessage,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)

__all__ = ["MessagePackFrameParser", "MessagePackHubProtocol", "decode_varint", "encode_varint"]

_MAX_PREFIX_BYTES = 5
_ERROR_RESULT, _VOID_RESULT, _NON_VOID_RESULT = 1, 2, 3
_PING_RECORD = b"\x02\x91\x06"
_PING_RUN = _PING_RECORD * 64
"""64 Pings: a run of them is skipped this many at a time."""
_PING = PingMessage()


def encode_varint(value: int) -> bytes:
    """The length prefix for a body of ``value`` bytes (7 bits per byte, low group first)."""
    if not 0 <= value < 2**31:
        raise ValueError(f"a MessagePack hub message is 0 to 2 GB, got {value} bytes")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def decode_varint(buffer: bytes | bytearray, offset: int = 0) -> tuple[int, int] | None:
    """Read a length prefix at ``offset``.

    Returns:
        ``(length, offset just after the prefix)``, or ``None`` if the prefix is incomplete.

    Raises:
        ProtocolError: the prefix is longer than 5 bytes or declares more than 2 GB.
    """
    length = 0
    for index in range(_MAX_PREFIX_BYTES):
        if offset + index >= len(buffer):
            return None
        byte = buffer[offset + index]
        length |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if index == _MAX_PREFIX_BYTES - 1 and byte > 0x07:
                raise ProtocolError("MessagePack length prefix declares more than 2 GB")
            return length, offset + index + 1
    raise ProtocolError("MessagePack length prefix is longer than 5 bytes")


def _need(fields: list[Any], count: int, name: str) -> None:
    if len(fields) < count:
        raise ProtocolError(f"{name} message needs at least {count} elements, got {len(fields)}")


def _invocation(fields: list[Any]) -> HubMessage:
    _need(fields, 5, "Invocation")
    headers, invocation_id, target, arguments = fields[1], fields[2], fields[3], fields[4]
    stream_ids = fields[5] if len(fields) > 5 else None
    if (
        type(target) is str
        and type(arguments) is list
        and (invocation_id is None or type(invocation_id) is str)
        and (headers is None or (type(headers) is dict and not headers))
        and (stream_ids is None or (type(stream_ids) is list and not stream_ids))
    ):
        # The common case, checked inline: a fan-out recipient decodes one of these per message.
        return InvocationMessage(target, tuple(arguments), invocation_id)
    return InvocationMessage(
        target=check.as_str(fields[3], "target"),
        arguments=check.as_arguments(fields[4]),
        invocation_id=check.as_optional_str(fields[2], "invocationId"),
        stream_ids=check.as_stream_ids(fields[5] if len(fields) > 5 else None),
        headers=check.as_headers(fields[1]),
    )


def _stream_item(fields: list[Any]) -> HubMessage:
    _need(fields, 4, "StreamItem")
    return StreamItemMessage(check.as_str(fields[2], "invocationId"), fields[3], headers=check.as_headers(fields[1]))


def _completion(fields: list[Any]) -> HubMessage:
    _need(fields, 4, "Completion")
    headers = check.as_headers(fields[1])
    invocation_id = check.as_str(fields[2], "invocationId")
    kind = fields[3]
    if kind == _VOID_RESULT and check.is_int(kind):
        return CompletionMessage(invocation_id, headers=headers)
    if kind == _ERROR_RESULT and check.is_int(kind):
        _need(fields, 5, "Completion with an error")
        return CompletionMessage(invocation_id, error=check.as_str(fields[4], "error"), headers=headers)
    if kind == _NON_VOID_RESULT and check.is_int(kind):
        _need(fields, 5, "Completion with a result")
        return CompletionMessage(invocation_id, result=fields[4], has_result=True, headers=headers)
    raise ProtocolError(f"Completion result kind must be 1, 2 or 3, got {repr(kind)[:20]}")


def _stream_invocation(fields: list[Any]) -> HubMessage:
    _need(fields, 5, "StreamInvocation")
    return StreamInvocationMessage(
        invocation_id=check.as_str(fields[2], "invocationId"),
        target=check.as_str(fields[3], "target"),
        arguments=check.as_arguments(fields[4]),
        stream_ids=check.as_stream_ids(fields[5] if len(fields) > 5 else None),
        headers=check.as_headers(fields[1]),
    )


def _cancel(fields: list[Any]) -> HubMessage:
    _need(fields, 3, "CancelInvocation")
    return CancelInvocationMessage(check.as_str(fields[2], "invocationId"), headers=check.as_headers(fields[1]))


def _ping(fields: list[Any]) -> HubMessage:
    return PingMessage()


def _close(fields: list[Any]) -> HubMessage:
    _need(fields, 2, "Close")
    allow_reconnect = fields[2] if len(fields) > 2 else False
    if not isinstance(allow_reconnect, bool):
        raise ProtocolError("Close 'allowReconnect' must be a boolean")
    return CloseMessage(check.as_optional_str(fields[1], "error"), allow_reconnect)


def _ack(fields: list[Any]) -> HubMessage:
    _need(fields, 2, "Ack")
    return AckMessage(check.as_sequence_id(fields[1]))


def _sequence(fields: list[Any]) -> HubMessage:
    _need(fields, 2, "Sequence")
    return SequenceMessage(check.as_sequence_id(fields[1]))


_DECODERS: dict[int, Callable[[list[Any]], HubMessage]] = {
    1: _invocation,
    2: _stream_item,
    3: _completion,
    4: _stream_invocation,
    5: _cancel,
    6: _ping,
    7: _close,
    8: _ack,
    9: _sequence,
}


def decode_body(body: bytes) -> HubMessage:
    """One message body (without its length prefix) as a message.

    Raises:
        ProtocolError: not MessagePack, not a non-empty array, unknown type or wrong field types.
    """
    try:
        fields = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
    except (msgpack.UnpackException, ValueError, TypeError, RecursionError) as error:
        raise ProtocolError(f"malformed MessagePack message: {type(error).__name__}: {str(error)[:100]}") from None
    if not isinstance(fields, list) or not fields:
        raise ProtocolError("a MessagePack hub message must be a non-empty array")
    kind = fields[0]
    if not check.is_int(kind):
        raise ProtocolError(f"message type must be an integer, got {type(kind).__name__}")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown message type {repr(kind)[:20]}")
    return decoder(fields)


def to_array(message: HubMessage) -> list[Any]:
    """The positional array for ``message`` (before serialisation)."""
    if isinstance(message, InvocationMessage):
        return [
            1,
            dict(message.headers),
            message.invocation_id,
            message.target,
            message.arguments,
            message.stream_ids,
        ]
    if isinstance(message, StreamItemMessage):
        return [2, dict(message.headers), message.invocation_id, message.item]
    if isinstance(message, CompletionMessage):
        head = [3, dict(message.headers), message.invocation_id]
        if message.error is not None:
            return [*head, _ERROR_RESULT, message.error]
        if message.has_result:
            return [*head, _NON_VOID_RESULT, message.result]
        return [*head, _VOID_RESULT]
    if isinstance(message, StreamInvocationMessage):
        return [
            4,
            dict(message.headers),
            message.invocation_id,
            message.target,
            message.arguments,
            message.stream_ids,
        ]
    if isinstance(message, CancelInvocationMessage):
        return [5, dict(message.headers), message.invocation_id]
    if isinstance(message, PingMessage):
        return [6]
    if isinstance(message, CloseMessage):
        return [7, message.error, message.allow_reconnect]
    if isinstance(message, AckMessage):
        return [8, message.sequence_id]
    if isinstance(message, SequenceMessage):
        return [9, message.sequence_id]
    raise TypeError(f"not a hub message: {message!r}")


class MessagePackFrameParser(FrameParser):
    """Splits a binary stream on VarInt length prefixes and decodes each body."""

    __slots__ = ("_buffer",)

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        super().__init__(max_message_bytes)
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[HubMessage]:
        """Add ``data``; return every message it completes (see FrameParser)."""
        buffer = self._buffer
        # Usually the buffer is empty and the frame holds whole messages: parse it in place.
        stream: bytes | bytearray = data
        if buffer:
            buffer += data
            stream = buffer
        limit = self.max_message_bytes
        messages: list[HubMessage] = []
        offset = 0
        # Each pass consumes at least two bytes (prefix + body), so the loop is bounded.
        while offset < len(stream):
            prefix = decode_varint(stream, offset)
            if prefix is None:
                break
            length, body_start = prefix
            if length > limit:
                # Refuse on the declared length alone: the body is never buffered.
                raise MessageTooLargeError(f"MessagePack message declares {length} bytes, over the {limit}-byte limit")
            if length == 0:
                raise ProtocolError("MessagePack message with a zero length")
            body_end = body_start + length
            if body_end > len(stream):
                break
            if length == 2 and stream.startswith(_PING_RECORD, offset):
                # A run of Pings is one Ping: skip it without decoding.
                offset = body_end
                while stream.startswith(_PING_RUN, offset):
                    offset += len(_PING_RUN)
                while stream.startswith(_PING_RECORD, offset):
                    offset += len(_PING_RECORD)
                if not messages or messages[-1].__class__ is not PingMessage:
                    messages.append(_PING)
                continue
            messages.append(decode_body(bytes(stream[body_start:body_end])))
            offset = body_end
        if stream is buffer:
            del buffer[:offset]
        elif offset < len(stream):
            buffer += stream[offset:]
        return messages


class MessagePackHubProtocol(HubProtocol):
    """``messagepack``: binary frames, handshake versions 0-2."""

    name: ClassVar[str] = "messagepack"
    transfer_format: ClassVar[TransferFormat] = "Binary"
    version: ClassVar[int] = 2

    def encode(self, message: HubMessage) -> bytes:
        """VarInt length + MessagePack body (see HubProtocol.encode)."""
        if isinstance(message, PingMessage):
            return _PING_RECORD
        try:
            body: bytes = msgpack.packb(to_array(message), use_bin_type=True)
        except (TypeError, ValueError, OverflowError, RecursionError) as error:
            raise ValueError(f"cannot encode {type(message).__name__} as MessagePack: {error}") from None
        return encode_varint(len(body)) + body

    def new_parser(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> MessagePackFrameParser:
        """A fresh :class:`MessagePackFrameParser`."""
        return MessagePackFrameParser(max_message_bytes)
