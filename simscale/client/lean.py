"""A hub client for the load generator: the sans-I/O protocol on :mod:`~simscale.client.websocket`.

:class:`~simscale.client.hub_client.HubClient` is the full client (invoke, streams, a task per connection).
A load generator holding a thousand connections needs much less, and must not distort what it
measures: this client decodes the hub protocol inside the socket callback, hands each invocation to
one handler together with the time its bytes were read, and owns no task. Negotiate, the handshake,
pings, Close and errors behave as in the full client.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from simscale.client.hub_client import HubConnectionError, describe_error, resolve_websocket_url
from simscale.client.websocket import HandshakeError, RawWebSocket, ReadCounter, connect
from simscale.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ClientConnection,
    CloseMessage,
    ConnectionState,
    InvocationMessage,
    PingMessage,
)

__all__ = ["InvocationHandler", "LeanHubClient"]

InvocationHandler = Callable[[InvocationMessage, float], None]
"""``(message, received_s)``: ``received_s`` is ``time.perf_counter()`` when its bytes were read."""


class LeanHubClient:
    """One hub connection for load generation: no task, handlers run in the socket callback.

    Args:
        url: the hub's URL (``http(s)://`` or ``ws(s)://``).
        on_invocation: called with every invocation the server sends and its receive time.
        protocol: ``"json"`` or ``"messagepack"``.
        access_token: sent as ``Authorization: Bearer …`` on negotiate and on the WebSocket.
        session: aiohttp session used for negotiate (shared by many clients).
        handshake_timeout_s: bound on negotiate + upgrade + handshake in :meth:`start`.
        skip_negotiation: connect the WebSocket directly.
        ssl_context: for ``https``/``wss`` hubs (``None``: the system's defaults).
        max_message_bytes: largest hub message accepted from the server (a bigger one closes the
            connection with a reason, as a protocol violation).
        read_counter: counts reads and wake-ups across the clients that share it.

    Example (a broadcast to the hub comes back to every client, this one included):

        >>> import asyncio
        >>> import aiohttp
        >>> from simscale.client import LeanHubClient
        >>> from simscale.hub import HubServer
        >>> async def broadcast() -> list[object]:
        ...     server = HubServer()
        ...     url = await server.listen("127.0.0.1", 0)
        ...     received: list[object] = []
        ...     async with aiohttp.ClientSession() as session:
        ...         client = LeanHubClient(f"{url}/chatHub", lambda message, received_s: received.append(
        ...             message.arguments), session=session)
        ...         await client.start()
        ...         client.send("SendMessage", "ada", "hello")
        ...         for _ in range(200):
        ...             if received:
        ...                 break
        ...             await asyncio.sleep(0.01)
        ...         await client.stop()
        ...     await server.close()
        ...     return received
        >>> asyncio.run(broadcast())
        [('ada', 'hello')]
    """

    __slots__ = (
        "_connection",
        "_handshake_timeout_s",
        "_on_close",
        "_on_invocation",
        "_opened",
        "_read_counter",
        "_session",
        "_ssl_context",
        "_ws",
        "access_token",
        "close_reason",
        "connection_id",
        "skip_negotiation",
        "url",
    )

    def __init__(
        self,
        url: str,
        on_invocation: InvocationHandler,
        *,
        protocol: str = "json",
        access_token: str | None = None,
        session: aiohttp.ClientSession,
        handshake_timeout_s: float = 15.0,
        skip_negotiation: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        read_counter: ReadCounter | None = None,
    ) -> None:
        if handshake_timeout_s <= 0:
            raise ValueError(f"handshake_timeout_s must be > 0, not {handshake_timeout_s!r}")
        self.url = url
        self.access_token = access_token
        self.skip_negotiation = skip_negotiation
        self.close_reason: str | None = None
        self.connection_id: str | None = None
        """The public connection id from negotiate (``None`` before :meth:`start` or without negotiate)."""
        self._on_invocation = on_invocation
        self._on_close: Callable[[str | None], None] | None = None
        self._connection = ClientConnection(protocol, max_message_bytes)
        self._session = session
        self._handshake_timeout_s = handshake_timeout_s
        self._ssl_context = ssl_context
        self._ws: RawWebSocket | None = None
        self._opened: asyncio.Future[None] | None = None
        self._read_counter = read_counter

    @property
    def state(self) -> ConnectionState:
        """The protocol state (``OPEN`` once the handshake is done, ``CLOSED`` at the end or once the
        socket is gone)."""
        if self._ws is not None and self._ws.closed:
            return ConnectionState.CLOSED
        return self._connection.state

    def on_close(self, callback: Callable[[str | None], None]) -> None:
        """Call ``callback(reason)`` once when the connection ends (``None``: a clean close)."""
        self._on_close = callback

    async def start(self) -> None:
        """Negotiate, open the WebSocket and complete the handshake.

        Raises:
            HubConnectionError: negotiate failed, the upgrade or the handshake was refused, or it all
                took longer than ``handshake_timeout_s``.
        """
        if self._opened is not None:
            raise RuntimeError("start() may be called once per LeanHubClient")
        self._opened = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                resolved = await resolve_websocket_url(
                    self._session, self.url, access_token=self.access_token, skip_negotiation=self.skip_negotiation
                )
                self.access_token = resolved.access_token
                self.connection_id = resolved.connection_id
                ws = self._ws = await connect(
                    str(resolved.url), self._ssl_context, resolved.headers, self._read_counter
                )
                ws.on_frame = self._on_frame
                ws.on_lost = self._on_lost
                self._flush()
                await self._opened
        except HubConnectionError:
            self.abort()
            raise
        except (TimeoutError, HandshakeError, OSError, aiohttp.ClientError) as error:
            self.abort()
            reason = "handshake_timeout" if isinstance(error, TimeoutError) else describe_error(error)
            raise HubConnectionError(reason, reason) from error

    def send(self, target: str, *args: Any) -> None:
        """Invoke ``target`` without a result (no invocation id): written at once, never awaited."""
        self._send(InvocationMessage(target, args))

    def ping(self) -> None:
        """Send a Ping (servers drop a client that says nothing for their client timeout)."""
        if self._connection.state is ConnectionState.OPEN:
            self._send(PingMessage())

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Say Close, then close the WebSocket (waiting at most ``timeout_s`` for the server's answer)."""
        if self._connection.state is ConnectionState.OPEN:
            self._send(CloseMessage())
        if self._ws is not None:
            await self._ws.close(timeout_s)

    def abort(self) -> None:
        """Drop the socket at once."""
        if self._ws is not None:
            self._ws.abort()

    # --- internals -----------------------------------------------------------------------------------

    def _send(self, message: InvocationMessage | PingMessage | CloseMessage) -> None:
        ws = self._ws
        if ws is None or ws.closed or self._connection.state is ConnectionState.CLOSED:
            raise HubConnectionError(self.close_reason or "the connection is closed")
        self._connection.send(message)
        self._flush()

    def _flush(self) -> None:
        ws = self._ws
        records = self._connection.data_to_send()
        if ws is None or not records:
            return
        binary = self._connection.protocol.transfer_format == "Binary"  # the handshake too, as HubClient
        for record in records:
            ws.send(record, binary=binary)

    def _on_frame(self, ws: RawWebSocket, payload: bytes, received_ns: int) -> None:
        connection = self._connection
        was_open = connection.state is ConnectionState.OPEN
        messages = connection.receive_data(payload)
        opened = self._opened
        if not was_open and opened is not None and not opened.done():
            if connection.state is ConnectionState.OPEN:
                opened.set_result(None)
            elif connection.state is ConnectionState.CLOSED:
                reason = connection.close_reason or "handshake refused"
                opened.set_exception(HubConnectionError(f"handshake refused: {reason}", "handshake_refused"))
        received_s = received_ns / 1e9
        for message in messages:
            if isinstance(message, InvocationMessage):
                self._on_invocation(message, received_s)
            elif isinstance(message, CloseMessage):
                self.close_reason = message.error
                ws.abort()
                return
        if connection.state is ConnectionState.CLOSED:  # a protocol violation: say why, then go
            self.close_reason = connection.close_reason
            self._flush()
            ws.abort()

    def _on_lost(self, ws: RawWebSocket) -> None:
        opened = self._opened
        if opened is not None and not opened.done():
            opened.set_exception(HubConnectionError("the connection closed during the handshake", "closed"))
        callback, self._on_close = self._on_close, None
        if callback is not None:
            callback(self.close_reason)
