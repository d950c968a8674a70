"""One busy process of :func:`simscale.validation.host.probe_host`: standard library only, run as a script.

It prints ``ready``, then for each JSON command line on stdin (``{"cores": [...], "start_at": t,
"end_at": t, "mode": "slice" | "count"}``, times on the system-wide monotonic clock) pins itself to
``cores``, waits for ``start_at``, spins until ``end_at`` and prints one JSON line:

* ``slice``: ``{"periods_s": [...]}``, the lengths of the stretches it ran between two gaps of at least
  ``GAP_S`` (another process had the core: the scheduler's time slice, as this process saw it);
* ``count``: ``{"iterations": n, "elapsed_s": x, "cpu_s": c}``, the work a busy process got done and the
  CPU time it was given meanwhile.
"""

from __future__ import annotations

import json
import os
import sys
import time

GAP_S = 50e-6
"""A pause at least this long means the process was off its core (a clock read takes ~0.1 µs)."""

MAX_PERIODS = 10_000
"""Bound on the run periods one worker reports per command."""


def run_periods_s(start_at: float, end_at: float) -> list[float]:
    """The stretches this process ran between two pauses of at least ``GAP_S``, within [start_at, end_at]."""
    clock = time.monotonic
    periods: list[float] = []
    last = clock()
    run_start: float | None = None  # a period counts only once it began after a pause
    while last < end_at and len(periods) < MAX_PERIODS:
        now = clock()
        if now - last >= GAP_S:
            if run_start is not None and last >= start_at:
                periods.append(last - run_start)
            run_start = now
        last = now
    return periods


def count_iterations(end_at: float) -> tuple[int, float, float]:
    """Busy work until ``end_at``: (iterations, elapsed seconds, CPU seconds this process got meanwhile)."""
    clock = time.monotonic
    began = clock()
    cpu_began = time.process_time()
    iterations = 0
    total = 0
    now = began
    while now < end_at:
        for value in range(1_000):  # fixed work between clock reads
            total += value * value
        iterations += 1
        now = clock()
    return iterations, now - began, time.process_time() - cpu_began


def main() -> None:
    """Serve commands from stdin until it closes."""
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        os.sched_setaffinity(0, set(command["cores"]))
        start_at, end_at = float(command["start_at"]), float(command["end_at"])
        pause_s = start_at - time.monotonic() - 0.005
        if pause_s > 0:
            time.sleep(pause_s)
        while time.monotonic() < start_at:
            pass
        if command["mode"] == "slice":
            result: dict[str, object] = {"periods_s": run_periods_s(start_at, end_at)}
        else:
            iterations, elapsed_s, cpu_s = count_iterations(end_at)
            result = {"iterations": iterations, "elapsed_s": elapsed_s, "cpu_s": cpu_s}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
