"""Fair reading: one connection flooding Pings (or any records) cannot slow another connection's round trips.

The flood comes from a plain blocking socket in a process of its own (this file run as a script:
frames of 1,000 JSON Ping records, or of 300 non-blocking invocations, back to back); the server is a
real ``simscale hub serve`` process, so the flooder, the measuring client and the server never share
an interpreter lock.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import pytest
from hub_testing import RawClient, ServerProcess

PINGS_PER_FRAME = 1_000
WINDOW_S = 2.0
WINDOWS = 3


def masked_text_frame(payload: bytes) -> bytes:
    """A client-to-server text frame (masked, as RFC 6455 requires of a client)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    if len(payload) < 126:
        header = bytes((0x81, 0x80 | len(payload)))
    else:
        header = bytes((0x81, 0x80 | 126)) + len(payload).to_bytes(2, "big")
    return header + mask + masked


def flood(url: str, records: bytes, stop: threading.Event, sent: list[int]) -> None:
    """Handshake as a JSON client, then send frames of ``records`` until ``stop`` is set."""
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
        frame = masked_text_frame(records)
        burst = frame * 8
        while not stop.is_set():
            sock.sendall(burst)
            sent[0] += 8


def main(url: str, kind: str) -> None:
    """Flood until SIGTERM, then print how many frames went out.

    At the lowest priority: a real flood comes from another machine, and here its CPU time must not
    be what delays the server's or the measuring client's turn (the flood still outruns the server's
    reading: the socket stays full).
    """
    os.nice(19)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sent = [0]
    print("flooding", flush=True)
    flood(url, FLOODS[kind], stop, sent)
    print(sent[0], flush=True)


FLOODS = {
    "pings": b'{"type":6}\x1e' * PINGS_PER_FRAME,
    # Non-blocking invocations (no invocationId): each is dispatched, none is answered.
    "invocations": b'{"type":1,"target":"Echo","arguments":[1]}\x1e' * 300,
}
P99_BOUND_MS = {
    "pings": 20.0,
    # Real work in every record keeps the server's CPU busy, and on a shared test machine that costs
    # scheduling delays the Ping flood does not; the budget per turn still bounds it well below the
    # hundreds of milliseconds of a frame read whole.
    "invocations": 50.0,
}


@pytest.mark.parametrize("kind", list(FLOODS))
async def test_another_clients_echo_stays_fast_while_one_client_floods(
    session: aiohttp.ClientSession, kind: str
) -> None:
    bound_ms = P99_BOUND_MS[kind]
    async with ServerProcess() as server:
        client = await RawClient.connect(session, server.ws)
        assert (await client.invoke("Echo", "warm")).result == "warm"
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, __file__, server.url, kind, stdout=asyncio.subprocess.PIPE
        )
        assert flooder.stdout is not None
        windows_p99_ms: list[float] = []
        try:
            assert await asyncio.wait_for(flooder.stdout.readline(), 30) == b"flooding\n"
            await asyncio.sleep(0.3)  # the flood is under way
            # Up to three windows, the flood running throughout: the machine running the tests may be
            # busy with other work, and one window clear of that noise shows what the flood costs.
            # (Before fair reading every window was ~160 ms: the flood itself held the loop.)
            while len(windows_p99_ms) < WINDOWS:
                round_trips_s = []
                deadline = time.monotonic() + WINDOW_S
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    assert (await client.invoke("Echo", "x")).result == "x"
                    round_trips_s.append(time.perf_counter() - started)
                    await asyncio.sleep(0.005)
                windows_p99_ms.append(float(np.percentile(round_trips_s, 99)) * 1000)
                if windows_p99_ms[-1] < bound_ms:
                    break
        finally:
            if flooder.returncode is None:
                flooder.terminate()
            out, _ = await asyncio.wait_for(flooder.communicate(), 10)
        sent = [int(out.split()[-1])] if out.split() else [0]
        shown = ", ".join(f"{p99:.1f}" for p99 in windows_p99_ms)
        print(f"Echo p99 per window {shown} ms; {sent[0]} frames of {kind} sent")
        assert sent[0] > 100, "the flood did not get going"
        assert min(windows_p99_ms) < bound_ms, f"Echo p99 per {WINDOW_S:g} s window: {shown} ms"
        assert (await client.invoke("Echo", "after")).result == "after"
        await client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
