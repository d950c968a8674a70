"""The hub server on aiohttp: negotiate, the WebSocket transport, health and metrics.

Each WebSocket is a thin loop: bytes from aiohttp go into the sans-I/O
:class:`~simscale.protocol.ServerConnection`, whatever it queues is written back, and the hub
messages it returns go to the :class:`~simscale.hub.dispatch.HubDispatcher`. A connection owns no
task, timer or subscription object beyond aiohttp's request handler: keep-alive pings, client and
handshake timeouts and token expiry all run in **one** periodic sweep per server, which looks only at
the connections that are due (:class:`~simscale.hub.keepalive.KeepAliveWheel`). What the hub writes
goes out at once when it is a connection's first frame of an event-loop turn, and is coalesced behind
it otherwise (:class:`~simscale.hub.connection.WriteCoalescer`).

Routes, for a hub mounted at ``/chatHub``:

* ``POST /chatHub/negotiate``: negotiate versions 0 and 1; lists the enabled transports
  (WebSockets, ServerSentEvents, LongPolling by default). The token it hands out is a reservation
  that holds no connection capacity; reservations are capped on their own (503 past
  ``max_reservations``, 429 past ``max_reservations_per_address``) and expire after
  ``negotiate_ttl_s``.
* ``GET /chatHub?id=…`` (WebSocket upgrade): 404 for an unknown id, 409 for a second socket on the
  same id; without ``id`` (skipNegotiation) a connection is made on the spot.
* ``GET``/``POST``/``DELETE /chatHub?id=…`` without an upgrade: Server-Sent Events and long polling
  (:mod:`simscale.hub.transports`).
* ``GET /health`` (JSON) and ``GET /metrics`` (Prometheus text).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from simscale.backplane.base import Backplane, BackplaneState
from simscale.backplane.channels import ChannelNames
from simscale.backplane.memory import MemoryBackplane, MemoryBus
from simscale.backplane.routing import DEFAULT_ROUTING_MODE, RoutingMode
from simscale.hub.auth import AnonymousAuthenticator, AuthenticationError, Authenticator, bearer_token
from simscale.hub.chat import ChatHub
from simscale.hub.connection import HubConnection, WriteCoalescer
from simscale.hub.dispatch import HubDispatcher
from simscale.hub.hub import Hub
from simscale.hub.keepalive import KeepAliveWheel
from simscale.hub.lifetime import HubLifetimeManager
from simscale.hub.metrics import HubCounters, render_prometheus
from simscale.hub.settings import HubSettings
from simscale.hub.transports.http import HttpTransports
from simscale.hub.transports.types import TransportSettings, TransportType, negotiate_entries
from simscale.hub.web_routes import busy
from simscale.hub.websocket import HubWebSocketResponse
from simscale.protocol import (
    SUPPORTED_PROTOCOLS,
    CloseMessage,
    ConnectionState,
    HubMessage,
    PingMessage,
    ServerConnection,
)

__all__ = ["HubServer"]

_log = logging.getLogger(__name__)

_WORK_PER_TURN = 64
"""Work one connection may do before it gives the event loop a turn: each hub message acted on
counts one, each frame read one plus one per 4 KB. aiohttp hands buffered frames over without
suspending, and a frame may hold hundreds of records: without this budget one flooding client
would hold the loop for as long as it keeps sending."""

_AIOHTTP_FRAME_CAP_BYTES = 1_048_576
"""aiohttp's own per-frame cap: frames a bit over ``max_message_bytes`` must still reach the
protocol parser (which answers with a Close carrying the reason); this only bounds the absurd."""


@dataclass(slots=True)
class _Endpoint:
    path: str
    dispatcher: HubDispatcher
    lifetime: HubLifetimeManager


@dataclass(slots=True)
class _Reservation:
    """A negotiated connection waiting for its WebSocket."""

    endpoint: _Endpoint
    connection_id: str
    expires_s: float
    address: str
    """The client's IP address (for ``max_reservations_per_address``)."""


def _new_id() -> str:
    return secrets.token_urlsafe(16)


class HubServer:
    """One hub server process: several hubs, one backplane, one sweep.

    Args:
        hubs: URL path → hub class (default: ``{"/chatHub": ChatHub}``).
        settings: limits and timers.
        backplane: shared by every hub (default: a private :class:`MemoryBackplane`); the server
            starts and stops it.
        server_name: unique name for echo suppression (default: hostname + random suffix).
        authenticator: bearer token → user id (default: everybody anonymous).
        routing_mode: see :mod:`simscale.backplane.routing`.
        channel_prefixes: URL path → backplane channel prefix (default: ``SimScale.<HubClass>``).
        transport_settings: enabled transports and the long-poll timeout (default: all three, 90 s).

    Use :meth:`listen` / :meth:`close` to serve on a socket, or mount :attr:`app` yourself.

    Example (serve on a free port and ask for the server's health):

        >>> import asyncio
        >>> from simscale.hub import HubServer
        >>> async def serve() -> tuple[bool, str]:
        ...     server = HubServer()
        ...     url = await server.listen("127.0.0.1", 0)
        ...     try:
        ...         return url.startswith("http://127.0.0.1:"), server.health()["status"]
        ...     finally:
        ...         await server.close()
        >>> asyncio.run(serve())
        (True, 'ok')
    """

    def __init__(
        self,
        hubs: Mapping[str, type[Hub]] | None = None,
        *,
        settings: HubSettings | None = None,
        backplane: Backplane | None = None,
        server_name: str | None = None,
        authenticator: Authenticator | None = None,
        routing_mode: RoutingMode = DEFAULT_ROUTING_MODE,
        channel_prefixes: Mapping[str, str] | None = None,
        transport_settings: TransportSettings | None = None,
    ) -> None:
        self.settings = settings if settings is not None else HubSettings()
        # A private bus by default: two servers in one process share a bus only when told to.
        self.backplane: Backplane = backplane if backplane is not None else MemoryBackplane(MemoryBus())
        self.server_name = server_name or self.backplane.server_name
        self.authenticator: Authenticator = authenticator or AnonymousAuthenticator()
        self.counters = HubCounters()
        self._connections: dict[str, HubConnection] = {}
        """Every attached socket (handshaken or not) by connection token."""
        self._wheel = KeepAliveWheel(self.settings.sweep_interval_s)
        """Every attached socket, filed by when it next needs a ping or a timeout check."""
        self._first_look_s = min(self.settings.handshake_timeout_s, self.settings.keepalive_interval_s)
        """A new socket's first check: its handshake deadline, or its first ping if that is sooner."""
        self._coalescer = WriteCoalescer()
        self._reservations: dict[str, _Reservation] = {}
        """Negotiated tokens not yet claimed by a WebSocket; capped on their own, never counted as
        connections, so negotiating without connecting cannot lock anybody out."""
        self._reservations_by_address: dict[str, int] = {}
        self._attaching: set[str] = set()
        """Tokens whose WebSocket is being set up (authenticated, upgraded)."""
        self._endpoints: dict[str, _Endpoint] = {}
        self._ping_records = {name: p.encode(PingMessage()) for name, p in SUPPORTED_PROTOCOLS.items()}
        self._sweep_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        """Base URL once :meth:`listen` returned."""
        prefixes = dict(channel_prefixes or {})
        self.transport_settings = transport_settings if transport_settings is not None else TransportSettings()
        self._negotiate_transports = json.dumps(
            negotiate_entries(self.transport_settings.enabled), separators=(",", ":")
        )
        """The ``availableTransports`` every negotiate answers, as JSON (the settings are frozen)."""
        self._http = HttpTransports(self, self.transport_settings)
        """Server-Sent Events and long polling: shells over the same connections and sweep."""
        self.app = web.Application()
        for path, hub_class in (hubs or {"/chatHub": ChatHub}).items():
            if not path.startswith("/") or path.endswith("/"):
                raise ValueError(f"hub path must start with '/' and not end with it, got {path!r}")
            lifetime = HubLifetimeManager(
                ChannelNames(prefixes.get(path, f"SimScale.{hub_class.__name__}")),
                self.backplane,
                self.server_name,
                routing_mode,
                self.counters,
                self.settings.group_ack_timeout_s,
                max_groups_per_connection=self.settings.max_groups_per_connection,
                max_group_name_bytes=self.settings.max_group_name_bytes,
            )
            dispatcher = HubDispatcher(
                hub_class,
                lifetime,
                self.counters,
                self.settings.max_parallel_invocations,
                self.settings.max_streams_per_connection,
            )
            endpoint = _Endpoint(path, dispatcher, lifetime)
            self._endpoints[path] = endpoint
            self.app.router.add_post(f"{path}/negotiate", self._negotiate_handler(endpoint))
            self.app.router.add_get(path, functools.partial(self._serve_get, endpoint))
            self.app.router.add_post(path, functools.partial(self._http.serve_post, endpoint))
            self.app.router.add_delete(path, functools.partial(self._http.serve_delete, endpoint))
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/busy", busy)  # ordinary web traffic beside the hubs (web_routes.py)
        self.app.on_startup.append(self._on_startup)
        self.app.on_shutdown.append(self._on_shutdown)

    # ---- life cycle -----------------------------------------------------------------------------

    async def listen(self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the base URL."""
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        bound_port = server.sockets[0].getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        shown_host = f"[{host}]" if ":" in host else host  # an IPv6 literal needs brackets in a URL
        self.url = f"{scheme}://{shown_host}:{bound_port}"
        return self.url

    async def close(self) -> None:
        """Say goodbye to every client (Close with allowReconnect) and stop serving."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _on_startup(self, app: web.Application) -> None:
        await self._start_backplane()
        for endpoint in self._endpoints.values():
            await endpoint.lifetime.start()
        self._sweep_task = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _start_backplane(self) -> None:
        # Serve local clients anyway: the backplane keeps trying and makes the recorded subscriptions.
        await self.backplane.start(keep_trying=True)

    async def _on_shutdown(self, app: web.Application) -> None:
        task, self._sweep_task = self._sweep_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in list(self._connections.values()):
            # A restart is not the client's fault: let automatic reconnect kick in.
            connection.close("Server is shutting down.", allow_reconnect=True)
        # Let the handlers notice and run on_disconnected before the backplane goes.
        for _ in range(50):
            if not self._connections:
                break
            await asyncio.sleep(0.02)
        await self._http.close()
        for endpoint in self._endpoints.values():
            await endpoint.lifetime.stop()
        await self.backplane.stop()

    def lifetime(self, path: str = "/chatHub") -> HubLifetimeManager:
        """The connections, groups and fan-out of the hub at ``path`` (to send from server code).

        Raises:
            KeyError: no hub is mounted at ``path``.
        """
        return self._endpoints[path].lifetime

    def close_connections(self, error: str | None = None, *, allow_reconnect: bool = False) -> int:
        """Close every attached connection with a hub Close; returns how many were closed."""
        connections = [c for c in self._connections.values() if not c.closed]
        for connection in connections:
            connection.close(error, allow_reconnect=allow_reconnect)
        return len(connections)

    @property
    def connection_count(self) -> int:
        """Attached sockets, handshaken or not."""
        return len(self._connections)

    def _at_capacity(self) -> bool:
        # Reservations do not count: a client that negotiates and never connects holds no capacity.
        return len(self._connections) + len(self._attaching) >= self.settings.max_connections

    def _reserve(self, token: str, reservation: _Reservation) -> None:
        self._reservations[token] = reservation
        by_address = self._reservations_by_address
        by_address[reservation.address] = by_address.get(reservation.address, 0) + 1

    def _release(self, token: str) -> _Reservation | None:
        reservation = self._reservations.pop(token, None)
        if reservation is not None:
            by_address = self._reservations_by_address
            left = by_address[reservation.address] - 1
            if left:
                by_address[reservation.address] = left
            else:
                del by_address[reservation.address]
        return reservation

    def _refuse_reservation(self, address: str) -> None:
        """Raise the HTTP answer for a negotiate past a reservation cap, if it is past one."""
        settings = self.settings
        if len(self._reservations) >= settings.max_reservations:
            self.counters.reservation_refusals += 1
            raise web.HTTPServiceUnavailable(text="the server holds max_reservations unused negotiated tokens")
        if self._reservations_by_address.get(address, 0) >= settings.max_reservations_per_address:
            self.counters.reservation_refusals += 1
            raise web.HTTPTooManyRequests(
                text="this address holds max_reservations_per_address unused negotiated tokens"
            )

    # ---- negotiate ------------------------------------------------------------------------------

    async def _authenticate(self, request: web.Request) -> str | None:
        token = bearer_token(request.query, request.headers)
        try:
            return await self.authenticator.authenticate(token)
        except AuthenticationError as error:
            raise web.HTTPUnauthorized(text=str(error)) from None

    def _negotiate_handler(self, endpoint: _Endpoint) -> Any:
        async def negotiate(request: web.Request) -> web.StreamResponse:
            await self._authenticate(request)
            try:
                requested = int(request.query.get("negotiateVersion", "0"))
            except ValueError:
                raise web.HTTPBadRequest(text="negotiateVersion must be an integer") from None
            if self._at_capacity():
                self.counters.rejected_connections += 1
                raise web.HTTPServiceUnavailable(text="the server is at max_connections")
            address = request.remote or ""
            self._refuse_reservation(address)
            version = 1 if requested >= 1 else 0
            connection_id = _new_id()
            # v0 clients (pysignalr, signalrcore) use the connection id itself as the token.
            token = _new_id() if version >= 1 else connection_id
            self._reserve(
                token, _Reservation(endpoint, connection_id, time.monotonic() + self.settings.negotiate_ttl_s, address)
            )
            # Ids are URL-safe base64 (nothing to escape) and the transport list is encoded once: in a
            # reconnect storm json.dumps of this body was a tenth of the server's time per connect.
            token_field = f'"connectionToken":"{token}",' if version >= 1 else ""
            body = (
                f'{{"connectionId":"{connection_id}","negotiateVersion":{version},{token_field}'
                f'"availableTransports":{self._negotiate_transports}}}'
            )
            return web.Response(text=body, content_type="application/json")

        return negotiate

    # ---- what the HTTP transports (simscale.hub.transports) share with the WebSocket path ------------

    async def _serve_get(self, endpoint: _Endpoint, request: web.Request) -> web.StreamResponse:
        """A WebSocket upgrade, or else an event stream or a poll."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return await self._http.serve_get(endpoint, request)
        if TransportType.WEBSOCKETS not in self.transport_settings.enabled:
            return HttpTransports.not_supported(TransportType.WEBSOCKETS)
        return await self._serve_websocket(endpoint, request)

    def has_reservation(self, endpoint: _Endpoint, token: str) -> bool:
        """Whether ``token`` was negotiated at ``endpoint`` and no transport has claimed it yet."""
        reservation = self._reservations.get(token)
        return reservation is not None and reservation.endpoint is endpoint

    def claim_reservation(self, token: str) -> str | None:
        """Take a negotiated token for a transport; its connection id (``None``: unknown or expired)."""
        reservation = self._release(token)
        return None if reservation is None else reservation.connection_id

    def refuse_if_at_capacity(self) -> None:
        """Raise 503 when a new connection would pass ``max_connections`` (reservations do not count)."""
        if self._at_capacity():
            self.counters.rejected_connections += 1
            raise web.HTTPServiceUnavailable(text="the server is at max_connections")

    def has_websocket(self, token: str) -> bool:
        """Whether ``token`` names a connection attached by a transport other than SSE/long polling."""
        return token in self._connections and token not in self._http.sessions

    def attach_connection(self, token: str, connection: HubConnection, now_s: float) -> None:
        """Register a connection made by an HTTP transport: counted, pinged and timed out as a socket."""
        self._connections[token] = connection
        self._wheel.file(connection, now_s + self._first_look_s)

    async def detach_connection(
        self, endpoint: _Endpoint, token: str, connection: HubConnection, error: Exception | None
    ) -> None:
        """Forget a connection of an HTTP transport and tell the hub, as the WebSocket loop's end does."""
        if self._connections.get(token) is connection:
            del self._connections[token]
        self._wheel.discard(connection)
        if connection.announced:
            self.counters.connections_closed += 1
            if error is None and connection.close_reason is not None:
                error = ConnectionError(connection.close_reason)
            await endpoint.dispatcher.on_disconnected(connection, error)

    # ---- WebSocket transport ----------------------------------------------------------------------

    async def _serve_websocket(self, endpoint: _Endpoint, request: web.Request) -> web.StreamResponse:
        """Attach one WebSocket and read it until it ends.

        The ``await ws.receive()`` sits in this, the request handler's own coroutine, on purpose:
        every coroutine suspended under an idle connection's handler is ~300 bytes kept alive per
        connection, so set-up and per-frame work are coroutines that finish instead.
        """
        opened = await self._open_websocket(endpoint, request)
        if isinstance(opened, web.WebSocketResponse):
            return opened  # the peer went away during the upgrade
        ws, connection, token = opened
        error: Exception | None = None
        try:
            while True:
                if connection.unyielded_work >= _WORK_PER_TURN:
                    connection.unyielded_work = 0
                    await asyncio.sleep(0)
                frame = await ws.receive()
                if frame.type is not WSMsgType.TEXT and frame.type is not WSMsgType.BINARY:
                    break  # CLOSE / ERROR: aiohttp answers control frames itself
                if connection.closed:
                    break
                data = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
                connection.unyielded_work += 1 + (len(data) >> 12)
                if await self._receive_frame(endpoint, connection, data):
                    break
        except Exception as caught:  # never let one client take the process down
            error = caught
            _log.exception("connection %s failed", connection.connection_id)
            connection.close("An internal error closed the connection.")
        finally:
            del self._connections[token]
            self._wheel.discard(connection)
            if connection.announced:
                self.counters.connections_closed += 1
                if error is None and connection.close_reason is not None:
                    error = ConnectionError(connection.close_reason)
                await endpoint.dispatcher.on_disconnected(connection, error)
            connection.finish(connection.close_reason)
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _open_websocket(
        self, endpoint: _Endpoint, request: web.Request
    ) -> tuple[HubWebSocketResponse, HubConnection, str] | web.WebSocketResponse:
        """Claim the token, authenticate, upgrade and register the connection (no hub code yet)."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise web.HTTPBadRequest(text="only the WebSockets transport is supported")
        token = request.query.get("id")
        if token:
            if token in self._connections or token in self._attaching:
                raise web.HTTPConflict(text="a WebSocket is already attached to this connection")
            reservation = self._reservations.get(token)
            if reservation is None or reservation.endpoint is not endpoint:
                raise web.HTTPNotFound(text="No Connection with that ID")  # ASP.NET Core's words
            # Claim the token before the first await, so a concurrent second socket gets 409.
            self._release(token)
            connection_id = reservation.connection_id
        else:
            connection_id = token = _new_id()
        if self._at_capacity():
            self.counters.rejected_connections += 1
            raise web.HTTPServiceUnavailable(text="the server is at max_connections")
        self._attaching.add(token)
        try:
            user_id = await self._authenticate(request)
            ws = HubWebSocketResponse(
                compress=False,  # frames are written by hand, uncompressed
                max_msg_size=max(_AIOHTTP_FRAME_CAP_BYTES, 4 * self.settings.max_message_bytes),
                autoping=True,
                decode_text=False,
            )
            await ws.prepare(request)
            transport = request.transport
            if transport is None:
                return ws
            assert isinstance(transport, asyncio.Transport)
            now_s = time.monotonic()
            connection = HubConnection(
                connection_id,
                user_id,
                transport,
                ServerConnection(self.settings.max_message_bytes),
                now_s=now_s,
                max_buffered_bytes=self.settings.max_buffered_bytes,
                counters=self.counters,
                coalescer=self._coalescer,
            )
            self._connections[token] = connection
            ws.attach(connection)
        finally:
            self._attaching.discard(token)
        self._wheel.file(connection, now_s + self._first_look_s)
        return ws, connection, token

    async def _receive_frame(self, endpoint: _Endpoint, connection: HubConnection, data: bytes) -> bool:
        """Feed one frame to the protocol and act on what it holds; ``True`` when the loop must end."""
        state = connection.protocol_connection
        dispatcher = endpoint.dispatcher
        connection.last_received_s = time.monotonic()
        was_announced = connection.announced
        messages = state.receive_data(data)
        if not was_announced and state.state is ConnectionState.OPEN:
            connection.flush()  # the handshake answer, before anything the hub sends
            self.counters.connections_opened += 1
            connection.announced = True
            try:
                await dispatcher.on_connected(connection)
            except Exception:
                _log.exception("on_connected failed")
                connection.close("The server failed to accept the connection.")
                return True
        protocol = connection.protocol
        # A JSON stream whose frames end on a separator holds no partial record: the next bare Ping
        # frame can be taken care of before it reaches us.
        connection.ping_shortcut = (
            protocol is not None and protocol.transfer_format == "Text" and data.endswith(b"\x1e")
        )
        if state.state is ConnectionState.CLOSED or state.state is ConnectionState.CLOSING:
            if state.state is ConnectionState.CLOSING:
                # The client's goodbye: what came before it in the same frame is still answered.
                for message in messages[:-1]:
                    await dispatcher.dispatch(connection, message)
            self._close_after_protocol_end(connection, messages)
            return True
        connection.flush()
        for message in messages:
            if message.__class__ is PingMessage:
                continue  # only refreshes liveness, done above (a run of Pings is parsed as one)
            await dispatcher.dispatch(connection, message)
            if connection.closed:
                return True
            connection.unyielded_work += 1
            if connection.unyielded_work >= _WORK_PER_TURN:
                # Records are acted on in bounded batches: other connections get a turn in between.
                connection.unyielded_work = 0
                await asyncio.sleep(0)
                if connection.closed:
                    return True
        return False

    def _close_after_protocol_end(self, connection: HubConnection, messages: list[HubMessage]) -> None:
        state = connection.protocol_connection
        reason = state.close_reason
        if messages and isinstance(messages[-1], CloseMessage):
            connection.flush()
            connection.finish(reason)  # the client said goodbye: nothing to answer
            return
        self.counters.protocol_errors += 1
        _log.info("closing %s after a protocol violation: %s", connection.connection_id, reason)
        connection.flush()  # the reply the protocol state queued: a handshake error or a Close
        connection.finish(reason)

    # ---- the sweep --------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        interval_s = self.settings.sweep_interval_s
        expected_s = time.monotonic() + interval_s
        while True:
            await asyncio.sleep(max(0.0, expected_s - time.monotonic()))
            now_s = time.monotonic()
            self.counters.event_loop_lag_s = max(0.0, now_s - expected_s)
            expected_s = now_s + interval_s
            try:
                self.sweep(now_s)
            except Exception:
                _log.exception("sweep failed")

    def sweep(self, now_s: float) -> None:
        """One tick: pings and timeouts for the connections that are due, expired negotiate tokens."""
        wheel = self._wheel
        for connection in wheel.pop_due(now_s):
            due_s = self._check_liveness(connection, now_s)
            if due_s is not None:
                wheel.file(connection, due_s)
        if self._reservations:
            expired = [token for token, r in self._reservations.items() if r.expires_s <= now_s]
            for token in expired:
                self._release(token)

    def _check_liveness(self, connection: HubConnection, now_s: float) -> float | None:
        """Ping or time out one connection if due; when to look at it next (``None``: closed)."""
        if connection.closed:
            return None
        settings = self.settings
        protocol = connection.protocol
        if protocol is None:
            deadline_s = connection.opened_s + settings.handshake_timeout_s
            if now_s >= deadline_s:
                self.counters.timeouts += 1
                connection.close("Handshake was not completed in time.")
                return None
            return min(deadline_s, now_s + settings.keepalive_interval_s)
        silent_until_s = connection.last_received_s + settings.client_timeout_s
        if now_s >= silent_until_s:
            self.counters.timeouts += 1
            connection.close(f"Server closed the connection: nothing received for {settings.client_timeout_s:g} s.")
            return None
        ping_at_s = connection.last_sent_s + settings.keepalive_interval_s
        if now_s >= ping_at_s:
            if not connection.queued_bytes:  # queued bytes go out this turn: no ping needed
                connection.write(self._ping_records[protocol.name], messages=0)
            ping_at_s = now_s + settings.keepalive_interval_s
        return min(silent_until_s, ping_at_s)

    # ---- health and metrics -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers."""
        backplane = self.backplane
        state = backplane.state
        up = state is BackplaneState.CONNECTED
        losses = backplane.losses + self.counters.backplane_missed
        return {
            "status": "ok" if up else "degraded",
            "server": self.server_name,
            "connections": len(self._connections),
            "reservations": len(self._reservations),
            "backplane": {
                "type": type(backplane).__name__,
                "state": str(state.value).lower() if hasattr(state, "value") else str(state),
                "publishes": backplane.publishes,
                "losses": losses,
                "missed": self.counters.backplane_missed,
                "gaps": backplane.gaps,
                "gap_seconds": round(backplane.gap_seconds, 3),
            },
            "publishes": backplane.publishes,
            "losses": losses,
            "backplane_messages_received": self.counters.backplane_messages_received,
        }

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.health())

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        text = render_prometheus(
            self.counters,
            connections=len(self._connections),
            publishes=self.backplane.publishes,
            losses=self.backplane.losses,
            backplane_connected=self.backplane.state is BackplaneState.CONNECTED,
            gaps=self.backplane.gaps,
            gap_seconds=self.backplane.gap_seconds,
        )
        return web.Response(text=text, content_type="text/plain", charset="utf-8")
