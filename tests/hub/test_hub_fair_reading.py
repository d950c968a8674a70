"""Fair reading: one connection flooding Pings cannot slow another connection's round trips.

The flood comes from a plain blocking socket in a thread (frames of 1,000 JSON Ping records, back to
back); the server is a real ``simscale hub serve`` process, so the flooder, the measuring client and
the server each have their own CPU time.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from hub_testing import RawClient, ServerProcess

PINGS_PER_FRAME = 1_000
FLOOD_S = 3.0


def masked_text_frame(payload: bytes) -> bytes:
    """A client-to-server text frame (masked, as RFC 6455 requires of a client)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    if len(payload) < 126:
        header = bytes((0x81, 0x80 | len(payload)))
    else:
        header = bytes((0x81, 0x80 | 126)) + len(payload).to_bytes(2, "big")
    return header + mask + masked


def flood_pings(url: str, stop: threading.Event, sent: list[int]) -> None:
    """Handshake as a JSON client, then send frames of Pings until ``stop`` is set."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /chatHub HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101"), response
        sock.sendall(masked_text_frame(b'{"protocol":"json","version":1}\x1e'))
        frame = masked_text_frame(b'{"type":6}\x1e' * PINGS_PER_FRAME)
        burst = frame * 8
        while not stop.is_set():
            sock.sendall(burst)
            sent[0] += 8


async def test_another_clients_echo_stays_fast_while_one_client_floods_pings(session: aiohttp.ClientSession) -> None:
    async with ServerProcess() as server:
        client = await RawClient.connect(session, server.ws)
        assert (await client.invoke("Echo", "warm")).result == "warm"
        stop = threading.Event()
        sent = [0]
        flooder = threading.Thread(target=flood_pings, args=(server.url, stop, sent), daemon=True)
        flooder.start()
        try:
            await asyncio.sleep(0.3)  # the flood is under way
            round_trips_s = []
            deadline = time.monotonic() + FLOOD_S
            while time.monotonic() < deadline:
                started = time.perf_counter()
                assert (await client.invoke("Echo", "x")).result == "x"
                round_trips_s.append(time.perf_counter() - started)
                await asyncio.sleep(0.005)
        finally:
            stop.set()
            flooder.join(10)
        p99_ms = float(np.percentile(round_trips_s, 99)) * 1000
        print(f"Echo p99 {p99_ms:.1f} ms over {len(round_trips_s)} round trips; {sent[0]} frames of Pings sent")
        assert sent[0] > 100, "the flood did not get going"
        assert p99_ms < 20.0
        assert (await client.invoke("Echo", "after")).result == "after"
        await client.close()
