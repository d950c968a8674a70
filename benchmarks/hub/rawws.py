"""A lean WebSocket client for the load generator: one asyncio Protocol per connection, no task per client.

Why not aiohttp's client here: its reader hands every message to a task, and a task wakes up only
after the event loop has run the socket callbacks of *every* socket that was ready at the same time.
A timestamp taken in that task then includes the reading of all the other sockets of the batch,
which grows with how fast the server wrote: the measuring instrument would favour slow writers.
This client parses frames in ``data_received`` and stamps each read with the clock once, so a
delivery is timed when its bytes leave the kernel, and it costs a fraction of the CPU per message.

Only what the benchmark needs: client handshake (RFC 6455 §4.1, ``Sec-WebSocket-Accept`` checked),
masked text/binary frames out, unfragmented or fragmented text/binary frames in, ping → pong, close.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import ssl
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HANDSHAKE_BYTES = 16_384

FrameHandler = Callable[["RawWebSocket", str, int], None]
"""``(websocket, data, received_ns)``: binary payloads arrive decoded as latin-1 (byte positions kept)."""


class HandshakeError(ConnectionError):
    """The server did not upgrade the connection as RFC 6455 requires."""


def _mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client-to-server frame."""
    length = len(payload)
    key = os.urandom(4)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + key + _mask(payload, key)


class RawWebSocket(asyncio.Protocol):
    """One client connection. Before ``on_frame`` is set, messages queue up for :meth:`receive_str`."""

    def __init__(self, request: bytes, expected_accept: str) -> None:
        self._request = request
        self._expected_accept = expected_accept
        self._buffer = bytearray()
        self._upgraded = False
        self._upgrade_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self.on_frame: FrameHandler | None = None
        self.closed = False
        self.close_sent = False

    # --- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._upgrade_done.done():
            self._upgrade_done.set_exception(exc or HandshakeError("connection closed during the upgrade"))
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        self._inbox.put_nowait("")  # wakes a handshake waiting in receive_str

    def data_received(self, data: bytes) -> None:
        received_ns = time.monotonic_ns()
        buffer = self._buffer
        buffer += data
        if not self._upgraded and not self._read_upgrade():
            return
        position = 0
        end = len(buffer)
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            offset = position + 2
            if length == 126:
                if end - offset < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, offset)
                offset += 2
            elif length == 127:
                if end - offset < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, offset)
                offset += 8
            if second & 0x80:  # a server must not mask (RFC 6455 §5.1)
                self._fail()
                return
            if end - offset < length:
                break
            payload = bytes(buffer[offset : offset + length])
            position = offset + length
            self._frame(first, payload, received_ns)
            if self.closed:
                return
        del buffer[:position]

    # --- frames --------------------------------------------------------------------------------------

    def _read_upgrade(self) -> bool:
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > MAX_HANDSHAKE_BYTES:
                self._fail(HandshakeError("no end of the upgrade response"))
            return False
        head = bytes(buffer[:head_end]).decode("latin-1")
        del buffer[: head_end + 4]
        status_line, _, header_text = head.partition("\r\n")
        headers = {}
        for line in header_text.split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status_line.split(" ")[1:2] != ["101"]:
            self._fail(HandshakeError(f"upgrade refused: {status_line!r}"))
            return False
        if headers.get("sec-websocket-accept") != self._expected_accept:
            self._fail(HandshakeError("wrong Sec-WebSocket-Accept"))
            return False
        self._upgraded = True
        self._upgrade_done.set_result(None)
        return True

    def _frame(self, first: int, payload: bytes, received_ns: int) -> None:
        opcode = first & 0x0F
        if opcode >= _OP_CLOSE:
            if opcode == _OP_PING:
                self._write(client_frame(_OP_PONG, payload))
            elif opcode == _OP_CLOSE:
                if not self.close_sent:
                    self._write(client_frame(_OP_CLOSE, payload[:2]))
                    self.close_sent = True
                self._close_transport()
            return
        if not first & 0x80:  # a fragment: keep until the final one
            if opcode != _OP_CONTINUATION:
                self._fragment_opcode = opcode
            self._fragments.append(payload)
            return
        if opcode == _OP_CONTINUATION:
            self._fragments.append(payload)
            payload, opcode = b"".join(self._fragments), self._fragment_opcode
            self._fragments = []
        text = payload.decode("utf-8" if opcode == _OP_TEXT else "latin-1")
        handler = self.on_frame
        if handler is None:
            self._inbox.put_nowait(text)
        else:
            handler(self, text, received_ns)

    def _fail(self, error: Exception | None = None) -> None:
        if not self._upgrade_done.done():
            self._upgrade_done.set_exception(error or HandshakeError("protocol error"))
        if self._transport is not None:
            self._transport.abort()
        self.closed = True

    def _write(self, frame: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(frame)

    def _close_transport(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # --- the client's side -----------------------------------------------------------------------------

    async def upgraded(self) -> None:
        """Wait until the server has answered the upgrade with 101."""
        await self._upgrade_done

    async def receive_str(self) -> str:
        """The next message before ``on_frame`` takes over (the peer protocol's own handshake)."""
        text = await self._inbox.get()
        if self.closed and not text:
            raise ConnectionError("closed while waiting for a message")
        return text

    def send_str(self, text: str) -> None:
        """Send one text frame."""
        self._write(client_frame(_OP_TEXT, text.encode()))

    def send_bytes(self, data: bytes) -> None:
        """Send one binary frame."""
        self._write(client_frame(_OP_BINARY, data))

    async def close(self, timeout_s: float = 2.0) -> None:
        """Close handshake: send Close, wait for the server's Close (or the timeout), drop the socket."""
        if not self.closed and not self.close_sent:
            self._write(client_frame(_OP_CLOSE, struct.pack("!H", 1000)))
            self.close_sent = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed_future), timeout_s)
        self.abort()

    def abort(self) -> None:
        """Drop the socket at once."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


async def connect(url: str, ssl_context: ssl.SSLContext | None = None) -> RawWebSocket:
    """Open ``ws://host:port/path`` or ``wss://…`` and complete the WebSocket upgrade."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or parts.hostname is None:
        raise ValueError(f"url must be ws:// or wss:// with a host, not {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    context = (ssl_context or ssl.create_default_context()) if secure else None
    _, protocol = await loop.create_connection(
        lambda: RawWebSocket(request, accept),
        parts.hostname,
        port,
        ssl=context,
        server_hostname=parts.hostname if secure else None,
    )
    try:
        await protocol.upgraded()
    except BaseException:
        protocol.abort()
        raise
    return protocol
