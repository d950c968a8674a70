"""The Python HubClient against a small test double (edge cases) and against the real hub."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from simscale.client.hub_client import HubClient, HubConnectionError, HubError
from simscale.hub.server import HubServer
from simscale.protocol import (
    SUPPORTED_PROTOCOLS,
    CloseMessage,
    CompletionMessage,
    ConnectionState,
    InvocationMessage,
    ServerConnection,
    StreamInvocationMessage,
    StreamItemMessage,
)

PROTOCOLS = ["json", "messagepack"]


class FakeHub:
    """A test double speaking negotiate + WebSocket + handshake + a few ChatHub methods.

    Methods: ``SendMessage(user, message)`` broadcasts ``ReceiveMessage``; ``Echo(x)``;
    ``Fail()`` completes with an error; ``Counter(n)`` streams 0..n-1; ``Bye()`` sends a Close;
    ``Garbage()`` writes a malformed record.
    """

    def __init__(self, require_token: str | None = None) -> None:
        self.require_token = require_token
        self.tokens: dict[str, str] = {}
        self.sockets: dict[str, tuple[web.WebSocketResponse, ServerConnection]] = {}
        self.received: list[Any] = []
        self.negotiate_queries: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_post("/hub/negotiate", self.negotiate)
        self.app.router.add_get("/hub", self.websocket)
        self.app.router.add_post("/redirect/negotiate", self.redirect)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FakeHub:
        self.runner = web.AppRunner(self.app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hub"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        return self.require_token is None or (request.headers.get("Authorization") == f"Bearer {self.require_token}")

    async def negotiate(self, request: web.Request) -> web.StreamResponse:
        self.negotiate_queries.append(dict(request.query))
        if not self._authorised(request):
            raise web.HTTPUnauthorized()
        connection_id, token = secrets.token_hex(4), secrets.token_hex(8)
        self.tokens[token] = connection_id
        return web.json_response(
            {
                "connectionId": connection_id,
                "connectionToken": token,
                "negotiateVersion": 1,
                "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}],
            }
        )

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        # Azure SignalR style: negotiate elsewhere, with this access token.
        return web.json_response({"url": self.url, "accessToken": "from-redirect"})

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            raise web.HTTPUnauthorized()
        token = request.query.get("id")
        if token is not None and token not in self.tokens:
            raise web.HTTPNotFound()
        key = token or secrets.token_hex(8)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        state = ServerConnection()
        self.sockets[key] = (ws, state)
        try:
            async for frame in ws:  # bounded by the client's life
                data = frame.data.encode() if isinstance(frame.data, str) else frame.data
                for message in state.receive_data(data):
                    self.received.append(message)
                    await self.handle(ws, state, message)
                await self.flush(ws, state)
                if state.state is ConnectionState.CLOSED:
                    break
        finally:
            del self.sockets[key]
        return ws

    @staticmethod
    async def flush(ws: web.WebSocketResponse, state: ServerConnection) -> None:
        binary = state.state is not ConnectionState.AWAITING_HANDSHAKE and (
            state.handshake is not None and state.handshake.protocol == "messagepack"
        )
        for record in state.data_to_send():
            if binary:
                await ws.send_bytes(record)
            else:
                await ws.send_str(record.decode())

    async def handle(self, ws: web.WebSocketResponse, state: ServerConnection, message: Any) -> None:
        if isinstance(message, InvocationMessage):
            reply: CompletionMessage | None = None
            if message.target == "SendMessage":
                await self.broadcast(InvocationMessage("ReceiveMessage", message.arguments))
                reply = CompletionMessage.void(message.invocation_id or "")
            elif message.target == "Echo":
                reply = CompletionMessage.with_result(message.invocation_id or "", message.arguments[0])
            elif message.target == "Fail":
                reply = CompletionMessage.with_error(message.invocation_id or "", "it failed")
            elif message.target == "Bye":
                state.close("server says bye")
            elif message.target == "Garbage":
                await ws.send_str("this is not a hub message\x1e")
            if reply is not None and message.invocation_id is not None:
                state.send(reply)
        elif isinstance(message, StreamInvocationMessage):
            for item in range(int(message.arguments[0])):
                state.send(StreamItemMessage(message.invocation_id, item))
            state.send(CompletionMessage.void(message.invocation_id))

    async def broadcast(self, message: InvocationMessage) -> None:
        # One encoding per protocol, the same bytes to every recipient (as the real hub does).
        records = {name: protocol.encode(message) for name, protocol in SUPPORTED_PROTOCOLS.items()}
        for ws, state in list(self.sockets.values()):
            if state.state is ConnectionState.OPEN:
                state.send_encoded(records[state.protocol.name])
                await self.flush(ws, state)


@pytest.fixture
async def fake_hub() -> AsyncIterator[FakeHub]:
    async with FakeHub() as hub:
        yield hub


@pytest.fixture
async def real_hub() -> AsyncIterator[str]:
    server = HubServer()
    url = await server.listen()
    try:
        yield f"{url}/chatHub"
    finally:
        await server.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_invoke_send_broadcast_and_stream_against_the_double(fake_hub: FakeHub, protocol: str) -> None:
    client = HubClient(fake_hub.url, protocol=protocol)
    received: list[tuple[str, str]] = []
    client.on("receivemessage", lambda user, message: received.append((user, message)))
    await client.start()
    assert client.state is ConnectionState.OPEN
    assert client.connection_id in fake_hub.tokens.values()
    assert fake_hub.negotiate_queries == [{"negotiateVersion": "1"}]
    assert await client.invoke("Echo", {"nested": [1, "two"]}) == {"nested": [1, "two"]}
    assert await client.invoke("SendMessage", "ada", "hi") is None
    await client.send("SendMessage", "bob", "yo")
    assert [item async for item in client.stream("Counter", 3)] == [0, 1, 2]
    with pytest.raises(HubError, match="it failed"):
        await client.invoke("Fail")
    await client.stop()
    assert received == [("ada", "hi"), ("bob", "yo")]
    assert client.state is ConnectionState.CLOSED and client.close_reason is None
    # The non-blocking send carried no invocation id; stop() sent a Close.
    sends = [m for m in fake_hub.received if isinstance(m, InvocationMessage) and m.target == "SendMessage"]
    assert [m.invocation_id is None for m in sends] == [False, True]
    assert isinstance(fake_hub.received[-1], CloseMessage)


async def test_async_callbacks_and_close_callback(fake_hub: FakeHub) -> None:
    client = HubClient(fake_hub.url, skip_negotiation=True)
    got: list[str] = []
    reasons: list[str | None] = []

    async def on_receive(user: str, message: str) -> None:
        await asyncio.sleep(0)
        got.append(message)

    client.on("ReceiveMessage", on_receive)
    client.on_close(reasons.append)
    await client.start()
    assert client.connection_id is None and fake_hub.negotiate_queries == []
    await client.invoke("SendMessage", "u", "m")
    await client.stop()
    assert got == ["m"] and reasons == [None]


async def test_server_close_fails_pending_calls_and_reports_the_reason(fake_hub: FakeHub) -> None:
    client = HubClient(fake_hub.url, protocol="messagepack")
    reasons: list[str | None] = []
    client.on_close(reasons.append)
    await client.start()
    with pytest.raises(HubConnectionError, match="server says bye"):
        await client.invoke("Bye")
    assert client.close_reason == "server says bye"
    assert reasons == ["server says bye"]
    with pytest.raises(HubConnectionError):
        await client.send("Echo", 1)
    await client.stop()


async def test_protocol_violation_from_the_server_closes_the_client(fake_hub: FakeHub) -> None:
    client = HubClient(fake_hub.url)
    await client.start()
    with pytest.raises(HubConnectionError, match="malformed JSON"):
        await client.invoke("Garbage")
    assert client.state is ConnectionState.CLOSED
    await client.stop()


async def test_handshake_refused_raises(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    client = HubClient(fake_hub.url)
    # Ask for an unknown protocol on the wire: the server answers with a handshake error.
    monkeypatch.setattr(client._connection, "_outgoing", [b'{"protocol":"xml","version":1}\x1e'])
    with pytest.raises(HubConnectionError, match="not available"):
        await client.start()
    assert client.state is ConnectionState.CLOSED


async def test_access_token_is_sent_as_bearer() -> None:
    async with FakeHub(require_token="s3cret") as hub:
        with pytest.raises(HubConnectionError, match="HTTP 401"):
            await HubClient(hub.url).start()
        client = HubClient(hub.url, access_token="s3cret")
        await client.start()
        assert await client.invoke("Echo", 5) == 5
        await client.stop()


async def test_unreachable_server_and_unknown_id() -> None:
    async with FakeHub() as hub:
        url = hub.url
        client = HubClient(url + "?id=nope", skip_negotiation=True)
        with pytest.raises(HubConnectionError, match="http_404"):
            await client.start()
    with pytest.raises(HubConnectionError, match="connection_refused"):
        await HubClient(url, handshake_timeout_s=5).start()


async def test_shared_session_is_not_closed_by_the_client(fake_hub: FakeHub) -> None:
    async with aiohttp.ClientSession() as session:
        clients = [HubClient(fake_hub.url, session=session) for _ in range(5)]
        await asyncio.gather(*(c.start() for c in clients))
        await clients[0].invoke("SendMessage", "u", "m")
        await asyncio.gather(*(c.stop() for c in clients))
        assert not session.closed


async def test_early_exit_from_a_stream_sends_cancel(fake_hub: FakeHub) -> None:
    client = HubClient(fake_hub.url)
    await client.start()
    items = []
    async with asyncio.timeout(5):
        stream = client.stream("Counter", 5)
        async for item in stream:
            items.append(item)
            break
        await stream.aclose()  # type: ignore[attr-defined]
    await client.invoke("Echo", 0)  # the connection is still fine
    await client.stop()
    assert items == [0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_against_the_real_hub(real_hub: str, protocol: str) -> None:
    sender = HubClient(real_hub, protocol=protocol)
    listener = HubClient(real_hub, protocol="json" if protocol == "messagepack" else "messagepack")
    heard: list[Any] = []
    listener.on("ReceiveMessage", lambda user, message: heard.append((user, message)))
    await asyncio.gather(sender.start(), listener.start())
    assert await sender.invoke("Echo", [1, {"a": None}]) == [1, {"a": None}]
    await sender.invoke("SendMessage", "ada", "é" * 3)
    assert [item async for item in sender.stream("Counter", 4, 0)] == [0, 1, 2, 3]
    with pytest.raises(HubError):
        await sender.invoke("NoSuchMethod")
    async with asyncio.timeout(5):
        while not heard:  # bounded by the timeout
            await asyncio.sleep(0.01)
    await asyncio.gather(sender.stop(), listener.stop())
    assert heard == [("ada", "é" * 3)]
    assert json.dumps(heard)  # plain values, no protocol types leak out


async def test_keepalive_ping_rides_on_incoming_frames(fake_hub: FakeHub) -> None:
    from simscale.protocol import PingMessage

    client = HubClient(fake_hub.url, keepalive_interval_s=0.0)
    await client.start()
    await client.invoke("Echo", 1)
    await client.invoke("Echo", 2)
    await client.stop()
    assert sum(isinstance(m, PingMessage) for m in fake_hub.received) >= 2


async def test_ws_scheme_url_is_accepted(fake_hub: FakeHub) -> None:
    client = HubClient(fake_hub.url.replace("http://", "ws://"), protocol="messagepack")
    await client.start()
    assert await client.invoke("Echo", b"\x00\x01") == b"\x00\x01"  # bytes survive MessagePack
    await client.stop()


def test_public_api_is_pinned() -> None:
    import simscale.client.hub_client as client_module
    import simscale.loadgen as loadgen

    assert sorted(client_module.__all__) == [
        "HubClient",
        "HubConnectionError",
        "HubError",
        "ResolvedUrl",
        "resolve_websocket_url",
    ]
    assert sorted(loadgen.__all__) == ["ConnectionFailure", "LoadConfig", "LoadResult", "run_load"]


async def test_negotiate_redirect_is_followed_with_its_access_token() -> None:
    async with FakeHub(require_token="from-redirect") as hub:
        client = HubClient(hub.url.replace("/hub", "/redirect"))
        await client.start()
        assert client.access_token == "from-redirect"
        assert await client.invoke("Echo", "ok") == "ok"
        await client.stop()


async def test_cancelled_start_leaves_nothing_running(fake_hub: FakeHub) -> None:
    client = HubClient(fake_hub.url)
    starting = asyncio.create_task(client.start())
    await asyncio.sleep(0)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert client._reader is None or client._reader.done()
    assert client.state is ConnectionState.CLOSED
