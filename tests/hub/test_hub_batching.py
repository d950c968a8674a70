"""Cheap idle connections and cheap bursts: the keep-alive wheel, write coalescing, the Ping shortcut.

The wheel must look only at connections that are due; the coalescer must write a socket's first frame
of a turn at once (no added delay at paced rates) and turn the frames behind it in that turn into one
transport write at the start of the next, in order, without loosening the slow-consumer bound
or the order of a Close after what was queued; a bare JSON Ping must refresh the receive clock
without waking the handler, and nothing else may take that shortcut.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from hub_testing import RawClient, running_server, ws_url

from simscale.hub import HubSettings
from simscale.hub import websocket as hub_websocket
from simscale.hub.connection import EARLY_FLUSH_BYTES, HubConnection, WriteCoalescer, frame_records
from simscale.hub.keepalive import KeepAliveWheel
from simscale.hub.metrics import HubCounters
from simscale.hub.websocket import PING_SHORTCUT_AVAILABLE
from simscale.protocol import CloseMessage, InvocationMessage, JsonHubProtocol, PingMessage, ServerConnection


class RecordingTransport(asyncio.Transport):
    """A transport that keeps every write and pretends ``backlog_bytes`` are stuck in its buffer."""

    def __init__(self, backlog_bytes: int = 0) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.backlog_bytes = backlog_bytes
        self.closing = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.backlog_bytes

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True


def open_connection(
    transport: RecordingTransport, coalescer: WriteCoalescer, *, max_buffered_bytes: int = 1_048_576
) -> tuple[HubConnection, HubCounters]:
    counters = HubCounters()
    state = ServerConnection()
    state.receive_data(b'{"protocol":"json","version":1}\x1e')  # handshaken, JSON
    state.data_to_send()  # the handshake answer is not what these tests look at
    connection = HubConnection(
        "c1",
        None,
        transport,
        state,
        now_s=time.monotonic(),
        max_buffered_bytes=max_buffered_bytes,
        counters=counters,
        coalescer=coalescer,
    )
    return connection, counters


def text_frame(payload: bytes) -> bytes:
    return frame_records(payload, "Text")


# ---- the keep-alive wheel --------------------------------------------------------------------------


class Filed:
    """Stands in for a HubConnection: the wheel only needs its ``wheel_tick``."""

    __slots__ = ("wheel_tick",)

    def __init__(self) -> None:
        self.wheel_tick: int | None = None


def test_wheel_returns_a_connection_only_once_its_tick_has_come() -> None:
    wheel = KeepAliveWheel(1.0)
    soon, later, much_later = (Filed() for _ in range(3))
    wheel.file(soon, 5.2)  # type: ignore[arg-type]
    wheel.file(later, 7.9)  # type: ignore[arg-type]
    wheel.file(much_later, 20.0)  # type: ignore[arg-type]
    assert wheel.pop_due(4.99) == []
    assert wheel.pop_due(5.0) == [soon]
    assert wheel.pop_due(5.5) == []  # each connection comes out once
    assert wheel.pop_due(9.0) == [later]
    assert len(wheel) == 1
    wheel.file(soon, 3.0)  # a deadline already past comes out at the next sweep
    assert wheel.pop_due(9.5) == [soon]


def test_wheel_hands_out_late_ticks_oldest_first() -> None:
    wheel = KeepAliveWheel(0.5)
    first, second = Filed(), Filed()
    wheel.file(second, 3.2)  # type: ignore[arg-type]
    wheel.file(first, 1.1)  # type: ignore[arg-type]
    assert wheel.pop_due(10.0) == [first, second]  # a stalled loop catches up in deadline order


def test_wheel_lets_go_of_a_connection_that_ended() -> None:
    wheel = KeepAliveWheel(1.0)
    ended, alive = Filed(), Filed()
    wheel.file(ended, 5.0)  # type: ignore[arg-type]
    wheel.file(alive, 5.5)  # type: ignore[arg-type]
    wheel.discard(ended)  # type: ignore[arg-type]
    wheel.discard(ended)  # type: ignore[arg-type]  # twice is harmless
    assert len(wheel) == 1 and ended.wheel_tick is None
    assert wheel.pop_due(6.0) == [alive]
    assert alive.wheel_tick is None  # popped: filed nowhere until the sweep refiles it
    wheel.discard(alive)  # type: ignore[arg-type]
    assert len(wheel) == 0


def test_wheel_tick_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tick_s"):
        KeepAliveWheel(0)


async def test_sweep_looks_only_at_connections_that_are_due(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = HubSettings(keepalive_interval_s=15.0, client_timeout_s=30.0, sweep_interval_s=1.0)
    async with running_server(settings=settings) as server:
        clients = [await RawClient.connect(session, ws_url(server)) for _ in range(20)]
        visited: list[HubConnection] = []
        check = server._check_liveness

        def counting_check(connection: HubConnection, now_s: float) -> float | None:
            visited.append(connection)
            return check(connection, now_s)

        monkeypatch.setattr(server, "_check_liveness", counting_check)
        now_s = time.monotonic()
        server.sweep(now_s + 2.0)
        assert visited == []  # nobody is due for 15 s: the sweep costs nothing per connection
        # 16 s on, every connection is due for a ping (looked at once, or twice when its deadline
        # falls in the sweep's own tick) and each gets exactly one.
        server.sweep(now_s + 16.0)
        server.sweep(now_s + 17.0)
        assert 20 <= len(visited) <= 40 and {id(c) for c in visited} == {
            id(c) for c in server.lifetime().connections.values()
        }
        for client in clients:
            assert isinstance(await client.receive(timeout_s=2, skip_pings=False), PingMessage)
        visited.clear()
        server.sweep(now_s + 18.0)
        assert visited == []  # pinged connections are filed 15 s ahead again
        assert len(server._wheel) == 20
        for client in clients:
            await client.close()
        for _ in range(200):
            if not server.connection_count:
                break
            await asyncio.sleep(0.01)
        assert len(server._wheel) == 0  # ended connections are not kept until their tick


async def test_a_connection_the_server_keeps_writing_to_is_not_pinged(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(keepalive_interval_s=0.3, client_timeout_s=5.0, sweep_interval_s=0.05)
    async with running_server(settings=settings) as server:
        busy = await RawClient.connect(session, ws_url(server))
        quiet = await RawClient.connect(session, ws_url(server))
        lifetime = server.lifetime()
        busy_id = next(iter(lifetime.connections))  # the first attached
        for _ in range(12):
            await lifetime.send("connection", busy_id, "Tick", ())
            await asyncio.sleep(0.1)
        assert isinstance(await quiet.receive(timeout_s=1, skip_pings=False), PingMessage)
        received = [await busy.receive(timeout_s=1, skip_pings=False) for _ in range(12)]
        assert all(isinstance(message, InvocationMessage) for message in received)
        await busy.close()
        await quiet.close()


# ---- write coalescing ------------------------------------------------------------------------------


async def test_the_first_frame_of_a_turn_goes_out_at_once_and_the_rest_as_one_write() -> None:
    transport = RecordingTransport()
    connection, counters = open_connection(transport, WriteCoalescer())
    frames = [text_frame(b'{"type":1,"target":"m","arguments":[%d]}\x1e' % index) for index in range(60)]
    for frame in frames:
        assert connection.write_frame(frame, len(frame) - 2)
    assert transport.writes == [frames[0]]  # written through: a paced broadcast waits for nothing
    assert connection.queued_bytes == sum(map(len, frames[1:]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.writes == [frames[0], b"".join(frames[1:])]  # one write for the rest, in order
    assert connection.queued_bytes == 0
    assert counters.deliveries == 60


async def test_a_frame_alone_in_each_turn_is_written_through_every_time() -> None:
    transport = RecordingTransport()
    connection, _ = open_connection(transport, WriteCoalescer())
    frames = [text_frame(b"%d\x1e" % index) for index in range(5)]
    for frame in frames:
        connection.write_frame(frame, 2)
        assert transport.writes[-1] == frame  # no turn of delay
        await asyncio.sleep(0)
    assert transport.writes == frames
    assert connection.queued_bytes == 0


async def test_one_coalescer_serves_every_connection() -> None:
    coalescer = WriteCoalescer()
    transports = [RecordingTransport() for _ in range(3)]
    connections = [open_connection(transport, coalescer)[0] for transport in transports]
    for index in range(4):
        for connection in connections:
            connection.write_frame(text_frame(b"%d\x1e" % index), 2)
    assert [transport.writes for transport in transports] == [[text_frame(b"0\x1e")]] * 3
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    rest = b"".join(text_frame(b"%d\x1e" % index) for index in range(1, 4))
    assert [transport.writes for transport in transports] == [[text_frame(b"0\x1e"), rest]] * 3


async def test_a_large_queue_is_written_without_waiting_for_the_turn() -> None:
    transport = RecordingTransport()
    connection, _ = open_connection(transport, WriteCoalescer())
    blob = text_frame(b"x" * (EARLY_FLUSH_BYTES // 4))
    for _ in range(5):
        connection.write_frame(blob, len(blob))
    assert transport.writes == [blob, blob * 4]  # the first went through, the queue when it was full
    assert connection.queued_bytes == 0


async def test_close_goes_out_after_what_was_queued() -> None:
    transport = RecordingTransport()
    connection, _ = open_connection(transport, WriteCoalescer())
    data = text_frame(b'{"type":6}\x1e')
    connection.write_frame(data, len(data) - 2)
    connection.close("bye")
    assert transport.closing and not transport.aborted
    written = b"".join(transport.writes)
    close_record = JsonHubProtocol().encode(CloseMessage(error="bye"))
    assert written.startswith(data + text_frame(close_record))
    assert written.endswith(b"\x88\x02\x03\xe8")  # the WebSocket close frame comes last
    assert not connection.write_frame(data, 1)  # nothing more after the close
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert b"".join(transport.writes) == written


async def test_slow_consumer_is_aborted_when_its_queue_is_written() -> None:
    transport = RecordingTransport(backlog_bytes=10_000)
    connection, counters = open_connection(transport, WriteCoalescer(), max_buffered_bytes=4_096)
    frame = text_frame(b"x" * 100)
    assert not connection.write_frame(frame, 100)  # written through: the backlog shows at once
    assert transport.aborted and connection.closed
    assert counters.slow_consumer_closes == 1
    assert connection.close_reason is not None and "slow consumer" in connection.close_reason
    assert not connection.write_frame(frame, 100)


async def test_slow_consumer_is_also_found_when_a_queue_is_written() -> None:
    transport = RecordingTransport()
    connection, counters = open_connection(transport, WriteCoalescer(), max_buffered_bytes=4_096)
    frame = text_frame(b"x" * 100)
    assert connection.write_frame(frame, 100)  # through, nothing backed up yet
    transport.backlog_bytes = 10_000  # the peer stops reading
    assert connection.write_frame(frame, 100)  # queued behind it in the same turn
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.aborted and connection.closed
    assert counters.slow_consumer_closes == 1


async def test_an_aborted_connection_drops_its_queue() -> None:
    transport = RecordingTransport()
    connection, _ = open_connection(transport, WriteCoalescer())
    connection.write_frame(text_frame(b"sent\x1e"), 5)  # the first frame of the turn goes out
    connection.write_frame(text_frame(b"lost\x1e"), 5)  # queued behind it
    connection.abort("gone")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.writes == [text_frame(b"sent\x1e")] and transport.aborted


async def test_a_burst_of_broadcasts_arrives_complete_and_in_order(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        clients = [await RawClient.connect(session, ws_url(server), protocol) for protocol in ("json", "messagepack")]
        lifetime = server.lifetime()
        for index in range(200):
            await lifetime.send("all", "", "Burst", (index,))
        for client in clients:
            received = [await client.receive() for _ in range(200)]
            assert [message.arguments for message in received] == [(index,) for index in range(200)]  # type: ignore[attr-defined]
            assert (await client.invoke("Echo", "after")).result == "after"
            await client.close()


# ---- keep-alive Pings taken care of in aiohttp's queue ---------------------------------------------


def test_the_ping_shortcut_works_with_the_installed_aiohttp() -> None:
    # If an aiohttp upgrade moves the reader's internals, the hub still works (without the
    # shortcut), and this test says so before the idle-CPU benchmark does.
    assert PING_SHORTCUT_AVAILABLE


async def test_a_bare_json_ping_refreshes_the_clock_without_waking_the_handler(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server))
        (connection,) = server.lifetime().connections.values()
        frames: list[bytes] = []
        receive_frame = server._receive_frame

        async def counting_receive_frame(endpoint: Any, hub_connection: HubConnection, data: bytes) -> bool:
            frames.append(data)
            return await receive_frame(endpoint, hub_connection, data)

        monkeypatch.setattr(server, "_receive_frame", counting_receive_frame)
        before_s = connection.last_received_s
        for _ in range(5):
            await client.send(PingMessage())
        assert (await client.invoke("Echo", "still here")).result == "still here"
        assert len(frames) == 1  # only the invocation reached the handler
        assert connection.last_received_s > before_s
        await client.close()


async def test_a_ping_behind_a_split_record_still_goes_through_the_protocol(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server))
        # The first frame ends inside a record, so the Ping bytes of the second are its continuation:
        # the stream is not valid JSON and the protocol closes the connection, as without the shortcut.
        await client.send_text(b'{"type":1,"target":"Echo","arguments":["a"]')
        await client.send_text(b'{"type":6}\x1e')
        close = await client.receive_close()
        assert close.error is not None
        assert server.counters.protocol_errors == 1


async def test_messagepack_pings_keep_a_client_alive(session: aiohttp.ClientSession) -> None:
    settings = HubSettings(keepalive_interval_s=0.2, client_timeout_s=0.6, sweep_interval_s=0.05)
    async with running_server(settings=settings) as server:
        client = await RawClient.connect(session, ws_url(server), "messagepack")
        for _ in range(10):  # 1 s of Pings: well past the client timeout, had they been lost
            await client.send(PingMessage())
            await asyncio.sleep(0.1)
        assert (await client.invoke("Echo", "alive")).result == "alive"
        assert server.counters.timeouts == 0
        await client.close()


async def test_without_the_shortcut_the_hub_uses_aiohttp_as_it_is(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_websocket, "PING_SHORTCUT_AVAILABLE", False)  # as with another aiohttp
    async with running_server() as server:
        client = await RawClient.connect(session, ws_url(server))
        await client.send(PingMessage())
        assert (await client.invoke("Echo", "plain")).result == "plain"
        await client.close()


# ---- one truth: the protocol state lives in the sans-I/O connection ----------------------------------


async def test_the_connection_reads_its_protocol_state_from_the_sans_io_core() -> None:
    transport = RecordingTransport()
    connection, _ = open_connection(transport, WriteCoalescer())
    state = connection.protocol_connection
    assert connection.handshaken and connection.protocol is state.protocol and not connection.closed
    # Closing the core is closing the connection: there is no second copy to fall out of step.
    state.close("closed from the core")
    assert connection.closed and connection.close_reason == "closed from the core"
    assert not connection.write_frame(text_frame(b"late"), 4)  # nothing more goes out


async def test_closing_the_connection_goes_through_the_core_and_writes_its_close() -> None:
    transport = RecordingTransport()
    connection, _ = open_connection(transport, WriteCoalescer())
    connection.close("going away", allow_reconnect=True)
    state = connection.protocol_connection
    assert state.closed and state.close_reason == "going away"
    written = b"".join(transport.writes)
    assert b'{"type":7,"error":"going away","allowReconnect":true}\x1e' in written  # the hub Close, framed
    assert written.endswith(b"\x88\x02\x03\xe9")  # then the WebSocket close frame, status 1001
    assert transport.closing


async def test_an_aborted_connection_closes_its_core_without_a_close_message() -> None:
    transport = RecordingTransport()
    connection, _ = open_connection(transport, WriteCoalescer())
    connection.abort("slow consumer")
    assert connection.closed and connection.close_reason == "slow consumer"
    assert connection.protocol_connection.data_to_send() == []
    assert transport.aborted
