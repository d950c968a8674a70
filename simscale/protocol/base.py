"""The seam every hub protocol implements: one encoder, one incremental parser.

A protocol is a pair of translators. ``encode`` turns one message into one framed record (so the
hub can encode a broadcast once and write the same bytes to every recipient); a parser, one per
connection, turns a byte stream cut at arbitrary places back into whole messages.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

from simscale.protocol.messages import HubMessage

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "FrameParser", "HubProtocol", "TransferFormat"]

DEFAULT_MAX_MESSAGE_BYTES = 32768
"""ASP.NET Core's ``MaximumReceiveMessageSize`` default (32 KB)."""

TransferFormat = Literal["Text", "Binary"]
"""How a protocol's records travel in WebSocket frames (text or binary)."""


class FrameParser(abc.ABC):
    """Buffers one connection's incoming bytes and yields whole messages.

    Subclasses implement :meth:`feed` only.
    """

    __slots__ = ("max_message_bytes",)

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be >= 1, got {max_message_bytes!r}")
        self.max_message_bytes = max_message_bytes
        """The largest message accepted; a larger one raises ``MessageTooLargeError``."""

    @abc.abstractmethod
    def feed(self, data: bytes) -> list[HubMessage]:
        """Add ``data`` and return every message it completes, in order.

        A run of consecutive Pings in ``data`` may be returned as one Ping: a Ping carries nothing
        but liveness, and a run of them must cost what one costs (a Ping flood is skipped, not decoded).

        A ``ProtocolError`` is fatal: messages completed by the same call are not returned, and
        the parser must not be fed again (the connection is closing).

        Raises:
            MessageTooLargeError: a message is (or is declared to be) over ``max_message_bytes``.
            ProtocolError: the bytes are not a valid message.
        """
        raise NotImplementedError


class HubProtocol(abc.ABC):
    """A hub protocol: a name for the handshake, an encoder and a parser factory.

    Subclasses set the three class attributes and implement :meth:`encode` and :meth:`new_parser`.
    Instances hold no state, so one instance serves every connection.
    """

    name: ClassVar[str]
    """The name a client asks for in the handshake (``json``, ``messagepack``)."""
    transfer_format: ClassVar[TransferFormat]
    version: ClassVar[int]
    """The highest handshake version accepted; any version from 0 up to it is accepted."""

    @abc.abstractmethod
    def encode(self, message: HubMessage) -> bytes:
        """One whole framed record for ``message`` (a pure function of the message).

        Raises:
            ValueError: an argument or result cannot be represented in this protocol.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def new_parser(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> FrameParser:
        """A fresh parser for one connection's incoming bytes."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
