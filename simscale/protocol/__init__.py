"""The SignalR hub protocol, sans-I/O: bytes in, messages out; no sockets, no asyncio.

Start with :mod:`~simscale.protocol.messages` (the vocabulary), then
:mod:`~simscale.protocol.handshake`, the two codecs, and :mod:`~simscale.protocol.connection`
(the state machine the hub and the client wrap in a thin asyncio loop).
"""

from __future__ import annotations

from simscale.protocol.base import DEFAULT_MAX_MESSAGE_BYTES, FrameParser, HubProtocol, TransferFormat
from simscale.protocol.connection import (
    ClientConnection,
    ConnectionState,
    ConnectionStateError,
    ServerConnection,
)
from simscale.protocol.errors import HandshakeError, MessageTooLargeError, ProtocolError
from simscale.protocol.handshake import (
    HandshakeRequest,
    HandshakeResponse,
    encode_handshake_request,
    encode_handshake_response,
    parse_handshake_request,
    parse_handshake_response,
)
from simscale.protocol.json_protocol import JsonHubProtocol
from simscale.protocol.messages import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    MessageType,
    PingMessage,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)
from simscale.protocol.msgpack_protocol import MessagePackHubProtocol
from simscale.protocol.registry import SUPPORTED_PROTOCOLS, get_protocol

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "SUPPORTED_PROTOCOLS",
    "AckMessage",
    "CancelInvocationMessage",
    "ClientConnection",
    "CloseMessage",
    "CompletionMessage",
    "ConnectionState",
    "ConnectionStateError",
    "FrameParser",
    "HandshakeError",
    "HandshakeRequest",
    "HandshakeResponse",
    "HubMessage",
    "HubProtocol",
    "InvocationMessage",
    "JsonHubProtocol",
    "MessagePackHubProtocol",
    "MessageTooLargeError",
    "MessageType",
    "PingMessage",
    "ProtocolError",
    "SequenceMessage",
    "ServerConnection",
    "StreamInvocationMessage",
    "StreamItemMessage",
    "TransferFormat",
    "encode_handshake_request",
    "encode_handshake_response",
    "get_protocol",
    "parse_handshake_request",
    "parse_handshake_response",
]
