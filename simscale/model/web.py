"""Web traffic: ordinary HTTP requests served beside the hub, or by a tier of their own.

A web request is a short visit; a SignalR connection is a tenant that never leaves. When both share
one server, every request queues for the same threads and cores as the tenants' fan-outs and
pings, so its latency takes on their bursts. That is why the ASP.NET Core docs recommend running
SignalR apart from the web app (docs/SOURCES.md#web-traffic-beside-signalr).

Requests arrive as a Poisson stream at ``rate_per_s`` and go round-robin over ``servers`` (the
SignalR servers themselves, or a separate web tier). Each one crosses the network, then:

* ``async``: awaits its ``wait_s`` of I/O without a thread, then takes a thread and ``cpu_s`` of CPU;
* ``blocking``: takes a thread, holds it through the wait (a synchronous database call), then its CPU.

A request not answered within ``timeout_s`` counts as failed (the server still finishes the work).
Latencies are those of the requests that arrived after the warm-up. Not modelled (yet): the
requests' own sockets against the servers' connection limit and ports.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simscale.model.network import Network
from simscale.model.server import SimServer

__all__ = ["WebStats", "WebTraffic"]


@dataclass(frozen=True, slots=True)
class WebStats:
    """Web-request latency and failures of one run (``None`` without requests).

    Example:

        >>> from simscale.model.web import WebStats
        >>> WebStats(2.1, 9.5, 0).web_latency_p99_ms
        9.5
    """

    web_latency_p50_ms: float | None
    web_latency_p99_ms: float | None
    web_requests_failed: int | None
    """Requests not answered within the timeout."""


class WebTraffic:
    """The request source and each request's visit to its server."""

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        network: Network,
        servers: Sequence[SimServer],
        *,
        rate_per_s: float,
        cpu_s: float,
        wait_s: float,
        blocking: bool,
        timeout_s: float,
        warmup_s: float,
        duration_s: float,
    ) -> None:
        self.env = env
        self.rng = rng
        self.network = network
        self.servers = servers
        self.rate_per_s = rate_per_s
        self.cpu_s = cpu_s
        self.wait_s = wait_s
        self.blocking = blocking
        self.timeout_s = timeout_s
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.latencies_s: list[float] = []
        self.failed = 0
        self._next = 0

    def source(self) -> Generator[Any, Any, None]:
        """Process: requests arrive until ``duration_s``."""
        mean_gap_s = 1.0 / self.rate_per_s
        while True:
            yield self.env.timeout(self.rng.exponential(mean_gap_s))
            if self.env.now >= self.duration_s:
                return
            server = self.servers[self._next % len(self.servers)]
            self._next += 1
            self.env.process(self._request(server, float(self.env.now)))

    def _request(self, server: SimServer, arrived_s: float) -> Generator[Any, Any, None]:
        served = self.env.process(self._serve(server))
        yield served | self.env.timeout(self.timeout_s)
        if arrived_s < self.warmup_s:
            return
        if served.triggered:
            self.latencies_s.append(float(self.env.now) - arrived_s)
        else:
            self.failed += 1

    def _serve(self, server: SimServer) -> Generator[Any, Any, None]:
        yield self.env.timeout(self.network.delay_s())
        if self.blocking:
            yield from server.work(self.cpu_s, self.wait_s)
        else:
            if self.wait_s > 0:
                yield self.env.timeout(self.wait_s)
            yield from server.work(self.cpu_s)
        yield self.env.timeout(self.network.delay_s())

    def stats(self) -> WebStats:
        """Median and 99th-percentile latency in ms, and the failed count."""
        if not self.latencies_s and not self.failed:
            return WebStats(None, None, None)
        if not self.latencies_s:
            return WebStats(None, None, self.failed)
        latencies = np.asarray(self.latencies_s)
        p50, p99 = (float(np.quantile(latencies, q)) * 1000.0 for q in (0.5, 0.99))
        return WebStats(p50, p99, self.failed)
