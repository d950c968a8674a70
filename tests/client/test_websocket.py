"""The lean RFC 6455 client: upgrade checks, masking, fragments, control frames, and clean failures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from simscale.client.websocket import HandshakeError, RawWebSocket, ReadCounter, client_frame, connect

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    """An aiohttp WebSocket server that echoes, pings on request and records what it saw."""
    seen: list[aiohttp.WSMessage] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for message in ws:
            seen.append(message)
            if message.type is aiohttp.WSMsgType.TEXT and message.data == "ping me":
                await ws.ping(b"are you there")
            elif message.type is aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
            elif message.type is aiohttp.WSMsgType.PONG:
                await ws.send_str("pong:" + message.data.decode())
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


async def test_text_and_binary_round_trip_through_a_real_server(echo_url: str) -> None:
    ws = await connect(echo_url)
    ws.send_str("héllo")
    assert await ws.receive_str() == "héllo"
    blob = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length each way, masked on the way out
    ws.send_bytes(blob)
    assert await ws.receive() == blob and not ws.is_text
    await ws.close()
    assert ws.closed


async def test_a_server_ping_is_answered_with_its_payload(echo_url: str) -> None:
    ws = await connect(echo_url)
    ws.send_str("ping me")
    assert await ws.receive_str() == "pong:are you there"
    await ws.close()


async def test_the_frame_handler_gets_each_message_with_one_stamp_per_read(echo_url: str) -> None:
    ws = await connect(echo_url)
    got: list[tuple[bytes, int]] = []
    ws.on_frame = lambda socket_, payload, received_ns: got.append((payload, received_ns))
    for index in range(50):
        ws.send_str(f"m{index}")
    for _ in range(500):
        if len(got) == 50:
            break
        await asyncio.sleep(0.01)
    assert [payload for payload, _ in got] == [f"m{index}".encode() for index in range(50)]
    stamps = [stamp for _, stamp in got]
    assert stamps == sorted(stamps)
    await ws.close()


def test_client_frames_are_masked_and_unmask_to_the_payload() -> None:
    payload = b"x" * 300
    frame = client_frame(0x1, payload)
    assert frame[0] == 0x81 and frame[1] == 0x80 | 126
    (length,) = struct.unpack("!H", frame[2:4])
    key, masked = frame[4:8], frame[8:]
    assert length == 300 and masked != payload
    assert bytes(byte ^ key[index % 4] for index, byte in enumerate(masked)) == payload


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[str]:
    """A hand-scripted server on a free port; every connection it took is closed before the test ends."""
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await script(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/x"
    finally:
        server.close()
        await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 5)
        await server.wait_closed()


async def read_key(reader: asyncio.StreamReader) -> str:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    for line in head.split("\r\n"):
        if line.lower().startswith("sec-websocket-key:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no key")


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


async def test_fragments_are_joined_and_a_masked_server_frame_is_a_violation() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = await read_key(reader)
        writer.write(
            f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_for(key)}\r\n\r\n".encode()
            + b"\x01\x03abc"  # text, not final
            + b"\x89\x00"  # a ping between fragments (allowed)
            + b"\x80\x03def"  # final continuation
            + b"\x81\x85\x00\x00\x00\x00wrong"  # a masked frame from a server: forbidden
        )
        await writer.drain()
        await reader.read()  # until the client drops the connection

    async with raw_server(script) as url:
        ws = await connect(url)
        assert await ws.receive_str() == "abcdef"
        for _ in range(200):
            if ws.closed:
                break
            await asyncio.sleep(0.01)
        assert ws.closed


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "refused"),
        ("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: bogus\r\n\r\n", "Sec-WebSocket-Accept"),
    ],
)
async def test_a_refused_or_wrong_upgrade_raises_handshake_error(answer: str, match: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_key(reader)
        writer.write(answer.encode())
        await writer.drain()

    async with raw_server(script) as url:
        with pytest.raises(HandshakeError, match=match):
            await connect(url)


async def test_bad_urls_and_closed_ports_fail_clearly() -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        await connect("http://127.0.0.1:1/x")
    async with raw_server(lambda reader, writer: asyncio.sleep(0)) as url:
        pass
    with pytest.raises(OSError):
        await connect(url)


async def test_receive_after_the_server_hangs_up_raises() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = await read_key(reader)
        writer.write(f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept_for(key)}\r\n\r\n".encode())
        await writer.drain()

    async with raw_server(script) as url:
        ws: RawWebSocket = await connect(url)
        with pytest.raises(ConnectionError):
            await ws.receive()


async def test_reads_in_one_pass_of_the_loop_count_as_one_wake_up() -> None:
    counter = ReadCounter()
    for _ in range(3):  # three sockets ready in the same pass
        counter.count_read()
    assert (counter.reads, counter.wakeups) == (3, 1)
    await asyncio.sleep(0)  # the pass ends
    counter.count_read()
    assert (counter.reads, counter.wakeups) == (4, 2)


async def test_a_shared_counter_sees_every_connection(echo_url: str) -> None:
    counter = ReadCounter()
    sockets = [await connect(echo_url, counter=counter) for _ in range(4)]
    upgrades = counter.reads  # each upgrade answer is a read too
    for ws in sockets:
        ws.send_str("x")
    for ws in sockets:
        assert await ws.receive_str() == "x"
    assert counter.reads - upgrades >= 4 and 1 <= counter.wakeups <= counter.reads
    for ws in sockets:
        await ws.close()
