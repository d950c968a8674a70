"""How much local worker processes speed up ``simscale plan``: the same candidates, serial and parallel.

Run: ``.venv/bin/python benchmarks/plan_speed.py [--workers 2] [--runs 3] [--duration 60]``

Plans for 100,000 clients at 10 broadcasts/s (the ``backplane`` preset for the rest) twice per run:
once with ``--workers`` local processes, once serially, and checks that both tried the same sizes and
reached the same answer (each run carries its seed, so they must). Machines here are shared and
noisy, so each time is the median of ``--runs`` and the speed-up is the ratio of the two medians,
measured in the same invocation.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import simscale

CLIENTS = 100_000
BROADCAST_RATE_PER_S = 10.0


def timed_plan(duration_s: float, replications: int, workers: int) -> tuple[float, simscale.planning.Plan]:
    """Wall seconds of one plan (process start-up included) and its answer; ``workers`` 1 = serial."""
    base = simscale.preset("backplane", duration_s=duration_s, warmup_s=min(5.0, duration_s / 10))
    started = time.perf_counter()
    if workers == 1:
        answer = simscale.plan(CLIENTS, BROADCAST_RATE_PER_S, replications=replications, base=base)
    else:
        with ProcessPoolExecutor(workers) as pool:
            answer = simscale.plan(CLIENTS, BROADCAST_RATE_PER_S, replications=replications, base=base, executor=pool)
    return time.perf_counter() - started, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (default: 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default: 3)")
    parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds per run (default: 60)")
    parser.add_argument("--replications", type=int, default=2, help="simulations per size (default: 2)")
    args = parser.parse_args()

    parallel_s, serial_s = [], []
    for _ in range(args.runs):
        wall, parallel = timed_plan(args.duration, args.replications, args.workers)
        parallel_s.append(wall)
        wall, serial = timed_plan(args.duration, args.replications, 1)
        serial_s.append(wall)
        assert parallel.candidates.equals(serial.candidates), "serial and parallel tried different candidates"
    sizes = serial.candidates["servers"].tolist()
    runs = len(sizes) * args.replications
    print(f"plan for {CLIENTS:,} clients at {BROADCAST_RATE_PER_S:g} broadcasts/s: {serial.servers} servers, "
          f"binding constraint {serial.binding_constraint}")  # fmt: skip
    print(f"candidates simulated: {sizes} × {args.replications} replications = {runs} runs of {args.duration:g} s")
    print(f"serial:            {statistics.median(serial_s):7.2f} s (median of {args.runs})")
    print(f"{args.workers} local workers:   {statistics.median(parallel_s):7.2f} s (median of {args.runs})")
    print(f"speed-up (serial / parallel): {statistics.median(serial_s) / statistics.median(parallel_s):.2f}x")


if __name__ == "__main__":
    main()
