"""Two ``simscale hub serve`` processes sharing a real redis-server: fan-out across servers, groups,
and what happens while Redis is down."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from hub_testing import RawClient, ServerProcess

from simscale.backplane.redis_server import RedisServer
from simscale.protocol import InvocationMessage

pytestmark = [pytest.mark.redis, pytest.mark.slow]


LOGS: dict[int, list[Any]] = {}


def log_of(client: RawClient) -> list[Any]:
    """Every message the client has received so far (moved out of its inbox)."""
    log = LOGS.setdefault(id(client), [])
    log.extend(client.inbox)
    client.inbox.clear()
    return log


def said(client: RawClient, text: str) -> int:
    """How many ReceiveMessage invocations carrying ``text`` the client has received."""
    return sum(
        1
        for m in log_of(client)
        if isinstance(m, InvocationMessage) and m.target == "ReceiveMessage" and m.arguments[1] == text
    )


async def wait_until_heard(client: RawClient, text: str, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while said(client, text) == 0:
            log_of(client).append(await client.receive(timeout_s))


async def settle(clients: list[RawClient]) -> None:
    """Drain what is in flight: a round trip on every client after a short pause."""
    await asyncio.sleep(0.3)
    for client in clients:
        await client.invoke("Echo", "settle")


async def health(session: aiohttp.ClientSession, server: ServerProcess) -> dict[str, Any]:
    response = await session.get(f"{server.url}/health")
    body: dict[str, Any] = await response.json()
    return body


async def test_broadcasts_and_groups_cross_servers_exactly_once(redis_url: str) -> None:
    async with (
        ServerProcess("--backplane", redis_url, "--name", "one") as one,
        ServerProcess("--backplane", redis_url, "--name", "two") as two,
        aiohttp.ClientSession() as session,
    ):
        a = await RawClient.connect(session, one.ws, "json")
        c = await RawClient.connect(session, one.ws, "messagepack")
        b = await RawClient.connect(session, two.ws, "messagepack")
        clients = [a, b, c]
        await a.invoke("SendMessage", "alice", "hello everyone")
        for client in clients:
            await wait_until_heard(client, "hello everyone")
        await b.invoke("SendMessage", "bob", "from two")
        for client in clients:
            await wait_until_heard(client, "from two")
        await settle(clients)
        assert [said(x, "hello everyone") for x in clients] == [1, 1, 1]
        assert [said(x, "from two") for x in clients] == [1, 1, 1]

        await b.invoke("JoinGroup", "room")  # completes once server two hears the group channel
        await a.invoke("JoinGroup", "room")
        await c.invoke("SendToGroup", "room", "carol", "to the room")
        await wait_until_heard(b, "to the room")
        await wait_until_heard(a, "to the room")
        await b.invoke("LeaveGroup", "room")
        await c.invoke("SendToGroup", "room", "carol", "after bob left")
        await wait_until_heard(a, "after bob left")
        await settle(clients)
        assert [said(x, "to the room") for x in clients] == [1, 1, 0]
        assert [said(x, "after bob left") for x in clients] == [1, 0, 0]
        for server in (one, two):
            body = await health(session, server)
            assert body["backplane"]["state"] == "connected" and body["losses"] == 0
        for client in clients:
            await client.close()


async def test_redis_outage_local_delivery_goes_on_and_delivery_resumes() -> None:
    with RedisServer() as redis:  # our own server: this test kills it
        async with (
            ServerProcess("--backplane", redis.url, "--name", "one") as one,
            ServerProcess("--backplane", redis.url, "--name", "two") as two,
            aiohttp.ClientSession() as session,
        ):
            a = await RawClient.connect(session, one.ws)
            c = await RawClient.connect(session, one.ws, "messagepack")
            b = await RawClient.connect(session, two.ws)
            await a.invoke("SendMessage", "a", "before")
            await wait_until_heard(b, "before")

            redis.kill()
            deadline = time.monotonic() + 10
            while (await health(session, one))["backplane"]["state"] == "connected":
                assert time.monotonic() < deadline, "server one never noticed the outage"
                await asyncio.sleep(0.1)
            started = time.monotonic()
            completion = await a.invoke("SendMessage", "a", "during")
            assert completion.error is None
            assert time.monotonic() - started < 1.5  # the lost publish fails fast
            await wait_until_heard(a, "during")
            await wait_until_heard(c, "during")  # local delivery continues
            late = await RawClient.connect(session, two.ws)  # new connections are still accepted
            assert (await late.invoke("Echo", "accepted")).result == "accepted"
            body = await health(session, one)
            assert body["status"] == "degraded" and body["losses"] >= 1
            assert body["backplane"]["state"] != "connected"
            metrics = await (await session.get(f"{one.url}/metrics")).text()
            assert "simscale_hub_backplane_up 0" in metrics

            redis.restart()
            deadline = time.monotonic() + 15
            for server in (one, two):
                while (await health(session, server))["backplane"]["state"] != "connected":
                    assert time.monotonic() < deadline, "the backplane did not come back"
                    await asyncio.sleep(0.1)
            await a.invoke("SendMessage", "a", "after")
            for client in (a, b, c, late):
                await wait_until_heard(client, "after", timeout_s=10)
            await settle([a, b, c, late])
            assert said(b, "during") == 0  # lost, never replayed: at-most-once
            assert [said(x, "after") for x in (a, b, c, late)] == [1, 1, 1, 1]
            for client in (a, b, c, late):
                await client.close()


async def test_server_starts_while_redis_is_down_and_joins_when_it_comes_up() -> None:
    from simscale.backplane.redis_backplane import RedisBackplane
    from simscale.hub import HubServer, HubSettings

    with socket.socket() as probe:  # a port nobody listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    settings = HubSettings(sweep_interval_s=0.1)
    left = HubServer(backplane=RedisBackplane(url, server_name="left", connect_timeout_s=0.5), settings=settings)
    right = HubServer(backplane=RedisBackplane(url, server_name="right", connect_timeout_s=0.5), settings=settings)
    await left.listen()
    await right.listen()
    redis: RedisServer | None = None
    try:
        async with aiohttp.ClientSession() as session:
            a = await RawClient.connect(session, left.url.replace("http", "ws", 1) + "/chatHub")  # type: ignore[union-attr]
            assert left.health()["status"] == "degraded"
            await a.invoke("SendMessage", "a", "alone")
            await wait_until_heard(a, "alone")  # local delivery without Redis
            redis = RedisServer(port=port).start()
            deadline = time.monotonic() + 15
            while left.health()["status"] != "ok" or right.health()["status"] != "ok":
                assert time.monotonic() < deadline, "servers did not connect once Redis came up"
                await asyncio.sleep(0.1)
            b = await RawClient.connect(session, right.url.replace("http", "ws", 1) + "/chatHub")  # type: ignore[union-attr]
            await a.invoke("SendMessage", "a", "together")
            await wait_until_heard(b, "together")
            for client in (a, b):
                await client.close()
    finally:
        await left.close()
        await right.close()
        if redis is not None:
            redis.stop()
