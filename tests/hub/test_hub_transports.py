"""Server-Sent Events and long polling, request by request, with a real aiohttp client.

The status codes and bodies are ASP.NET Core's (docs/SOURCES.md#hub-transports); the official
client's view of the same transports is in tests/interop/test_interop_js_transports.py.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from hub_testing import running_server

from simscale.hub.transports import FrameSink, TransportSettings, TransportType, format_event, parse_transports
from simscale.protocol.websocket_frames import Opcode, encode_frame

HANDSHAKE = b'{"protocol":"json","version":1}\x1e'


async def negotiate(session: aiohttp.ClientSession, base: str) -> str:
    body = await (await session.post(f"{base}/chatHub/negotiate?negotiateVersion=1")).json()
    return str(body["connectionToken"])


# ---- sans-I/O parts ----------------------------------------------------------------------------------


def test_an_event_is_a_data_line_per_payload_line_and_a_blank_line() -> None:
    assert format_event(b'{"type":6}\x1e') == b'data: {"type":6}\x1e\r\n\r\n'
    assert format_event(b"a\r\nb\nc") == b"data: a\r\ndata: b\r\ndata: c\r\n\r\n"
    assert format_event(b"") == b"\r\n"


def test_the_sink_keeps_frame_payloads_and_a_close_frame_ends_it() -> None:
    sink = FrameSink(1 << 16)
    sink.write(encode_frame(Opcode.TEXT, b"one\x1e") + encode_frame(Opcode.BINARY, b"\x02two"))
    assert sink.get_write_buffer_size() == 8
    assert sink.take() == b"one\x1e\x02two"
    assert not sink.is_closing()
    sink.write(encode_frame(Opcode.TEXT, b"last\x1e") + encode_frame(Opcode.CLOSE, b"\x03\xe8"))
    assert sink.is_closing() and sink.closed.is_set()
    sink.write(encode_frame(Opcode.TEXT, b"ignored"))
    assert sink.take() == b"last\x1e"


def test_transport_names_parse_and_bad_ones_are_refused() -> None:
    assert parse_transports("all") == frozenset(TransportType)
    assert parse_transports("longpolling, ServerSentEvents") == {
        TransportType.LONG_POLLING,
        TransportType.SERVER_SENT_EVENTS,
    }
    with pytest.raises(ValueError, match="transports must be"):
        parse_transports("carrier-pigeon")
    with pytest.raises(ValueError, match="long_poll_timeout_s"):
        TransportSettings(long_poll_timeout_s=0)


# ---- long polling ---------------------------------------------------------------------------------------


async def test_long_polling_first_poll_send_poll_timeout_and_delete(session: aiohttp.ClientSession) -> None:
    async with running_server(transport_settings=TransportSettings(long_poll_timeout_s=0.3)) as server:
        base = server.url
        assert base is not None
        token = await negotiate(session, base)
        url = f"{base}/chatHub?id={token}"
        first = await session.get(url)
        assert (first.status, await first.read()) == (200, b"")  # starts the connection, returns at once
        assert (await session.post(url, data=HANDSHAKE)).status == 200
        poll = await session.get(url)
        assert (poll.status, await poll.read()) == (200, b"{}\x1e")
        invoke = b'{"type":1,"invocationId":"1","target":"Echo","arguments":["hi"]}\x1e'
        assert (await session.post(url, data=invoke)).status == 200
        reply = json.loads((await (await session.get(url)).read()).rstrip(b"\x1e"))
        assert reply == {"type": 3, "invocationId": "1", "result": "hi"}
        idle = await session.get(url)  # nothing to say within the poll timeout: 200, empty
        assert (idle.status, await idle.read()) == (200, b"")
        waiting = asyncio.ensure_future(session.get(url))
        await asyncio.sleep(0.05)
        # A newer poll takes over: the waiting one ends with 204.
        newer = asyncio.ensure_future(session.get(url))
        assert (await waiting).status == 204
        deleted = await session.delete(url)
        assert deleted.status == 202
        assert (await newer).status == 204
        assert (await session.get(url)).status == 404
        assert server.connection_count == 0


async def test_request_errors_have_aspnet_core_statuses(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        base = server.url
        assert base is not None
        missing = await session.get(f"{base}/chatHub")
        assert (missing.status, await missing.text()) == (400, "Connection ID required")
        unknown = await session.get(f"{base}/chatHub?id=nope")
        assert (unknown.status, await unknown.text()) == (404, "No Connection with that ID")
        assert (await session.post(f"{base}/chatHub?id=nope", data=b"x")).status == 404
        assert (await session.delete(f"{base}/chatHub?id=nope")).status == 404
        # A WebSocket connection takes neither POST nor DELETE.
        token = await negotiate(session, base)
        ws = await session.ws_connect(f"{base.replace('http', 'ws')}/chatHub?id={token}")
        await ws.send_bytes(HANDSHAKE)
        await ws.receive()
        posted = await session.post(f"{base}/chatHub?id={token}", data=b"x")
        assert (posted.status, await posted.text()) == (405, "POST requests are not allowed for WebSocket connections.")
        assert (await session.delete(f"{base}/chatHub?id={token}")).status == 400
        await ws.close()


async def test_a_disabled_transport_gets_404_and_is_not_negotiated(session: aiohttp.ClientSession) -> None:
    settings = TransportSettings(enabled=frozenset({TransportType.WEBSOCKETS}))
    async with running_server(transport_settings=settings) as server:
        base = server.url
        assert base is not None
        body = await (await session.post(f"{base}/chatHub/negotiate?negotiateVersion=1")).json()
        assert [t["transport"] for t in body["availableTransports"]] == ["WebSockets"]
        poll = await session.get(f"{base}/chatHub?id={body['connectionToken']}")
        assert (poll.status, await poll.text()) == (404, "LongPolling transport not supported by this end point type")
        sse = await session.get(f"{base}/chatHub?id={body['connectionToken']}", headers={"Accept": "text/event-stream"})
        assert (sse.status, await sse.text()) == (
            404,
            "ServerSentEvents transport not supported by this end point type",
        )
    settings = TransportSettings(enabled=frozenset({TransportType.LONG_POLLING}))
    async with running_server(transport_settings=settings) as server:
        assert server.url is not None
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{server.url.replace('http', 'ws')}/chatHub")
        assert refused.value.status == 404


# ---- Server-Sent Events ---------------------------------------------------------------------------------


async def test_sse_stream_carries_data_lines_and_posts_feed_the_protocol(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        base = server.url
        assert base is not None
        token = await negotiate(session, base)
        url = f"{base}/chatHub?id={token}"
        stream = await session.get(url, headers={"Accept": "text/event-stream"})
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert await stream.content.readline() == b":\r\n"
        second = await session.get(url, headers={"Accept": "text/event-stream"})
        assert second.status == 409  # one event stream per connection
        assert (await session.delete(url)).status == 400  # DELETE is long polling's only
        assert (await session.post(url, data=HANDSHAKE)).status == 200
        assert await stream.content.readline() == b"data: {}\x1e\r\n"
        assert await stream.content.readline() == b"\r\n"
        await session.post(url, data=b'{"type":1,"invocationId":"7","target":"Echo","arguments":[1]}\x1e')
        line = await stream.content.readline()
        assert json.loads(line.removeprefix(b"data: ").rstrip(b"\r\n").rstrip(b"\x1e")) == {
            "type": 3,
            "invocationId": "7",
            "result": 1,
        }
        # The client's Close ends the stream.
        await session.post(url, data=b'{"type":7}\x1e')
        rest = await asyncio.wait_for(stream.content.read(), 5)
        assert rest in (b"\r\n", b"")
        for _ in range(100):
            if server.connection_count == 0:
                break
            await asyncio.sleep(0.02)
        assert server.connection_count == 0


async def test_sse_refuses_a_binary_protocol_in_the_handshake(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        base = server.url
        assert base is not None
        url = f"{base}/chatHub?id={await negotiate(session, base)}"
        stream = await session.get(url, headers={"Accept": "text/event-stream"})
        assert await stream.content.readline() == b":\r\n"
        await session.post(url, data=b'{"protocol":"messagepack","version":1}\x1e')
        event = json.loads((await stream.content.readline()).removeprefix(b"data: ").rstrip(b"\r\n").rstrip(b"\x1e"))
        assert event["error"].startswith("Cannot use the 'messagepack' protocol on the current transport.")
        assert await asyncio.wait_for(stream.content.read(), 5) in (b"\r\n", b"")


async def test_a_long_polling_connection_cannot_switch_to_an_event_stream(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        base = server.url
        assert base is not None
        url = f"{base}/chatHub?id={await negotiate(session, base)}"
        assert (await session.get(url)).status == 200
        switched = await session.get(url, headers={"Accept": "text/event-stream"})
        assert (switched.status, await switched.text()) == (400, "Cannot change transports mid-connection")
        assert (await session.delete(url)).status == 202
