"""How the real load generator's event loop meets a quiet fan-out: side by side with the hub, or in lockstep.

Run: ``.venv/bin/python benchmarks/loop_trace.py [--clients 900] [--rates 10,30,45]``

One hub process and the load generator on this host, at low broadcast rates, with the load
generator's pass trace on (``LoadConfig.trace_loop_passes``: every pass of its event loop that read
something, when and how many reads). A fan-out is *isolated* when the passes between its send and the
next send read one message per client (``simscale.validation.stalls.isolated_fan_outs``); it ran *in
lockstep* when the loop was away more than ``--stall-ms`` between two of those passes (the woken loop
sat on the writing hub's core until the hub had written the rest of the fan-out, then read it in one
pass), and *side by side* otherwise.

Printed per rate: how many isolated fan-outs ran each way, their mean latency and read span, and the
time the loop had been idle before each. Session 3 on the 2-core VM: 22 of 28 in lockstep at 10/s,
24 of 93 at 30/s (900 clients). Calibration counts the same stalls (at its own client count) and the
model draws them (``loadgen_stall_mean_s``); this script shows them at any size and rate.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from simscale.loadgen import LoadConfig, run_load
from simscale.validation.processes import HubProcess, run_blocking
from simscale.validation.stalls import isolated_fan_outs, longest_wait_s


def trace(url: str, clients: int, rate_per_s: float, duration_s: float, stall_s: float) -> dict[str, Any]:
    """Isolated fan-outs by kind: ``(mean latency, read span, loop idle before)`` in seconds each."""
    config = LoadConfig(
        urls=(url,),
        clients=clients,
        broadcast_rate_per_s=rate_per_s,
        duration_s=duration_s,
        trace_loop_passes=True,  # every send counted (no warm-up): each pair of sends brackets a fan-out
    )
    result = run_blocking(run_load(config))
    broadcasts = sorted(result.records.broadcasts, key=lambda record: record.sent_at_s)
    latency_s = {record.broadcast_id: record.latency_mean_s for record in result.records.deliveries}
    sends_s = [record.sent_at_s for record in broadcasts]
    kinds: dict[str, list[tuple[float, float, float]]] = {"side by side": [], "lockstep": []}
    previous_end_s = float("nan")
    for index, mine in isolated_fan_outs(sends_s, result.loop_passes, clients):
        broadcast = broadcasts[index]
        if broadcast.broadcast_id in latency_s:
            kind = "lockstep" if longest_wait_s(mine) > stall_s else "side by side"
            span_s = float(mine[-1, 1] - mine[0, 0])
            kinds[kind].append((latency_s[broadcast.broadcast_id], span_s, broadcast.sent_at_s - previous_end_s))
        previous_end_s = float(mine[-1, 1])
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=900)
    parser.add_argument("--rates", default="10,30,45", help="broadcasts per second, comma-separated")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per rate")
    parser.add_argument("--stall-ms", type=float, default=1.0, help="a select blocking this long inside a fan-out")
    args = parser.parse_args()
    hub = HubProcess("--backplane", "memory", name="loop-trace")
    try:
        print(f"{args.clients} clients, one hub; isolated fan-outs only; latency from the send")
        for rate in (float(part) for part in args.rates.split(",")):
            kinds = trace(hub.url, args.clients, rate, args.duration, args.stall_ms / 1000)
            total = sum(len(rows) for rows in kinds.values())
            for kind, rows in kinds.items():
                if not rows:
                    continue
                latency, span, idle = (
                    statistics.fmean(value for value in column if value == value) * 1000  # NaN: no fan-out before
                    for column in zip(*rows, strict=True)
                )
                print(
                    f"  {rate:g}/s {kind:<12} {len(rows):3d} of {total:3d}: mean latency {latency:5.1f} ms, "
                    f"read span {span:5.1f} ms, loop idle before it {idle:6.1f} ms"
                )
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
