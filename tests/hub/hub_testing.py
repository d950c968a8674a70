"""Helpers for the hub tests: a running server and a raw WebSocket hub client.

The raw client speaks the hub protocol by hand (through the sans-I/O ``ClientConnection``) so a test
can send exactly the bytes it wants, malformed ones included.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from simscale.hub import Hub, HubServer, HubSettings
from simscale.protocol import (
    ClientConnection,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    PingMessage,
    get_protocol,
)

RECEIVE_TIMEOUT_S = 5.0


@contextlib.asynccontextmanager
async def running_server(
    hubs: dict[str, type[Hub]] | None = None, settings: HubSettings | None = None, **kwargs: Any
) -> AsyncIterator[HubServer]:
    """A HubServer listening on 127.0.0.1 and a free port, closed on exit."""
    server = HubServer(hubs, settings=settings, **kwargs)
    await server.listen("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


def ws_url(server: HubServer, path: str = "/chatHub") -> str:
    assert server.url is not None
    return server.url.replace("http", "ws", 1) + path


class RawClient:
    """One WebSocket hub connection driven by hand."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = get_protocol(protocol)
        self.state = ClientConnection(protocol, max_message_bytes=16 * 1024 * 1024)
        self.state.data_to_send()  # the handshake is sent by connect(), not from here
        self.inbox: list[HubMessage] = []
        self.ids = itertools.count()
        self.closed_by_server = False

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        url: str,
        protocol: str = "json",
        *,
        handshake: bool = True,
        version: int = 1,
        headers: dict[str, str] | None = None,
    ) -> RawClient:
        ws = await session.ws_connect(url, headers=headers, autoping=True)
        client = cls(ws, protocol)
        if handshake:
            await client.send_text(f'{{"protocol":"{protocol}","version":{version}}}\x1e'.encode())
            await client.receive_handshake()
        return client

    async def send_text(self, data: bytes) -> None:
        await self.ws.send_str(data.decode())

    async def send_binary(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def send(self, message: HubMessage) -> None:
        record = self.protocol.encode(message)
        if self.protocol.transfer_format == "Binary":
            await self.send_binary(record)
        else:
            await self.send_text(record)

    async def _read_frame(self, timeout_s: float) -> bytes | None:
        frame = await self.ws.receive(timeout=timeout_s)
        if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            data = frame.data
            return data.encode() if isinstance(data, str) else bytes(data)
        self.closed_by_server = True
        return None

    async def receive_handshake(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> str | None:
        """Read the handshake answer; ``None`` on success, else the error text."""
        async with asyncio.timeout(timeout_s):
            while True:
                data = await self._read_frame(timeout_s)
                if data is None:
                    raise ConnectionError("closed during the handshake")
                self.inbox.extend(self.state.receive_data(data))
                if self.state.state.name != "AWAITING_HANDSHAKE":
                    return self.state.close_reason if self.state.state.name == "CLOSED" else None

    async def receive(self, timeout_s: float = RECEIVE_TIMEOUT_S, *, skip_pings: bool = True) -> HubMessage:
        """The next hub message (Pings skipped unless asked)."""
        async with asyncio.timeout(timeout_s):
            while True:
                while self.inbox:
                    message = self.inbox.pop(0)
                    if skip_pings and isinstance(message, PingMessage):
                        continue
                    return message
                data = await self._read_frame(timeout_s)
                if data is None:
                    raise ConnectionError("the server closed the WebSocket")
                self.inbox.extend(self.state.receive_data(data))

    async def receive_close(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> CloseMessage:
        """Skip to the server's Close message and check the socket closes after it."""
        async with asyncio.timeout(timeout_s):
            while True:
                message = await self.receive(timeout_s)
                if isinstance(message, CloseMessage):
                    break
            assert await self._read_frame(timeout_s) is None
        return message

    async def expect_socket_closed(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> list[bytes]:
        """Read frames until the socket closes; returns the raw frames seen on the way."""
        frames: list[bytes] = []
        async with asyncio.timeout(timeout_s):
            while (data := await self._read_frame(timeout_s)) is not None:
                frames.append(data)
        return frames

    async def invoke(self, target: str, *arguments: Any) -> CompletionMessage:
        """Invoke and wait for the matching Completion (other messages stay in ``inbox``)."""
        invocation_id = str(next(self.ids))
        await self.send(InvocationMessage(target, tuple(arguments), invocation_id))
        skipped: list[HubMessage] = []
        try:
            while True:
                message = await self.receive()
                if isinstance(message, CompletionMessage) and message.invocation_id == invocation_id:
                    return message
                skipped.append(message)
        finally:
            self.inbox[:0] = skipped

    async def close(self) -> None:
        await self.ws.close()


class ServerProcess:
    """``simscale hub serve`` in a child process (a real, separate server)."""

    def __init__(self, *flags: str) -> None:
        self.flags = flags
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, timeout_s: float = 30.0) -> ServerProcess:
        import sys

        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simscale.cli",
            "hub",
            "serve",
            "--port",
            "0",
            *self.flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        text = line.decode().strip()
        if not text.startswith("listening on "):
            assert self.process.stderr is not None
            error = await asyncio.wait_for(self.process.stderr.read(), timeout_s)
            raise AssertionError(f"server did not start: {text!r} {error.decode()[-2000:]}")
        self.url = text.removeprefix("listening on ")
        return self

    @property
    def ws(self) -> str:
        return self.url.replace("http", "ws", 1) + "/chatHub"

    async def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        process = self.process
        if process is None:
            return 0
        if process.returncode is None:
            process.terminate()
        try:
            return await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise

    async def __aenter__(self) -> ServerProcess:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
