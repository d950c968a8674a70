"""Each queueing piece against its closed form, before anything is built on it.

* thread pool with injection off = M/M/c: Erlang C probability of waiting and mean wait;
* backplane = M/D/1: Pollaczek-Khinchine mean wait within 10 % at utilisation 0.8;
* port pool = M/G/c/c: Erlang B blocking, below and above ports / TIME_WAIT new connections per second.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy

from simscale.model.backplane import SimBackplane
from simscale.model.ports import PortPool
from simscale.model.threadpool import ThreadPool


def erlang_b(offered_load: float, servers: int) -> float:
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking


def erlang_c(offered_load: float, servers: int) -> float:
    blocking = erlang_b(offered_load, servers)
    utilisation = offered_load / servers
    return blocking / (1 - utilisation * (1 - blocking))


@pytest.mark.parametrize(("threads", "utilisation"), [(4, 0.8), (16, 0.8)])
def test_thread_pool_is_mm_c(threads: int, utilisation: float) -> None:
    rng = np.random.default_rng(11)
    env = simpy.Environment()
    pool = ThreadPool(env, threads, threads, inject=False)
    service_s = 0.010
    arrival_rate = utilisation * threads / service_s
    waits: list[float] = []
    jobs = 200_000

    def job() -> Generator[Any, Any, None]:
        arrived = env.now
        yield pool.acquire()
        waits.append(env.now - arrived)
        yield env.timeout(rng.exponential(service_s))
        pool.release()

    def arrivals() -> Generator[Any, Any, None]:
        for _ in range(jobs):
            yield env.timeout(rng.exponential(1 / arrival_rate))
            env.process(job())

    env.process(arrivals())
    env.run()
    measured = np.array(waits[jobs // 10 :])  # drop the warm-up
    offered = arrival_rate * service_s
    p_wait = erlang_c(offered, threads)
    mean_wait_s = p_wait / (threads / service_s - arrival_rate)
    assert np.mean(measured > 0) == pytest.approx(p_wait, rel=0.08)
    assert measured.mean() == pytest.approx(mean_wait_s, rel=0.12)


def test_backplane_is_md1_at_utilisation_08() -> None:
    rng = np.random.default_rng(5)
    env = simpy.Environment()
    backplane = SimBackplane(
        env,
        subscribers=10,
        publish_base_s=5e-6,
        publish_per_subscriber_s=0.5e-6,
        latency_s=0.0,
        output_buffer_limit_bytes=1e12,
        resubscribe_s=1.0,
    )
    service_s = backplane.service_time_s()  # 10 µs, deterministic
    rate = 0.8 / service_s
    publishes = 100_000
    waits: list[float] = []

    def publisher() -> Generator[Any, Any, None]:
        for _ in range(publishes):
            yield env.timeout(rng.exponential(1 / rate))
            env.process(record(backplane.publish(100)))

    def record(process: Generator[Any, Any, float]) -> Generator[Any, Any, None]:
        waits.append((yield env.process(process)))

    env.process(publisher())
    env.run()
    utilisation = rate * service_s
    pollaczek_khinchine_s = utilisation * service_s / (2 * (1 - utilisation))
    measured_s = float(np.mean(waits[publishes // 10 :]))
    assert measured_s == pytest.approx(pollaczek_khinchine_s, rel=0.10)
    # And it is not M/M/1, whose wait is twice as long.
    assert measured_s < 0.75 * 2 * pollaczek_khinchine_s


@pytest.mark.parametrize("load_factor", [0.7, 1.3])
def test_port_pool_is_erlang_b(load_factor: float) -> None:
    """Ports / TIME_WAIT bounds new connections per second; Erlang B gives the refusals around it."""
    rng = np.random.default_rng(3)
    ports, time_wait_s, use_s = 60, 60.0, 5.0
    rate = load_factor * ports / (use_s + time_wait_s)
    pool = PortPool(ports, time_wait_s)
    env = simpy.Environment()
    attempts = refused = 0
    horizon_s = 40_000.0
    warmup_s = 2_000.0

    def connection() -> Generator[Any, Any, None]:
        yield env.timeout(rng.exponential(use_s))
        pool.release(env.now)

    def arrivals() -> Generator[Any, Any, None]:
        nonlocal attempts, refused
        while env.now < horizon_s:
            yield env.timeout(rng.exponential(1 / rate))
            granted = pool.acquire(env.now)
            if env.now > warmup_s:
                attempts += 1
                refused += granted == 0
            if granted:
                env.process(connection())

    env.process(arrivals())
    env.run()
    expected = erlang_b(rate * (use_s + time_wait_s), ports)
    assert refused / attempts == pytest.approx(expected, abs=0.02, rel=0.15)
