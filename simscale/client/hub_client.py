"""The full asyncio SignalR client, built on the sans-I/O :mod:`simscale.protocol`.

It does what the official clients do on the wire: ``POST {hub}/negotiate?negotiateVersion=1``, a
WebSocket to ``{hub}?id=<connectionToken>``, the handshake, then hub messages. It stays cheap
enough for thousands of connections in one process: each connection costs one reader task and
nothing else: no timer task, no writer task, no per-call task. Keep-alive pings
ride on the reader: whenever a frame arrives and this client has been silent for a while, it
answers with a Ping (the server sends its own Ping at least every 15 s, so the reader wakes often
enough to keep the server's 30 s client timeout away).

Example::

    client = HubClient("http://127.0.0.1:5000/chatHub", protocol="messagepack")
    client.on("ReceiveMessage", lambda user, message: print(user, message))
    await client.start()
    await client.invoke("SendMessage", "ada", "hello")
    await client.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from simscale.client.websocket import HandshakeError, RawWebSocket, connect
from simscale.protocol import (
    CancelInvocationMessage,
    ClientConnection,
    CloseMessage,
    CompletionMessage,
    ConnectionState,
    HubMessage,
    InvocationMessage,
    PingMessage,
    StreamInvocationMessage,
    StreamItemMessage,
    get_protocol,
)

__all__ = ["HubClient", "HubConnectionError", "HubError", "ResolvedUrl", "resolve_websocket_url"]

_log = logging.getLogger(__name__)
_MAX_REDIRECTS = 10
_STREAM_END = object()


class HubError(Exception):
    """The server completed an invocation (or a stream) with an error message.

    Example (a real hub on a free port; the method does not exist):

        >>> import asyncio
        >>> from simscale.client import HubClient, HubError
        >>> from simscale.hub import HubServer
        >>> async def call_unknown_method() -> str:
        ...     server = HubServer()
        ...     client = HubClient(f"{await server.listen('127.0.0.1', 0)}/chatHub")
        ...     await client.start()
        ...     try:
        ...         await client.invoke("NoSuchMethod")
        ...     except HubError as error:
        ...         return str(error)
        ...     finally:
        ...         await client.stop()
        ...         await server.close()
        ...     return "no error"
        >>> asyncio.run(call_unknown_method())  # doctest: +ELLIPSIS
        "Failed to invoke 'NoSuchMethod' ... Method does not exist."
    """


class HubConnectionError(ConnectionError):
    """The connection could not be made, or closed while a call was waiting for its result.

    Example (a hub that has just closed: nobody listens on its port any more):

        >>> import asyncio
        >>> from simscale.client import HubClient, HubConnectionError
        >>> from simscale.hub import HubServer
        >>> async def connect_to_closed_hub() -> str | None:
        ...     server = HubServer()
        ...     url = await server.listen("127.0.0.1", 0)
        ...     await server.close()
        ...     try:
        ...         await HubClient(f"{url}/chatHub").start()
        ...     except HubConnectionError as error:
        ...         return error.reason
        ...     return None
        >>> asyncio.run(connect_to_closed_hub())
        'connection_refused'
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        """A short stable code for records (``http_503``, ``connection_refused``, ``handshake_timeout``, …)."""


Callback = Callable[..., Any]
"""A handler for a server-to-client invocation: called with the invocation's arguments; may be async."""


class HubClient:
    """One SignalR connection to one hub.

    Args:
        url: the hub URL, e.g. ``http://127.0.0.1:5000/chatHub`` (``ws://`` also accepted).
        protocol: ``json`` or ``messagepack``.
        access_token: sent as ``Authorization: Bearer …`` on negotiate and on the WebSocket.
        skip_negotiation: connect the WebSocket directly, without negotiate and without ``id``.
        session: a shared :class:`aiohttp.ClientSession` (thousands of clients should share one);
            by default the client makes its own and closes it in :meth:`stop`.
        max_message_bytes: largest message accepted from the server.
        keepalive_interval_s: send a Ping when a frame arrives and nothing was sent for this long.
        handshake_timeout_s: bound on negotiate + WebSocket upgrade + handshake in :meth:`start`.

    Example (against simscale's own hub, started on a free port):

        >>> import asyncio
        >>> from simscale.client import HubClient
        >>> from simscale.hub import HubServer
        >>> async def echo() -> object:
        ...     server = HubServer()
        ...     client = HubClient(f"{await server.listen('127.0.0.1', 0)}/chatHub", protocol="messagepack")
        ...     await client.start()
        ...     try:
        ...         return await client.invoke("Echo", "hello")
        ...     finally:
        ...         await client.stop()
        ...         await server.close()
        >>> asyncio.run(echo())
        'hello'
    """

    def __init__(
        self,
        url: str,
        protocol: str = "json",
        access_token: str | None = None,
        skip_negotiation: bool = False,
        *,
        session: aiohttp.ClientSession | None = None,
        max_message_bytes: int = 1_048_576,
        keepalive_interval_s: float = 7.5,
        handshake_timeout_s: float = 15.0,
    ) -> None:
        self.url = url
        self._protocol = get_protocol(protocol)
        self.access_token = access_token
        self.skip_negotiation = skip_negotiation
        self._session = session
        self._owns_session = session is None
        self._max_message_bytes = max_message_bytes
        self._keepalive_interval_s = keepalive_interval_s
        self._handshake_timeout_s = handshake_timeout_s
        self._connection = ClientConnection(self._protocol, max_message_bytes)
        self._ws: RawWebSocket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._handlers: dict[str, list[Callback]] = {}
        self._close_callbacks: list[Callable[[str | None], Any]] = []
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._streams: dict[str, asyncio.Queue[Any]] = {}
        self._ids = itertools.count()
        self._last_sent_s = 0.0
        self._binary = self._protocol.transfer_format == "Binary"
        self.connection_id: str | None = None
        """The public connection id from negotiate (``None`` with ``skip_negotiation``)."""
        self.close_reason: str | None = None
        """Why the connection ended (``None`` while open or after a clean close)."""

    # ---- public API -----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The protocol state: AWAITING_HANDSHAKE, OPEN or CLOSED."""
        return self._connection.state

    def on(self, target: str, callback: Callback) -> None:
        """Call ``callback(*arguments)`` whenever the server invokes ``target`` (case-insensitive).

        An async callback is awaited by the reader, so it delays the messages behind it.
        """
        self._handlers.setdefault(target.lower(), []).append(callback)

    def on_close(self, callback: Callable[[str | None], Any]) -> None:
        """Call ``callback(reason)`` once when the connection ends (reason ``None`` if clean)."""
        self._close_callbacks.append(callback)

    async def start(self) -> None:
        """Negotiate, open the WebSocket and complete the handshake.

        Raises:
            HubConnectionError: negotiate failed, the upgrade was refused, the handshake was
                refused, or it all took longer than ``handshake_timeout_s``.
        """
        if self._reader is not None:
            raise RuntimeError("start() may be called once per HubClient")
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                ws_url = await self._resolve_websocket_url()
                # The shared WebSocket (framing in simscale.protocol.websocket_frames); negotiate
                # above is plain HTTP on aiohttp. A frame may batch several messages: 4x the limit.
                self._ws = await connect(
                    str(ws_url), headers=self._auth_headers(), max_message_bytes=4 * self._max_message_bytes
                )
                for record in self._connection.data_to_send():
                    await self._write(record)
                self._reader = loop.create_task(self._read_loop(self._ws))
                await asyncio.shield(self._opened)
        except (TimeoutError, HandshakeError, aiohttp.ClientError, OSError, ValueError) as error:
            await self._abort()
            if self._opened.done() and not self._opened.cancelled():
                self._opened.exception()  # retrieved: the error is re-raised below instead
            if isinstance(error, HubConnectionError):
                raise
            reason = "handshake_timeout" if isinstance(error, TimeoutError) else describe_error(error)
            raise HubConnectionError(reason, reason) from error
        except asyncio.CancelledError:
            # Do not leave a socket or a reader behind; shielded so the clean-up itself completes.
            await asyncio.shield(self._abort())
            raise

    async def invoke(self, target: str, *args: Any) -> Any:
        """Call ``target`` on the hub and return its result.

        Raises:
            HubError: the server completed the invocation with an error.
            HubConnectionError: the connection closed before the completion arrived.
        """
        invocation_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = future
        try:
            await self._send_message(InvocationMessage(target, args, invocation_id))
            return await future
        finally:
            self._pending.pop(invocation_id, None)

    async def send(self, target: str, *args: Any) -> None:
        """Call ``target`` without waiting for (or getting) a result: no invocation id is sent."""
        await self._send_message(InvocationMessage(target, args))

    async def stream(self, target: str, *args: Any) -> AsyncIterator[Any]:
        """Call the streaming method ``target`` and yield its items as they arrive.

        Leaving the loop early sends a CancelInvocation.

        Raises:
            HubError: the stream ended with an error.
            HubConnectionError: the connection closed before the stream completed.
        """
        invocation_id = str(next(self._ids))
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[invocation_id] = queue
        completed = False
        try:
            await self._send_message(StreamInvocationMessage(invocation_id, target, args))
            while True:  # ends on the completion, an error, or the connection's end
                item = await queue.get()
                if item is _STREAM_END:
                    completed = True
                    return
                if isinstance(item, BaseException):
                    completed = True
                    raise item
                yield item
        finally:
            self._streams.pop(invocation_id, None)
            if not completed and self.state is ConnectionState.OPEN:
                with contextlib.suppress(HubConnectionError):
                    await self._send_message(CancelInvocationMessage(invocation_id))

    async def stop(self) -> None:
        """Send a Close message, close the WebSocket and wait for the reader to finish."""
        if self._connection.state is ConnectionState.OPEN:
            self._connection.close()
            with contextlib.suppress(HubConnectionError):
                await self._flush()
        await self._abort()

    # ---- internals ------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _auth_headers(self) -> dict[str, str]:
        return _bearer_headers(self.access_token)

    async def _resolve_websocket_url(self) -> URL:
        resolved = await resolve_websocket_url(
            self._get_session(), self.url, access_token=self.access_token, skip_negotiation=self.skip_negotiation
        )
        self.access_token = resolved.access_token
        self.connection_id = resolved.connection_id
        return resolved.url

    async def _write(self, record: bytes) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise HubConnectionError(self.close_reason or "the connection is closed")
        self._last_sent_s = time.monotonic()
        ws.send(record, binary=self._binary)

    async def _flush(self) -> None:
        for record in self._connection.data_to_send():
            await self._write(record)

    async def _send_message(self, message: HubMessage) -> None:
        if self._connection.state is not ConnectionState.OPEN:
            raise HubConnectionError(self.close_reason or "the connection is not open")
        await self._write(self._protocol.encode(message))

    async def _read_loop(self, ws: RawWebSocket) -> None:
        connection = self._connection
        reason: str | None = "connection lost"
        try:
            # One pass per WebSocket message; ends when the socket or the protocol closes.
            while True:
                try:
                    data = await ws.receive()
                except ConnectionError:  # the socket ended (a Close frame, a reset, a framing error)
                    reason = "connection lost" if connection.state is ConnectionState.OPEN else None
                    break
                messages = connection.receive_data(data)
                opened = self._opened
                if opened is not None and not opened.done() and connection.state is ConnectionState.OPEN:
                    opened.set_result(None)
                for message in messages:
                    await self._dispatch(message)
                if connection.state is ConnectionState.CLOSED:
                    reason = connection.close_reason
                    with contextlib.suppress(HubConnectionError):
                        await self._flush()  # the Close a protocol violation queued
                    break
                if time.monotonic() - self._last_sent_s >= self._keepalive_interval_s:
                    with contextlib.suppress(HubConnectionError):
                        await self._write(self._protocol.encode(PingMessage()))
        except asyncio.CancelledError:
            reason = connection.close_reason if connection.state is ConnectionState.CLOSED else "stopped"
            raise
        finally:
            self._finish(reason)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _dispatch(self, message: HubMessage) -> None:
        if isinstance(message, InvocationMessage):
            for callback in self._handlers.get(message.target.lower(), ()):
                try:
                    result = callback(*message.arguments)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except Exception:  # a broken handler must not kill the connection
                    _log.exception("handler for %r failed", message.target)
        elif isinstance(message, CompletionMessage):
            future = self._pending.get(message.invocation_id)
            if future is not None and not future.done():
                if message.error is not None:
                    future.set_exception(HubError(message.error))
                else:
                    future.set_result(message.result)
            queue = self._streams.get(message.invocation_id)
            if queue is not None:
                queue.put_nowait(HubError(message.error) if message.error is not None else _STREAM_END)
        elif isinstance(message, StreamItemMessage):
            queue = self._streams.get(message.invocation_id)
            if queue is not None:
                queue.put_nowait(message.item)
        elif isinstance(message, CloseMessage):
            self.close_reason = message.error
        # Ping needs nothing: any frame keeps us alive. Ack and Sequence are never negotiated.

    def _finish(self, reason: str | None) -> None:
        """Fail whatever waits, mark the connection closed and tell the close callbacks once."""
        if self._connection.state is not ConnectionState.CLOSED:
            self._connection.close(reason)
        if self.close_reason is None:
            self.close_reason = self._connection.close_reason or reason
        error = HubConnectionError(self.close_reason or "the connection closed")
        opened = self._opened
        if opened is not None and not opened.done():
            opened.set_exception(
                HubConnectionError(f"handshake failed: {self.close_reason or 'closed'}", "handshake_refused")
            )
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        for queue in self._streams.values():
            queue.put_nowait(error)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            callback(self.close_reason)

    async def _abort(self) -> None:
        ws, reader = self._ws, self._reader
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        if reader is not None and not reader.done():
            # The reader normally ends by itself once the socket is closed; cancel only a laggard.
            await asyncio.wait({reader}, timeout=2.0)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if reader is None:
            self._finish(self.close_reason or "stopped")
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def describe_error(error: BaseException) -> str:
    """A short, stable reason for a connection failure (used in ConnectionEvent reasons)."""
    if isinstance(error, HandshakeError) and error.status is not None:
        return f"http_{error.status}"  # the upgrade was answered with an HTTP status
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return f"http_{error.status}"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"http_{error.status}"
    if isinstance(error, ConnectionRefusedError | aiohttp.ClientConnectorError):
        return "connection_refused"
    if isinstance(error, TimeoutError):
        return "timeout"
    return f"{type(error).__name__}: {error}"[:200]


def _bearer_headers(access_token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"} if access_token else {}


@dataclass(frozen=True, slots=True)
class ResolvedUrl:
    """Where a client's WebSocket goes after negotiate, and with which credentials."""

    url: URL
    """``ws://`` or ``wss://`` URL, with ``id=`` when negotiate gave a connection token."""
    connection_id: str | None
    """The public connection id (``None`` when negotiation was skipped)."""
    access_token: str | None
    """The token to send as ``Authorization: Bearer`` (negotiate may hand out a new one)."""

    @property
    def headers(self) -> dict[str, str]:
        """The upgrade request's extra headers."""
        return _bearer_headers(self.access_token)


async def resolve_websocket_url(
    session: aiohttp.ClientSession, url: str, *, access_token: str | None = None, skip_negotiation: bool = False
) -> ResolvedUrl:
    """Negotiate as the official clients do (``POST …/negotiate?negotiateVersion=1``, following a few
    Azure-style redirects) and return the WebSocket URL; with ``skip_negotiation`` only the scheme changes.

    Raises:
        HubConnectionError: negotiate failed, was refused, or offered no WebSockets transport.

    Example:

        >>> import asyncio
        >>> import aiohttp
        >>> from simscale.client import resolve_websocket_url
        >>> from simscale.hub import HubServer
        >>> async def resolve() -> tuple[str, str, bool]:
        ...     server = HubServer()
        ...     url = await server.listen("127.0.0.1", 0)
        ...     try:
        ...         async with aiohttp.ClientSession() as session:
        ...             resolved = await resolve_websocket_url(session, f"{url}/chatHub")
        ...     finally:
        ...         await server.close()
        ...     return resolved.url.scheme, resolved.url.path, "id" in resolved.url.query
        >>> asyncio.run(resolve())
        ('ws', '/chatHub', True)
    """
    target = URL(url)
    if target.scheme in ("ws", "wss"):
        target = target.with_scheme("http" if target.scheme == "ws" else "https")
    connection_id: str | None = None
    if not skip_negotiation:
        for _ in range(_MAX_REDIRECTS):
            body = await _negotiate(session, target, access_token)
            if "url" not in body:
                break
            target = URL(str(body["url"]))
            if body.get("accessToken"):
                access_token = str(body["accessToken"])
        else:
            raise HubConnectionError(f"negotiate redirected more than {_MAX_REDIRECTS} times", "negotiate_failed")
        transports = body.get("availableTransports")
        if isinstance(transports, list) and not any(
            isinstance(t, dict) and t.get("transport") == "WebSockets" for t in transports
        ):
            raise HubConnectionError("the server does not offer the WebSockets transport", "negotiate_failed")
        connection_id = _optional_str(body.get("connectionId"))
        token = _optional_str(body.get("connectionToken")) or connection_id
        if token is None:
            raise HubConnectionError("negotiate answered without a connectionId", "negotiate_failed")
        target = target.update_query(id=token)
    return ResolvedUrl(target.with_scheme("wss" if target.scheme == "https" else "ws"), connection_id, access_token)


async def _negotiate(session: aiohttp.ClientSession, url: URL, access_token: str | None) -> dict[str, Any]:
    negotiate_url = url.with_path(url.path.rstrip("/") + "/negotiate")
    if "negotiateVersion" not in negotiate_url.query:
        negotiate_url = negotiate_url.update_query(negotiateVersion="1")
    async with session.post(negotiate_url, headers=_bearer_headers(access_token)) as response:
        if response.status != 200:
            text = (await response.text())[:200]
            raise HubConnectionError(
                f"negotiate failed: HTTP {response.status} {text}".strip(), f"http_{response.status}"
            )
        body = await response.json(content_type=None)
    if not isinstance(body, dict):
        raise HubConnectionError("negotiate answered something other than a JSON object", "negotiate_failed")
    if body.get("error"):
        raise HubConnectionError(f"negotiate refused: {body['error']}", "negotiate_failed")
    return body
