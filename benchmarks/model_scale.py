"""How fast and how lean the model is: three figures, printed as a table.

Run: ``.venv/bin/python benchmarks/model_scale.py [--quick]``

1. 100,000 clients, 10 servers, backplane, 10 broadcasts/s, 60 simulated seconds: wall time and peak RSS;
2. ``simscale simulate backplane --servers 20 --clients 1000000 --broadcast-rate 100 --duration 60``
   as a subprocess, start-up included: wall, CPU and peak RSS (target: faster than real time, < 2 GB);
3. the aggregated model next to a naive per-recipient SimPy model (one event per recipient, the
   pattern of SimPy's BroadcastPipe example) on the same scenario: speed-up and latency percentiles.

4. vectorised fan-outs (``fan_out_mode=vectorised``, the default) against the per-server reference on
   1,000,000 clients × 80 servers, backplane, 100 broadcasts/s, 60 simulated s (goal: ≥ 10× faster),
   and 10,000,000 clients × 800 servers at 100/s for 60 simulated s (goal: wall < 60 s, peak RSS < 4 GB),
   each run in a fresh interpreter that reports its own wall time and peak RSS.

Machines here are shared and noisy, so each figure is the median of ``--runs`` and the speed-up is
a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

import simscale
from simscale.scenarios import Scenario

ROOT = Path(__file__).resolve().parent.parent


def naive_latencies_s(scenario: Scenario, seed: int) -> tuple[np.ndarray[Any, np.dtype[np.float64]], int, float]:
    """The same broadcast physics with one SimPy event per recipient; returns (latencies, events, wall)."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    servers = scenario.servers
    per_server = scenario.clients // servers
    cpus = [simpy.Resource(env, capacity=scenario.cores_per_server) for _ in range(servers)]
    redis = simpy.Resource(env, capacity=1)
    latencies: list[float] = []
    events = 0

    def net() -> float:
        return scenario.network_latency_s + float(rng.exponential(scenario.network_jitter_s))

    def deliver(sent_at: float) -> Generator[Any, Any, None]:
        nonlocal events
        yield env.timeout(net())
        events += 1
        if sent_at >= scenario.warmup_s:
            latencies.append(env.now - sent_at)

    def fan_out(server: int, sent_at: float, from_backplane: bool) -> Generator[Any, Any, None]:
        nonlocal events
        with cpus[server].request() as lane:
            yield lane
            if from_backplane:
                yield env.timeout(scenario.invocation_cpu_s)
            for _ in range(per_server):  # one send, one event, one delivery process per recipient
                yield env.timeout(scenario.send_cpu_per_recipient_s)
                events += 1
                env.process(deliver(sent_at))

    def publish(origin: int, sent_at: float) -> Generator[Any, Any, None]:
        yield env.timeout(scenario.backplane_latency_s)
        with redis.request() as turn:
            yield turn
            yield env.timeout(scenario.backplane_publish_base_s + scenario.backplane_publish_per_subscriber_s * servers)
        yield env.timeout(scenario.backplane_latency_s)
        for server in range(servers):
            if server != origin:
                env.process(fan_out(server, sent_at, True))

    def send(origin: int, sent_at: float) -> Generator[Any, Any, None]:
        yield env.timeout(net())
        with cpus[origin].request() as lane:
            yield lane
            yield env.timeout(scenario.invocation_cpu_s + scenario.serialize_cpu_s)
        env.process(fan_out(origin, sent_at, False))
        env.process(publish(origin, sent_at))

    def broadcasts() -> Generator[Any, Any, None]:
        while True:
            yield env.timeout(float(rng.exponential(1 / scenario.broadcast_rate_per_s)))
            if env.now >= scenario.duration_s:
                return
            env.process(send(int(rng.integers(servers)), env.now))

    env.process(broadcasts())
    env.run(until=scenario.duration_s + scenario.drain_s)
    return np.array(latencies), events, time.perf_counter() - started


def timed_simulate(scenario: Scenario) -> tuple[simscale.scenarios.SimulationResult, float]:
    started = time.perf_counter()
    result = simscale.simulate(scenario)
    return result, time.perf_counter() - started


def peak_rss_mb_of(code: str) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; return (wall seconds, peak RSS in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall_s, max(after.ru_maxrss, before.ru_maxrss) / 1024


_SCALE_RUN = """
import json, resource, sys, time
import simscale
clients, servers, mode, duration_s = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
started = time.perf_counter()
result = simscale.simulate(simscale.preset("backplane", clients=clients, servers=servers, broadcast_rate_per_s=100.0,
                                           duration_s=duration_s, warmup_s=min(5.0, duration_s / 4), seed=1,
                                           fan_out_mode=mode))
summary = result.summary
print(json.dumps({"wall_s": time.perf_counter() - started, "events": summary.events,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "delivered_fraction": summary.delivered_fraction, "p50_ms": summary.latency_p50_ms,
                  "p99_ms": summary.latency_p99_ms, "refused": summary.connections_refused,
                  "dropped": summary.connections_dropped, "lost": result.backplane_lost_publishes,
                  "clients_connected": summary.clients_connected}))
"""


def scale_run(clients: int, servers: int, mode: str, duration_s: float) -> dict[str, Any]:
    """One ``backplane`` run at 100 broadcasts/s in a fresh interpreter: its wall time (simulation only),
    peak RSS, events and headline figures."""
    output = subprocess.run(
        [sys.executable, "-c", _SCALE_RUN, str(clients), str(servers), mode, str(duration_s)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return figures


def _outcome(run: dict[str, Any]) -> str:
    return (
        f"delivered {run['delivered_fraction']:.4f}, p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, "
        f"refused {run['refused']:,}, dropped {run['dropped']:,}, lost {run['lost']:,}, "
        f"connected {run['clients_connected']:,}"
    )


def fan_out_mode_rows(
    *, clients: int, servers: int, huge_clients: int, huge_servers: int, duration_s: float, runs: int
) -> list[tuple[str, str]]:
    """The vectorised mode against the per-server reference (same run, medians of ``runs``), then the huge run."""
    reference = [scale_run(clients, servers, "per-server", duration_s) for _ in range(runs)]
    vectorised = [scale_run(clients, servers, "vectorised", duration_s) for _ in range(runs)]
    ref_wall_s = statistics.median(run["wall_s"] for run in reference)
    vec_wall_s = statistics.median(run["wall_s"] for run in vectorised)
    case = f"{clients:,} clients × {servers} servers, backplane, 100/s, {duration_s:g} s"
    rows = [
        (
            f"per-server fan-outs, {case}",
            f"{ref_wall_s:.1f} s, {reference[0]['events']:,} events, {reference[0]['peak_rss_mb']:.0f} MB",
        ),
        ("  ", _outcome(reference[0])),
        (
            f"vectorised fan-outs, {case}",
            f"{vec_wall_s:.1f} s, {vectorised[0]['events']:,} events, {vectorised[0]['peak_rss_mb']:.0f} MB",
        ),
        ("  ", _outcome(vectorised[0])),
        ("  speed-up (per-server / vectorised, same run; goal >= 10×)", f"{ref_wall_s / vec_wall_s:.1f}×"),
    ]
    huge = scale_run(huge_clients, huge_servers, "vectorised", duration_s)
    rows += [
        (
            f"vectorised fan-outs, {huge_clients:,} clients × {huge_servers} servers, 100/s, {duration_s:g} s",
            f"{huge['wall_s']:.1f} s wall (goal < {duration_s:g} s), {huge['events']:,} events, "
            f"peak RSS {huge['peak_rss_mb']:.0f} MB (goal < 4,096)",
        ),
        ("  ", _outcome(huge)),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    rows: list[tuple[str, str]] = []

    # 1. 100k clients, 10 servers, backplane, 10/s, 60 s.
    clients = 20_000 if args.quick else 100_000
    code = (
        "import simscale, time; t = time.perf_counter();"
        f"r = simscale.simulate(simscale.preset('backplane', servers=10, clients={clients},"
        " broadcast_rate_per_s=10.0, duration_s=60.0));"
        "assert r.summary.events"
    )
    walls, peaks = [], []
    for _ in range(runs):
        wall_s, peak_mb = peak_rss_mb_of(code)
        walls.append(wall_s)
        peaks.append(peak_mb)
    rows.append(
        (
            f"{clients:,} clients, 10 servers, backplane, 10/s, 60 s (process wall)",
            f"{statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f})",
        )
    )
    rows.append(("  peak RSS", f"{statistics.median(peaks):.0f} MB"))

    # 2. The 1M-client command, as a user runs it, start-up included.
    big = ["--clients", "1000000", "--servers", "20", "--broadcast-rate", "100", "--duration", "60"]
    if args.quick:
        big = ["--clients", "100000", "--servers", "20", "--broadcast-rate", "100", "--duration", "10"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "simscale", "simulate", "backplane", *big, "--json"],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rows.append(("simscale simulate backplane " + " ".join(big), f"wall {wall_s:.1f} s, CPU {cpu_s:.1f} s"))
    simulated_s = float(big[big.index("--duration") + 1])
    rows.append(("  simulated s / CPU s (> 1 = faster than real time)", f"{simulated_s / cpu_s:.2f}×"))
    rows.append(("  peak RSS", f"{after.ru_maxrss / 1024:.0f} MB"))

    # 3. Aggregated vs naive per-recipient model, same scenario, same run.
    comparison = simscale.preset(
        "backplane",
        servers=10,
        clients=10_000 if args.quick else 20_000,
        broadcast_rate_per_s=10.0,
        duration_s=20.0,
        warmup_s=2.0,
        keepalive_cpu_s=0.0,
        latency_samples_per_fanout=10_000_000,
    )
    ours, naive = [], []
    latencies = np.array([])
    result = None
    for run in range(runs):
        result, wall = timed_simulate(comparison.replace(seed=run))
        ours.append(wall)
        latencies, naive_events, naive_wall = naive_latencies_s(comparison, run)
        naive.append(naive_wall)
    assert result is not None
    speed_up = statistics.median(naive) / statistics.median(ours)
    rows.append(
        (
            f"aggregated model, {comparison.clients:,} clients, 10 servers, 200 broadcasts",
            f"{statistics.median(ours):.3f} s, {result.summary.events:,} events",
        )
    )
    rows.append(
        ("naive per-recipient SimPy model, same scenario", f"{statistics.median(naive):.2f} s, {naive_events:,} events")
    )
    rows.append(("  speed-up (naive / aggregated, same run)", f"{speed_up:.0f}×"))
    rows.append(
        (
            "  p50 latency aggregated / naive",
            f"{result.summary.latency_p50_ms:.3f} / {np.percentile(latencies, 50) * 1000:.3f} ms",
        )
    )
    rows.append(
        (
            "  p99 latency aggregated / naive",
            f"{result.summary.latency_p99_ms:.3f} / {np.percentile(latencies, 99) * 1000:.3f} ms",
        )
    )

    # 4. Vectorised fan-outs against the per-server reference, then ten million clients.
    if args.quick:
        rows += fan_out_mode_rows(
            clients=20_000, servers=16, huge_clients=100_000, huge_servers=80, duration_s=10.0, runs=runs
        )
    else:
        rows += fan_out_mode_rows(
            clients=1_000_000, servers=80, huge_clients=10_000_000, huge_servers=800, duration_s=60.0, runs=runs
        )

    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
