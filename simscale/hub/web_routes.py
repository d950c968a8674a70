"""Ordinary web routes served beside the hubs: what an app's other HTTP traffic costs the hub.

``GET /busy?cpu_ms=N`` spins the CPU for ``N`` milliseconds on the server's event loop, then answers
with JSON. It stands for a web page or an API call that does real work. Served by the same process as
the hubs, it shares their one event loop, so its latency takes on the hubs' fan-outs (and the hubs'
messages wait behind it). ``simscale validate web-traffic-shared`` measures exactly that, with and
without a broadcast load, against the model's ``web-traffic-*`` presets.
"""

from __future__ import annotations

import time

from aiohttp import web

__all__ = ["BUSY_MAX_CPU_MS", "busy", "spin_cpu"]

BUSY_MAX_CPU_MS = 10_000
"""The most CPU one request may ask for (a guard against a request that would hang the hub)."""


def spin_cpu(cpu_ms: float) -> float:
    """Busy-wait for ``cpu_ms`` of wall time on this thread; returns the seconds it took.

    Example:

        >>> from simscale.hub.web_routes import spin_cpu
        >>> spin_cpu(2.0) >= 0.002
        True
    """
    started = time.perf_counter()
    deadline = started + cpu_ms / 1000.0
    while time.perf_counter() < deadline:
        pass
    return time.perf_counter() - started


async def busy(request: web.Request) -> web.StreamResponse:
    """``GET /busy?cpu_ms=N``: do ``N`` ms of CPU work (0 to 10,000), answer ``{"cpu_ms": N, "busy_s": …}``.

    A missing, non-numeric or out-of-range ``cpu_ms`` is a 400 that says what is allowed.
    """
    text = request.query.get("cpu_ms", "")
    try:
        cpu_ms = float(text)
    except ValueError:
        cpu_ms = -1.0
    if not 0.0 <= cpu_ms <= BUSY_MAX_CPU_MS:
        raise web.HTTPBadRequest(text=f"cpu_ms must be a number from 0 to {BUSY_MAX_CPU_MS}, got {text!r}")
    return web.json_response({"cpu_ms": cpu_ms, "busy_s": spin_cpu(cpu_ms)})
