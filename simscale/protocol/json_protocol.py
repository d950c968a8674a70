"""The JSON hub protocol: one UTF-8 JSON object per record, each record ended by 0x1E.

``{"type":1,"target":"Send","arguments":["hi"]}`` + ``0x1E``. Property order is free (the
JavaScript client writes ``type`` last), unknown properties are ignored, and a WebSocket frame may
carry several records. The parser keeps the unterminated tail of the stream and refuses it as
soon as it grows past the size limit, so a peer cannot make the server buffer without bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

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

__all__ = ["JsonFrameParser", "JsonHubProtocol"]

_SEPARATOR = 0x1E
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_PING_RECORD = b'{"type":6}\x1e'
_PING_BODY_BYTES = len(_PING_RECORD) - 1
_PING_RUN = _PING_RECORD * 64
"""64 Pings: a run of them is skipped this many at a time."""
_PING = PingMessage()


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"'{name}' is not valid JSON")


# One decoder for every record: json.loads with keyword arguments would build a new one per call.
_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def _required(document: dict[str, Any], name: str) -> Any:
    if name not in document:
        raise ProtocolError(f"missing required property '{name}'")
    return document[name]


def _invocation(document: dict[str, Any]) -> HubMessage:
    target, arguments = document.get("target"), document.get("arguments")
    invocation_id = document.get("invocationId")
    if (
        type(target) is str
        and type(arguments) is list
        and (invocation_id is None or type(invocation_id) is str)
        and "streamIds" not in document
        and "headers" not in document
    ):
        # The common case, checked inline: a fan-out recipient decodes one of these per message.
        return InvocationMessage(target, tuple(arguments), invocation_id)
    return InvocationMessage(
        target=check.as_str(_required(document, "target"), "target"),
        arguments=check.as_arguments(_required(document, "arguments")),
        invocation_id=check.as_optional_str(document.get("invocationId"), "invocationId"),
        stream_ids=check.as_stream_ids(document.get("streamIds")),
        headers=check.as_headers(document.get("headers")),
    )


def _stream_item(document: dict[str, Any]) -> HubMessage:
    return StreamItemMessage(
        invocation_id=check.as_str(_required(document, "invocationId"), "invocationId"),
        item=_required(document, "item"),
        headers=check.as_headers(document.get("headers")),
    )


def _completion(document: dict[str, Any]) -> HubMessage:
    invocation_id = check.as_str(_required(document, "invocationId"), "invocationId")
    headers = check.as_headers(document.get("headers"))
    error = check.as_optional_str(document.get("error"), "error")
    has_result = "result" in document
    if error is not None and has_result:
        raise ProtocolError("the 'error' and 'result' properties are mutually exclusive")
    return CompletionMessage(
        invocation_id, result=document.get("result"), error=error, has_result=has_result, headers=headers
    )


def _stream_invocation(document: dict[str, Any]) -> HubMessage:
    return StreamInvocationMessage(
        invocation_id=check.as_str(_required(document, "invocationId"), "invocationId"),
        target=check.as_str(_required(document, "target"), "target"),
        arguments=check.as_arguments(_required(document, "arguments")),
        stream_ids=check.as_stream_ids(document.get("streamIds")),
        headers=check.as_headers(document.get("headers")),
    )


def _cancel(document: dict[str, Any]) -> HubMessage:
    return CancelInvocationMessage(
        invocation_id=check.as_str(_required(document, "invocationId"), "invocationId"),
        headers=check.as_headers(document.get("headers")),
    )


def _ping(document: dict[str, Any]) -> HubMessage:
    return PingMessage()


def _close(document: dict[str, Any]) -> HubMessage:
    allow_reconnect = document.get("allowReconnect", False)
    if not isinstance(allow_reconnect, bool):
        raise ProtocolError("'allowReconnect' must be a boolean")
    return CloseMessage(check.as_optional_str(document.get("error"), "error"), allow_reconnect)


def _ack(document: dict[str, Any]) -> HubMessage:
    return AckMessage(check.as_sequence_id(_required(document, "sequenceId")))


def _sequence(document: dict[str, Any]) -> HubMessage:
    return SequenceMessage(check.as_sequence_id(_required(document, "sequenceId")))


_DECODERS: dict[int, Callable[[dict[str, Any]], HubMessage]] = {
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


def decode_record(record: bytes) -> HubMessage:
    """One JSON record (without its 0x1E) as a message.

    Raises:
        ProtocolError: not UTF-8 JSON, not an object, unknown type, or a field of the wrong type.
    """
    try:
        document = _decoder.decode(record.decode("utf-8"))
    except ProtocolError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProtocolError(f"malformed JSON record: {str(error)[:120]}") from None
    if not isinstance(document, dict):
        raise ProtocolError(f"a JSON hub message must be an object, got {type(document).__name__}")
    kind = _required(document, "type")
    if not check.is_int(kind):
        raise ProtocolError(f"'type' must be an integer, got {type(kind).__name__}")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown message type {repr(kind)[:20]}")
    return decoder(document)


def _with_headers(document: dict[str, Any], headers: Any) -> dict[str, Any]:
    if headers:
        document["headers"] = dict(headers)
    return document


def to_document(message: HubMessage) -> dict[str, Any]:
    """The JSON object for ``message`` (before serialisation)."""
    document: dict[str, Any]
    if isinstance(message, InvocationMessage):
        document = {"type": 1}
        if message.invocation_id is not None:
            document["invocationId"] = message.invocation_id
        document["target"] = message.target
        document["arguments"] = message.arguments
        if message.stream_ids:
            document["streamIds"] = message.stream_ids
        return _with_headers(document, message.headers)
    if isinstance(message, StreamItemMessage):
        document = {"type": 2, "invocationId": message.invocation_id, "item": message.item}
        return _with_headers(document, message.headers)
    if isinstance(message, CompletionMessage):
        document = {"type": 3, "invocationId": message.invocation_id}
        if message.error is not None:
            document["error"] = message.error
        elif message.has_result:
            document["result"] = message.result
        return _with_headers(document, message.headers)
    if isinstance(message, StreamInvocationMessage):
        document = {"type": 4, "invocationId": message.invocation_id, "target": message.target}
        document["arguments"] = message.arguments
        if message.stream_ids:
            document["streamIds"] = message.stream_ids
        return _with_headers(document, message.headers)
    if isinstance(message, CancelInvocationMessage):
        return _with_headers({"type": 5, "invocationId": message.invocation_id}, message.headers)
    if isinstance(message, PingMessage):
        return {"type": 6}
    if isinstance(message, CloseMessage):
        document = {"type": 7}
        if message.error is not None:
            document["error"] = message.error
        if message.allow_reconnect:
            document["allowReconnect"] = True
        return document
    if isinstance(message, AckMessage):
        return {"type": 8, "sequenceId": message.sequence_id}
    if isinstance(message, SequenceMessage):
        return {"type": 9, "sequenceId": message.sequence_id}
    raise TypeError(f"not a hub message: {message!r}")


class JsonFrameParser(FrameParser):
    """Splits a JSON stream on 0x1E and decodes each record."""

    __slots__ = ("_buffer", "_scanned")

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        super().__init__(max_message_bytes)
        self._buffer = bytearray()
        self._scanned = 0
        """Bytes at the start of the buffer already known to hold no separator."""

    def feed(self, data: bytes) -> list[HubMessage]:
        """Add ``data``; return the messages of every record it completes (see FrameParser)."""
        buffer = self._buffer
        limit = self.max_message_bytes
        if len(buffer) + len(data) > limit and data.find(_SEPARATOR) < 0:
            # Refuse before buffering: the record is already too large and still unterminated.
            raise MessageTooLargeError(
                f"unterminated JSON message already {len(buffer) + len(data)} bytes, over the {limit}-byte limit"
            )
        # Usually the buffer is empty and the frame holds whole records: parse it in place.
        stream: bytes | bytearray = data
        search_from = 0
        if buffer:
            buffer += data
            stream = buffer
            search_from = self._scanned
        messages: list[HubMessage] = []
        start = 0
        # Each pass consumes one separator, so the loop runs at most len(stream) times.
        while True:
            end = stream.find(_SEPARATOR, search_from)
            if end < 0:
                break
            if end - start > limit:
                raise MessageTooLargeError(f"JSON message of {end - start} bytes is over the {limit}-byte limit")
            if end == start:
                raise ProtocolError("empty JSON record (two 0x1E in a row)")
            if end - start == _PING_BODY_BYTES and stream.startswith(_PING_RECORD, start):
                # A run of Pings (a client's exact bytes) is one Ping: skip it without decoding.
                start = end + 1
                while stream.startswith(_PING_RUN, start):
                    start += len(_PING_RUN)
                while stream.startswith(_PING_RECORD, start):
                    start += len(_PING_RECORD)
                if not messages or messages[-1].__class__ is not PingMessage:
                    messages.append(_PING)
                search_from = start
                continue
            messages.append(decode_record(bytes(stream[start:end])))
            start = search_from = end + 1
        pending = len(stream) - start
        if pending > limit:
            raise MessageTooLargeError(
                f"unterminated JSON message already {pending} bytes, over the {limit}-byte limit"
            )
        if stream is buffer:
            del buffer[:start]
        elif pending:
            buffer += stream[start:]
        self._scanned = len(buffer)
        return messages


class JsonHubProtocol(HubProtocol):
    """``json``: text frames, handshake versions 0-2."""

    name: ClassVar[str] = "json"
    transfer_format: ClassVar[TransferFormat] = "Text"
    version: ClassVar[int] = 2

    def encode(self, message: HubMessage) -> bytes:
        """One JSON record ended by 0x1E (see HubProtocol.encode)."""
        if isinstance(message, PingMessage):
            return _PING_RECORD
        try:
            return _encoder.encode(to_document(message)).encode("utf-8") + b"\x1e"
        except (TypeError, ValueError, RecursionError) as error:
            raise ValueError(f"cannot encode {type(message).__name__} as JSON: {error}") from None

    def new_parser(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> JsonFrameParser:
        """A fresh :class:`JsonFrameParser`."""
        return JsonFrameParser(max_message_bytes)
