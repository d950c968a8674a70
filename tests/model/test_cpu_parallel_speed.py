"""Cores that slow each other down: a host's parallel speed below 1, and the load generator pinned apart."""

from __future__ import annotations

from typing import Any

import pytest
import simpy

from simscale.model.cpu import Cpu, HostCores
from simscale.scenarios import preset, simulate


def _finish_times_s(parallel_speed: float, items: int, cores: int = 2) -> list[float]:
    """``items`` work items of 10 ms each started at once on a ``cores``-core machine; when each ends."""
    env = simpy.Environment()
    cpu = Cpu(env, cores, 0.0, HostCores(cores, parallel_speed))
    ends: list[float] = []

    def run() -> Any:
        lane = cpu.lanes.request()
        yield lane
        lane = yield from cpu.hold(lane, 10e-3)
        cpu.lanes.release(lane)
        ends.append(float(env.now))

    for _ in range(items):
        env.process(run())
    env.run()
    return ends


def test_speed_falls_linearly_from_one_busy_core_to_all() -> None:
    host = HostCores(cores=3, parallel_speed=0.4)
    speeds = []
    for busy in (0, 1, 2, 3, 4):
        host.busy = busy
        speeds.append(host.speed())
    assert speeds == pytest.approx([1.0, 1.0, 0.7, 0.4, 0.4])
    with pytest.raises(ValueError, match="parallel_speed"):
        HostCores(2, 0.0)
    with pytest.raises(ValueError, match="cores"):
        HostCores(0, 0.5)


@pytest.mark.parametrize("parallel_speed", [0.5, 0.8])
def test_two_busy_cores_do_parallel_speed_times_twice_the_work_of_one(parallel_speed: float) -> None:
    alone = _finish_times_s(parallel_speed, items=1)
    together = _finish_times_s(parallel_speed, items=2)
    assert alone == pytest.approx([10e-3])  # one busy core runs at full speed
    # Two at once: total throughput 2 x parallel_speed of one alone, so each takes 10 ms / parallel_speed.
    assert together == pytest.approx([10e-3 / parallel_speed] * 2)


def test_at_full_parallel_speed_the_cpu_takes_todays_path() -> None:
    env = simpy.Environment()
    assert Cpu(env, 2, 0.0, HostCores(2, 1.0)).host is None
    assert _finish_times_s(1.0, items=2) == [10e-3, 10e-3]


def test_a_slower_host_saturates_the_shared_hubs_earlier() -> None:
    base = preset("no-backplane", clients=100, duration_s=3.0, warmup_s=1.0, seed=3).replace(
        shared_host_cores=2, cpu_time_slice_s=2e-3, invocation_rate_per_client_per_s=1.0, send_cpu_per_recipient_s=2e-4
    )
    fast = simulate(base).summary
    slow = simulate(base.replace(cpu_parallel_speed=0.5)).summary
    # The same work, the cores slower while both are busy: CPU is busy longer, delivery is later.
    assert slow.cpu_utilization_max > fast.cpu_utilization_max
    assert slow.latency_p99_ms > fast.latency_p99_ms


def test_a_load_generator_on_its_own_core_does_not_stall_on_the_hubs() -> None:
    base = preset("single-server", clients=40, duration_s=3.0, warmup_s=1.0, seed=5).replace(
        shared_host_cores=2, cpu_time_slice_s=2e-3, client_host="one-loop", loadgen_cpu_per_delivery_s=20e-6,
        loadgen_cpu_per_read_s=20e-6, loadgen_stall_mean_s=5e-3,
    )  # fmt: skip
    shared = simulate(base).summary
    pinned = simulate(base.replace(shared_host_cores=1, loadgen_own_cores=1)).summary
    assert pinned.delivered_fraction == shared.delivered_fraction == 1.0
    # The stall on a hub's core is gone when the loop has a core of its own.
    assert pinned.latency_p50_ms < shared.latency_p50_ms


def _busy_work_done_s(share: float, horizon_s: float = 1.0, slice_s: float = 2e-3) -> tuple[float, float]:
    """On one time-shared core with a neighbour taking ``share``: (CPU seconds a never-idle worker got done,
    the wait of a single 0.1 ms item arriving on an otherwise idle core at 0.5 s)."""
    env = simpy.Environment()
    cpu = Cpu(env, 1, slice_s)
    env.process(cpu.neighbour(share, 0.0))
    done = [0.0]

    def busy() -> Any:
        while True:
            lane = cpu.lanes.request()
            yield lane
            lane = yield from cpu.hold(lane, 10e-3)
            cpu.lanes.release(lane)
            done[0] += 10e-3

    env.process(busy())
    env.run(until=horizon_s)
    idle = simpy.Environment()
    quiet = Cpu(idle, 1, slice_s)
    idle.process(quiet.neighbour(share, 0.0))
    waited: list[float] = []

    def one() -> Any:
        yield idle.timeout(0.5)
        lane = quiet.lanes.request()
        yield lane
        waited.append(float(idle.now) - 0.5)
        quiet.lanes.release(lane)

    idle.process(one())
    idle.run(until=1.0)
    return done[0], waited[0]


@pytest.mark.parametrize("share", [0.25, 0.5, 0.8])
def test_a_neighbour_takes_its_share_of_a_busy_core_and_delays_a_quiet_one_by_one_hold_at_most(share: float) -> None:
    done_s, waited_s = _busy_work_done_s(share)
    assert done_s == pytest.approx(1 - share, abs=0.03)
    assert 0 <= waited_s <= 2e-3 * max(1.0, share / (1 - share))  # at most the neighbour's hold
    with pytest.raises(ValueError, match="share"):
        next(Cpu(simpy.Environment(), 1, 0.0).neighbour(0.5, 0.0))


def test_a_neighbour_on_the_hubs_cores_lowers_the_saturation() -> None:
    base = preset("no-backplane", clients=100, duration_s=3.0, warmup_s=1.0, seed=3).replace(
        shared_host_cores=2, cpu_time_slice_s=2e-3, invocation_rate_per_client_per_s=1.0, send_cpu_per_recipient_s=2e-4
    )
    alone = simulate(base).summary
    shared = simulate(base.replace(shared_host_neighbour_share=0.5)).summary
    assert shared.latency_p99_ms > alone.latency_p99_ms
    assert shared.delivered_fraction == pytest.approx(alone.delivered_fraction, abs=0.01)  # nothing lost


def test_a_neighbour_on_the_load_generators_own_core_makes_its_reads_later() -> None:
    base = preset("single-server", clients=40, duration_s=3.0, warmup_s=1.0, seed=5).replace(
        shared_host_cores=1, loadgen_own_cores=1, cpu_time_slice_s=2e-3, client_host="one-loop",
        loadgen_cpu_per_delivery_s=20e-6, loadgen_cpu_per_read_s=20e-6,
    )  # fmt: skip
    alone = simulate(base).summary
    crowded = simulate(base.replace(loadgen_neighbour_share=0.6)).summary
    assert crowded.delivered_fraction == alone.delivered_fraction == 1.0
    assert crowded.latency_p50_ms > alone.latency_p50_ms
