"""The hub on the wire of a real Redis, in ASP.NET Core's layout, checked with plain redis-py.

* what the hub publishes for ``SendMessage`` is ``[excluded_ids, {"json": …, "messagepack": …}, marker]`` on
  ``SimScale.ChatHub:all``, each payload a ready-to-write hub frame, the marker ``[origin, sequence]`` a
  third item that ASP.NET Core's reader skips;
* a payload built by hand in that layout and published to ``{prefix}:all`` with plain redis-py
  reaches the hub's clients in both protocols.
"""

from __future__ import annotations

import asyncio

import aiohttp
import msgpack
import pytest
import redis.asyncio as redis_asyncio
from hub_testing import RawClient, ServerProcess

from simscale.protocol import InvocationMessage
from simscale.protocol.json_protocol import JsonHubProtocol
from simscale.protocol.msgpack_protocol import MessagePackHubProtocol

pytestmark = [pytest.mark.redis]

CHANNEL = "SimScale.ChatHub:all"


async def next_message(pubsub: redis_asyncio.client.PubSub, timeout_s: float = 5.0) -> bytes:
    async with asyncio.timeout(timeout_s):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout_s)
            if message is not None:
                data: bytes = message["data"]
                return data


async def test_hub_publishes_the_aspnet_layout_and_accepts_a_hand_built_payload(redis_url: str) -> None:
    watcher = redis_asyncio.Redis.from_url(redis_url)
    pubsub = watcher.pubsub()
    await pubsub.subscribe(CHANNEL)
    try:
        async with ServerProcess("--backplane", redis_url) as server, aiohttp.ClientSession() as session:
            text_client = await RawClient.connect(session, server.ws, "json")
            binary_client = await RawClient.connect(session, server.ws, "messagepack")

            await text_client.invoke("SendMessage", "alice", "over redis")
            excluded, payloads, *rest = msgpack.unpackb(await next_message(pubsub), raw=False)
            assert excluded == []
            assert set(payloads) == {"json", "messagepack"}
            assert payloads["json"].endswith(b"\x1e")
            for protocol_name, protocol in (("json", JsonHubProtocol()), ("messagepack", MessagePackHubProtocol())):
                [decoded] = protocol.new_parser().feed(payloads[protocol_name])
                assert isinstance(decoded, InvocationMessage)
                assert decoded.target == "ReceiveMessage"
                assert list(decoded.arguments) == ["alice", "over redis"]
            # One more item only, our origin marker with the publish number on ``all``: ASP.NET Core reads a
            # third item only when there are more than three, so it never sees it.
            [[origin, sequence]] = rest
            assert isinstance(origin, str) and origin and sequence == 1

            by_hand = InvocationMessage("ReceiveMessage", ("redis-cli", "hand-built"))
            envelope = msgpack.packb(
                [
                    [],
                    {
                        "json": JsonHubProtocol().encode(by_hand),
                        "messagepack": MessagePackHubProtocol().encode(by_hand),
                    },
                ],
                use_bin_type=True,
            )
            assert await watcher.publish(CHANNEL, envelope) >= 1  # the hub is subscribed
            for client in (text_client, binary_client):
                async with asyncio.timeout(5.0):
                    while True:
                        message = await client.receive()
                        if isinstance(message, InvocationMessage) and message.arguments[1] == "hand-built":
                            break
                assert message.target == "ReceiveMessage" and list(message.arguments) == ["redis-cli", "hand-built"]
            await text_client.close()
            await binary_client.close()
    finally:
        await pubsub.aclose()
        await watcher.aclose()
