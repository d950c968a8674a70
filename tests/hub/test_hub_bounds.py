"""Per-connection bounds: groups per connection, group-name bytes, concurrent streams.

A request past a bound completes with an error naming the limit, the connection stays usable, other
connections are unaffected, and each refusal is counted in ``/metrics``. The floods run against a real
``simscale hub serve`` process on its defaults, and the growth of its resident memory is measured.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from hub_testing import RawClient, ServerProcess, running_server, ws_url

from simscale.hub import HubSettings
from simscale.protocol import CompletionMessage, StreamInvocationMessage, StreamItemMessage


def resident_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    text = await (await session.get(f"{url}/metrics")).text()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}


def invocation_record(invocation_id: str, target: str, *arguments: object, kind: int = 1) -> bytes:
    document = {"type": kind, "invocationId": invocation_id, "target": target, "arguments": list(arguments)}
    return json.dumps(document, separators=(",", ":")).encode() + b"\x1e"


async def flood(
    client: RawClient, records: list[bytes], *, expected: int | None = None, frame_bytes: int = 256_000
) -> list[CompletionMessage]:
    """Send ``records`` packed into large frames while reading the ``expected`` Completions they earn."""
    completions: list[CompletionMessage] = []
    wanted = len(records) if expected is None else expected

    async def read() -> None:
        while len(completions) < wanted:
            message = await client.receive(timeout_s=20)
            if isinstance(message, CompletionMessage):
                completions.append(message)

    reader = asyncio.ensure_future(read())
    frame: list[bytes] = []
    size = 0
    for record in records:
        frame.append(record)
        size += len(record)
        if size >= frame_bytes:
            await client.send_text(b"".join(frame))
            frame, size = [], 0
    if frame:
        await client.send_text(b"".join(frame))
    await asyncio.wait_for(reader, 30)
    return completions


async def test_a_join_past_a_group_bound_completes_with_an_error_naming_it(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(max_groups_per_connection=3, max_group_name_bytes=8)
    async with running_server(settings=settings) as server:
        client = await RawClient.connect(session, ws_url(server))
        other = await RawClient.connect(session, ws_url(server))
        for name in ("a", "b", "c", "c"):  # joining a group it is in costs nothing
            assert (await client.invoke("JoinGroup", name)).error is None
        refused = await client.invoke("JoinGroup", "d")
        assert refused.error is not None and "max_groups_per_connection (3)" in refused.error
        too_long = await client.invoke("JoinGroup", "é" * 5)  # 10 UTF-8 bytes
        assert too_long.error is not None and "max_group_name_bytes (8 bytes)" in too_long.error
        assert (await client.invoke("Echo", "still here")).result == "still here"
        assert (await other.invoke("JoinGroup", "d")).error is None  # another connection is unaffected
        assert (await client.invoke("LeaveGroup", "a")).error is None
        assert (await client.invoke("JoinGroup", "d")).error is None  # room again
        assert server.lifetime().groups.keys() == {"b", "c", "d"}
        values = await metrics(session, server.url or "")
        assert values["simscale_hub_group_refusals_total"] == 1
        assert values["simscale_hub_group_name_refusals_total"] == 1
        await client.close()
        await other.close()


async def test_a_stream_past_the_bound_completes_with_an_error_naming_it(session: aiohttp.ClientSession) -> None:
    async with running_server(settings=HubSettings(max_streams_per_connection=2)) as server:
        client = await RawClient.connect(session, ws_url(server))
        other = await RawClient.connect(session, ws_url(server))
        for stream_id in ("s1", "s2", "s3"):
            await client.send(StreamInvocationMessage(stream_id, "Counter", (1_000, 1_000)))
        got: dict[str, object] = {}
        while len(got) < 3:
            message = await client.receive()
            if isinstance(message, StreamItemMessage | CompletionMessage):
                got.setdefault(message.invocation_id, message)
        refused = got["s3"]
        assert isinstance(refused, CompletionMessage)
        assert refused.error is not None and "max_streams_per_connection (2)" in refused.error
        assert (await client.invoke("Echo", 1)).result == 1
        await other.send(StreamInvocationMessage("o1", "Counter", (1, 0)))
        assert isinstance(await other.receive(), StreamItemMessage)
        assert server.counters.stream_refusals == 1
        assert (await metrics(session, server.url or ""))["simscale_hub_stream_refusals_total"] == 1
        await client.close()
        await other.close()


async def test_a_group_flood_leaves_the_hub_memory_bounded(session: aiohttp.ClientSession) -> None:
    """3,000 joins with 1,000-byte names and 2,000 with 10,000-character names, from one connection."""
    async with ServerProcess() as server:
        assert server.process is not None
        client = await RawClient.connect(session, server.ws)
        assert (await client.invoke("Echo", 0)).result == 0
        before = resident_bytes(server.process.pid)
        records = [invocation_record(f"g{i}", "JoinGroup", f"{i:06d}" + "x" * 994) for i in range(3_000)]
        records += [invocation_record(f"h{i}", "JoinGroup", f"{i:06d}" + "y" * 9_994) for i in range(2_000)]
        completions = await flood(client, records)
        grown = resident_bytes(server.process.pid) - before
        print(f"RSS growth {grown / 1e6:.1f} MB")
        errors = [c.error for c in completions if c.error is not None]
        assert len(errors) == 4_000  # 1,000 joined; 2,000 past the count, 2,000 past the name length
        assert grown < 20_000_000, f"the hub grew by {grown / 1e6:.1f} MB"
        assert (await client.invoke("Echo", "usable")).result == "usable"
        values = await metrics(session, server.url)
        assert values["simscale_hub_group_refusals_total"] == 2_000
        assert values["simscale_hub_group_name_refusals_total"] == 2_000
        await client.close()


async def test_a_stream_flood_leaves_the_hub_memory_bounded(session: aiohttp.ClientSession) -> None:
    """20,000 slow Counter streams started by one connection."""
    async with ServerProcess() as server:
        assert server.process is not None
        client = await RawClient.connect(session, server.ws)
        assert (await client.invoke("Echo", 0)).result == 0
        before = resident_bytes(server.process.pid)
        records = [invocation_record(f"s{i}", "Counter", 1_000_000, 10_000, kind=4) for i in range(20_000)]
        completions = await flood(client, records, expected=19_900, frame_bytes=64_000)
        grown = resident_bytes(server.process.pid) - before
        print(f"RSS growth {grown / 1e6:.1f} MB")
        assert all(c.error is not None and "max_streams_per_connection (100)" in c.error for c in completions)
        assert grown < 15_000_000, f"the hub grew by {grown / 1e6:.1f} MB"
        assert (await client.invoke("Echo", "usable")).result == "usable"
        assert (await metrics(session, server.url))["simscale_hub_stream_refusals_total"] == 19_900
        await client.close()
