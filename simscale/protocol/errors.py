"""What can go wrong on the wire.

Every violation of the hub protocol is a :class:`ProtocolError` carrying a sentence a human can act
on. A protocol error is fatal for the connection: the server answers it with a Close message
carrying the reason, exactly as ASP.NET Core does, and then drops the connection.
"""

from __future__ import annotations

__all__ = ["HandshakeError", "MessageTooLargeError", "ProtocolError"]


class ProtocolError(Exception):
    """The peer broke the hub protocol; ``reason`` says how (fatal for the connection)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        """A human-readable explanation, safe to send back in a Close message."""


class HandshakeError(ProtocolError):
    """The handshake failed: malformed, unknown protocol, or unsupported version."""


class MessageTooLargeError(ProtocolError):
    """A message (declared or buffered) is larger than the connection's ``max_message_bytes``."""
