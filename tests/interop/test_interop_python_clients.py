"""The Python SignalR clients from PyPI, pysignalr (asyncio) and signalrcore (threads), against the hub."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pysignalr.client import SignalRClient
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.protocol.json_hub_protocol import JsonHubProtocol as CoreJsonProtocol
from signalrcore.protocol.messagepack_protocol import MessagePackHubProtocol as CoreMessagePackProtocol

from simscale.hub import HubServer, HubSettings

TIMEOUT_S = 10.0


@pytest.fixture
async def server() -> AsyncIterator[HubServer]:
    # signalrcore's stop() closes its socket but joins a reader thread blocked in recv(), which only
    # returns when the server writes: a short keep-alive makes that quick (and tests its ping handling).
    hub_server = HubServer(settings=HubSettings(keepalive_interval_s=0.3, sweep_interval_s=0.1))
    await hub_server.listen("127.0.0.1", 0)
    yield hub_server
    await hub_server.close()


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_pysignalr_invoke_broadcast_and_stream(server: HubServer, protocol: str) -> None:
    client = SignalRClient(
        f"{server.url}/chatHub", protocol=MessagepackProtocol() if protocol == "messagepack" else JSONProtocol()
    )
    opened = asyncio.Event()
    received: asyncio.Queue[list[Any]] = asyncio.Queue()
    completions: asyncio.Queue[Any] = asyncio.Queue()
    items: list[Any] = []
    stream_done = asyncio.Event()

    async def on_open() -> None:
        opened.set()

    async def on_message(arguments: list[Any]) -> None:
        received.put_nowait(arguments)

    async def on_completion(message: Any) -> None:
        completions.put_nowait(message)

    async def on_item(item: Any) -> None:
        items.append(item)

    async def on_stream_end(message: Any) -> None:
        stream_done.set()

    client.on_open(on_open)
    client.on("ReceiveMessage", on_message)
    runner = asyncio.ensure_future(client.run())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await opened.wait()
            await client.send("Echo", ["from pysignalr"], on_invocation=on_completion)  # type: ignore[list-item]
            echo = await completions.get()
            assert echo.result == "from pysignalr" and not echo.error
            await client.send("SendMessage", ["py", "hello"])  # type: ignore[list-item]
            assert await received.get() == ["py", "hello"]
            await client.stream("Counter", [3, 1], on_next=on_item, on_complete=on_stream_end)  # type: ignore[list-item]
            await stream_done.wait()
            assert items == [0, 1, 2]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_signalrcore_invoke_and_broadcast(server: HubServer, protocol: str) -> None:
    hub_protocol = CoreMessagePackProtocol() if protocol == "messagepack" else CoreJsonProtocol()
    connection = HubConnectionBuilder().with_url(f"{server.url}/chatHub").with_hub_protocol(hub_protocol).build()
    opened = threading.Event()
    got_message = threading.Event()
    got_echo = threading.Event()
    seen: dict[str, Any] = {}

    def on_message(arguments: list[Any]) -> None:
        seen["message"] = list(arguments)
        got_message.set()

    def on_echo(message: Any) -> None:
        seen["echo"] = message.result
        got_echo.set()

    connection.on_open(opened.set)
    connection.on("ReceiveMessage", on_message)
    await asyncio.to_thread(connection.start)
    try:
        assert await asyncio.to_thread(opened.wait, TIMEOUT_S)
        await asyncio.to_thread(connection.send, "Echo", ["from signalrcore"], on_echo)
        assert await asyncio.to_thread(got_echo.wait, TIMEOUT_S)
        assert seen["echo"] == "from signalrcore"
        await asyncio.to_thread(connection.send, "SendMessage", ["core", "hi"])
        assert await asyncio.to_thread(got_message.wait, TIMEOUT_S)
        assert seen["message"] == ["core", "hi"]
    finally:
        await asyncio.to_thread(connection.stop)
