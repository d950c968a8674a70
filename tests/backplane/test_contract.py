"""One contract, every backend: the same tests run against the in-memory and the Redis backplane.

A "cluster" fixture builds started backplanes that can hear each other (one `MemoryBus`, or one Redis).
Checks that nothing *more* arrives use a barrier instead of sleeps: after the message under test, a
marker is published on a channel the receiver does hear; channels are delivered in publish order by both
backends, so once the marker is in, anything that was going to arrive has arrived.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import redis
from backplane_testing import Inbox, eventually

from simscale.backplane import (
    Backplane,
    BackplaneState,
    BackplaneUnavailable,
    MemoryBackplane,
    MemoryBus,
    RedisBackplane,
)
from simscale.backplane.redis_server import RedisServer


@dataclass
class Cluster:
    """Started backplanes sharing one transport, plus a view of the transport's own subscriptions."""

    kind: str
    build: Callable[[], Backplane]
    transport_subscribers: Callable[[str], int]
    members: list[Backplane] = field(default_factory=list)

    async def server(self, start: bool = True) -> Backplane:
        backplane = self.build()
        self.members.append(backplane)
        if start:
            await backplane.start()
        return backplane


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    names = (f"server-{i}" for i in itertools.count())
    if request.param == "memory":
        bus = MemoryBus()
        result = Cluster("memory", lambda: MemoryBackplane(bus, server_name=next(names)), bus.subscriber_count)
    else:
        url: str = request.getfixturevalue("redis_url")
        admin = redis.Redis.from_url(url)

        def numsub(channel: str) -> int:
            return int(admin.pubsub_numsub(channel)[0][1])

        result = Cluster("redis", lambda: RedisBackplane(url, server_name=next(names)), numsub)
    try:
        yield result
    finally:
        for backplane in result.members:
            await backplane.stop()
        if request.param == "redis":
            admin.close()


async def barrier(sender: Backplane, receiver: Backplane, channel: str = "test:barrier") -> None:
    """Returns once a marker published after everything before it has reached ``receiver``."""
    marker = Inbox()
    await receiver.subscribe(channel, marker)
    payload = os.urandom(8)
    await sender.publish(channel, payload)
    await marker.wait_for_payload(payload)
    await receiver.unsubscribe(channel, marker)


async def test_publish_reaches_every_subscriber_exactly_once(cluster: Cluster) -> None:
    servers = [await cluster.server() for _ in range(3)]
    inboxes = [Inbox() for _ in servers]
    for server, inbox in zip(servers, inboxes, strict=True):
        await server.subscribe("hub:all", inbox)
    second_handler = Inbox()
    await servers[1].subscribe("hub:all", second_handler)

    await servers[0].publish("hub:all", b"one")
    for inbox in [*inboxes, second_handler]:
        await inbox.wait_for_count(1)
    for server in servers:
        await barrier(servers[0], server)

    for inbox in [*inboxes, second_handler]:
        assert inbox.messages == [("hub:all", b"one")]
    assert cluster.transport_subscribers("hub:all") == 3


async def test_only_subscribers_of_the_channel_receive(cluster: Cluster) -> None:
    sender, member, other = [await cluster.server() for _ in range(3)]
    member_inbox, other_inbox = Inbox(), Inbox()
    await member.subscribe("hub:group:room", member_inbox)
    await other.subscribe("hub:group:lobby", other_inbox)

    await sender.publish("hub:group:room", b"to room")
    await member_inbox.wait_for_count(1)
    await barrier(sender, other)
    assert other_inbox.messages == []


async def test_unsubscribe_stops_delivery(cluster: Cluster) -> None:
    sender, receiver = await cluster.server(), await cluster.server()
    inbox = Inbox()
    await receiver.subscribe("hub:group:g", inbox)
    await sender.publish("hub:group:g", b"before")
    await inbox.wait_for_count(1)

    await receiver.unsubscribe("hub:group:g")
    await sender.publish("hub:group:g", b"after")
    await barrier(sender, receiver)

    assert inbox.payloads() == [b"before"]
    assert receiver.channels == ()
    assert cluster.transport_subscribers("hub:group:g") == 0


async def test_subscriptions_are_reference_counted(cluster: Cluster) -> None:
    sender, receiver = await cluster.server(), await cluster.server()
    inbox = Inbox()
    # Two local members joined the same group: two references, one transport subscription.
    await receiver.subscribe("hub:group:g", inbox)
    await receiver.subscribe("hub:group:g", inbox)
    assert receiver.subscription_count("hub:group:g") == 2
    assert cluster.transport_subscribers("hub:group:g") == 1

    await sender.publish("hub:group:g", b"both members")
    await barrier(sender, receiver)
    assert inbox.payloads() == [b"both members"]  # once per server, not once per reference

    await receiver.unsubscribe("hub:group:g", inbox)
    assert receiver.subscription_count("hub:group:g") == 1
    await sender.publish("hub:group:g", b"one member left")
    await barrier(sender, receiver)
    assert inbox.payloads() == [b"both members", b"one member left"]
    assert cluster.transport_subscribers("hub:group:g") == 1

    await receiver.unsubscribe("hub:group:g", inbox)
    assert receiver.subscription_count("hub:group:g") == 0
    # UNSUBSCRIBE is not awaited for confirmation (late messages are dropped locally anyway).
    await eventually(lambda: cluster.transport_subscribers("hub:group:g") == 0)
    await sender.publish("hub:group:g", b"nobody left")
    await barrier(sender, receiver)
    assert inbox.payloads() == [b"both members", b"one member left"]


async def test_unsubscribe_of_unknown_channel_or_handler_is_ignored(cluster: Cluster) -> None:
    server = await cluster.server()
    inbox = Inbox()
    await server.unsubscribe("hub:never")
    await server.subscribe("hub:ch", inbox)
    await server.unsubscribe("hub:ch", Inbox())  # not subscribed: no effect
    assert server.subscription_count("hub:ch") == 1


async def test_messages_keep_their_order_per_channel(cluster: Cluster) -> None:
    sender, receiver = await cluster.server(), await cluster.server()
    inbox = Inbox()
    await receiver.subscribe("hub:all", inbox)
    sent = [i.to_bytes(4, "big") for i in range(300)]
    for payload in sent:
        await sender.publish("hub:all", payload)
    await inbox.wait_for_count(len(sent))
    assert inbox.payloads() == sent


PAYLOADS = [
    b"",
    b"\x00",
    b"\x1e",
    b'{"type":1,"target":"send","arguments":["hi"]}\x1e',
    bytes(range(256)),
    b"\xff\xfe not utf-8 \xc3\x28",
    os.urandom(512 * 1024),
]


async def test_payload_bytes_arrive_intact(cluster: Cluster) -> None:
    sender, receiver = await cluster.server(), await cluster.server()
    inbox = Inbox()
    await receiver.subscribe("hub:all", inbox)
    for payload in PAYLOADS:
        await sender.publish("hub:all", payload)
    await inbox.wait_for_count(len(PAYLOADS))
    assert inbox.payloads() == PAYLOADS
    assert all(type(p) is bytes for p in inbox.payloads())


async def test_counters(cluster: Cluster) -> None:
    sender, receiver = await cluster.server(), await cluster.server()
    inbox = Inbox()
    await receiver.subscribe("hub:all", inbox)
    for i in range(5):
        await sender.publish("hub:all", b"%d" % i)
    await sender.publish("hub:nobody-listens", b"still a publish")
    await inbox.wait_for_count(5)
    assert (sender.publishes, sender.losses, sender.reconnects) == (6, 0, 0)
    assert receiver.received == 5
    assert receiver.publishes == 0

    await sender.stop()
    with pytest.raises(BackplaneUnavailable):
        await sender.publish("hub:all", b"lost")
    assert (sender.publishes, sender.losses) == (6, 1)


async def test_state_follows_start_and_stop(cluster: Cluster) -> None:
    server = await cluster.server(start=False)
    states = [server.state]
    await server.start()
    await server.start()  # idempotent
    states.append(server.state)
    await server.stop()
    await server.stop()
    states.append(server.state)
    assert states == [BackplaneState.STOPPED, BackplaneState.CONNECTED, BackplaneState.STOPPED]


async def test_subscribe_returns_once_the_subscription_is_active(cluster: Cluster) -> None:
    # A send from another server right after JoinGroup must arrive: no sleep between the two.
    receiver, sender = await cluster.server(), await cluster.server()
    for i in range(25):
        inbox = Inbox()
        channel = f"hub:group:join-{i}"
        await receiver.subscribe(channel, inbox)
        await sender.publish(channel, b"right after join")
        await inbox.wait_for_count(1, timeout_s=2.0)


async def test_concurrent_subscribes_all_wait_for_the_subscription(cluster: Cluster) -> None:
    receiver, sender = await cluster.server(), await cluster.server()
    first, second = Inbox(), Inbox()
    await asyncio.gather(receiver.subscribe("hub:g", first), receiver.subscribe("hub:g", second))
    await sender.publish("hub:g", b"x")
    await first.wait_for_count(1, timeout_s=2.0)
    await second.wait_for_count(1, timeout_s=2.0)


async def test_subscriptions_made_before_start_and_kept_across_restart(cluster: Cluster) -> None:
    sender = await cluster.server()
    receiver = await cluster.server(start=False)
    inbox = Inbox()
    await receiver.subscribe("hub:all", inbox)
    await receiver.start()
    await sender.publish("hub:all", b"first")
    await inbox.wait_for_count(1)

    await receiver.stop()
    await receiver.start()
    await sender.publish("hub:all", b"second")
    await inbox.wait_for_count(2)
    assert inbox.payloads() == [b"first", b"second"]


async def test_a_failing_handler_does_not_stop_delivery(cluster: Cluster) -> None:
    sender, receiver = await cluster.server(), await cluster.server()

    def broken(channel: str, payload: bytes) -> None:
        raise RuntimeError("handler bug")

    inbox = Inbox()
    plain: list[bytes] = []
    await receiver.subscribe("hub:a", broken)
    await receiver.subscribe("hub:b", inbox)
    await receiver.subscribe("hub:b", lambda channel, payload: plain.append(payload))  # sync handler
    await sender.publish("hub:a", b"boom")
    await sender.publish("hub:b", b"fine")
    await inbox.wait_for_count(1)
    assert plain == [b"fine"]


async def test_bad_arguments_are_rejected(cluster: Cluster) -> None:
    server = await cluster.server()
    with pytest.raises(ValueError, match="channel"):
        await server.publish("", b"x")
    with pytest.raises(TypeError, match="payload"):
        await server.publish("hub:all", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler"):
        await server.subscribe("hub:all", None)  # type: ignore[arg-type]
    assert server.losses == 0


async def test_names_follow_the_prefix(cluster: Cluster) -> None:
    server = await cluster.server()
    assert server.names.all == "SimScale.ChatHub:all"
    assert server.server_name.startswith("server-")


async def test_memory_backplanes_without_a_bus_share_the_process_bus() -> None:
    inbox = Inbox()
    async with MemoryBackplane() as one, MemoryBackplane() as two:
        assert one.bus is two.bus is MemoryBus.shared()
        await two.subscribe("hub:shared-bus-test", inbox)
        await one.publish("hub:shared-bus-test", b"same process")
        await inbox.wait_for_count(1)
    assert MemoryBus.shared().subscriber_count("hub:shared-bus-test") == 0


async def test_a_handler_may_subscribe_and_wait_for_it(cluster: Cluster) -> None:
    # A group command arriving on one channel makes the server join a group channel (as ASP.NET
    # Core does for connections it owns); that subscribe must not wait on the very task delivering.
    sender, receiver = await cluster.server(), await cluster.server()
    joined = Inbox()
    done = asyncio.Event()

    async def on_command(channel: str, payload: bytes) -> None:
        await receiver.subscribe(f"hub:group:{payload.decode()}", joined)
        done.set()

    await receiver.subscribe("hub:internal:groups", on_command)
    await sender.publish("hub:internal:groups", b"room")
    async with asyncio.timeout(2.0):
        await done.wait()
    await sender.publish("hub:group:room", b"welcome")
    await joined.wait_for_count(1, timeout_s=2.0)


async def test_a_handler_may_stop_its_own_backplane(cluster: Cluster) -> None:
    sender, receiver = await cluster.server(), await cluster.server()
    stopped = asyncio.Event()

    async def stop_now(channel: str, payload: bytes) -> None:
        await receiver.stop()
        stopped.set()

    await receiver.subscribe("hub:stop", stop_now)
    await sender.publish("hub:stop", b"")
    async with asyncio.timeout(3.0):
        await stopped.wait()
    states = [receiver.state]
    await receiver.start()  # and it can come back
    states.append(receiver.state)
    assert states == [BackplaneState.STOPPED, BackplaneState.CONNECTED]


async def test_a_burst_of_concurrent_publishes_arrives_whole(cluster: Cluster) -> None:
    """A hub that falls behind sends its broadcasts in bursts: hundreds of publishes at once."""
    sender, receiver = await cluster.server(), await cluster.server()
    inbox = Inbox()
    await receiver.subscribe("test:burst", inbox)
    payloads = [index.to_bytes(4, "big") for index in range(500)]
    await asyncio.gather(*(sender.publish("test:burst", payload) for payload in payloads))
    await inbox.wait_for_count(len(payloads))
    assert sorted(inbox.payloads("test:burst")) == payloads
    assert sender.losses == 0 and sender.publishes >= len(payloads)
    assert sender.state is BackplaneState.CONNECTED


async def test_concurrent_publishes_arrive_in_the_order_they_were_called(cluster: Cluster) -> None:
    """The hub does not wait for one publish before the next (a burst goes out together), so a backend
    must keep the call order of concurrent publishes: that is one sender's order on the other servers."""
    sender, receiver = await cluster.server(), await cluster.server()
    inbox = Inbox()
    await receiver.subscribe("test:order", inbox)
    await receiver.subscribe("test:other", inbox)
    calls = [("test:order" if index % 3 else "test:other", index.to_bytes(4, "big")) for index in range(600)]
    await asyncio.gather(*(sender.publish(channel, payload) for channel, payload in calls))
    await inbox.wait_for_count(len(calls))
    assert inbox.messages == calls
    assert sender.losses == 0


# ------------------------------------------------------------------------------------------ outages
@dataclass
class Outage:
    """Backplanes over a transport the test can take down and bring back (a MemoryBus, or its own Redis)."""

    kind: str
    build: Callable[[], Backplane]
    go_down: Callable[[], None]
    come_back: Callable[[], None]
    members: list[Backplane] = field(default_factory=list)

    def server(self) -> Backplane:
        backplane = self.build()
        self.members.append(backplane)
        return backplane


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def outage(request: pytest.FixtureRequest) -> AsyncIterator[Outage]:
    names = (f"server-{i}" for i in itertools.count())
    if request.param == "memory":
        bus = MemoryBus()
        result = Outage("memory", lambda: MemoryBackplane(bus, server_name=next(names)), bus.go_down, bus.come_back)
        yield result
    else:
        with RedisServer() as own:  # this test kills it: never the session's shared server
            fast = {"reconnect_base_delay_s": 0.05, "reconnect_max_delay_s": 0.2, "connect_timeout_s": 0.5}
            result = Outage(
                "redis",
                lambda: RedisBackplane(own.url, server_name=next(names), **fast),  # type: ignore[arg-type]
                own.kill,
                own.restart,
            )
            yield result
            for backplane in result.members:
                await backplane.stop()
            return
    for backplane in result.members:
        await backplane.stop()


async def test_an_outage_loses_publishes_then_every_subscription_comes_back(outage: Outage) -> None:
    sender, receiver = outage.server(), outage.server()
    await sender.start()
    await receiver.start()
    kept, inbox = Inbox(), Inbox()
    await receiver.subscribe("hub:all", kept)
    await receiver.subscribe("hub:group:left", inbox)

    outage.go_down()
    await sender.wait_for_state(BackplaneState.RECONNECTING, timeout_s=3.0)
    await receiver.wait_for_state(BackplaneState.RECONNECTING, timeout_s=3.0)
    with pytest.raises(BackplaneUnavailable):
        await sender.publish("hub:all", b"lost in the outage")
    assert sender.losses == 1
    # Asked for and dropped while down: neither raises, both are honoured once the transport is back.
    await asyncio.wait_for(receiver.subscribe("hub:group:joined", inbox), timeout=1.0)
    await asyncio.wait_for(receiver.unsubscribe("hub:group:left", inbox), timeout=1.0)
    assert receiver.channels == ("hub:all", "hub:group:joined")

    outage.come_back()
    await sender.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
    await receiver.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
    assert sender.reconnects == 1 and receiver.reconnects == 1
    for channel in ("hub:group:left", "hub:group:joined", "hub:all"):
        await sender.publish(channel, channel.encode())
    await kept.wait_for_count(1)
    await barrier(sender, receiver)
    assert kept.payloads() == [b"hub:all"]
    assert inbox.payloads() == [b"hub:group:joined"]


async def test_start_while_down_keeps_trying_when_asked(outage: Outage) -> None:
    sender, receiver = outage.server(), outage.server()
    await sender.start()
    outage.go_down()
    await sender.wait_for_state(BackplaneState.RECONNECTING, timeout_s=3.0)

    with pytest.raises(BackplaneUnavailable):
        await receiver.start()
    assert receiver.state is BackplaneState.STOPPED
    await receiver.start(keep_trying=True)
    assert receiver.state is BackplaneState.RECONNECTING
    inbox = Inbox()
    await asyncio.wait_for(receiver.subscribe("hub:all", inbox), timeout=1.0)

    outage.come_back()
    await receiver.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
    await sender.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
    await sender.publish("hub:all", b"welcome")
    await inbox.wait_for_payload(b"welcome")


async def test_stop_during_an_outage_ends_the_reconnecting(outage: Outage) -> None:
    backplane = outage.server()
    await backplane.start(keep_trying=True)
    outage.go_down()
    await backplane.wait_for_state(BackplaneState.RECONNECTING, timeout_s=3.0)
    await backplane.stop()
    outage.come_back()
    await asyncio.sleep(0.5)  # time for a reconnection that must not happen
    assert backplane.state is BackplaneState.STOPPED


async def test_an_outage_counts_one_gap_and_its_seconds(outage: Outage) -> None:
    backplane, never_connected = outage.server(), outage.server()
    await backplane.start()
    assert backplane.gaps == 0 and backplane.gap_seconds == 0.0
    outage.go_down()
    await backplane.wait_for_state(BackplaneState.RECONNECTING, timeout_s=3.0)
    assert backplane.gaps == 1
    await never_connected.start(keep_trying=True)  # a transport never reached opens no gap
    await asyncio.sleep(0.3)
    assert backplane.gap_seconds >= 0.3  # a running gap counts up to now
    outage.come_back()
    await backplane.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
    await never_connected.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
    closed_s = backplane.gap_seconds
    assert backplane.gaps == 1 and closed_s >= 0.3
    assert never_connected.gaps == 0 and never_connected.gap_seconds == 0.0
    await asyncio.sleep(0.1)
    assert backplane.gap_seconds == closed_s  # connected again: the total stands still
    await backplane.stop()
    assert backplane.gaps == 1  # a stop is not a gap
