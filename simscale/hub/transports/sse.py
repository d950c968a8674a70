"""Server-Sent Events framing, sans I/O: hub records in, ``text/event-stream`` bytes out.

An event stream is text lines; an event is one or more ``data:`` lines and a blank line, and a
reader joins an event's ``data`` lines with ``\\n`` (WHATWG HTML, "Server-sent events"). So one
write of hub records becomes one unnamed event, a line of it per line of the payload, each ended
with CRLF as ASP.NET Core's ``ServerSentEventsMessageFormatter`` writes them. JSON records never
contain a raw newline (JSON escapes it inside strings), so in practice every event is one line;
binary payloads cannot travel this way at all, which is why negotiate offers only ``Text`` here.
"""

from __future__ import annotations

__all__ = ["STREAM_PREAMBLE", "format_event"]

STREAM_PREAMBLE = b":\r\n"
"""A comment line sent first, so that a reader sees the stream open before any event arrives
(ASP.NET Core writes it for Firefox's EventSource)."""

_CRLF = b"\r\n"


def format_event(payload: bytes) -> bytes:
    r"""``payload`` as one event: ``data: <line>\r\n`` per line, then a blank line.

    A ``\r\n`` or ``\n`` in the payload ends a line (the reader restores it as ``\n``); an empty
    payload is an event without data lines, which readers skip.

    Example:

        >>> from simscale.hub.transports import format_event
        >>> format_event(b'{"type":6}\x1e')
        b'data: {"type":6}\x1e\r\n\r\n'
    """
    if not payload:
        return _CRLF
    lines = payload.split(b"\n")
    out = bytearray()
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        out += b"data: " + line + _CRLF
    out += _CRLF
    return bytes(out)
