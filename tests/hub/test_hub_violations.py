"""Every protocol violation closes only the offending connection, with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random

import aiohttp
import pytest
from hub_testing import RawClient, running_server, ws_url

from simscale.hub import HubSettings

LIMIT_BYTES = 1024


@pytest.mark.parametrize(
    ("handshake", "fragment"),
    [
        (b"not json at all\x1e", "not valid UTF-8 JSON"),
        (b'["protocol","json"]\x1e', "must be a JSON object"),
        (b'{"protocol":"xml","version":1}\x1e', "Requested protocol 'xml' is not available."),
        (b'{"protocol":"json","version":3}\x1e', "version 3"),
        (b'{"protocol":"json"}\x1e', "integer 'version'"),
        (b"\xff\xfe\x1e", "UTF-8"),
        (b"x" * (LIMIT_BYTES + 10), "larger than"),
    ],
)
async def test_bad_handshakes_get_an_error_answer_then_close(
    session: aiohttp.ClientSession, handshake: bytes, fragment: str
) -> None:
    async with running_server(settings=HubSettings(max_message_bytes=LIMIT_BYTES)) as server:
        bystander = await RawClient.connect(session, ws_url(server))
        offender = await RawClient.connect(session, ws_url(server), handshake=False)
        await offender.send_binary(handshake)
        frames = await offender.expect_socket_closed()
        assert len(frames) == 1 and frames[0].endswith(b"\x1e")
        answer = json.loads(frames[0][:-1])
        assert fragment in answer["error"]
        assert (await bystander.invoke("Echo", "unaffected")).result == "unaffected"
        assert server.counters.protocol_errors == 1
        await bystander.close()


async def test_handshake_split_over_frames_and_followed_by_a_message(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server), handshake=False)
        await client.send_text(b'{"protocol":"js')
        await client.send_text(b'on","version":0}\x1e{"type":1,"invocationId":"1","target":"Echo","arguments":[7]}\x1e')
        assert await client.receive_handshake() is None
        completion = await client.receive()
        assert completion.result == 7  # type: ignore[union-attr]
        await client.close()


async def test_missing_handshake_times_out(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(handshake_timeout_s=0.3, sweep_interval_s=0.05)
    async with running_server(settings=settings) as server:
        silent = await RawClient.connect(session, ws_url(server), handshake=False)
        started = asyncio.get_running_loop().time()
        assert await silent.expect_socket_closed(timeout_s=3) == []
        assert 0.25 <= asyncio.get_running_loop().time() - started < 2.5
        assert server.counters.timeouts == 1


JSON_VIOLATIONS: list[tuple[bytes, str]] = [
    (b"{not json}\x1e", "malformed JSON"),
    (b'{"type":99}\x1e', "99"),
    (b'{"type":1,"target":5,"arguments":[]}\x1e', "target"),
    (b'{"type":1,"target":"Echo"}\x1e', "arguments"),
    (b"[1,2,3]\x1e", ""),
    (b'{"type":1,"target":"Echo","arguments":["' + b"x" * LIMIT_BYTES + b'"]}\x1e', str(LIMIT_BYTES)),
    (b"y" * (LIMIT_BYTES + 1), str(LIMIT_BYTES)),  # no terminator yet, but already too long
]


@pytest.mark.parametrize(("payload", "fragment"), JSON_VIOLATIONS)
async def test_json_violations_close_only_that_connection(
    session: aiohttp.ClientSession, payload: bytes, fragment: str
) -> None:
    async with running_server(settings=HubSettings(max_message_bytes=LIMIT_BYTES)) as server:
        bystander = await RawClient.connect(session, ws_url(server), "messagepack")
        offender = await RawClient.connect(session, ws_url(server))
        await offender.send_text(payload)
        close = await offender.receive_close()
        assert close.error is not None and fragment in close.error
        assert not close.allow_reconnect
        assert (await bystander.invoke("Echo", "unaffected")).result == "unaffected"
        assert server.counters.protocol_errors == 1
        await bystander.close()


MSGPACK_VIOLATIONS: list[tuple[bytes, str]] = [
    (b"\x03\xc1\xc1\xc1", ""),  # 0xc1 is never valid MessagePack
    (b"\x02\x91\x63", "99"),  # [99]: unknown type
    (b"\x01\x07", ""),  # not an array
    (b"\x80\x80\x40", str(LIMIT_BYTES)),  # declares 1 MiB: refused from the prefix alone
    (b"\xff\xff\xff\xff\xff\x01", ""),  # VarInt longer than 5 bytes
]


@pytest.mark.parametrize(("payload", "fragment"), MSGPACK_VIOLATIONS)
async def test_messagepack_violations_close_only_that_connection(
    session: aiohttp.ClientSession, payload: bytes, fragment: str
) -> None:
    async with running_server(settings=HubSettings(max_message_bytes=LIMIT_BYTES)) as server:
        bystander = await RawClient.connect(session, ws_url(server))
        offender = await RawClient.connect(session, ws_url(server), "messagepack")
        await offender.send_binary(payload)
        close = await offender.receive_close()
        assert close.error is not None and fragment in close.error
        assert (await bystander.invoke("Echo", "unaffected")).result == "unaffected"
        await bystander.close()


async def test_client_close_message_ends_the_connection_quietly(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server))
        await client.send_text(b'{"type":7}\x1e')
        assert await client.expect_socket_closed() == []
        assert server.counters.protocol_errors == 0


async def test_messages_before_a_client_close_in_the_same_frame_are_answered(
    session: aiohttp.ClientSession,
) -> None:
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server))
        await client.send_text(b'{"type":1,"invocationId":"9","target":"Echo","arguments":["last"]}\x1e{"type":7}\x1e')
        frames = await client.expect_socket_closed()
        assert frames == [b'{"type":3,"invocationId":"9","result":"last"}\x1e']


async def test_abrupt_disconnects_mid_message_do_not_disturb_the_server(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        bystander = await RawClient.connect(session, ws_url(server))
        for _ in range(5):
            client = await RawClient.connect(session, ws_url(server), "messagepack")
            await client.send_binary(b"\x20\x96")  # half a message
            await client.close()
        assert (await bystander.invoke("Echo", 1)).result == 1
        await bystander.close()


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_random_bytes_never_hurt_the_server(
    session: aiohttp.ClientSession, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20260501)
    prefixes = [b"", b'{"type":1,', b"\x10\x96\x01\x80", b'{"type":4,"invocationId":"1","target":"Counter",']
    async with running_server(settings=HubSettings(max_message_bytes=LIMIT_BYTES)) as server:
        bystander = await RawClient.connect(session, ws_url(server))
        for round_index in range(60):
            client = await RawClient.connect(session, ws_url(server), protocol)
            payload = rng.choice(prefixes) + rng.randbytes(rng.randrange(0, 300))
            if rng.random() < 0.5:
                payload += b"\x1e"
            if protocol == "json" and rng.random() < 0.5:
                await client.send_text(payload.decode("utf-8", "replace").encode())
            else:
                await client.send_binary(payload)
            if round_index % 3 == 0:
                await client.close()  # sometimes leave before the server answers
            else:
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await client.receive(timeout_s=0.1)
                await client.close()
        assert (await bystander.invoke("Echo", "still fine")).result == "still fine"
        await bystander.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("simscale.hub")]
    assert errors == []
