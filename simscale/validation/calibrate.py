"""``simscale calibrate``: measure the real hub's costs on this machine (at most 1,000 connections).

What is measured, and how (every figure is a difference between two states of the same process,
so the interpreter's own footprint cancels out):

* memory per idle connection and the accept cost: RSS and CPU of a hub process before and after
  ``N`` clients connect (and, for the CPU, close again);
* CPU per keep-alive: the same idle clients with a 1 s keep-alive interval, minus the idle process;
* per-message and per-recipient costs: broadcast runs of the load generator with different client
  counts and rates, CPU counted over the broadcast phase only (connecting and closing left out);
  the hub's CPU is fitted as ``broadcasts·(read + serialise) + deliveries·send`` by least squares
  over three quiet runs, with the serialisation itself timed in-process, and its cost per recipient
  measured again in three busy runs (the model uses that one while work is queued);
* the load generator's own CPU (the model needs it to predict a loopback run where the clients
  share the host), fitted over all six runs as ``broadcasts·send + wake-ups·per_wakeup +
  reads·per_read + messages·per_message`` with non-negative least squares on relative errors: the
  runs differ in how many messages a socket read and an event-loop wake-up carry, which is what
  separates the costs (the load generator counts both);
* the load generator's stalls (:mod:`simscale.validation.stalls`): in two quiet runs and two busier
  ones, how often the loop waited more than half a fan-out's writing between two reads of it, fitted
  as an exponential wait whose mean shrinks with the loop's busy fraction;
* backplane latency with Redis: PUBLISH round trips against a real ``redis-server`` and the
  pipelined PUBLISH rate for the per-publish service time.
"""

from __future__ import annotations

import asyncio
import datetime
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from simscale._version import __version__
from simscale.scenarios.calibration import Calibration
from simscale.validation.processes import HubProcess, run_blocking
from simscale.validation.stalls import StallCount, count_stalls, fit_stalls

__all__ = ["calibrate"]

_MAX_CONNECTIONS = 1_000
_BUSY_DELIVERIES_PER_S = (60_000, 110_000, 180_000)
"""The busy runs' offered deliveries per second: messages share socket reads more and more, up to
the load generator's own saturation (which is what a loopback validation runs into first)."""
_BUSY_MAX_RATE_PER_S = 800.0
_RUN_S = 3.0
_MODERATE_RATES_PER_S = (100.0, 160.0)
_MIN_STALL_S = 0.5e-3
"""Gaps between two passes shorter than this are the loop's own rhythm, not a stall."""


@dataclass(frozen=True, slots=True)
class _BroadcastRun:
    """CPU of the hub and of the load generator over one run's broadcast phase."""

    wall_s: float
    clients: int
    broadcasts: int
    deliveries: int
    hub_cpu_s: float
    loadgen_cpu_s: float
    reads: int
    wakeups: int
    sends_s: tuple[float, ...]
    passes: tuple[tuple[float, float, int], ...]
    """The load generator's loop passes (first read, end, reads), on the clock of ``sends_s``."""


def _serialize_cpu_s(message_bytes: int) -> float:
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


async def _hold_idle(url: str, clients: int, hold_s: float, hub: HubProcess) -> tuple[float, float, float]:
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


def _broadcast_run(url: str, clients: int, rate_per_s: float, duration_s: float, hub: HubProcess) -> _BroadcastRun:
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
    hub_cpu_s = hub_cpu_at["broadcast_end"] - hub_cpu_at["broadcast_start"]
    return _BroadcastRun(
        wall_s=result.broadcast_wall_s,
        clients=clients,
        broadcasts=len(result.records.broadcasts),
        deliveries=int(result.summary.deliveries or 0),
        hub_cpu_s=hub_cpu_s,
        loadgen_cpu_s=result.broadcast_cpu_s,
        reads=result.socket_reads,
        wakeups=result.loop_wakeups,
        sends_s=tuple(record.sent_at_s for record in result.records.broadcasts),
        passes=result.loop_passes,
    )


def _publish_costs_s() -> tuple[float, float]:
    """(per-publish Redis service time, one-way latency) measured against a real redis-server."""
    import redis

    from simscale.backplane.redis_server import RedisServer

    with RedisServer() as server:
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
    round_trip_s = statistics.median(round_trips)
    return service_s, max(round_trip_s - service_s, 0.0) / 2


def calibrate(connections: int = 300, *, message_bytes: int = 64) -> Calibration:
    """Measure the real hub on this machine with ``connections`` clients (at most 1,000)."""
    if not isinstance(connections, int) or isinstance(connections, bool) or not 10 <= connections <= _MAX_CONNECTIONS:
        raise ValueError(f"connections must be an integer from 10 to {_MAX_CONNECTIONS}, got {connections!r}")
    hub = HubProcess("--backplane", "memory", "--keepalive-interval-s", "1", name="calibration")
    try:
        base_rss = hub.rss_bytes()
        idle_cpu_before = hub.cpu_s()
        time.sleep(2.0)
        empty_idle_cpu_per_s = (hub.cpu_s() - idle_cpu_before) / 2.0
        hold_s = 3.0
        connect_close_cpu, rss_delta, idle_cpu = run_blocking(_hold_idle(hub.url, connections, hold_s, hub))
        pings = connections * hold_s / 1.0
        keepalive_cpu_s = max(idle_cpu - empty_idle_cpu_per_s * hold_s, 0.0) / pings
        handshake_cpu_s = connect_close_cpu / connections

        small, large = max(10, connections // 4), connections
        quiet = [
            _broadcast_run(hub.url, large, 20.0, _RUN_S, hub),
            _broadcast_run(hub.url, large, 40.0, _RUN_S, hub),
            _broadcast_run(hub.url, small, 40.0, _RUN_S, hub),
        ]
        # Busier, still mostly one fan-out at a time: how the loop's stalls shrink as it gets busier.
        moderate = [_broadcast_run(hub.url, large, rate, _RUN_S, hub) for rate in _MODERATE_RATES_PER_S]
        # Busy runs: the hub then writes several frames per socket at once, and the load generator
        # finds several messages per socket read.
        busy = [
            _broadcast_run(hub.url, large, min(rate / large, _BUSY_MAX_RATE_PER_S), _RUN_S, hub)
            for rate in _BUSY_DELIVERIES_PER_S
        ]
    finally:
        hub.stop()

    # Hub CPU over the broadcast phase, beyond idling = broadcasts·(read + serialise) + deliveries·send.
    def beyond_idle_s(run: _BroadcastRun) -> float:
        return run.hub_cpu_s - run.wall_s * empty_idle_cpu_per_s

    design = np.array([[run.broadcasts, run.deliveries] for run in quiet], dtype=np.float64)
    (per_broadcast_s, send_s), *_ = np.linalg.lstsq(design, np.array([beyond_idle_s(r) for r in quiet]), rcond=None)
    serialize_s = _serialize_cpu_s(message_bytes)
    send_cpu_per_recipient_s = max(float(send_s), 1e-7)
    invocation_cpu_s = max(float(per_broadcast_s) - serialize_s, 1e-6)
    busy_send_s = statistics.fmean(
        max((beyond_idle_s(run) - run.broadcasts * float(per_broadcast_s)) / max(run.deliveries, 1), 1e-7)
        for run in busy
    )
    # The load generator = broadcasts·send + wake-ups·per_wakeup + reads·per_read + messages·per_message,
    # all >= 0, each run weighted by its own size so that the quiet runs count as much as the busy ones.
    runs = [*quiet, *moderate, *busy]
    loadgen_cpu = np.array([run.loadgen_cpu_s for run in runs])
    loadgen_design = np.array(
        [[run.broadcasts, run.wakeups, run.reads, run.deliveries] for run in runs], dtype=np.float64
    )
    (loadgen_send_s, loadgen_wakeup_s, loadgen_read_s, loadgen_message_s), _ = optimize.nnls(
        loadgen_design / loadgen_cpu[:, None], np.ones(len(runs))
    )
    if loadgen_read_s <= 0 or loadgen_message_s <= 0:
        # The runs did not differ enough in messages per read to tell the two apart (a small
        # calibration's busy runs hit the rate cap alike): one cost per message, reads folded in.
        (loadgen_send_s, loadgen_wakeup_s, loadgen_message_s), _ = optimize.nnls(
            loadgen_design[:, [0, 1, 3]] / loadgen_cpu[:, None], np.ones(len(runs))
        )
        loadgen_read_s = 0.0
    low_load = sum(run.deliveries for run in quiet[:2]) / sum(run.wall_s for run in quiet[:2])
    high_load = busy[-1].deliveries / busy[-1].wall_s
    # A stall: the loop waited more than half the hub's writing of the fan-out between two reads of it.
    threshold_s = max(0.5 * large * send_cpu_per_recipient_s, _MIN_STALL_S)
    stall_counts = [
        StallCount(
            run.loadgen_cpu_s / run.wall_s, *count_stalls(run.sends_s, run.passes, large, threshold_s), threshold_s
        )
        for run in (quiet[0], quiet[1], *moderate)
    ]
    stall_mean_s, stall_busy_scale = fit_stalls(stall_counts)
    publish_base_s, backplane_latency_s = _publish_costs_s()
    return Calibration(
        invocation_cpu_s=invocation_cpu_s,
        serialize_cpu_s=serialize_s,
        send_cpu_per_recipient_s=send_cpu_per_recipient_s,
        keepalive_cpu_s=keepalive_cpu_s,
        handshake_cpu_s=handshake_cpu_s,
        memory_base_bytes=base_rss,
        memory_per_connection_bytes=max(rss_delta / connections, 0.0),
        backplane_publish_base_s=publish_base_s,
        backplane_latency_s=backplane_latency_s,
        connections=connections,
        loadgen_cpu_per_delivery_s=float(loadgen_message_s),
        loadgen_cpu_per_read_s=float(loadgen_read_s),
        loadgen_cpu_per_wakeup_s=float(loadgen_wakeup_s),
        loadgen_cpu_per_send_s=float(loadgen_send_s),
        loadgen_stall_mean_s=stall_mean_s,
        loadgen_stall_busy_scale=stall_busy_scale,
        low_load_deliveries_per_s=low_load,
        high_load_deliveries_per_s=high_load,
        send_cpu_per_recipient_high_load_s=busy_send_s,
        host=platform.node(),
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        simscale_version=__version__,
        notes={
            "runs": [_as_dict(run) for run in runs],
            "stalls": [
                {"busy": c.busy, "fan_outs": c.fan_outs, "stalled": c.stalled, "threshold_s": c.threshold_s}
                for c in stall_counts
            ],
        },
    )


def _as_dict(run: _BroadcastRun) -> dict[str, float]:
    return {
        "wall_s": run.wall_s,
        "clients": run.clients,
        "broadcasts": run.broadcasts,
        "deliveries": run.deliveries,
        "hub_cpu_s": run.hub_cpu_s,
        "loadgen_cpu_s": run.loadgen_cpu_s,
        "reads": run.reads,
        "wakeups": run.wakeups,
    }
