"""Redis-only behaviour: wire compatibility with ASP.NET Core, passwords, outages, channel prefixes.

Every test talks to a real redis-server: the shared one from ``redis_url``, or its own `RedisServer`
when it needs to crash it or to set a password.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
import redis.asyncio as aioredis
from backplane_testing import Inbox, eventually

from simscale.backplane import (
    BackplaneState,
    BackplaneUnavailable,
    ChannelKind,
    ChannelNames,
    Envelope,
    MemoryBackplane,
    RedisBackplane,
    RedisServer,
    RedisTls,
    RoutingMode,
    accepts_from_backplane,
    create_backplane,
)
from simscale.backplane.redis_backplane import redact_url

pytestmark = pytest.mark.redis

NAMES = ChannelNames("SimScale.ChatHub")
JSON_FRAME = b'{"type":1,"target":"broadcast","arguments":["ann","hello"]}\x1e'
# VarInt length 0x0d, then [1, {}, nil, "broadcast", ["ann", "hello"]] in MessagePack.
MSGPACK_BODY = msgpack.packb([1, {}, None, "broadcast", ["ann", "hello"]])
MSGPACK_FRAME = bytes([len(MSGPACK_BODY)]) + MSGPACK_BODY


@pytest.fixture
async def plain_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client: what another implementation (or ASP.NET Core) would look like."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server this test may kill and restart without disturbing the others."""
    with RedisServer() as server:
        yield server


async def _next_message(pubsub: Any, timeout_s: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout_s)
            if message is not None:
                return dict(message)


async def test_plain_redis_client_decodes_what_the_backplane_publishes(
    redis_url: str, plain_redis: aioredis.Redis
) -> None:
    pubsub: Any = plain_redis.pubsub()  # redis-py leaves PubSub untyped
    await pubsub.subscribe(NAMES.all)
    async with RedisBackplane(redis_url, server_name="server-a") as backplane:
        envelope = Envelope(
            ChannelKind.ALL,
            "",
            {"json": JSON_FRAME, "messagepack": MSGPACK_FRAME},
            ("conn-1",),
            backplane.server_name,
        )
        await backplane.publish(backplane.names.all, envelope.encode())
        message = await _next_message(pubsub)
    await pubsub.aclose()

    assert message["channel"] == b"SimScale.ChatHub:all"
    raw: bytes = message["data"]
    assert raw[0] == 0x93  # fixarray of 3: ASP.NET Core's two items + our origin marker
    excluded, payloads, origin = msgpack.unpackb(raw, raw=False)
    assert excluded == ["conn-1"]
    assert payloads == {"json": JSON_FRAME, "messagepack": MSGPACK_FRAME}
    assert origin == "server-a"
    # Payloads travel as MessagePack 'bin' (what ASP.NET's ReadBytes expects), not 'str'.
    assert b"\xc4" + bytes([len(JSON_FRAME)]) + JSON_FRAME in raw


async def test_hand_built_aspnet_payload_is_received_and_decoded(redis_url: str, plain_redis: aioredis.Redis) -> None:
    hand_built = msgpack.packb([[], {"json": JSON_FRAME, "messagepack": MSGPACK_FRAME}], use_bin_type=True)
    inbox = Inbox()
    async with RedisBackplane(redis_url) as backplane:
        await backplane.subscribe(f"{NAMES.prefix}:all", inbox)
        receivers = await plain_redis.publish("SimScale.ChatHub:all", hand_built)
        await inbox.wait_for_count(1)

    assert receivers == 1
    channel, payload = inbox.messages[0]
    assert payload == hand_built
    address = NAMES.parse(channel)
    assert address is not None
    envelope = Envelope.decode(payload, address.kind, address.target)
    assert envelope.channel_kind is ChannelKind.ALL
    assert envelope.payload_for("json") == JSON_FRAME
    assert envelope.payload_for("messagepack") == MSGPACK_FRAME
    assert envelope.excluded_connection_ids == ()
    assert envelope.origin_server == ""  # ASP.NET Core sends no marker: never taken for our own echo
    assert accepts_from_backplane(RoutingMode.DIRECT_LOCAL, envelope.origin_server, backplane.server_name)


async def test_password_url_works_and_is_never_printed() -> None:
    with RedisServer(password="s3cr3t-pw") as server:
        assert server.url.startswith("redis://:s3cr3t-pw@127.0.0.1:")
        inbox = Inbox()
        async with (
            RedisBackplane(server.url) as sender,
            RedisBackplane(server.url) as receiver,
        ):
            await receiver.subscribe("hub:all", inbox)
            await sender.publish("hub:all", b"authenticated")
            await inbox.wait_for_count(1)
            assert "s3cr3t-pw" not in repr(sender)

        wrong = server.url.replace("s3cr3t-pw", "wrong-pw")
        with pytest.raises(BackplaneUnavailable) as failure:
            await RedisBackplane(wrong, connect_timeout_s=1.0).start()
        assert "wrong-pw" not in str(failure.value)
        missing = f"redis://127.0.0.1:{server.port}/0"
        with pytest.raises(BackplaneUnavailable):
            await RedisBackplane(missing, connect_timeout_s=1.0).start()


async def test_start_fails_fast_when_redis_is_unreachable(own_server: RedisServer) -> None:
    url = own_server.url
    own_server.stop()
    backplane = RedisBackplane(url, connect_timeout_s=0.5)
    started_s = time.monotonic()
    with pytest.raises(BackplaneUnavailable, match="cannot reach Redis"):
        await backplane.start()
    assert time.monotonic() - started_s < 1.5
    assert backplane.state is BackplaneState.STOPPED


async def test_outage_loses_messages_then_reconnects_and_resubscribes(own_server: RedisServer) -> None:
    fast = {"reconnect_base_delay_s": 0.05, "reconnect_max_delay_s": 0.2}
    sender = RedisBackplane(own_server.url, server_name="sender", **fast)  # type: ignore[arg-type]
    receiver = RedisBackplane(own_server.url, server_name="receiver", **fast)  # type: ignore[arg-type]
    inbox = Inbox()
    try:
        await sender.start()
        await receiver.start()
        await receiver.subscribe("hub:all", inbox)
        await receiver.subscribe("hub:group:room", inbox)
        await sender.publish("hub:all", b"before")
        await inbox.wait_for_count(1)

        own_server.kill()
        started_s = time.monotonic()
        with pytest.raises(BackplaneUnavailable):
            await sender.publish("hub:all", b"during")
        assert time.monotonic() - started_s < 1.0
        assert (sender.losses, sender.publishes) == (1, 1)

        await sender.wait_for_state(BackplaneState.RECONNECTING, timeout_s=2.0)
        await receiver.wait_for_state(BackplaneState.RECONNECTING, timeout_s=2.0)
        started_s = time.monotonic()
        with pytest.raises(BackplaneUnavailable):
            await sender.publish("hub:group:room", b"still down")
        assert time.monotonic() - started_s < 1.0
        assert sender.losses == 2
        # Asked for while Redis is down: recorded now, made when Redis is back.
        await asyncio.wait_for(receiver.subscribe("hub:user:ann", inbox), timeout=1.0)

        own_server.restart()
        await sender.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
        await receiver.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
        assert receiver.reconnects >= 1 and sender.reconnects >= 1

        for channel in ("hub:all", "hub:group:room", "hub:user:ann"):
            await sender.publish(channel, f"after on {channel}".encode())
        await inbox.wait_for_count(4)
        assert inbox.payloads() == [
            b"before",
            b"after on hub:all",
            b"after on hub:group:room",
            b"after on hub:user:ann",
        ]
        admin = redis.Redis.from_url(own_server.url)
        try:
            counts = dict(admin.pubsub_numsub("hub:all", "hub:group:room", "hub:user:ann"))
        finally:
            admin.close()
        assert counts == {b"hub:all": 1, b"hub:group:room": 1, b"hub:user:ann": 1}
    finally:
        await sender.stop()
        await receiver.stop()


async def test_publish_gives_up_within_its_deadline_when_redis_hangs(own_server: RedisServer) -> None:
    backplane = RedisBackplane(own_server.url, publish_timeout_s=0.3)
    await backplane.start()
    assert own_server.pid is not None
    os.kill(own_server.pid, signal.SIGSTOP)  # alive but silent, like a network partition
    try:
        started_s = time.monotonic()
        with pytest.raises(BackplaneUnavailable):
            await backplane.publish("hub:all", b"into the void")
        assert time.monotonic() - started_s < 1.0
        assert backplane.losses == 1
    finally:
        os.kill(own_server.pid, signal.SIGCONT)
        await backplane.stop()


async def test_health_check_notices_a_silent_redis(own_server: RedisServer) -> None:
    backplane = RedisBackplane(own_server.url, health_check_interval_s=0.1, reconnect_max_delay_s=0.2)
    await backplane.start()
    assert own_server.pid is not None
    os.kill(own_server.pid, signal.SIGSTOP)
    try:
        await backplane.wait_for_state(BackplaneState.RECONNECTING, timeout_s=2.0)
    finally:
        os.kill(own_server.pid, signal.SIGCONT)
    try:
        await backplane.wait_for_state(BackplaneState.CONNECTED, timeout_s=5.0)
    finally:
        await backplane.stop()


async def test_a_silent_redis_is_found_within_a_few_seconds_on_defaults_and_counted_as_a_gap(
    own_server: RedisServer,
) -> None:
    backplane = RedisBackplane(own_server.url, reconnect_max_delay_s=0.2)
    await backplane.start()
    assert own_server.pid is not None
    os.kill(own_server.pid, signal.SIGSTOP)  # alive but silent: no socket is closed
    stopped_s = time.monotonic()
    try:
        await backplane.wait_for_state(BackplaneState.RECONNECTING, timeout_s=6.0)
        detected_s = time.monotonic() - stopped_s
        assert detected_s < 4.0, f"found after {detected_s:.1f} s"
        assert backplane.gaps == 1
    finally:
        os.kill(own_server.pid, signal.SIGCONT)
    try:
        await backplane.wait_for_state(BackplaneState.CONNECTED, timeout_s=5.0)
        # The gap runs from the link's last sign of life, not from when the silence was noticed.
        assert backplane.gaps == 1 and backplane.gap_seconds >= detected_s
    finally:
        await backplane.stop()


async def test_gives_up_after_max_reconnect_attempts(own_server: RedisServer) -> None:
    backplane = RedisBackplane(
        own_server.url, reconnect_base_delay_s=0.01, reconnect_max_delay_s=0.02, max_reconnect_attempts=2
    )
    await backplane.start()
    own_server.kill()
    await backplane.wait_for_state(BackplaneState.STOPPED, timeout_s=3.0)
    with pytest.raises(BackplaneUnavailable):
        await backplane.publish("hub:all", b"x")
    await backplane.stop()


async def test_channel_prefix_isolates_two_apps_on_one_redis(redis_url: str, plain_redis: aioredis.Redis) -> None:
    app1_inbox, app2_inbox = Inbox(), Inbox()
    async with (
        RedisBackplane(redis_url, channel_prefix="app1:") as app1_sender,
        RedisBackplane(redis_url, channel_prefix="app1:") as app1_receiver,
        RedisBackplane(redis_url, channel_prefix="app2:") as app2_receiver,
    ):
        await app1_receiver.subscribe(app1_receiver.names.all, app1_inbox)
        await app2_receiver.subscribe(app2_receiver.names.all, app2_inbox)
        assert sorted(await plain_redis.pubsub_channels()) == [
            b"app1:SimScale.ChatHub:all",
            b"app2:SimScale.ChatHub:all",
        ]
        await app1_sender.publish(app1_sender.names.all, b"for app1")
        await app1_inbox.wait_for_count(1)
        # Barrier: app2 hears its own marker only after anything app1 published before it.
        await plain_redis.publish("app2:SimScale.ChatHub:all", b"marker")
        await app2_inbox.wait_for_count(1)
    # The handler sees the channel without the wire prefix, as the hub named it.
    assert app1_inbox.messages == [("SimScale.ChatHub:all", b"for app1")]
    assert app2_inbox.payloads() == [b"marker"]


async def test_sync_subscribers_count_is_one_per_server(redis_url: str, plain_redis: aioredis.Redis) -> None:
    # Two hub servers, many local members each: Redis sees one subscription per server.
    async with RedisBackplane(redis_url) as a, RedisBackplane(redis_url) as b:
        handler = Inbox()
        for _ in range(10):
            await a.subscribe("hub:group:g", handler)
            await b.subscribe("hub:group:g", handler)
        assert await plain_redis.publish("hub:group:g", b"x") == 2
        await eventually(lambda: len(handler.messages) == 2)


def test_create_backplane_dispatches_on_the_spec(redis_url: str) -> None:
    assert isinstance(create_backplane("memory"), MemoryBackplane)
    backplane = create_backplane(redis_url, prefix="App.Hub", server_name="s1")
    assert isinstance(backplane, RedisBackplane)
    assert backplane.names.all == "App.Hub:all"
    assert backplane.server_name == "s1"
    assert isinstance(create_backplane("rediss://:pw@example.invalid:6380/0"), RedisBackplane)
    for bad in ("kafka://broker:9092", "", "redis", "memory://"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            create_backplane(bad)


def test_constructor_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="redis://"):
        RedisBackplane("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="publish_timeout_s"):
        RedisBackplane("redis://127.0.0.1", publish_timeout_s=0)
    with pytest.raises(ValueError, match="reconnect_max_delay_s"):
        RedisBackplane("redis://127.0.0.1", reconnect_base_delay_s=1.0, reconnect_max_delay_s=0.5)
    with pytest.raises(ValueError, match="max_reconnect_attempts"):
        RedisBackplane("redis://127.0.0.1", max_reconnect_attempts=0)


def test_backoff_is_capped_exponential_with_jitter() -> None:
    backplane = RedisBackplane(
        "redis://127.0.0.1", reconnect_base_delay_s=0.1, reconnect_max_delay_s=2.0, rng=random.Random(7)
    )
    delays = [backplane._backoff_s(attempt) for attempt in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 2.0
    assert len(set(delays)) == len(delays)  # jittered, not lockstep


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("rediss://user:pw@host/1") == "rediss://user:***@host/1"
    assert redact_url("redis://host:6379") == "redis://host:6379"


@pytest.fixture
def tls_files(tmp_path: Path) -> RedisTls:
    """A throw-away CA and a server certificate for 127.0.0.1."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    files = RedisTls(
        cert_file=str(tmp_path / "server.pem"), key_file=str(tmp_path / "server.key"), ca_file=str(tmp_path / "ca.pem")
    )
    certificate.cert_chain_pems[0].write_to_path(files.cert_file)
    certificate.private_key_pem.write_to_path(files.key_file)
    authority.cert_pem.write_to_path(files.ca_file)
    return files


async def test_rediss_url_with_password_over_tls(tls_files: RedisTls) -> None:
    with RedisServer(password="tls-pw", tls=tls_files) as server:
        assert server.url.startswith("rediss://:tls-pw@127.0.0.1:")
        inbox = Inbox()
        async with create_backplane(server.url) as sender, create_backplane(server.url) as receiver:
            await receiver.subscribe("hub:all", inbox)
            await sender.publish("hub:all", b"encrypted")
            await inbox.wait_for_count(1)
        # The server speaks TLS only, and a client that does not trust its CA is refused.
        plain = f"redis://:tls-pw@127.0.0.1:{server.port}/0"
        untrusted = f"rediss://:tls-pw@127.0.0.1:{server.port}/0"
        for url in (plain, untrusted):
            with pytest.raises(BackplaneUnavailable):
                await RedisBackplane(url, connect_timeout_s=1.0).start()


async def test_unconfirmed_subscribe_is_kept_and_made_on_a_new_link(own_server: RedisServer) -> None:
    # A SUBSCRIBE Redis does not confirm in time means a stuck subscriber connection: the backplane keeps
    # the subscription, rebuilds the link and makes it there; the caller never sees an error.
    fast = {"reconnect_base_delay_s": 0.05, "reconnect_max_delay_s": 0.2, "connect_timeout_s": 0.5}
    backplane = RedisBackplane(own_server.url, subscribe_timeout_s=0.3, **fast)  # type: ignore[arg-type]
    sender = RedisBackplane(own_server.url)
    inbox = Inbox()
    await backplane.start()
    assert own_server.pid is not None
    os.kill(own_server.pid, signal.SIGSTOP)  # accepts bytes, answers nothing
    try:
        started_s = time.monotonic()
        await backplane.subscribe("hub:group:g", inbox)
        assert time.monotonic() - started_s < 1.0
        assert backplane.subscription_count("hub:group:g") == 1
        await backplane.wait_for_state(BackplaneState.RECONNECTING, timeout_s=2.0)
    finally:
        os.kill(own_server.pid, signal.SIGCONT)
    try:
        await backplane.wait_for_state(BackplaneState.CONNECTED, timeout_s=10.0)
        await sender.start()
        await sender.publish("hub:group:g", b"made on the new link")
        await inbox.wait_for_payload(b"made on the new link")
    finally:
        await sender.stop()
        await backplane.stop()


async def test_cancelled_subscribe_leaves_no_subscription_on_redis(own_server: RedisServer) -> None:
    # The hub bounds subscribe() with its own timeout; the SUBSCRIBE already sent must be taken back.
    backplane = RedisBackplane(own_server.url)
    await backplane.start()
    admin = redis.Redis.from_url(own_server.url)
    assert own_server.pid is not None
    try:
        os.kill(own_server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(backplane.subscribe("hub:group:late", Inbox()), timeout=0.2)
            await eventually(lambda: not backplane._background)  # the undo has been sent
        finally:
            os.kill(own_server.pid, signal.SIGCONT)
        assert backplane.subscription_count("hub:group:late") == 0
        # Confirmed on the same connection, so every command sent before it has been processed.
        await backplane.subscribe("hub:barrier", Inbox())
        assert admin.pubsub_numsub("hub:group:late", "hub:barrier") == [(b"hub:group:late", 0), (b"hub:barrier", 1)]
        assert backplane.state is BackplaneState.CONNECTED
    finally:
        admin.close()
        await backplane.stop()
