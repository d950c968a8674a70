"""Bursts across two hub servers on one real redis-server: nothing lost, each sender's order kept.

Every sender fires its whole burst without waiting for anything (non-blocking invocations, as a chat
client that types fast does), so the servers see many invocations in one read and publish them while
the earlier publishes are still in flight. The hub is a plain `Hub` subclass written for the test, not
`ChatHub`: what makes the path fast must reach any hub written against the API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hub_testing import RawClient, ws_url

from simscale.backplane.redis_backplane import RedisBackplane
from simscale.hub import Hub, HubServer
from simscale.protocol import InvocationMessage

pytestmark = pytest.mark.redis

SENDERS_PER_SERVER = 3
LISTENERS_PER_SERVER = 4
BURST = 150
"""Messages each sender fires back to back."""


class Relay(Hub):
    """Tells everybody who said what, in the sender's numbering."""

    async def say(self, sender: str, number: int) -> None:
        await self.clients.all.send("Said", sender, number)


@contextlib.asynccontextmanager
async def two_servers(redis_url: str) -> AsyncIterator[tuple[HubServer, HubServer]]:
    servers = [
        # A roomy publish deadline: on a machine shared by many test runs a 1 s stall is not a lost link.
        HubServer(
            {"/relay": Relay}, backplane=RedisBackplane(redis_url, server_name=f"server-{index}", publish_timeout_s=5.0)
        )
        for index in range(2)
    ]
    try:
        for server in servers:
            await server.listen("127.0.0.1", 0)
        yield servers[0], servers[1]
    finally:
        for server in servers:
            await server.close()


async def collect(client: RawClient, expected: int, timeout_s: float) -> list[tuple[str, int]]:
    """Every ``Said`` the client hears, until ``expected`` of them arrived (or the time is up)."""
    heard: list[tuple[str, int]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while len(heard) < expected:
                message = await client.receive(timeout_s)
                if isinstance(message, InvocationMessage) and message.target == "Said":
                    heard.append((message.arguments[0], message.arguments[1]))
    return heard


async def test_bursts_from_many_senders_reach_everybody_in_each_senders_order(redis_url: str) -> None:
    async with two_servers(redis_url) as servers, aiohttp.ClientSession() as session:
        senders: list[tuple[str, RawClient]] = []
        listeners: list[RawClient] = []
        for index, server in enumerate(servers):
            url = ws_url(server, "/relay")
            for number in range(SENDERS_PER_SERVER):
                protocol = "messagepack" if number % 2 else "json"
                senders.append((f"s{index}.{number}", await RawClient.connect(session, url, protocol)))
            for number in range(LISTENERS_PER_SERVER):
                protocol = "messagepack" if number % 2 else "json"
                listeners.append(await RawClient.connect(session, url, protocol))
        everybody = [client for _, client in senders] + listeners
        expected = len(senders) * BURST

        # All senders burst at once; each burst is written to its socket in one go.
        for name, client in senders:
            frames = [client.protocol.encode(InvocationMessage("Say", (name, n))) for n in range(BURST)]
            if client.protocol.transfer_format == "Binary":
                for frame in frames:
                    await client.ws.send_bytes(frame)
            else:
                await client.ws.send_str(b"".join(frames).decode())
        heard = await asyncio.gather(*(collect(client, expected, 20.0) for client in everybody))

        for log in heard:
            assert len(log) == expected, f"{expected - len(log)} messages lost"
            for name, _ in senders:
                assert [n for who, n in log if who == name] == list(range(BURST)), f"{name} out of order"
        for server in servers:
            backplane = server.backplane
            assert (backplane.losses, server.counters.backplane_missed) == (0, 0)
            assert backplane.publishes == SENDERS_PER_SERVER * BURST
        # The other server heard every message of this one's senders exactly once (and its own echo,
        # dropped under direct-local routing, is not counted).
        assert [server.counters.backplane_messages_received for server in servers] == [SENDERS_PER_SERVER * BURST] * 2
        for client in everybody:
            await client.close()


async def test_a_burst_is_published_in_far_fewer_round_trips_than_messages(redis_url: str) -> None:
    """Publishes that pile up while one is in flight go out together (Redis' pipelining)."""
    async with two_servers(redis_url) as (left, right), aiohttp.ClientSession() as session:
        sender = await RawClient.connect(session, ws_url(left, "/relay"))
        listener = await RawClient.connect(session, ws_url(right, "/relay"))
        backplane = left.backplane
        assert isinstance(backplane, RedisBackplane)
        before = backplane.publish_round_trips
        frames = [sender.protocol.encode(InvocationMessage("Say", ("s", n))) for n in range(BURST)]
        await sender.ws.send_str(b"".join(frames).decode())
        heard = await collect(listener, BURST, 10.0)
        assert [n for _, n in heard] == list(range(BURST))
        round_trips = backplane.publish_round_trips - before
        assert 1 <= round_trips <= BURST // 10, round_trips
        for client in (sender, listener):
            await client.close()
