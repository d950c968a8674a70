"""Losses an operator can see: backplane gaps counted, with their seconds, and missed messages counted.

* in-process, over one `MemoryBus`: an outage is one gap in ``/health`` and ``/metrics``, and the messages
  published on ``all`` meanwhile are counted in ``backplane_losses_total`` by the server that missed them;
* with a real redis-server and two ``hub serve`` processes: the receiving server is frozen (SIGSTOP)
  while the other broadcasts, Redis drops its subscriber at its pub/sub output-buffer limit, and after
  SIGCONT the frozen server counts the gap and exactly the messages its client never got.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import aiohttp
import pytest
import redis
from hub_testing import RawClient, ServerProcess, ws_url

from simscale.backplane.memory import MemoryBackplane, MemoryBus
from simscale.backplane.redis_server import RedisServer
from simscale.hub import HubServer, HubSettings
from simscale.protocol import InvocationMessage


async def metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    text = await (await session.get(f"{url}/metrics")).text()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}


async def test_an_outage_is_a_gap_and_the_broadcasts_missed_meanwhile_are_losses(
    session: aiohttp.ClientSession,
) -> None:
    bus = MemoryBus()
    pair = [
        HubServer(backplane=MemoryBackplane(bus, server_name=name), settings=HubSettings(sweep_interval_s=0.05))
        for name in ("sender", "receiver")
    ]
    for server in pair:
        await server.listen("127.0.0.1", 0)
    sender, receiver = pair
    try:
        talker = await RawClient.connect(session, ws_url(sender))
        listener = await RawClient.connect(session, ws_url(receiver))
        await talker.invoke("SendMessage", "t", "before")
        assert (await listener.receive()).arguments == ("t", "before")  # type: ignore[union-attr]
        bus.go_down()
        for index in range(5):
            await talker.invoke("SendMessage", "t", f"lost {index}")
        await asyncio.sleep(0.2)
        assert receiver.health()["backplane"]["gaps"] == 1
        bus.come_back()
        await talker.invoke("SendMessage", "t", "after")
        assert (await listener.receive()).arguments == ("t", "after")  # type: ignore[union-attr]
        health = receiver.health()
        assert health["backplane"]["missed"] == 5 and health["losses"] == 5
        assert health["backplane"]["gap_seconds"] >= 0.2
        values = await metrics(session, receiver.url or "")
        assert values["simscale_hub_backplane_gaps_total"] == 1
        assert values["simscale_hub_backplane_gap_seconds_total"] >= 0.2
        assert values["simscale_hub_backplane_missed_total"] == 5
        assert values["simscale_hub_backplane_losses_total"] == 5
        assert sender.health()["losses"] == 5  # the sender could not publish them: its own losses
    finally:
        for server in pair:
            await server.close()


async def receive_indices(client: RawClient, seen: list[int]) -> None:
    """Note the index of every ReceiveMessage (the first six characters of its text)."""
    while True:
        message = await client.receive(timeout_s=60)
        if isinstance(message, InvocationMessage) and message.target == "ReceiveMessage":
            seen.append(int(message.arguments[1][:6]))


async def health_of(session: aiohttp.ClientSession, url: str) -> dict[str, object]:
    health: dict[str, object] = await (await session.get(f"{url}/health")).json()
    return health


@pytest.mark.redis
async def test_a_frozen_server_counts_its_gap_and_every_message_it_missed(session: aiohttp.ClientSession) -> None:
    payload = "x" * 8_000
    with RedisServer() as own:
        admin = redis.Redis.from_url(own.url)
        # Redis drops a pub/sub subscriber whose output buffer passes 256 KB (32 MB by default): the
        # same drop as in production, reached in a fraction of a second.
        admin.config_set("client-output-buffer-limit", "pubsub 262144 131072 1")
        admin.close()
        async with (
            ServerProcess("--backplane", own.url, "--name", "sender") as sending,
            ServerProcess("--backplane", own.url, "--name", "frozen") as frozen,
        ):
            assert frozen.process is not None
            talker = await RawClient.connect(session, sending.ws)
            listener = await RawClient.connect(session, frozen.ws)
            heard: list[int] = []
            echoed: list[int] = []
            readers = [
                asyncio.ensure_future(receive_indices(listener, heard)),
                asyncio.ensure_future(receive_indices(talker, echoed)),
            ]
            sent = 0

            async def broadcast() -> None:
                nonlocal sent
                await talker.send(InvocationMessage("SendMessage", ("t", f"{sent:06d}{payload}")))
                sent += 1

            try:
                await broadcast()
                async with asyncio.timeout(10):
                    while not heard:
                        await asyncio.sleep(0.01)
                os.kill(frozen.process.pid, signal.SIGSTOP)
                try:
                    frozen_until = time.monotonic() + 2.0
                    while time.monotonic() < frozen_until:  # 8 KB messages at about 200/s
                        await broadcast()
                        await asyncio.sleep(0.005)
                finally:
                    os.kill(frozen.process.pid, signal.SIGCONT)
                resumed_s = time.monotonic()
                detected_s = None
                async with asyncio.timeout(15):
                    while True:
                        health = await health_of(session, frozen.url)
                        backplane = health["backplane"]
                        assert isinstance(backplane, dict)
                        if detected_s is None and backplane["gaps"] == 1:
                            detected_s = time.monotonic() - resumed_s
                        if backplane["state"] == "connected" and backplane["gaps"] == 1:
                            break
                        await asyncio.sleep(0.05)
                for _ in range(5):  # after the gap: these arrive, and tell how many did not
                    await broadcast()
                async with asyncio.timeout(10):
                    while not heard or heard[-1] != sent - 1:
                        await asyncio.sleep(0.01)
            finally:
                for reader in readers:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await reader
            health = await health_of(session, frozen.url)
            backplane = health["backplane"]
            assert isinstance(backplane, dict)
            never_heard = sent - len(set(heard))
            print(
                f"sent {sent}, heard {len(heard)}, missed {backplane['missed']}, gap {backplane['gap_seconds']} s, "
                f"gap seen {detected_s:.2f} s after SIGCONT"
            )
            assert never_heard > 0, "Redis did not drop the frozen subscriber"
            assert backplane["missed"] == never_heard == health["losses"]
            assert backplane["gaps"] == 1 and float(backplane["gap_seconds"]) >= 1.5  # frozen for 2 s
            assert detected_s is not None and detected_s < 5.0
            values = await metrics(session, frozen.url)
            assert values["simscale_hub_backplane_losses_total"] == never_heard
            assert (await listener.invoke("Echo", "usable")).result == "usable"
