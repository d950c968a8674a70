"""The nine hub messages, as immutable values.

A hub protocol moves a handful of message kinds between client and server, like letters with a
type stamped on the envelope: call a method (Invocation), here is one item of a stream
(StreamItem), here is how the call ended (Completion), start a stream (StreamInvocation), stop it
(CancelInvocation), I am alive (Ping), goodbye (Close), and the two stateful-reconnect messages
(Ack, Sequence). The codecs in :mod:`~simscale.protocol.json_protocol` and
:mod:`~simscale.protocol.msgpack_protocol` turn these values into bytes and back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = [
    "AckMessage",
    "CancelInvocationMessage",
    "CloseMessage",
    "CompletionMessage",
    "HubMessage",
    "InvocationMessage",
    "MessageType",
    "PingMessage",
    "SequenceMessage",
    "StreamInvocationMessage",
    "StreamItemMessage",
]

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _no_headers() -> Mapping[str, str]:
    # One shared, read-only empty mapping: building a message allocates no dict.
    return _NO_HEADERS


class MessageType(enum.IntEnum):
    """The ``type`` field of every hub message."""

    INVOCATION = 1
    STREAM_ITEM = 2
    COMPLETION = 3
    STREAM_INVOCATION = 4
    CANCEL_INVOCATION = 5
    PING = 6
    CLOSE = 7
    ACK = 8
    SEQUENCE = 9


@dataclass(frozen=True, slots=True)
class InvocationMessage:
    """Call ``target`` with ``arguments``; without ``invocation_id`` the caller expects no reply."""

    type: ClassVar[MessageType] = MessageType.INVOCATION
    target: str
    arguments: tuple[Any, ...]
    invocation_id: str | None = None
    stream_ids: tuple[str, ...] = ()
    """Ids of upload streams the caller will feed with StreamItem messages."""
    headers: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, slots=True)
class StreamItemMessage:
    """One item of the stream identified by ``invocation_id``."""

    type: ClassVar[MessageType] = MessageType.STREAM_ITEM
    invocation_id: str
    item: Any
    headers: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, slots=True)
class CompletionMessage:
    """How an invocation ended: a result, an error, or neither (void).

    ``has_result`` tells a ``None`` result (JSON ``null``) apart from no result at all.
    """

    type: ClassVar[MessageType] = MessageType.COMPLETION
    invocation_id: str
    result: Any = None
    error: str | None = None
    has_result: bool = False
    headers: Mapping[str, str] = field(default_factory=_no_headers)

    def __post_init__(self) -> None:
        if self.error is not None and self.has_result:
            raise ValueError("a CompletionMessage carries a result or an error, not both")

    @classmethod
    def with_result(cls, invocation_id: str, value: Any) -> CompletionMessage:
        """A completion carrying ``value`` (which may be ``None``)."""
        return cls(invocation_id, result=value, has_result=True)

    @classmethod
    def with_error(cls, invocation_id: str, text: str) -> CompletionMessage:
        """A completion reporting that the invocation failed with ``text``."""
        return cls(invocation_id, error=text)

    @classmethod
    def void(cls, invocation_id: str) -> CompletionMessage:
        """A completion with neither result nor error (a void method, or the end of a stream)."""
        return cls(invocation_id)


@dataclass(frozen=True, slots=True)
class StreamInvocationMessage:
    """Call ``target`` and stream its results back as StreamItem messages then a Completion."""

    type: ClassVar[MessageType] = MessageType.STREAM_INVOCATION
    invocation_id: str
    target: str
    arguments: tuple[Any, ...]
    stream_ids: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, slots=True)
class CancelInvocationMessage:
    """Stop the stream ``invocation_id`` (the server still sends a Completion)."""

    type: ClassVar[MessageType] = MessageType.CANCEL_INVOCATION
    invocation_id: str
    headers: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, slots=True)
class PingMessage:
    """Keep-alive: any hub message resets the peer's timeout, this one carries nothing else."""

    type: ClassVar[MessageType] = MessageType.PING


@dataclass(frozen=True, slots=True)
class CloseMessage:
    """The sender is closing the connection, with an optional error and reconnect hint."""

    type: ClassVar[MessageType] = MessageType.CLOSE
    error: str | None = None
    allow_reconnect: bool = False


@dataclass(frozen=True, slots=True)
class AckMessage:
    """Stateful reconnect: every message up to ``sequence_id`` has been processed."""

    type: ClassVar[MessageType] = MessageType.ACK
    sequence_id: int


@dataclass(frozen=True, slots=True)
class SequenceMessage:
    """Stateful reconnect: the next message sent after a reconnect has ``sequence_id``."""

    type: ClassVar[MessageType] = MessageType.SEQUENCE
    sequence_id: int


HubMessage = (
    InvocationMessage
    | StreamItemMessage
    | CompletionMessage
    | StreamInvocationMessage
    | CancelInvocationMessage
    | PingMessage
    | CloseMessage
    | AckMessage
    | SequenceMessage
)
"""Any hub message."""
