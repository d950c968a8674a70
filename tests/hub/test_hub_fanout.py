"""Fan-out rules with in-process servers sharing a memory bus: encode once, deliver locally, publish,
echo suppression, both routing modes, audiences across servers, and a stopped backplane."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hub_testing import RawClient, ws_url

from simscale.backplane.memory import MemoryBackplane, MemoryBus
from simscale.backplane.routing import RoutingMode
from simscale.hub import HubServer, HubSettings, StaticTokenAuthenticator
from simscale.hub.cli import raise_open_file_limit
from simscale.protocol import InvocationMessage, JsonHubProtocol


@contextlib.asynccontextmanager
async def pair(mode: RoutingMode = RoutingMode.DIRECT_LOCAL) -> AsyncIterator[tuple[HubServer, HubServer]]:
    bus = MemoryBus()
    authenticator = StaticTokenAuthenticator({"t1": "u1"})
    servers = [
        HubServer(
            backplane=MemoryBackplane(bus, server_name=name),
            routing_mode=mode,
            authenticator=authenticator,
            settings=HubSettings(sweep_interval_s=0.05),
        )
        for name in ("left", "right")
    ]
    for server in servers:
        await server.listen("127.0.0.1", 0)
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            await server.close()


async def heard(client: RawClient, count: int) -> list[tuple[Any, ...]]:
    """Exactly ``count`` ReceiveMessage invocations, then nothing more (checked by a round trip)."""
    got = []
    for _ in range(count):
        message = await client.receive()
        assert isinstance(message, InvocationMessage) and message.target == "ReceiveMessage", message
        got.append(message.arguments)
    await asyncio.sleep(0.1)
    assert (await client.invoke("Echo", "done")).result == "done"
    assert client.inbox == [], client.inbox
    return got


@pytest.mark.parametrize("mode", list(RoutingMode))
async def test_broadcast_reaches_both_servers_exactly_once(session: aiohttp.ClientSession, mode: RoutingMode) -> None:
    async with pair(mode) as (left, right):
        a = await RawClient.connect(session, ws_url(left))
        b = await RawClient.connect(session, ws_url(left), "messagepack")
        c = await RawClient.connect(session, ws_url(right))
        await a.invoke("SendMessage", "a", "hi")
        for client in (a, b, c):
            assert await heard(client, 1) == [("a", "hi")]
        assert left.backplane.publishes == 1
        # direct-local: the origin drops its own echo; via-backplane: it delivers it.
        expected_from_backplane = 1 if mode is RoutingMode.VIA_BACKPLANE else 0
        assert left.counters.backplane_messages_received == expected_from_backplane
        assert right.counters.backplane_messages_received == 1
        for client in (a, b, c):
            await client.close()


async def test_group_user_and_connection_audiences_cross_servers(session: aiohttp.ClientSession) -> None:
    async with pair() as (left, right):
        a = await RawClient.connect(session, ws_url(left))
        b = await RawClient.connect(session, ws_url(right) + "?access_token=t1")
        c = await RawClient.connect(session, ws_url(left) + "?access_token=t1")
        await b.invoke("JoinGroup", "g")
        await a.invoke("SendToGroup", "g", "a", "group")
        assert await heard(b, 1) == [("a", "group")]
        assert await heard(a, 0) == []
        left_lifetime = left.lifetime("/chatHub")
        await left_lifetime.send("user", "u1", "ReceiveMessage", ("srv", "user"))
        assert await heard(b, 1) == [("srv", "user")]
        assert await heard(c, 1) == [("srv", "user")]
        (b_id,) = right.lifetime("/chatHub").connections
        await left_lifetime.send("connection", b_id, "ReceiveMessage", ("srv", "direct"))
        assert await heard(b, 1) == [("srv", "direct")]
        assert await heard(a, 0) == [] and await heard(c, 0) == []
        for client in (a, b, c):
            await client.close()


async def test_broadcast_is_encoded_once_per_protocol(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pair() as (left, _right):
        clients = [await RawClient.connect(session, ws_url(left)) for _ in range(5)]
        encoded: list[Any] = []
        original = JsonHubProtocol.encode

        def counting_encode(self: JsonHubProtocol, message: Any) -> bytes:
            if isinstance(message, InvocationMessage) and message.target == "ReceiveMessage":
                encoded.append(message)  # the server's broadcast, not the test clients' own calls
            return original(self, message)

        monkeypatch.setattr(JsonHubProtocol, "encode", counting_encode)
        await clients[0].invoke("SendMessage", "x", "once")
        for client in clients:
            assert await heard(client, 1) == [("x", "once")]
        assert len(encoded) == 1
        for client in clients:
            await client.close()


@pytest.mark.parametrize(("mode", "local_copies"), [(RoutingMode.DIRECT_LOCAL, 1), (RoutingMode.VIA_BACKPLANE, 0)])
async def test_stopped_backplane_counts_losses_and_routing_decides_local_delivery(
    session: aiohttp.ClientSession, mode: RoutingMode, local_copies: int
) -> None:
    async with pair(mode) as (left, right):
        a = await RawClient.connect(session, ws_url(left))
        c = await RawClient.connect(session, ws_url(right))
        await left.backplane.stop()
        completion = await a.invoke("SendMessage", "a", "lost")
        assert completion.error is None
        assert left.backplane.losses == 1
        health = left.health()
        assert health["status"] == "degraded" and health["losses"] == 1
        assert len(await heard(a, local_copies)) == local_copies
        assert await heard(c, 0) == []
        for client in (a, c):
            await client.close()


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    raise_open_file_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY


def test_public_api_is_pinned() -> None:
    import simscale.hub as hub

    assert sorted(hub.__all__) == [
        "AnonymousAuthenticator",
        "AuthenticationError",
        "Authenticator",
        "ChatHub",
        "ClientProxy",
        "GroupManager",
        "Hub",
        "HubClients",
        "HubConnection",
        "HubCounters",
        "HubError",
        "HubServer",
        "HubSettings",
        "StaticTokenAuthenticator",
        "TokenIsUserAuthenticator",
        "TransportSettings",
        "TransportType",
    ]
    for name in hub.__all__:
        assert getattr(hub, name) is not None


def test_hub_depends_only_on_protocol_backplane_and_configuration() -> None:
    import ast
    from pathlib import Path

    import simscale.hub

    package = Path(simscale.hub.__file__).parent
    # simscale.config is the bottom layer (it imports nothing of simscale): the settings' field helper lives there.
    allowed = ("simscale.hub", "simscale.protocol", "simscale.backplane", "simscale.metrics", "simscale.config")
    for module in package.glob("*.py"):  # the clients live in simscale.client: the hub is the server only
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("simscale"):
                assert node.module.startswith(allowed), f"{module.name} imports {node.module}"


async def test_group_changes_for_a_connection_on_another_server_are_acknowledged(
    session: aiohttp.ClientSession,
) -> None:
    async with pair() as (left, right):
        a = await RawClient.connect(session, ws_url(left))
        b = await RawClient.connect(session, ws_url(right), "messagepack")
        (b_id,) = right.lifetime("/chatHub").connections
        left_lifetime = left.lifetime("/chatHub")
        await left_lifetime.add_to_group(b_id, "remote")  # returns after right's ack
        assert "remote" in right.lifetime("/chatHub").groups
        await a.invoke("SendToGroup", "remote", "a", "via command")
        assert await heard(b, 1) == [("a", "via command")]
        await left_lifetime.remove_from_group(b_id, "remote")
        await a.invoke("SendToGroup", "remote", "a", "after removal")
        assert await heard(b, 0) == []
        left_lifetime.group_ack_timeout_s = 0.2
        with pytest.raises(LookupError):
            await left_lifetime.add_to_group("nobody-has-this-id", "remote")
        for client in (a, b):
            await client.close()


@pytest.mark.parametrize("backplane", ["memory", "redis"])
async def test_a_remote_group_join_the_owner_refuses_fails_with_its_reason(
    session: aiohttp.ClientSession, request: pytest.FixtureRequest, backplane: str
) -> None:
    """The owner's refusal travels back in the ack: the sender's join fails, it is not acknowledged as made."""
    from simscale.backplane.redis_backplane import RedisBackplane
    from simscale.hub import HubError

    bus = MemoryBus()
    redis_url = request.getfixturevalue("redis_url") if backplane == "redis" else ""
    servers = [
        HubServer(
            backplane=RedisBackplane(redis_url, server_name=name)
            if backplane == "redis"
            else MemoryBackplane(bus, server_name=name),
            settings=HubSettings(max_groups_per_connection=1),
        )
        for name in ("left", "right")
    ]
    for server in servers:
        await server.listen("127.0.0.1", 0)
    left, right = servers
    try:
        a = await RawClient.connect(session, ws_url(left))
        b = await RawClient.connect(session, ws_url(right))
        (b_id,) = right.lifetime("/chatHub").connections
        assert (await b.invoke("JoinGroup", "first")).error is None
        left_lifetime = left.lifetime("/chatHub")
        with pytest.raises(HubError, match=r"max_groups_per_connection \(1\)"):
            await left_lifetime.add_to_group(b_id, "second")
        assert right.lifetime("/chatHub").groups.keys() == {"first"}
        assert right.counters.group_refusals == 1
        # A change the owner makes is still acknowledged as made.
        await left_lifetime.remove_from_group(b_id, "first")
        await left_lifetime.add_to_group(b_id, "second")
        assert right.lifetime("/chatHub").groups.keys() == {"second"}
        await a.invoke("SendToGroup", "second", "a", "joined remotely")
        assert await heard(b, 1) == [("a", "joined remotely")]
        for client in (a, b):
            await client.close()
    finally:
        for server in servers:
            await server.close()
