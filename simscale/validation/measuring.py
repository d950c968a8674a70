"""Measure the real hub: start hub processes, drive clients and load, return plain records.

Nothing here fits or judges; it returns raw readings (:mod:`simscale.validation.records`) that
:mod:`simscale.validation.fitting` turns into costs and :mod:`simscale.validation.comparing` puts
next to the model. Process management itself is :mod:`simscale.validation.processes`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from simscale.validation.host import Placement
from simscale.validation.processes import (
    CpuSampler,
    HubProcess,
    HubProcesses,
    pinned_here,
    place_hub_process,
    run_blocking,
)
from simscale.validation.records import BroadcastRun, CalibrationMeasurements, LoadRun, LoopbackMeasurements

__all__ = [
    "RUN_S",
    "broadcast_run",
    "hold_idle",
    "measure_calibration",
    "measure_loopback",
    "publish_timing_s",
    "serialize_cpu_s",
]

_BUSY_DELIVERIES_PER_S = (60_000, 110_000, 180_000)
"""The busy runs' offered deliveries per second: messages share socket reads more and more, up to
the load generator's own saturation (which is what a loopback validation runs into first)."""
_BUSY_MAX_RATE_PER_S = 800.0
RUN_S = 2.0
"""Seconds of each calibration broadcast run (three replicates of eight runs must fit a validation's budget)."""
_MODERATE_RATES_PER_S = (100.0, 160.0)
_EMPTY_IDLE_S = 2.0
_HOLD_S = 3.0
_KEEPALIVE_INTERVAL_S = 1.0


def serialize_cpu_s(message_bytes: int) -> float:
    """Time to encode one ReceiveMessage once per protocol, as the hub does for a broadcast."""
    from simscale.protocol.json_protocol import JsonHubProtocol
    from simscale.protocol.messages import InvocationMessage
    from simscale.protocol.msgpack_protocol import MessagePackHubProtocol

    message = InvocationMessage("ReceiveMessage", ("b-123", "x" * message_bytes))
    protocols = (JsonHubProtocol(), MessagePackHubProtocol())
    rounds = 2_000
    started = time.process_time()
    for _ in range(rounds):
        for protocol in protocols:
            protocol.encode(message)
    return (time.process_time() - started) / rounds


async def hold_idle(url: str, clients: int, hold_s: float, hub: HubProcess) -> tuple[float, float, float]:
    """Connect ``clients``, hold them ``hold_s``; returns (connect+close CPU, RSS delta, idle CPU)."""
    from simscale.client.hub_client import HubClient

    rss_before = hub.rss_bytes()
    cpu_before = hub.cpu_s()
    members = [HubClient(url) for _ in range(clients)]
    semaphore = asyncio.Semaphore(100)

    async def start(client: HubClient) -> None:
        async with semaphore:
            await asyncio.wait_for(client.start(), 15.0)

    await asyncio.gather(*(start(client) for client in members))
    cpu_connected = hub.cpu_s()
    await asyncio.sleep(1.0)  # let allocations settle before reading RSS
    rss_delta = hub.rss_bytes() - rss_before
    idle_start = hub.cpu_s()
    await asyncio.sleep(hold_s)
    idle_cpu = hub.cpu_s() - idle_start
    cpu_close_start = hub.cpu_s()
    await asyncio.gather(*(asyncio.wait_for(client.stop(), 15.0) for client in members), return_exceptions=True)
    await asyncio.sleep(0.5)
    connect_close_cpu = (cpu_connected - cpu_before) + (hub.cpu_s() - cpu_close_start)
    return connect_close_cpu, rss_delta, idle_cpu


def broadcast_run(url: str, clients: int, rate_per_s: float, duration_s: float, hub: HubProcess) -> BroadcastRun:
    """One traced load-generator run against ``hub``; CPU counted over the broadcast phase only."""
    from simscale.loadgen import LoadConfig, run_load

    config = LoadConfig(
        urls=(url,),
        clients=clients,
        broadcast_rate_per_s=rate_per_s,
        duration_s=duration_s,
        warmup_s=0.0,
        drain_s=3.0,
        scenario="calibration",
        trace_loop_passes=True,
    )
    hub_cpu_at: dict[str, float] = {}
    result = run_blocking(run_load(config, on_phase=lambda phase: hub_cpu_at.__setitem__(phase, hub.cpu_s())))
    return BroadcastRun(
        wall_s=result.broadcast_wall_s,
        clients=clients,
        broadcasts=len(result.records.broadcasts),
        deliveries=int(result.summary.deliveries or 0),
        hub_cpu_s=hub_cpu_at["broadcast_end"] - hub_cpu_at["broadcast_start"],
        loadgen_cpu_s=result.broadcast_cpu_s,
        reads=result.socket_reads,
        wakeups=result.loop_wakeups,
        sends_s=tuple(record.sent_at_s for record in result.records.broadcasts),
        passes=result.loop_passes,
    )


_UNPINNED = Placement(hub_cores=None, loadgen_cores=None)


def publish_timing_s(placement: Placement = _UNPINNED) -> tuple[float, float]:
    """(per-PUBLISH service time from a pipelined burst, median round trip of one PUBLISH) against a
    real redis-server (placed with the hubs)."""
    import redis

    from simscale.backplane.redis_server import RedisServer

    with RedisServer() as server, pinned_here(placement.loadgen_cores):
        if server.pid is not None:
            place_hub_process(server.pid, placement.hub_cores)
        connection = redis.Redis.from_url(server.url)
        for _ in range(200):
            connection.publish("simscale:calibration", b"x" * 100)
        round_trips = []
        for _ in range(2_000):
            started = time.perf_counter()
            connection.publish("simscale:calibration", b"x" * 100)
            round_trips.append(time.perf_counter() - started)
        pipeline = connection.pipeline(transaction=False)
        count = 20_000
        for _ in range(count):
            pipeline.publish("simscale:calibration", b"x" * 100)
        started = time.perf_counter()
        pipeline.execute()
        service_s = (time.perf_counter() - started) / count
        connection.close()
    return service_s, statistics.median(round_trips)


def measure_calibration(
    connections: int, *, message_bytes: int, run_s: float = RUN_S, placement: Placement = _UNPINNED
) -> CalibrationMeasurements:
    """Everything a calibration needs, from one hub process (keep-alive every second) and a redis-server,
    placed as a validation places them (``placement``: the hub's cores and the load generator's); each
    broadcast run lasts ``run_s``."""
    hub = HubProcess(
        "--backplane", "memory", "--keepalive-interval-s", f"{_KEEPALIVE_INTERVAL_S:g}", name="calibration",
        cores=placement.hub_cores,
    )  # fmt: skip
    stack = ExitStack()  # the load generator's pinning, undone before the hub stops
    try:
        stack.enter_context(pinned_here(placement.loadgen_cores))
        base_rss = hub.rss_bytes()
        idle_cpu_before = hub.cpu_s()
        time.sleep(_EMPTY_IDLE_S)
        empty_idle_cpu_s = hub.cpu_s() - idle_cpu_before
        connect_close_cpu, rss_delta, idle_cpu = run_blocking(hold_idle(hub.url, connections, _HOLD_S, hub))
        small, large = max(10, connections // 4), connections
        quiet = (
            broadcast_run(hub.url, large, 20.0, run_s, hub),
            broadcast_run(hub.url, large, 40.0, run_s, hub),
            broadcast_run(hub.url, small, 40.0, run_s, hub),
        )
        # Busier, still mostly one fan-out at a time: how the loop's stalls shrink as it gets busier.
        moderate = tuple(broadcast_run(hub.url, large, rate, run_s, hub) for rate in _MODERATE_RATES_PER_S)
        # Busy runs: the hub then writes several frames per socket at once, and the load generator
        # finds several messages per socket read.
        busy = tuple(
            broadcast_run(hub.url, large, min(rate / large, _BUSY_MAX_RATE_PER_S), run_s, hub)
            for rate in _BUSY_DELIVERIES_PER_S
        )
    finally:
        stack.close()
        hub.stop()
    serialize_s = serialize_cpu_s(message_bytes)  # in this process, with the hub gone
    publish_service_s, publish_round_trip_s = publish_timing_s(placement)
    return CalibrationMeasurements(
        connections=connections,
        base_rss_bytes=base_rss,
        empty_idle_cpu_s=empty_idle_cpu_s,
        empty_idle_s=_EMPTY_IDLE_S,
        hold_s=_HOLD_S,
        keepalive_interval_s=_KEEPALIVE_INTERVAL_S,
        connect_close_cpu_s=connect_close_cpu,
        connected_rss_delta_bytes=rss_delta,
        held_idle_cpu_s=idle_cpu,
        quiet=quiet,
        moderate=moderate,
        busy=busy,
        serialize_cpu_s=serialize_s,
        publish_service_s=publish_service_s,
        publish_round_trip_s=publish_round_trip_s,
    )


def measure_loopback(
    name: str,
    servers: int,
    clients: int,
    rates_per_s: Sequence[float],
    *,
    duration_s: float,
    warmup_s: float,
    drain_s: float,
    seed: int,
    redis: bool | None = None,
    load_fields: Mapping[str, Any] | None = None,
    placement: Placement = _UNPINNED,
) -> LoopbackMeasurements:
    """Run preset ``name`` for real: ``servers`` hubs (a ``redis-server`` too for ``backplane``, or when
    ``redis``) and the load generator at each rate, the hubs' CPU and RSS sampled throughout.

    ``load_fields`` go to every :class:`~simscale.loadgen.LoadConfig` (the group sends' sizes); each run
    also reads every hub's ``backplane_messages_received`` counter before and after. ``placement``: the
    hubs' (and redis-server's) cores and the load generator's (this process's, for the runs)."""
    from simscale.backplane.redis_server import RedisServer
    from simscale.loadgen import LoadConfig, run_load

    runs: list[LoadRun] = []
    with ExitStack() as stack:
        backplane = "memory"
        if redis or (redis is None and name == "backplane"):
            redis_server = stack.enter_context(RedisServer())
            if redis_server.pid is not None:
                place_hub_process(redis_server.pid, placement.hub_cores)
            backplane = redis_server.url
        hubs = stack.enter_context(HubProcesses(servers, backplane, cores=placement.hub_cores))
        stack.enter_context(pinned_here(placement.loadgen_cores))
        base_rss = tuple(hub.rss_bytes() for hub in hubs.servers)
        connected_rss: tuple[float, ...] | None = None
        for rate in rates_per_s:
            config = LoadConfig(
                urls=hubs.urls,
                clients=clients,
                broadcast_rate_per_s=rate,
                duration_s=duration_s,
                warmup_s=warmup_s,
                drain_s=drain_s,
                seed=seed,
                scenario=name,
                **dict(load_fields or {}),
            )
            received_before = [hub.backplane_messages_received() for hub in hubs.servers]
            with CpuSampler(hubs.servers) as sampler:
                called_at = time.perf_counter()
                result = run_blocking(run_load(config))
            received = tuple(
                hub.backplane_messages_received() - before
                for hub, before in zip(hubs.servers, received_before, strict=True)
            )
            sends = [record.sent_at_s for record in result.records.broadcasts]
            if connected_rss is None:
                # Memory per idle connection: RSS once everyone is connected, before messages pile up.
                first_send_s = called_at + (min(sends) if sends else 0.0)
                connected_rss = tuple(sampler.rss_bytes_at(i, first_send_s) for i in range(servers))
            runs.append(
                LoadRun(
                    rate_per_s=rate,
                    summary=result.summary,
                    broadcast_cpu_s=result.broadcast_cpu_s,
                    loop_wakeups=result.loop_wakeups,
                    socket_reads=result.socket_reads,
                    counted_broadcasts=len(result.records.broadcasts),
                    hub_cpu_utilization=tuple(
                        sampler.utilization(server, called_at + min(sends), called_at + max(sends))
                        if len(sends) > 1
                        else None
                        for server in range(servers)
                    ),
                    backplane_messages_received=received,
                )
            )
    return LoopbackMeasurements(runs=tuple(runs), base_rss_bytes=base_rss, connected_rss_bytes=connected_rss)
