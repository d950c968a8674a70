"""The load generator's lean hub client against the real hub: delivery, receive stamps, closes, errors."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from simscale.client.hub_client import HubConnectionError
from simscale.client.lean import InvocationHandler, LeanHubClient
from simscale.hub import HubServer, HubSettings
from simscale.hub.auth import StaticTokenAuthenticator
from simscale.protocol import ConnectionState, InvocationMessage

Received = list[tuple[InvocationMessage, float]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


async def started_hub(**kwargs: Any) -> tuple[HubServer, str]:
    hub = HubServer(**kwargs)
    url = await hub.listen("127.0.0.1", 0)
    return hub, f"{url}/chatHub"


async def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def collector() -> tuple[Received, InvocationHandler]:
    received: Received = []
    return received, lambda message, received_s: received.append((message, received_s))


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_broadcasts_reach_every_client_stamped_when_read(session: aiohttp.ClientSession, protocol: str) -> None:
    hub, url = await started_hub()
    try:
        inboxes = [collector() for _ in range(3)]
        clients = [LeanHubClient(url, handler, protocol=protocol, session=session) for _, handler in inboxes]
        for client in clients:
            await client.start()
            assert client.state is ConnectionState.OPEN
        before_s = time.perf_counter()
        for index in range(20):  # one sender: the hub keeps each connection's order
            clients[1].send("SendMessage", "u", f"m{index}")
        await wait_for(lambda: all(len(inbox) == 20 for inbox, _ in inboxes))
        after_s = time.perf_counter()
        for inbox, _ in inboxes:
            assert [message.target for message, _ in inbox] == ["ReceiveMessage"] * 20
            assert [message.arguments[1] for message, _ in inbox] == [f"m{index}" for index in range(20)]
            stamps = [received_s for _, received_s in inbox]
            assert before_s <= stamps[0] and stamps[-1] <= after_s and stamps == sorted(stamps)
        for client in clients:
            await client.stop()
    finally:
        await hub.close()


async def test_a_large_message_spans_a_64_bit_length_frame(session: aiohttp.ClientSession) -> None:
    hub, url = await started_hub(settings=HubSettings(max_message_bytes=1_000_000))
    try:
        received, handler = collector()
        client = LeanHubClient(url, handler, session=session, max_message_bytes=1_000_000)
        await client.start()
        blob = "x" * 70_000  # > 65,535: the server frames it with a 64-bit length
        client.send("SendMessage", "u", blob)
        await wait_for(lambda: len(received) == 1)
        assert list(received[0][0].arguments) == ["u", blob]
        await client.stop()
    finally:
        await hub.close()


async def test_the_server_closing_calls_on_close_and_sends_then_fail(session: aiohttp.ClientSession) -> None:
    hub, url = await started_hub()
    received, handler = collector()
    client = LeanHubClient(url, handler, session=session)
    await client.start()
    reasons: list[str | None] = []
    client.on_close(reasons.append)
    await hub.close()
    await wait_for(lambda: len(reasons) == 1)
    assert client.state is ConnectionState.CLOSED
    with pytest.raises(HubConnectionError):
        client.send("SendMessage", "u", "late")
    assert reasons == [reasons[0]] and received == []


async def test_pings_keep_a_client_alive_and_silence_gets_it_dropped(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(keepalive_interval_s=0.2, client_timeout_s=0.6, sweep_interval_s=0.05)
    hub, url = await started_hub(settings=settings)
    try:
        _, handler = collector()
        talker = LeanHubClient(url, handler, session=session)
        silent = LeanHubClient(url, handler, session=session)
        await talker.start()
        await silent.start()
        dropped: list[str | None] = []
        silent.on_close(dropped.append)
        for _ in range(12):  # 1.2 s: twice the client timeout
            talker.ping()
            await asyncio.sleep(0.1)
        assert talker.state is ConnectionState.OPEN
        assert silent.state is ConnectionState.CLOSED and len(dropped) == 1
        assert dropped[0] is not None and "nothing received" in dropped[0]
        await talker.stop()
    finally:
        await hub.close()


async def test_access_token_is_required_and_sent(session: aiohttp.ClientSession) -> None:
    authenticator = StaticTokenAuthenticator({"s3cret": "alice"}, allow_anonymous=False)
    hub, url = await started_hub(authenticator=authenticator)
    try:
        _, handler = collector()
        with pytest.raises(HubConnectionError, match="401"):
            await LeanHubClient(url, handler, session=session).start()
        client = LeanHubClient(url, handler, session=session, access_token="s3cret")
        await client.start()
        assert client.state is ConnectionState.OPEN
        await client.stop()
    finally:
        await hub.close()


async def test_a_refused_handshake_and_an_unreachable_server_raise(session: aiohttp.ClientSession) -> None:
    hub, url = await started_hub()
    try:
        _, handler = collector()
        client = LeanHubClient(url, handler, session=session)
        # Ask for a protocol the server does not have: its handshake answer carries an error.
        client._connection._outgoing[:] = [b'{"protocol":"xml","version":1}\x1e']
        with pytest.raises(HubConnectionError, match="handshake refused"):
            await client.start()
    finally:
        await hub.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HubConnectionError):
        await LeanHubClient(f"http://127.0.0.1:{port}/chatHub", handler, session=session, handshake_timeout_s=5).start()


def test_bad_timeout_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="handshake_timeout_s"):
        LeanHubClient("http://127.0.0.1:1/chatHub", lambda m, s: None, session=None, handshake_timeout_s=0)
