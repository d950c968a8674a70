"""A lean WebSocket client for load generators: one asyncio Protocol per connection, no task per client.

Why not aiohttp's client here: its reader hands every message to a task, and a task wakes up only
after the event loop has run the socket callbacks of *every* socket that was ready at the same time.
A timestamp taken in that task then includes the reading of all the other sockets of the batch,
which grows with how fast the server wrote, and the cost per message falls as batches grow: the
measuring instrument would favour slow writers and behave differently at every load. This client
parses frames in ``data_received`` and stamps each read once (``time.perf_counter_ns``), so a delivery
is timed when its bytes leave the kernel, at a small cost per message that barely depends on load.

Only what the benchmark needs: client handshake (RFC 6455 §4.1, ``Sec-WebSocket-Accept`` checked),
masked text/binary frames out, unfragmented or fragmented text/binary frames in, ping → pong, close.
The frames themselves are written and read by :mod:`simscale.protocol.websocket_frames`, the pure
framer the server writes with too; a server that breaks the framing rules is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from simscale.protocol.websocket_frames import (
    CLOSE_NORMAL,
    FrameError,
    MessageReader,
    Opcode,
    close_payload,
    encode_frame,
)

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CLOSE_NORMAL_PAYLOAD = close_payload(CLOSE_NORMAL)
MAX_HANDSHAKE_BYTES = 16_384
DEFAULT_MAX_FRAME_BYTES = 1 << 26
"""Largest message the client accepts by default (64 MiB: far above any hub message; a bound, not a tuning)."""

FrameHandler = Callable[["RawWebSocket", bytes, int], None]
"""``(websocket, payload, received_ns)`` for each whole text or binary message; ``received_ns`` is
``time.perf_counter_ns()`` when the read that completed it returned."""


class ReadCounter:
    """Counts socket reads and event-loop wake-ups that read something, over many connections.

    A wake-up is one pass of the event loop over the sockets ``select`` found ready: the first read
    of a pass schedules a callback with ``call_soon``, which runs only after every ready socket's
    callback, so it runs once per pass. A loop that keeps up wakes once per message; one that falls
    behind finds many sockets ready per wake-up, and that is much of why its cost per message falls.

    With ``trace``, every pass is also kept as ``(first read, end of pass, reads)`` in
    ``time.perf_counter()`` seconds: how the loop met each fan-out (calibration reads it).
    """

    __slots__ = ("_pass_reads", "_pass_started_s", "_pending", "passes", "reads", "trace", "wakeups")

    def __init__(self, *, trace: bool = False) -> None:
        self.reads = 0
        self.wakeups = 0
        self.trace = trace
        self.passes: list[tuple[float, float, int]] = []
        self._pending = False
        self._pass_reads = 0
        self._pass_started_s = 0.0

    def count_read(self) -> None:
        """Note one read (called from ``data_received``)."""
        self.reads += 1
        if not self._pending:
            self._pending = True
            self.wakeups += 1
            if self.trace:
                self._pass_started_s = time.perf_counter()
                self._pass_reads = self.reads
            asyncio.get_running_loop().call_soon(self._end_of_pass)

    def _end_of_pass(self) -> None:
        self._pending = False
        if self.trace:
            self.passes.append((self._pass_started_s, time.perf_counter(), self.reads - self._pass_reads + 1))


class HandshakeError(ConnectionError):
    """The server did not upgrade the connection as RFC 6455 requires."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status the server answered with, when it answered one."""


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client-to-server frame, masked with a fresh random key (RFC 6455 §5.3)."""
    return encode_frame(opcode, payload, mask_key=os.urandom(4))


class RawWebSocket(asyncio.Protocol):
    """One client connection. Before ``on_frame`` is set, messages queue up for :meth:`receive_str`.

    ``on_lost`` (if set) is called once when the connection ends, whoever ended it.
    """

    def __init__(
        self,
        request: bytes,
        expected_accept: str,
        counter: ReadCounter | None = None,
        *,
        max_message_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._request = request
        self._counter = counter
        self._expected_accept = expected_accept
        self._buffer = bytearray()
        """Bytes of the HTTP upgrade response; after it, frames go through ``_frames``."""
        self._frames = MessageReader(masked=False, max_payload_bytes=max_message_bytes)
        self._upgraded = False
        self._upgrade_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.on_frame: FrameHandler | None = None
        self.on_lost: Callable[[RawWebSocket], None] | None = None
        self.is_text = True
        """Whether the last message was a text frame."""
        self.closed = False
        self.close_sent = False

    # --- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # As browsers and aiohttp do: a small frame must not wait for the previous one's ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._upgrade_done.done():
            self._upgrade_done.set_exception(exc or HandshakeError("connection closed during the upgrade"))
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        self._inbox.put_nowait(b"")  # wakes a handshake waiting in receive_str
        if self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost(self)

    def data_received(self, data: bytes) -> None:
        received_ns = time.perf_counter_ns()
        if self._counter is not None:
            self._counter.count_read()
        if not self._upgraded:
            buffer = self._buffer
            buffer += data
            if not self._read_upgrade():
                return
            data = bytes(buffer)  # what came right behind the upgrade response
            buffer.clear()
        try:
            frames = self._frames.feed(data)
        except FrameError as error:
            for opcode, payload, _ in error.frames:  # what arrived intact before the violation
                self._frame(opcode, payload, received_ns)
            self._fail(ConnectionError(f"the server broke the WebSocket framing: {error.reason}"))
            return
        for opcode, payload, _ in frames:
            self._frame(opcode, payload, received_ns)
            if self.closed:
                return

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
        code = status_line.split(" ")[1:2]
        if code != ["101"]:
            status = int(code[0]) if code and code[0].isdigit() else None
            self._fail(HandshakeError(f"upgrade refused: {status_line!r}", status))
            return False
        if headers.get("sec-websocket-accept") != self._expected_accept:
            self._fail(HandshakeError("wrong Sec-WebSocket-Accept"))
            return False
        self._upgraded = True
        self._upgrade_done.set_result(None)
        return True

    def _frame(self, opcode: Opcode, payload: bytes, received_ns: int) -> None:
        """Act on one whole message or control frame (the reader has joined fragments)."""
        if opcode >= Opcode.CLOSE:
            if opcode is Opcode.PING:
                self._write(client_frame(Opcode.PONG, payload))
            elif opcode is Opcode.CLOSE:
                if not self.close_sent:
                    self._write(client_frame(Opcode.CLOSE, payload[:2]))  # echo the status (§5.5.1)
                    self.close_sent = True
                self._close_transport()
            return
        self.is_text = opcode is Opcode.TEXT
        handler = self.on_frame
        if handler is None:
            self._inbox.put_nowait(payload)
        else:
            handler(self, payload, received_ns)

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

    async def receive(self) -> bytes:
        """The next message's payload, before ``on_frame`` takes over (a protocol's own handshake)."""
        payload = await self._inbox.get()
        if self.closed and not payload:
            raise ConnectionError("closed while waiting for a message")
        return payload

    async def receive_str(self) -> str:
        """:meth:`receive` decoded as UTF-8."""
        return (await self.receive()).decode()

    def send(self, payload: bytes, *, binary: bool) -> None:
        """Send one binary frame, or one text frame of ``payload`` (already UTF-8)."""
        self._write(client_frame(Opcode.BINARY if binary else Opcode.TEXT, payload))

    def send_str(self, text: str) -> None:
        """Send one text frame."""
        self._write(client_frame(Opcode.TEXT, text.encode()))

    def send_bytes(self, data: bytes) -> None:
        """Send one binary frame."""
        self._write(client_frame(Opcode.BINARY, data))

    async def close(self, timeout_s: float = 2.0) -> None:
        """Close handshake: send Close, wait for the server's Close (or the timeout), drop the socket."""
        if not self.closed and not self.close_sent:
            self._write(client_frame(Opcode.CLOSE, _CLOSE_NORMAL_PAYLOAD))
            self.close_sent = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed_future), timeout_s)
        self.abort()

    def abort(self) -> None:
        """Drop the socket at once."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


async def connect(
    url: str,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
    counter: ReadCounter | None = None,
    *,
    max_message_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> RawWebSocket:
    """Open ``ws://host:port/path`` or ``wss://…`` and complete the WebSocket upgrade.

    Raises ``HandshakeError`` when the server does not upgrade, ``OSError`` when it cannot be reached.
    """
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
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    context = (ssl_context or ssl.create_default_context()) if secure else None
    _, protocol = await loop.create_connection(
        lambda: RawWebSocket(request, accept, counter, max_message_bytes=max_message_bytes),
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
