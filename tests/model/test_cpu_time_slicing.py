"""Time-shared cores: work that has run a slice while others wait steps aside for them."""

from __future__ import annotations

from typing import Any

import pytest
import simpy

from simscale.model.cpu import Cpu, linux_time_slice_s
from simscale.model.server import SimServer
from simscale.scenarios import Scenario, simulate


def test_work_is_cut_into_slices_only_on_time_shared_cores() -> None:
    env = simpy.Environment()
    assert Cpu(env, 1, 1.5e-3).slices(4e-3) == pytest.approx([1.5e-3, 1.5e-3, 1e-3])
    assert Cpu(env, 1, 1.5e-3).slices(1e-3) == [1e-3]
    assert Cpu(env, 1).slices(4e-3) == [4e-3]


def test_linux_slice_grows_with_log2_of_the_cores_up_to_eight() -> None:
    assert linux_time_slice_s(1) == pytest.approx(0.75e-3)
    assert linux_time_slice_s(2) == pytest.approx(1.5e-3)
    assert linux_time_slice_s(8) == pytest.approx(linux_time_slice_s(64)) == pytest.approx(3e-3)
    with pytest.raises(ValueError, match="cores"):
        linux_time_slice_s(0)


def _server(env: simpy.Environment, cpu: Cpu, index: int) -> SimServer:
    return SimServer(
        env, index, profile="asyncio-hub", cpu=cpu, cores=1, min_threads=1, max_threads=1,
        injection_interval_s=0.5, horizon_s=1.0, sample_interval_s=0.1, phases=1, proxy_pools=[],
    )  # fmt: skip


def _long_and_short(time_slice_s: float) -> dict[str, Any]:
    """A 10 ms work item on one core, and a 1 ms one that arrives 0.5 ms after it started."""
    env = simpy.Environment()
    cpu = Cpu(env, 1, time_slice_s)
    long, short = _server(env, cpu, 0), _server(env, cpu, 1)
    seen: dict[str, Any] = {"pauses": []}

    def run_long() -> Any:
        yield from long.use_cpu(10e-3, on_pause=lambda done_s, paused_s: seen["pauses"].append((done_s, paused_s)))
        seen["long_end_s"] = env.now

    def run_short() -> Any:
        yield env.timeout(0.5e-3)
        seen["short_start_s"] = yield from short.use_cpu(1e-3)

    env.process(run_long())
    env.process(run_short())
    env.run()
    seen["busy_s"] = long.meter.busy_s(0) + short.meter.busy_s(0)
    return seen


def test_waiting_work_gets_the_core_after_one_slice_and_the_long_work_resumes_after_it() -> None:
    held = _long_and_short(0.0)
    assert held["short_start_s"] == pytest.approx(10e-3)
    assert held["pauses"] == []
    shared = _long_and_short(1.5e-3)
    assert shared["short_start_s"] == pytest.approx(1.5e-3)
    assert shared["pauses"] == [(pytest.approx(1.5e-3), pytest.approx(1e-3))]
    assert shared["long_end_s"] == pytest.approx(11e-3)
    # Taking turns moves work around; it does not add or lose any.
    assert shared["busy_s"] == pytest.approx(held["busy_s"]) == pytest.approx(11e-3)


def test_work_alone_on_its_core_is_never_paused() -> None:
    env = simpy.Environment()
    server = _server(env, Cpu(env, 1, 1e-3), 0)
    pauses: list[tuple[float, float]] = []
    env.process(server.use_cpu(10e-3, on_pause=lambda *pause: pauses.append(pause)))
    env.run()
    assert pauses == []
    assert env.now == pytest.approx(10e-3)


# Two hubs and the load generator on ONE core: each fan-out writes 500 sockets at 20 µs (10 ms).
CROWDED = Scenario(
    server_profile="asyncio-hub",
    servers=2,
    clients=1_000,
    shared_host_cores=1,
    duration_s=6.0,
    warmup_s=1.0,
    broadcast_rate_per_s=10.0,
    send_cpu_per_recipient_s=20e-6,
    client_host="one-loop",
    loadgen_cpu_per_delivery_s=5e-6,
    loadgen_cpu_per_read_s=5e-6,
    loadgen_cpu_per_wakeup_s=20e-6,
)


def test_on_a_time_shared_core_the_load_generator_reads_while_the_hub_writes() -> None:
    held = simulate(CROWDED).summary
    shared = simulate(CROWDED.replace(cpu_time_slice_s=1.5e-3)).summary
    assert held.delivered_fraction == shared.delivered_fraction == pytest.approx(0.5)
    assert held.latency_p50_ms is not None and shared.latency_p50_ms is not None
    # Held cores: nothing is read before the hub has written all 500 sockets (10 ms). Shared: the loop
    # takes turns with the hub and reads the first sockets while the rest are being written, so the
    # reading of the first half (250 reads at 10 µs) overlaps the writing instead of following it.
    assert held.latency_p50_ms > 10.0
    assert held.latency_p50_ms - shared.latency_p50_ms > 2.0


def test_the_time_slice_is_validated() -> None:
    with pytest.raises(ValueError, match="cpu_time_slice_s"):
        Scenario(cpu_time_slice_s=-1e-3)
