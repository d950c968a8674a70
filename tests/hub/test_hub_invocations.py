"""Method binding, completions, errors, streaming, audiences, groups and lifecycle hooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

import aiohttp
import pytest
from hub_testing import RawClient, running_server, ws_url

from simscale.hub import Hub, HubError, HubSettings
from simscale.protocol import (
    CancelInvocationMessage,
    CompletionMessage,
    InvocationMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)


class SampleHub(Hub):
    """A hub exercising every feature the dispatcher supports."""

    events: ClassVar[list[str]] = []
    running: ClassVar[int] = 0
    peak: ClassVar[int] = 0

    async def on_connected(self) -> None:
        SampleHub.events.append(f"connected {self.context.connection_id}")
        await self.clients.caller.send("Welcome", self.context.connection_id)

    async def on_disconnected(self, error: Exception | None) -> None:
        SampleHub.events.append(f"disconnected {self.context.connection_id}")

    async def add(self, a: int, b: int) -> int:
        return a + b

    async def optional(self, a: str, b: str = "default") -> str:
        return f"{a}/{b}"

    async def nothing(self) -> None:
        return None

    async def fail(self) -> None:
        raise RuntimeError("secret internal detail")

    async def refuse(self) -> None:
        raise HubError("you may see this")

    async def unserializable(self) -> Any:
        return object()

    async def slow(self, delay_ms: int) -> int:
        SampleHub.running += 1
        SampleHub.peak = max(SampleHub.peak, SampleHub.running)
        await asyncio.sleep(delay_ms / 1000)
        SampleHub.running -= 1
        return delay_ms

    async def ticks(self, count: int) -> AsyncGenerator[int, None]:
        for value in range(count):
            yield value
            await asyncio.sleep(0.01)

    async def broken_stream(self) -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("hidden")

    async def tell_others(self, text: str) -> None:
        await self.clients.others.send("Told", text)

    async def tell(self, connection_id: str, text: str) -> None:
        await self.clients.client(connection_id).send("Told", text)

    async def tell_others_in_group(self, group: str, text: str) -> None:
        await self.clients.others_in_group(group).send("Told", text)

    async def join(self, group: str) -> None:
        await self.groups.add(self.context.connection_id, group)

    async def leave(self, group: str) -> None:
        await self.groups.remove(self.context.connection_id, group)

    async def tell_group(self, group: str, text: str) -> None:
        await self.clients.group(group).send("Told", text)

    async def _private(self) -> int:
        return 1


HUBS: dict[str, type[Hub]] = {"/sample": SampleHub}


async def connect(session: aiohttp.ClientSession, server: Any, protocol: str = "json") -> tuple[RawClient, str]:
    client = await RawClient.connect(session, ws_url(server, "/sample"), protocol)
    welcome = await client.receive()
    assert isinstance(welcome, InvocationMessage) and welcome.target == "Welcome"
    return client, welcome.arguments[0]


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_results_void_and_pascal_or_snake_case_targets(session: aiohttp.ClientSession, protocol: str) -> None:
    async with running_server(HUBS) as server:
        client, _ = await connect(session, server, protocol)
        assert (await client.invoke("Add", 2, 3)).result == 5
        assert (await client.invoke("add", 4, 5)).result == 9
        assert (await client.invoke("Optional", "x")).result == "x/default"
        void = await client.invoke("Nothing")
        assert void.error is None and not void.has_result
        await client.close()


@pytest.mark.parametrize(
    ("target", "arguments", "fragment"),
    [
        ("Missing", (), "Method does not exist."),
        ("_private", (), "Method does not exist."),
        ("OnConnected", (), "Method does not exist."),
        ("Add", (1,), "Invocation provides 1 argument(s) but target expects 2."),
        ("Add", (1, 2, 3), "Invocation provides 3 argument(s)"),
        ("Add", ("1", 2), "Error binding arguments."),
        ("Add", (True, 2), "Error binding arguments."),
        ("Fail", (), "An unexpected error occurred invoking 'Fail' on the server."),
        ("Refuse", (), "HubException: you may see this"),
        ("Unserializable", (), "cannot be serialized"),
        ("Ticks", (3,), "streaming 'Ticks' method with a non-streaming invocation"),
    ],
)
async def test_errors_complete_the_invocation_and_keep_the_connection(
    session: aiohttp.ClientSession, target: str, arguments: tuple[Any, ...], fragment: str
) -> None:
    async with running_server(HUBS) as server:
        client, _ = await connect(session, server)
        completion = await client.invoke(target, *arguments)
        assert completion.error is not None and fragment in completion.error
        assert "secret internal detail" not in completion.error
        assert (await client.invoke("Add", 1, 1)).result == 2  # still usable
        await client.close()


async def test_non_blocking_invocations_get_no_reply(session: aiohttp.ClientSession) -> None:
    async with running_server(HUBS) as server:
        client, _ = await connect(session, server)
        await client.send(InvocationMessage("Add", (1, 2)))
        await client.send(InvocationMessage("Fail", ()))
        await client.send(InvocationMessage("Missing", ()))
        completion = await client.invoke("Add", 10, 10)
        assert completion.result == 20
        assert client.inbox == []  # nothing answered the three non-blocking calls
        await client.close()


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_stream_items_then_completion_without_result(session: aiohttp.ClientSession, protocol: str) -> None:
    async with running_server(HUBS) as server:
        client, _ = await connect(session, server, protocol)
        await client.send(StreamInvocationMessage("s1", "Ticks", (3,)))
        received = [await client.receive() for _ in range(4)]
        assert [m.item for m in received[:3] if isinstance(m, StreamItemMessage)] == [0, 1, 2]
        end = received[3]
        assert isinstance(end, CompletionMessage) and end.invocation_id == "s1"
        assert end.error is None and not end.has_result
        await client.close()


async def test_cancel_invocation_stops_the_stream_and_still_completes(session: aiohttp.ClientSession) -> None:
    async with running_server(HUBS) as server:
        client, _ = await connect(session, server)
        await client.send(StreamInvocationMessage("s2", "Ticks", (10_000,)))
        first = await client.receive()
        assert isinstance(first, StreamItemMessage)
        await client.send(CancelInvocationMessage("s2"))
        await client.send(CancelInvocationMessage("unknown-id"))  # ignored
        while True:
            message = await client.receive()
            if isinstance(message, CompletionMessage):
                break
            assert isinstance(message, StreamItemMessage)
            assert message.item < 500  # it really stopped early
        assert message.invocation_id == "s2" and message.error is None
        assert (await client.invoke("Add", 0, 1)).result == 1
        await client.close()


async def test_stream_errors_and_misuse(session: aiohttp.ClientSession) -> None:
    async with running_server(HUBS) as server:
        client, _ = await connect(session, server)
        await client.send(StreamInvocationMessage("s3", "BrokenStream", ()))
        item = await client.receive()
        assert isinstance(item, StreamItemMessage) and item.item == 1
        end = await client.receive()
        assert isinstance(end, CompletionMessage) and end.error is not None and "hidden" not in end.error
        await client.send(StreamInvocationMessage("s4", "Add", (1, 2)))
        misuse = await client.receive()
        assert isinstance(misuse, CompletionMessage)
        assert misuse.error is not None and "non-streaming 'Add' method" in misuse.error
        await client.close()


async def test_one_invocation_at_a_time_by_default(session: aiohttp.ClientSession) -> None:
    SampleHub.peak = 0
    async with running_server(HUBS) as server:
        client, _ = await connect(session, server)
        for index in range(3):
            await client.send(InvocationMessage("Slow", (30,), f"p{index}"))
        ids = [(await client.receive()).invocation_id for _ in range(3)]  # type: ignore[union-attr]
        assert ids == ["p0", "p1", "p2"]
        assert SampleHub.peak == 1
        await client.close()


async def test_max_parallel_invocations_allows_overlap(session: aiohttp.ClientSession) -> None:
    SampleHub.peak = 0
    async with running_server(HUBS, settings=HubSettings(max_parallel_invocations=3)) as server:
        client, _ = await connect(session, server)
        for index in range(3):
            await client.send(InvocationMessage("Slow", (100,), f"p{index}"))
        for _ in range(3):
            assert isinstance(await client.receive(), CompletionMessage)
        assert SampleHub.peak == 3
        await client.close()


async def test_audiences_caller_others_client_and_groups(session: aiohttp.ClientSession) -> None:
    async with running_server(HUBS) as server:
        (a, a_id), (b, _b_id), (c, c_id) = [await connect(session, server, p) for p in ("json", "messagepack", "json")]
        await a.invoke("TellOthers", "hi others")
        for client in (b, c):
            message = await client.receive()
            assert isinstance(message, InvocationMessage) and message.arguments == ("hi others",)
        await b.invoke("Tell", c_id, "just c")
        direct = await c.receive()
        assert isinstance(direct, InvocationMessage) and direct.arguments == ("just c",)
        await a.invoke("Join", "g")
        await c.invoke("Join", "g")
        await b.invoke("TellGroup", "g", "to g")
        for client in (a, c):
            message = await client.receive()
            assert isinstance(message, InvocationMessage) and message.arguments == ("to g",)
        await a.invoke("TellOthersInGroup", "g", "not to a")
        message = await c.receive()
        assert isinstance(message, InvocationMessage) and message.arguments == ("not to a",)
        await c.invoke("Leave", "g")
        await b.invoke("TellGroup", "g", "after leave")
        message = await a.receive()
        assert isinstance(message, InvocationMessage) and message.arguments == ("after leave",)
        # Nobody but a heard the last two group messages or the direct one.
        assert (await b.invoke("Add", 0, 0)).result == 0 and b.inbox == []
        assert (await c.invoke("Add", 0, 0)).result == 0 and c.inbox == []
        assert (await a.invoke("Add", 0, 0)).result == 0 and a.inbox == []
        lifetime = server.lifetime("/sample")
        assert set(lifetime.groups) == {"g"}
        assert a_id in lifetime.connections
        for client in (a, b, c):
            await client.close()


async def test_group_channels_are_reference_counted_on_the_backplane(session: aiohttp.ClientSession) -> None:
    async with running_server(HUBS) as server:
        channel = server.lifetime("/sample").channels.group("room")
        a, _ = await connect(session, server)
        b, _ = await connect(session, server)
        await a.invoke("Join", "room")
        assert channel in server.backplane.channels
        await b.invoke("Join", "room")
        await a.invoke("Leave", "room")
        assert channel in server.backplane.channels
        await b.close()  # the last member disconnects: the channel goes
        for _ in range(100):
            if channel not in server.backplane.channels:
                break
            await asyncio.sleep(0.02)
        assert channel not in server.backplane.channels
        await a.close()


async def test_on_connected_and_on_disconnected_run(session: aiohttp.ClientSession) -> None:
    SampleHub.events.clear()
    async with running_server(HUBS) as server:
        client, connection_id = await connect(session, server)
        await client.close()
        for _ in range(100):
            if f"disconnected {connection_id}" in SampleHub.events:
                break
            await asyncio.sleep(0.02)
    assert SampleHub.events == [f"connected {connection_id}", f"disconnected {connection_id}"]


async def test_a_stream_that_never_awaits_does_not_starve_other_clients(session: aiohttp.ClientSession) -> None:
    async with running_server(settings=HubSettings(max_buffered_bytes=64 * 1024 * 1024)) as server:
        other = await RawClient.connect(session, ws_url(server))
        greedy = await RawClient.connect(session, ws_url(server))
        await greedy.send(StreamInvocationMessage("busy", "Counter", (10**9, 0)))
        assert (await other.invoke("Echo", "served meanwhile")).result == "served meanwhile"
        await greedy.send(CancelInvocationMessage("busy"))
        await greedy.close()
        await other.close()
