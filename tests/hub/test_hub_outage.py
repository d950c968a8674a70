"""A backplane outage seen from the hub: the lifetime manager keeps no bookkeeping of its own, so what is
asked for during the outage (a new connection's channel, a group join) works once the backplane is back.

In-process servers over one `MemoryBus`, which goes down and comes back like Redis does (the contract
suite in tests/backplane checks that both backends behave alike; test_hub_redis_cluster does it with
real processes and a real Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
from hub_testing import RawClient, ws_url

from simscale.backplane import BackplaneState
from simscale.backplane.memory import MemoryBackplane, MemoryBus
from simscale.hub import HubServer, HubSettings
from simscale.protocol import InvocationMessage


@contextlib.asynccontextmanager
async def servers(bus: MemoryBus) -> AsyncIterator[tuple[HubServer, HubServer]]:
    pair = [
        HubServer(backplane=MemoryBackplane(bus, server_name=name), settings=HubSettings(sweep_interval_s=0.05))
        for name in ("left", "right")
    ]
    for server in pair:
        await server.listen("127.0.0.1", 0)
    try:
        yield pair[0], pair[1]
    finally:
        for server in pair:
            await server.close()


async def messages_to(client: RawClient, count: int) -> list[tuple[object, ...]]:
    """Exactly ``count`` ReceiveMessage arguments, then nothing more (checked by a round trip)."""
    got = []
    for _ in range(count):
        message = await client.receive()
        assert isinstance(message, InvocationMessage) and message.target == "ReceiveMessage", message
        got.append(tuple(message.arguments))
    assert (await client.invoke("Echo", "done")).result == "done"
    assert client.inbox == [], client.inbox
    return got


async def test_a_group_joined_during_an_outage_hears_the_group_once_the_backplane_is_back(
    session: aiohttp.ClientSession,
) -> None:
    bus = MemoryBus()
    async with servers(bus) as (left, right):
        sender = await RawClient.connect(session, ws_url(right))
        bus.go_down()
        assert left.backplane.state is BackplaneState.RECONNECTING
        member = await RawClient.connect(session, ws_url(left))  # its connection channel: recorded
        started_s = time.monotonic()
        joined = await member.invoke("JoinGroup", "room")
        assert joined.error is None and time.monotonic() - started_s < 1.0  # no wait on a dead backplane
        assert left.health()["status"] == "degraded"
        lost = await sender.invoke("SendToGroup", "room", "s", "during")
        assert lost.error is None and right.backplane.losses == 1

        bus.come_back()
        assert left.health()["status"] == "ok" and right.health()["status"] == "ok"
        await sender.invoke("SendToGroup", "room", "s", "after")
        assert await messages_to(member, 1) == [("s", "after")]  # "during" was lost: at-most-once
        await sender.invoke("SendMessage", "s", "everyone")
        assert await messages_to(member, 1) == [("s", "everyone")]


async def test_a_server_started_while_the_backplane_is_down_serves_and_joins_later(
    session: aiohttp.ClientSession,
) -> None:
    bus = MemoryBus()
    bus.go_down()
    async with servers(bus) as (left, right):
        assert left.backplane.state is BackplaneState.RECONNECTING
        alone = await RawClient.connect(session, ws_url(left))
        await alone.invoke("SendMessage", "a", "alone")
        assert await messages_to(alone, 1) == [("a", "alone")]  # local delivery without a backplane

        bus.come_back()
        await asyncio.wait_for(left.backplane.wait_for_state(BackplaneState.CONNECTED, 1.0), 2.0)
        other = await RawClient.connect(session, ws_url(right))
        await alone.invoke("SendMessage", "a", "together")
        assert await messages_to(other, 1) == [("a", "together")]
        assert await messages_to(alone, 1) == [("a", "together")]
