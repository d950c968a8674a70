"""The handshake: the first record each side sends, always JSON ended by 0x1E.

Before anything else the client says which protocol it will speak
(``{"protocol":"messagepack","version":1}`` + ``0x1E``) and the server answers ``{}`` + ``0x1E``
or ``{"error":"…"}`` + ``0x1E``. It is JSON even when the rest of the conversation is MessagePack,
like agreeing on a language in a lingua franca before switching to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from simscale.protocol.base import DEFAULT_MAX_MESSAGE_BYTES
from simscale.protocol.errors import HandshakeError, MessageTooLargeError

__all__ = [
    "RECORD_SEPARATOR",
    "HandshakeRequest",
    "HandshakeResponse",
    "encode_handshake_request",
    "encode_handshake_response",
    "parse_handshake_request",
    "parse_handshake_response",
]

RECORD_SEPARATOR = b"\x1e"
"""The byte that ends every JSON record, the handshake included."""


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """What the client asked for."""

    protocol: str
    version: int


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """What the server answered: ``error`` is ``None`` on success."""

    error: str | None = None


def _split_record(buffer: bytes, max_bytes: int, what: str) -> tuple[Any, bytes] | None:
    end = buffer.find(RECORD_SEPARATOR)
    if end < 0:
        if len(buffer) > max_bytes:
            raise MessageTooLargeError(f"{what} is larger than {max_bytes} bytes without its 0x1E terminator")
        return None
    if end > max_bytes:
        raise MessageTooLargeError(f"{what} is {end} bytes, over the {max_bytes}-byte limit")
    try:
        document = json.loads(buffer[:end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise HandshakeError(f"{what} is not valid UTF-8 JSON: {error}") from None
    if not isinstance(document, dict):
        raise HandshakeError(f"{what} must be a JSON object, got {type(document).__name__}")
    return document, bytes(buffer[end + 1 :])


def parse_handshake_request(
    buffer: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> tuple[HandshakeRequest | None, bytes]:
    """Parse a client's handshake from the start of ``buffer``.

    Only the shape is checked here; whether the protocol and version are supported is the
    server's decision (see :class:`~simscale.protocol.connection.ServerConnection`).

    Returns:
        ``(None, buffer)`` while the record is incomplete, else the request and the bytes that
        followed the ``0x1E`` (the first hub messages, possibly).

    Raises:
        HandshakeError: not a JSON object with a string ``protocol`` and an integer ``version`` >= 0.
        MessageTooLargeError: more than ``max_bytes`` without a terminator.
    """
    split = _split_record(buffer, max_bytes, "handshake request")
    if split is None:
        return None, buffer
    document, rest = split
    protocol = document.get("protocol")
    version = document.get("version")
    if not isinstance(protocol, str):
        raise HandshakeError("handshake request needs a string 'protocol' property")
    if isinstance(version, bool) or not isinstance(version, int):
        raise HandshakeError("handshake request needs an integer 'version' property")
    if version < 0:
        raise HandshakeError(f"handshake version must be >= 0, got {version}")
    return HandshakeRequest(protocol, version), rest


def encode_handshake_request(protocol: str, version: int = 1) -> bytes:
    """The client's first record, e.g. ``{"protocol":"json","version":1}`` + ``0x1E``."""
    return json.dumps({"protocol": protocol, "version": version}, separators=(",", ":")).encode() + (RECORD_SEPARATOR)


def encode_handshake_response(error: str | None = None) -> bytes:
    """``{}`` + ``0x1E`` on success, ``{"error":"…"}`` + ``0x1E`` on failure."""
    if error is None:
        return b"{}" + RECORD_SEPARATOR
    return json.dumps({"error": error}, separators=(",", ":")).encode() + RECORD_SEPARATOR


def parse_handshake_response(
    buffer: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> tuple[HandshakeResponse | None, bytes]:
    """Parse the server's handshake answer from the start of ``buffer``.

    Returns:
        ``(None, buffer)`` while incomplete, else the response and the bytes after the ``0x1E``.

    Raises:
        HandshakeError: not a JSON object, or ``error`` is not a string.
        MessageTooLargeError: more than ``max_bytes`` without a terminator.
    """
    split = _split_record(buffer, max_bytes, "handshake response")
    if split is None:
        return None, buffer
    document, rest = split
    error = document.get("error")
    if error is not None and not isinstance(error, str):
        raise HandshakeError("handshake response 'error' must be a string")
    return HandshakeResponse(error), rest
