"""How the real load generator's event loop meets a quiet fan-out: side by side with the hub, or in lockstep.

Run: ``.venv/bin/python benchmarks/loop_trace.py [--clients 900] [--rates 10,30,45]``

One hub process and the load generator on this host, at low broadcast rates. Every ``select`` of the
load generator's loop, every socket read and every send is timed (by wrapping them for this run only). A
fan-out is *isolated* when it is read before the next broadcast goes out; it ran *in lockstep* when one
``select`` inside it blocked for more than ``--stall-ms`` (the woken loop sat on the writing hub's core
until the hub had written the whole fan-out, then read it in one pass), and *side by side* otherwise.

Printed per rate: how many isolated fan-outs ran each way, their mean latency and read span, and the
time the loop had been idle before each (the lockstep fraction grows with it: 31 % at 30/s, 78 % at
10/s on the 2-core VM of session 3). The model does not have this effect yet; this is the measurement
a calibration of it would start from.
"""

from __future__ import annotations

import argparse
import selectors
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from simscale.loadgen import LoadConfig, lean_client, run_load, websocket_client
from simscale.validation.processes import HubProcess, run_blocking


def _wrap(owner: Any, name: str, before: Callable[..., None]) -> Callable[[], None]:
    """Call ``before(*args)`` ahead of ``owner.name``; returns the function that undoes it."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before(*args)
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)
    return lambda: setattr(owner, name, original)


def trace(url: str, clients: int, rate_per_s: float, duration_s: float, stall_s: float) -> dict[str, Any]:
    selects: list[tuple[float, float]] = []
    reads: list[float] = []
    sends: list[float] = []
    original_select = selectors.EpollSelector.select

    def timed_select(self: selectors.EpollSelector, timeout: float | None = None) -> Any:
        started = time.perf_counter()
        events = original_select(self, timeout)
        selects.append((started, time.perf_counter()))
        return events

    selectors.EpollSelector.select = timed_select  # type: ignore[method-assign,assignment]
    undo = [
        _wrap(websocket_client.RawWebSocket, "data_received", lambda *_: reads.append(time.perf_counter())),
        _wrap(lean_client.LeanHubClient, "send", lambda *_: sends.append(time.perf_counter())),
    ]
    try:
        config = LoadConfig(
            urls=(url,), clients=clients, broadcast_rate_per_s=rate_per_s, duration_s=duration_s, warmup_s=0.5
        )
        run_blocking(run_load(config))
    finally:
        selectors.EpollSelector.select = original_select  # type: ignore[method-assign,assignment]
        for restore in undo:
            restore()
    read_s, send_s, select_s = np.array(reads), np.array(sends), np.array(selects)
    kinds: dict[str, list[tuple[float, float, float]]] = {"side by side": [], "lockstep": []}
    previous_end_s = float("nan")
    for index in range(len(send_s) - 1):
        sent, next_sent = send_s[index], send_s[index + 1]
        mine = read_s[(read_s > sent) & (read_s < next_sent)]
        if len(mine) != clients:  # overlapping fan-outs (or pings among the reads): not isolated
            previous_end_s = mine[-1] if len(mine) else previous_end_s
            continue
        inside = select_s[(select_s[:, 0] >= mine[0]) & (select_s[:, 1] <= mine[-1])]
        blocked_s = float((inside[:, 1] - inside[:, 0]).max()) if len(inside) else 0.0
        idle_s = float(sent - previous_end_s)
        kind = "lockstep" if blocked_s > stall_s else "side by side"
        kinds[kind].append((float((mine - sent).mean()), float(mine[-1] - mine[0]), idle_s))
        previous_end_s = mine[-1]
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
