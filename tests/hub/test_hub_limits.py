"""Keep-alive, client timeout, slow consumers, health and metrics."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import aiohttp
import pytest
from hub_testing import RawClient, running_server, ws_url

from simscale.hub import HubServer, HubSettings
from simscale.protocol import CloseMessage, PingMessage

FAST = HubSettings(keepalive_interval_s=0.2, client_timeout_s=0.8, sweep_interval_s=0.05)


async def test_server_pings_a_client_it_has_not_written_to(session: aiohttp.ClientSession) -> None:
    async with running_server(settings=FAST) as server:
        client = await RawClient.connect(session, ws_url(server))
        started = asyncio.get_running_loop().time()
        message = await client.receive(timeout_s=2, skip_pings=False)
        assert isinstance(message, PingMessage)
        assert 0.15 <= asyncio.get_running_loop().time() - started < 1.0
        await client.close()


async def test_silent_client_is_closed_and_a_chatty_one_is_not(session: aiohttp.ClientSession) -> None:
    async with running_server(settings=FAST) as server:
        silent = await RawClient.connect(session, ws_url(server))
        chatty = await RawClient.connect(session, ws_url(server), "messagepack")
        loop = asyncio.get_running_loop()
        started = loop.time()
        close_task = asyncio.ensure_future(silent.receive_close(timeout_s=4))
        while not close_task.done():
            await chatty.send(PingMessage())
            await asyncio.sleep(0.1)
        close = close_task.result()
        assert isinstance(close, CloseMessage) and close.error is not None and "nothing received" in close.error
        assert 0.7 <= loop.time() - started < 3.0
        await asyncio.sleep(0.5)  # well past the timeout for chatty, who kept talking
        assert (await chatty.invoke("Echo", "alive")).result == "alive"
        assert server.counters.timeouts == 1
        await chatty.close()


async def _open_non_reading_socket(server: HubServer) -> socket.socket:
    """A WebSocket that handshakes and then never reads, with a tiny receive buffer."""
    assert server.url is not None
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /chatHub HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += await loop.sock_recv(sock, 1)
    assert response.startswith(b"HTTP/1.1 101")
    handshake = b'{"protocol":"json","version":1}\x1e'
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(handshake))
    await loop.sock_sendall(sock, bytes((0x81, 0x80 | len(handshake))) + mask + masked)
    return sock


async def test_slow_consumer_is_closed_at_the_buffer_limit(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(max_buffered_bytes=65_536)
    async with running_server(settings=settings) as server:
        lifetime = server.lifetime("/chatHub")
        reader = await RawClient.connect(session, ws_url(server))
        (reader_id,) = lifetime.connections
        sock = await _open_non_reading_socket(server)
        for _ in range(200):
            if len(lifetime.connections) == 2:
                break
            await asyncio.sleep(0.01)
        (slow,) = [c for c in lifetime.connections.values() if c.connection_id != reader_id]
        blob = "x" * 16_384
        sent_bytes = 0
        # Bounded: 100 MB at most; kernel buffers absorb a few MB before our own buffer fills.
        for index in range(6400):
            await lifetime.send("connection", slow.connection_id, "Flood", (blob,))
            sent_bytes += len(blob)
            if slow.closed:
                break
            if index % 16 == 0:
                await asyncio.sleep(0)
        assert server.counters.slow_consumer_closes == 1, f"not closed after {sent_bytes} bytes"
        assert slow.close_reason is not None and "slow consumer" in slow.close_reason
        assert (await reader.invoke("Echo", "fine")).result == "fine"
        for _ in range(200):
            if server.connection_count == 1:
                break
            await asyncio.sleep(0.01)
        assert server.connection_count == 1
        sock.close()
        await reader.close()


async def test_health_and_metrics(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server))
        await client.invoke("SendMessage", "a", "b")
        await client.receive()
        health = await (await session.get(f"{server.url}/health")).json()
        assert health["status"] == "ok"
        assert health["connections"] == 1
        assert health["backplane"]["state"] == "connected"
        assert health["publishes"] == 1 and health["losses"] == 0
        response = await session.get(f"{server.url}/metrics")
        assert response.content_type == "text/plain"
        text = await response.text()
        values = {
            line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")
        }
        assert values["simscale_hub_connections"] == 1
        assert values["simscale_hub_invocations_total"] == 1
        assert values["simscale_hub_deliveries_total"] >= 2  # the broadcast and the completion
        assert values["simscale_hub_backplane_publishes_total"] == 1
        assert values["simscale_hub_backplane_losses_total"] == 0
        assert values["simscale_hub_slow_consumer_closes_total"] == 0
        assert "simscale_hub_event_loop_lag_seconds" in values
        assert values["simscale_hub_process_cpu_seconds_total"] > 0
        assert values["simscale_hub_process_max_resident_memory_bytes"] > 10_000_000
        await client.close()


@pytest.mark.parametrize(
    "field",
    ["keepalive_interval_s", "client_timeout_s", "max_message_bytes", "max_connections", "max_buffered_bytes"],
)
def test_settings_reject_non_positive_values(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HubSettings(**{field: 0})


def test_settings_need_a_timeout_longer_than_the_keepalive() -> None:
    with pytest.raises(ValueError, match="client_timeout_s"):
        HubSettings(keepalive_interval_s=10, client_timeout_s=10)
