"""Negotiate (versions 0 and 1), the WebSocket attach rules, capacity and authentication."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from hub_testing import RawClient, running_server, ws_url

from simscale.hub import HubSettings, StaticTokenAuthenticator


async def test_negotiate_v1_returns_a_separate_secret_token(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        response = await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")
        assert response.status == 200
        body = await response.json()
        assert body["negotiateVersion"] == 1
        assert body["connectionToken"] != body["connectionId"]
        assert body["availableTransports"] == [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]
        assert "useStatefulReconnect" not in body
        client = await RawClient.connect(session, ws_url(server) + f"?id={body['connectionToken']}")
        assert (await client.invoke("Echo", 1)).result == 1
        await client.close()


async def test_negotiate_without_version_is_v0_and_id_is_the_connection_id(
    session: aiohttp.ClientSession,
) -> None:
    async with running_server() as server:
        body = await (await session.post(f"{server.url}/chatHub/negotiate")).json()
        assert body["negotiateVersion"] == 0
        assert "connectionToken" not in body
        client = await RawClient.connect(session, ws_url(server) + f"?id={body['connectionId']}")
        assert (await client.invoke("Echo", "v0")).result == "v0"
        await client.close()


async def test_stateful_reconnect_is_never_offered(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        url = f"{server.url}/chatHub/negotiate?negotiateVersion=1&useStatefulReconnect=true"
        body = await (await session.post(url)).json()
        assert "useStatefulReconnect" not in body


async def test_unknown_id_is_404_and_second_socket_is_409(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
            await session.ws_connect(ws_url(server) + "?id=nope")
        assert unknown.value.status == 404
        token = (await (await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")).json())[
            "connectionToken"
        ]
        first = await RawClient.connect(session, ws_url(server) + f"?id={token}")
        with pytest.raises(aiohttp.WSServerHandshakeError) as second:
            await session.ws_connect(ws_url(server) + f"?id={token}")
        assert second.value.status == 409
        assert (await first.invoke("Echo", "first still works")).result == "first still works"
        await first.close()
        # A token is good for one socket only: after it closed, it is unknown.
        await asyncio.sleep(0.05)
        with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
            await session.ws_connect(ws_url(server) + f"?id={token}")
        assert reused.value.status == 404


async def test_skip_negotiation_creates_the_connection_on_upgrade(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server), "messagepack")
        assert (await client.invoke("Echo", b"\x00\x01")).result == b"\x00\x01"
        await client.close()


async def test_unused_tokens_expire(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(negotiate_ttl_s=0.2, sweep_interval_s=0.05)
    async with running_server(settings=settings) as server:
        token = (await (await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")).json())[
            "connectionToken"
        ]
        await asyncio.sleep(0.5)
        with pytest.raises(aiohttp.WSServerHandshakeError) as expired:
            await session.ws_connect(ws_url(server) + f"?id={token}")
        assert expired.value.status == 404


async def test_503_beyond_max_connections(session: aiohttp.ClientSession) -> None:
    async with running_server(settings=HubSettings(max_connections=2)) as server:
        clients = [await RawClient.connect(session, ws_url(server)) for _ in range(2)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url(server))
        assert refused.value.status == 503
        negotiate = await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")
        assert negotiate.status == 503
        assert server.counters.rejected_connections == 2
        await clients[0].close()
        deadline = time.monotonic() + 5
        while server.connection_count >= 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        late = await RawClient.connect(session, ws_url(server))  # room again
        assert (await late.invoke("Echo", 2)).result == 2
        for client in (clients[1], late):
            await client.close()


async def test_plain_get_without_upgrade_is_400(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        assert (await session.get(f"{server.url}/chatHub")).status == 400
        assert (await session.get(f"{server.url}/chatHub/negotiate")).status == 405


async def test_bearer_token_from_header_or_query_sets_the_user(session: aiohttp.ClientSession) -> None:
    authenticator = StaticTokenAuthenticator({"t-alice": "alice", "t-bob": "bob"})
    async with running_server(authenticator=authenticator) as server:
        negotiate = await session.post(f"{server.url}/chatHub/negotiate", headers={"Authorization": "Bearer nope"})
        assert negotiate.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url(server) + "?access_token=nope")
        assert refused.value.status == 401
        alice = await RawClient.connect(session, ws_url(server), headers={"Authorization": "Bearer t-alice"})
        bob = await RawClient.connect(session, ws_url(server) + "?access_token=t-bob")
        anonymous = await RawClient.connect(session, ws_url(server))
        lifetime = server.lifetime()
        assert set(lifetime.users) == {"alice", "bob"}
        # Clients.user reaches only that user's connections.
        await lifetime.send("user", "alice", "Whisper", ("for alice",))
        message = await alice.receive()
        assert message.target == "Whisper" and message.arguments == ("for alice",)  # type: ignore[union-attr]
        assert (await bob.invoke("Echo", "no whisper first")).result == "no whisper first"
        assert not [m for m in bob.inbox if getattr(m, "target", None) == "Whisper"]
        for client in (alice, bob, anonymous):
            await client.close()


async def test_two_sockets_racing_for_one_token_get_one_connection(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        token = (await (await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")).json())[
            "connectionToken"
        ]
        results = await asyncio.gather(
            *(session.ws_connect(ws_url(server) + f"?id={token}") for _ in range(4)), return_exceptions=True
        )
        sockets = [r for r in results if isinstance(r, aiohttp.ClientWebSocketResponse)]
        refused = [r for r in results if isinstance(r, aiohttp.WSServerHandshakeError)]
        assert len(sockets) == 1 and len(refused) == 3
        assert {r.status for r in refused} <= {404, 409}
        for ws in sockets:
            await ws.close()


async def negotiate_from(url: str, local_host: str) -> int:
    """POST a negotiate from ``local_host`` (any 127.x address is loopback on Linux); the HTTP status."""
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        return (await other.post(f"{url}/chatHub/negotiate?negotiateVersion=1")).status


async def test_negotiating_without_connecting_locks_nobody_out(session: aiohttp.ClientSession) -> None:
    async with running_server(settings=HubSettings(max_connections=5)) as server:
        tokens = []
        for _ in range(20):  # four times max_connections, no WebSocket opened
            response = await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")
            assert response.status == 200
            tokens.append((await response.json())["connectionToken"])
        skipping = await RawClient.connect(session, ws_url(server))  # skipNegotiation
        negotiated = await RawClient.connect(session, ws_url(server) + f"?id={tokens[0]}")
        assert (await skipping.invoke("Echo", 1)).result == 1
        assert (await negotiated.invoke("Echo", 2)).result == 2
        assert server.health()["reservations"] == 19
        for client in (skipping, negotiated):
            await client.close()


async def test_reservations_are_capped_overall_and_per_address(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(max_reservations=5, max_reservations_per_address=3)
    async with running_server(settings=settings) as server:
        url = server.url or ""
        assert [await negotiate_from(url, "127.0.0.1") for _ in range(4)] == [200, 200, 200, 429]
        assert [await negotiate_from(url, "127.0.0.2") for _ in range(2)] == [200, 200]
        assert await negotiate_from(url, "127.0.0.3") == 503  # five held over all
        # Neither cap keeps a WebSocket out.
        skipping = await RawClient.connect(session, ws_url(server))
        assert (await skipping.invoke("Echo", "in")).result == "in"
        assert server.counters.reservation_refusals == 2
        text = await (await session.get(f"{url}/metrics")).text()
        assert "simscale_hub_reservation_refusals_total 2" in text.splitlines()
        await skipping.close()


async def test_an_expired_reservation_frees_its_place(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(max_reservations_per_address=1, negotiate_ttl_s=0.2, sweep_interval_s=0.05)
    async with running_server(settings=settings) as server:
        url = server.url or ""
        assert await negotiate_from(url, "127.0.0.1") == 200
        assert await negotiate_from(url, "127.0.0.1") == 429
        await asyncio.sleep(0.4)
        assert await negotiate_from(url, "127.0.0.1") == 200
        assert server.health()["reservations"] == 1
