"""aiohttp's server WebSocket, with keep-alive Pings taken care of where they are parsed.

An idle SignalR client sends one hub Ping every 15 s and nothing else. Through aiohttp's normal
path each Ping wakes the connection's handler task: a callback scheduled, one more event-loop turn,
a future made and awaited again. For 10,000 idle clients that wake-up costs more than the parsing.
Here the queue between aiohttp's frame parser and the handler recognises a frame of bare JSON Ping
records (the exact bytes every client sends; one, or a flood of them) and only refreshes the
connection's receive clock: the handler sleeps on. Anything else, and any Ping that could be the
tail of a record split across frames, takes the normal path through the sans-I/O protocol.

The same hook also lets go of the HTTP request parser, which aiohttp would keep for the life of the
socket although a WebSocket never needs it again.

This reaches into aiohttp's WebSocket reader (``aiohttp._websocket.reader``, the ``_post_start``
hook of :class:`aiohttp.web.WebSocketResponse`, the request handler's ``_parser``); it was written
against aiohttp 3.14. :data:`PING_SHORTCUT_AVAILABLE` is ``False`` with any other aiohttp minor
version or layout, and the hub then uses aiohttp as it is (correct, only costlier when idle).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from simscale.hub.connection import HubConnection

_CHECKED_AIOHTTP = ("3", "14")
"""The aiohttp minor version whose internals this module was written and tested against."""

try:
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    from aiohttp.helpers import DEFAULT_CHUNK_SIZE

    PING_SHORTCUT_AVAILABLE = tuple(aiohttp.__version__.split(".")[:2]) == _CHECKED_AIOHTTP and callable(
        getattr(web.WebSocketResponse, "_post_start", None)
    )
except ImportError:  # pragma: no cover - another aiohttp layout
    PING_SHORTCUT_AVAILABLE = False

__all__ = ["PING_SHORTCUT_AVAILABLE", "HubWebSocketResponse"]

_JSON_PING = b'{"type":6}\x1e'
_TEXT = WSMsgType.TEXT

if PING_SHORTCUT_AVAILABLE:

    class _PingAbsorbingQueue(WebSocketDataQueue):  # type: ignore[misc,valid-type]
        """aiohttp's message queue of one WebSocket, which keeps bare JSON Pings for itself."""

        __slots__ = ("connection",)

        def __init__(self, protocol: Any, limit: int, *, loop: Any) -> None:
            super().__init__(protocol, limit, loop=loop)
            self.connection: HubConnection | None = None

        def feed_data(self, data: Any, size: int) -> None:
            connection = self.connection
            if (
                size % 11 == 0  # a multiple of len(_JSON_PING): a cheap first test that most non-Pings fail
                and connection is not None
                and connection.ping_shortcut
                and not self._buffer  # nothing older is waiting for the handler: order is kept
                and data[0] is _TEXT
                and (data[1] == _JSON_PING if size == 11 else data[1].count(_JSON_PING) * 11 == size)
            ):
                # A frame of nothing but Pings (one, or a flood of them) only refreshes the clock.
                connection.last_received_s = time.monotonic()
                return
            super().feed_data(data, size)


class HubWebSocketResponse(web.WebSocketResponse):
    """A server WebSocket whose bare JSON Pings refresh ``connection.last_received_s`` in place."""

    def attach(self, connection: HubConnection) -> None:
        """Let ``connection``'s Pings be absorbed (once it is handshaken, see ``ping_shortcut``)."""
        queue = self._reader
        if PING_SHORTCUT_AVAILABLE and isinstance(queue, _PingAbsorbingQueue):
            queue.connection = connection

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        if not PING_SHORTCUT_AVAILABLE:
            super()._post_start(request, protocol, writer)
            return
        # aiohttp's own set-up, with our queue in place of its WebSocketDataQueue. The parser must be
        # made here: the request handler accepts one parser, and it may feed it at once (a handshake
        # sent right behind the upgrade request).
        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        loop = self._loop
        assert loop is not None
        self._reader = queue = _PingAbsorbingQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=loop)
        parser = WebSocketReader(
            queue, self._max_msg_size, compress=bool(self._compress), decode_text=self._decode_text
        )
        self._parser = parser  # aiohttp keeps the parser alive through the response
        heartbeat_cb = None if self._heartbeat is None else self._on_data_received
        handler = request.protocol
        handler.set_parser(parser, data_received_cb=heartbeat_cb)
        handler.keep_alive(False)
        # The HTTP request parser's work is done once the socket speaks WebSocket, yet aiohttp keeps
        # it until the connection is lost: ~760 bytes per idle connection. aiohttp only touches it
        # again when an upgrade was declined (guarded by ``is not None``), never after this point.
        if getattr(handler, "_parser", None) is not None:
            handler._parser = None
