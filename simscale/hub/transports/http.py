"""Server-Sent Events and long polling on aiohttp: thin shells around the WebSocket-shaped write path.

A :class:`~simscale.hub.connection.HubConnection` writes finished WebSocket frames to whatever
stands in its ``transport`` slot, and every broadcast frames its bytes once for all recipients. For
the HTTP transports that slot holds a :class:`FrameSink`: it reads the frames back with the sans-I/O
:class:`~simscale.protocol.websocket_frames.FrameReader` and keeps their payloads, so the hub, its
fan-out and its keep-alive sweep work unchanged, and the protocol state keeps living in one place,
the :class:`~simscale.protocol.ServerConnection` (like a post office that takes the same parcels
whatever van will carry them; the vans here are an event stream or one poll after another).

Requests, for a hub at ``/chatHub`` (as ASP.NET Core's ``HttpConnectionDispatcher`` answers them,
docs/SOURCES.md#hub-transports):

* ``GET /chatHub?id=…`` with ``Accept: text/event-stream``: the event stream, ``data:`` lines.
* ``GET /chatHub?id=…`` otherwise (not an upgrade): a poll. The first one only starts the
  connection (200, empty); later ones wait up to ``long_poll_timeout_s`` for data (200 with the
  records; 200 empty when the time is up), and a poll that finds the connection over gets 204. A new
  poll ends the one still waiting with 204.
* ``POST /chatHub?id=…``: the client's records, fed to the protocol; 200. 405 for a WebSocket
  connection.
* ``DELETE /chatHub?id=…``: ends a long-polling connection (202; the waiting poll gets 204); 400
  for another transport.
* A missing ``id`` is 400 ``Connection ID required``, an unknown one 404 ``No Connection with that
  ID``, a disabled transport 404 ``<transport> transport not supported by this end point type``,
  a second event stream or a transport change 409/400.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from simscale.hub.connection import HubConnection
from simscale.hub.transports.sse import STREAM_PREAMBLE, format_event
from simscale.hub.transports.types import TransportSettings, TransportType
from simscale.protocol import ServerConnection
from simscale.protocol.websocket_frames import FrameError, FrameReader, Opcode

if TYPE_CHECKING:
    from simscale.hub.server import HubServer, _Endpoint

__all__ = ["FrameSink", "HttpSession", "HttpTransports"]

_log = logging.getLogger(__name__)

_NO_CACHE = {"Cache-Control": "no-cache, no-store", "Pragma": "no-cache", "Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}


class FrameSink:
    """Stands in for a socket under a :class:`HubConnection`: keeps the payloads of the frames written.

    It has the part of :class:`asyncio.Transport` a connection uses (``write``, ``is_closing``,
    ``close``, ``abort``, ``get_write_buffer_size``). A Close frame or :meth:`close` ends the
    stream after what is pending; :meth:`abort` drops what is pending. Waiters are woken through
    :attr:`changed`.
    """

    def __init__(self, max_payload_bytes: int) -> None:
        self._parser = FrameReader(masked=False, max_payload_bytes=max(125, max_payload_bytes))
        self.pending: list[bytes] = []
        """Payloads written and not yet taken by the HTTP response."""
        self.pending_bytes = 0
        self.closing = False
        """No more payloads will come: the hub said goodbye or the connection was dropped."""
        self.changed = asyncio.Event()
        """Set whenever a payload arrives or the sink closes (the reader clears it)."""
        self.closed = asyncio.Event()
        """Set once, when the sink closes."""

    def write(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            frames = self._parser.feed(data)
        except FrameError:  # our own frames: a bug, not a peer's fault
            _log.exception("unreadable frame written to an HTTP transport")
            self.abort()
            return
        for frame in frames:
            if frame.opcode is Opcode.CLOSE:
                self.closing = True
                self.closed.set()
                break
            if frame.payload:
                self.pending.append(frame.payload)
                self.pending_bytes += len(frame.payload)
        self.changed.set()

    def take(self) -> bytes:
        """Every pending payload, joined, and forget them."""
        pending, self.pending = self.pending, []
        self.pending_bytes = 0
        return pending[0] if len(pending) == 1 else b"".join(pending)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.changed.set()
        self.closed.set()

    def abort(self) -> None:
        self.pending = []
        self.pending_bytes = 0
        self.close()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet collected by a response: the slow-consumer check reads it like a socket's."""
        return self.pending_bytes


@dataclass(eq=False, slots=True)
class HttpSession:
    """One connection on an HTTP transport: its hub connection, its sink, what is in flight."""

    token: str
    endpoint: _Endpoint
    transport: TransportType
    connection: HubConnection
    sink: FrameSink
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One POST at a time is fed to the protocol, so records keep their order."""
    poll: asyncio.Future[None] | None = None
    """Set while a poll waits; resolving it ends that poll with 204 (a newer poll took over)."""
    ended: bool = False
    """The hub side was cleaned up (``on_disconnected`` ran)."""


class HttpTransports:
    """The Server-Sent Events and long-polling request handlers of one :class:`HubServer`.

    It uses the server's own registries (reservations, attached connections, the keep-alive wheel)
    and its frame handler, so a connection is counted, pinged, timed out and dispatched exactly as
    a WebSocket one is.
    """

    def __init__(self, server: HubServer, settings: TransportSettings) -> None:
        self._server = server
        self.settings = settings
        self.sessions: dict[str, HttpSession] = {}
        """HTTP-transport connections by token (until their last poll saw the end)."""
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- shared checks --------------------------------------------------------------------------

    def enabled(self, transport: TransportType) -> bool:
        return transport in self.settings.enabled

    @staticmethod
    def not_supported(transport: TransportType) -> web.Response:
        return web.Response(status=404, text=f"{transport.value} transport not supported by this end point type")

    @staticmethod
    def token_of(request: web.Request) -> str | web.Response:
        token = request.query.get("id")
        if not token:
            return web.Response(status=400, text="Connection ID required")
        return token

    @staticmethod
    def unknown() -> web.Response:
        return web.Response(status=404, text="No Connection with that ID")

    # ---- GET: an event stream or a poll ------------------------------------------------------------

    async def serve_get(self, endpoint: _Endpoint, request: web.Request) -> web.StreamResponse:
        """A GET that is not a WebSocket upgrade: the event stream, or a poll."""
        wants_sse = "text/event-stream" in request.headers.get("Accept", "")
        transport = TransportType.SERVER_SENT_EVENTS if wants_sse else TransportType.LONG_POLLING
        token = self.token_of(request)
        if isinstance(token, web.Response):
            return token
        session = self.sessions.get(token)
        if session is None:
            if not self._server.has_reservation(endpoint, token):
                return self.unknown()
            if not self.enabled(transport):
                return self.not_supported(transport)
            opened = await self._open(endpoint, token, transport, request)
            if isinstance(opened, web.StreamResponse):
                return opened
            session = opened
            if transport is TransportType.LONG_POLLING:
                # The first poll only starts the connection, as in ASP.NET Core: 200, no content.
                return web.Response(status=200, body=b"", content_type="application/octet-stream", headers=_NO_CACHE)
            return await self._stream_events(session, request)
        if session.endpoint is not endpoint:
            return self.unknown()
        if not self.enabled(transport):
            return self.not_supported(transport)
        if session.transport is not transport:
            return web.Response(status=400, text="Cannot change transports mid-connection")
        if transport is TransportType.SERVER_SENT_EVENTS:
            return web.Response(status=409, text="")  # one event stream per connection
        return await self._poll(session)

    async def _open(
        self, endpoint: _Endpoint, token: str, transport: TransportType, request: web.Request
    ) -> HttpSession | web.StreamResponse:
        server = self._server
        server.refuse_if_at_capacity()  # 503, as for a WebSocket: reservations hold no capacity
        connection_id = server.claim_reservation(token)
        if connection_id is None:
            return self.unknown()
        user_id = await server._authenticate(request)
        sink = FrameSink(max(server.settings.max_message_bytes * 4, 1 << 20))
        now_s = time.monotonic()
        connection = HubConnection(
            connection_id,
            user_id,
            sink,  # type: ignore[arg-type]  # the part of asyncio.Transport a connection uses
            ServerConnection(server.settings.max_message_bytes, transport.transfer_formats),
            now_s=now_s,
            max_buffered_bytes=server.settings.max_buffered_bytes,
            counters=server.counters,
            coalescer=server._coalescer,
        )
        session = HttpSession(token, endpoint, transport, connection, sink)
        self.sessions[token] = session
        server.attach_connection(token, connection, now_s)
        task = asyncio.get_running_loop().create_task(self._watch(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return session

    async def _watch(self, session: HttpSession) -> None:
        """Wait for the sink to close, then tell the hub, once (like the WebSocket loop's ``finally``)."""
        await session.sink.closed.wait()
        await self._end(session)

    async def _end(self, session: HttpSession) -> None:
        if session.ended:
            return
        session.ended = True
        connection = session.connection
        connection.finish(connection.close_reason)
        await self._server.detach_connection(session.endpoint, session.token, connection, None)
        if session.transport is TransportType.SERVER_SENT_EVENTS or not session.sink.pending:
            self._forget_later(session, 0.0)
        else:
            # The last records (a Close, say) still wait for a poll; keep the token that long.
            self._forget_later(session, self.settings.long_poll_timeout_s)

    def _forget_later(self, session: HttpSession, delay_s: float) -> None:
        def forget() -> None:
            if self.sessions.get(session.token) is session:
                del self.sessions[session.token]

        if delay_s <= 0:
            forget()
        else:
            asyncio.get_running_loop().call_later(delay_s, forget)

    # ---- Server-Sent Events ---------------------------------------------------------------------------

    async def _stream_events(self, session: HttpSession, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache,no-store",
                "Pragma": "no-cache",
                "Content-Encoding": "identity",
                "X-Accel-Buffering": "no",  # nginx: pass events through as they come
            },
        )
        sink = session.sink
        try:
            await response.prepare(request)
            await response.write(STREAM_PREAMBLE)
            while True:
                if sink.pending:
                    data = sink.take()
                    await response.write(format_event(data))
                    continue
                if sink.closing:
                    break
                sink.changed.clear()
                # aiohttp does not cancel a handler whose client left, and a client ends an event
                # stream by dropping it: look at the socket once a sweep interval while idle.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sink.changed.wait(), self._server.settings.sweep_interval_s)
                socket = request.transport
                if socket is None or socket.is_closing():
                    raise ConnectionResetError("the client closed the event stream")
        except ConnectionError:
            session.connection.abort("The event stream was closed by the client.")
            return response
        except asyncio.CancelledError:
            session.connection.abort("The event stream was closed by the client.")
            raise
        finally:
            sink.close()
            await self._end(session)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    # ---- long polling ---------------------------------------------------------------------------------

    async def _poll(self, session: HttpSession) -> web.StreamResponse:
        previous = session.poll
        if previous is not None and not previous.done():
            previous.set_result(None)  # the older poll answers 204
        sink = session.sink
        loop = asyncio.get_running_loop()
        mine: asyncio.Future[None] = loop.create_future()
        session.poll = mine
        deadline_s = loop.time() + self.settings.long_poll_timeout_s
        try:
            while not sink.pending and not sink.closing and not mine.done():
                sink.changed.clear()
                waiter: asyncio.Future[object] = loop.create_task(sink.changed.wait())
                others: set[asyncio.Future[object]] = {waiter, mine}  # type: ignore[arg-type]
                try:
                    await asyncio.wait(others, timeout=max(0.0, deadline_s - loop.time()),
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                finally:
                    waiter.cancel()
                if loop.time() >= deadline_s:
                    break
        finally:
            if session.poll is mine:
                session.poll = None
        if mine.done():
            return web.Response(status=204, content_type="text/plain", headers=_NO_CACHE)
        if sink.pending:
            body = sink.take()
            if sink.closing and session.ended:
                self._forget_later(session, 0.0)
            return web.Response(status=200, body=body, content_type="application/octet-stream", headers=_NO_CACHE)
        if sink.closing:
            self._forget_later(session, 0.0)
            return web.Response(status=204, content_type="text/plain", headers=_NO_CACHE)
        return web.Response(status=200, body=b"", content_type="text/plain", headers=_NO_CACHE)  # timed out

    # ---- POST and DELETE -------------------------------------------------------------------------------

    async def serve_post(self, endpoint: _Endpoint, request: web.Request) -> web.StreamResponse:
        """The client's records for an SSE or long-polling connection."""
        token = self.token_of(request)
        if isinstance(token, web.Response):
            return token
        session = self.sessions.get(token)
        if session is None or session.endpoint is not endpoint:
            if self._server.has_websocket(token):
                return web.Response(status=405, text="POST requests are not allowed for WebSocket connections.")
            return self.unknown()
        body = await request.read()
        async with session.send_lock:
            connection = session.connection
            if session.ended or connection.closed:
                return self.unknown()
            if body and await self._server._receive_frame(endpoint, connection, body):
                connection.finish(connection.close_reason)
        return web.Response(status=200, text="", content_type="text/plain")

    async def serve_delete(self, endpoint: _Endpoint, request: web.Request) -> web.StreamResponse:
        """Ends a long-polling connection (the client's ``stop()``)."""
        token = self.token_of(request)
        if isinstance(token, web.Response):
            return token
        session = self.sessions.get(token)
        if session is None or session.endpoint is not endpoint:
            if self._server.has_websocket(token):
                return web.Response(status=400, text="Cannot terminate this connection using the DELETE endpoint.")
            return self.unknown()
        if session.transport is not TransportType.LONG_POLLING:
            return web.Response(status=400, text="Cannot terminate this connection using the DELETE endpoint.")
        session.sink.abort()  # the client is leaving: what is pending will never be read
        session.connection.finish(None)
        await self._end(session)
        self._forget_later(session, 0.0)
        return web.Response(status=202, text="", content_type="text/plain")

    async def close(self) -> None:
        """Stop the watchers (the server is shutting down; connections were closed already)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
