"""The load generator's automatic reconnect against a real hub that goes away and comes back.

An in-process :class:`~simscale.hub.server.HubServer` on 127.0.0.1 is stopped under load and, after a
while, a new one is started on the same port: the clients' attempts must follow the reconnect
delays (with their jitter), every failed attempt must be a REFUSED record with its reason, and the
clients must give up after the last delay, as the model's clients do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from simscale.cli import main
from simscale.hub.server import HubServer
from simscale.loadgen import LoadConfig, LoadResult, run_load
from simscale.metrics.records import NO_SERVER, ConnectionEventKind

CLIENTS = 6


async def _outage(
    config: LoadConfig, *, down_after_s: float, down_for_s: float | None
) -> tuple[LoadResult, float, float | None]:
    """Run ``config`` against one hub, stop it ``down_after_s`` into the broadcasts, start a new one on the
    same port ``down_for_s`` later (``None``: never). Returns the result and the stop and restart times on
    the records' clock (seconds from ``result.started_at_s``)."""
    first = HubServer()
    url = await first.listen("127.0.0.1", 0)
    port = int(url.rsplit(":", 1)[1])
    started = asyncio.Event()
    moments: dict[str, float] = {}
    replacement: list[HubServer] = []

    async def outage() -> None:
        await started.wait()
        await asyncio.sleep(down_after_s)
        moments["down"] = time.perf_counter()
        await first.close()
        if down_for_s is None:
            return
        await asyncio.sleep(down_for_s)
        second = HubServer()
        await second.listen("127.0.0.1", port)
        replacement.append(second)
        moments["up"] = time.perf_counter()

    task = asyncio.create_task(outage())
    try:
        result = await run_load(
            dataclasses.replace(config, urls=(f"{url}/chatHub",)),
            on_phase=lambda phase: started.set() if phase == "broadcast_start" else None,
        )
        await task
    finally:
        task.cancel()
        await first.close()
        for server in replacement:
            await server.close()
    up_s = moments["up"] - result.started_at_s if "up" in moments else None
    return result, moments["down"] - result.started_at_s, up_s


def _config(**fields: object) -> LoadConfig:
    base: dict[str, object] = {
        "urls": ("http://127.0.0.1:1/chatHub",),  # replaced by the hub's own URL
        "clients": CLIENTS,
        "broadcast_rate_per_s": 5.0,
        "duration_s": 4.0,
        "drain_s": 0.5,
        "connect_timeout_s": 2.0,
        "seed": 3,
    }
    return LoadConfig(**{**base, **fields})  # type: ignore[arg-type]


def _events(result: LoadResult, kind: ConnectionEventKind) -> list[tuple[float, int, str]]:
    return [(e.time_s, e.server, e.reason) for e in result.records.connections if e.event is kind]


def test_clients_reconnect_on_the_delays_once_a_hub_is_back_on_the_same_port() -> None:
    # Attempts at +0 and +0.6 s fail (nobody listens), the one at +1.6 s finds the new hub (up at +1.0 s).
    delays = (0.0, 0.6, 1.0, 5.0)
    result, down_s, up_s = asyncio.run(_outage(_config(reconnect_delays_s=delays), down_after_s=0.8, down_for_s=1.0))
    assert up_s is not None
    dropped = _events(result, ConnectionEventKind.DROPPED)
    assert len(dropped) == CLIENTS and all(down_s <= time_s < down_s + 0.5 for time_s, _, _ in dropped)
    refused = _events(result, ConnectionEventKind.REFUSED)
    assert {reason for _, _, reason in refused} == {"connection_refused"}
    assert len(refused) == 2 * CLIENTS  # two failed attempts per client, each its own record
    drop_s = min(time_s for time_s, _, _ in dropped)
    first_attempts = sorted(time_s - drop_s for time_s, _, _ in refused)[:CLIENTS]
    second_attempts = sorted(time_s - drop_s for time_s, _, _ in refused)[CLIENTS:]
    assert max(first_attempts) < 0.45  # delay 0
    assert all(0.55 <= t < 0.6 + 0.45 for t in second_attempts)  # delay 0.6 s after the first
    reconnected = [e for e in _events(result, ConnectionEventKind.CONNECTED) if e[0] > down_s]
    assert len(reconnected) == CLIENTS == result.reconnected
    assert all(up_s <= time_s and 1.55 <= time_s - drop_s < 1.6 + 0.6 for time_s, _, _ in reconnected)
    assert result.gave_up == 0 and result.summary.connections_refused == 2 * CLIENTS
    assert result.summary.connections_dropped == CLIENTS
    # A send is counted for the clients connected when it left; nobody else's delivery is counted in it.
    assert result.summary.delivered_fraction is not None and result.summary.delivered_fraction <= 1.0
    # Broadcasts after the comeback reach everyone again: the last one was delivered to all clients.
    last = max(result.records.broadcasts, key=lambda record: record.sent_at_s)
    assert last.sent_at_s > up_s + 1.0 and last.connected_clients == CLIENTS
    failures = {(failure.reason, failure.clients) for failure in result.connection_failures}
    assert failures == {("connection_refused", 2 * CLIENTS)}


def test_reconnected_clients_join_their_groups_again() -> None:
    config = _config(
        reconnect_delays_s=(0.0, 0.6, 1.0, 5.0), send_target="group", groups=2, group_size=CLIENTS // 2,
        groups_per_client=1, join_settle_s=0.2,
    )  # fmt: skip
    result, _, up_s = asyncio.run(_outage(config, down_after_s=0.8, down_for_s=1.0))
    assert up_s is not None and result.reconnected == CLIENTS
    delivered: dict[int, int] = {}
    for delivery in result.records.deliveries:
        delivered[delivery.broadcast_id] = delivered.get(delivery.broadcast_id, 0) + delivery.delivered
    late = [record for record in result.records.broadcasts if record.sent_at_s > up_s + 1.5]
    assert late, "no group send after the comeback"
    # Every member of the group gets it: the new connections are in their groups again.
    assert all(delivered.get(record.broadcast_id, 0) == record.connected_clients == CLIENTS // 2 for record in late)


def test_clients_give_up_after_the_last_delay_and_jitter_spreads_the_attempts() -> None:
    delays = (0.4, 0.8)
    result, _, _ = asyncio.run(
        _outage(_config(reconnect_delays_s=delays, reconnect_jitter=0.5, duration_s=3.5), down_after_s=0.5,
                down_for_s=None)
    )  # fmt: skip
    dropped_at = {e.time_s for e in result.records.connections if e.event is ConnectionEventKind.DROPPED}
    drop_s = min(dropped_at)
    refused = sorted(time_s - drop_s for time_s, _, _ in _events(result, ConnectionEventKind.REFUSED))
    assert len(refused) == len(delays) * CLIENTS
    first, second = refused[:CLIENTS], refused[CLIENTS:]
    assert all(0.2 - 0.05 <= t <= 0.6 + 0.3 for t in first)  # 0.4 s x U(0.5, 1.5)
    assert max(first) - min(first) > 0.05  # jitter: not in lockstep
    # The second attempt comes 0.8 s x U(0.5, 1.5) after a client's first one failed.
    assert min(first) + 0.4 - 0.05 <= min(second) and max(second) <= max(first) + 1.2 + 0.3
    gave_up = _events(result, ConnectionEventKind.GAVE_UP)
    assert len(gave_up) == CLIENTS == result.gave_up
    assert {(server, reason) for _, server, reason in gave_up} == {(NO_SERVER, "retries_exhausted_after_drop")}
    assert result.reconnected == 0
    assert result.to_json_dict()["gave_up"] == CLIENTS


def test_the_jitter_stream_leaves_the_send_schedule_alone() -> None:
    async def sends(jitter: float) -> list[int]:
        server = HubServer()
        url = await server.listen("127.0.0.1", 0)
        try:
            config = _config(urls=(f"{url}/chatHub",), duration_s=1.0, reconnect_jitter=jitter)
            result = await run_load(config)
        finally:
            await server.close()
        return [record.broadcast_id for record in result.records.broadcasts]

    assert asyncio.run(sends(0.0)) == asyncio.run(sends(0.9))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--reconnect-delays", "0,-2"], "reconnect_delays_s (--reconnect-delays) must be"),
        (["--reconnect-delays", "0,soon"], "--reconnect-delays takes seconds separated by commas"),
        (["--reconnect-delays", ""], "--reconnect-delays takes seconds"),
        (["--reconnect-delays", "0,nan"], "--reconnect-delays takes finite seconds"),
        (["--reconnect-jitter", "1.5"], "reconnect_jitter (--reconnect-jitter) must be a number >= 0 and <= 1"),
        (["--reconnect-jitter", "-0.1"], "reconnect_jitter (--reconnect-jitter) must be"),
        (["--reconnect-jitter", "lots"], "--reconnect-jitter must be a number"),
    ],
)
def test_bad_reconnect_flags_are_one_line_and_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["loadgen", "--url", "http://127.0.0.1:9/chatHub", "--clients", "1", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
