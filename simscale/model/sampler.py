"""The resource sampler: every ``sample_interval_s`` it reads each part through what it exposes.

Per server: CPU utilisation over the interval (its busy meter), connections, memory (a base, a cost
per connection, and the outgoing buffers of fan-outs in progress), threads and the thread-pool
queue, proxy ports in use and in TIME_WAIT, and the backplane's queue. When client ports are
modelled, one more row (server ``NO_SERVER``) sums the clients' NAT addresses' port pools.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any

import simpy

from simscale.metrics.records import NO_SERVER, ResourceSample
from simscale.model.backplane import SimBackplane
from simscale.model.population import ClientPopulation
from simscale.model.ports import PortPool
from simscale.model.recorder import Recorder
from simscale.model.server import SimServer

__all__ = ["ResourceSampler"]


class ResourceSampler:
    """Samples the servers, the clients' ports and the backplane into the run's records."""

    def __init__(
        self,
        env: simpy.Environment,
        recorder: Recorder,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        backplane: SimBackplane | None,
        client_pools: list[PortPool],
        *,
        interval_s: float,
        memory_base_bytes: float,
        memory_per_connection_bytes: float,
    ) -> None:
        self.env = env
        self.recorder = recorder
        self.population = population
        self.servers = servers
        self.backplane = backplane
        self.client_pools = client_pools
        self.interval_s = interval_s
        self.memory_base_bytes = memory_base_bytes
        self.memory_per_connection_bytes = memory_per_connection_bytes

    def run(self) -> Generator[Any, Any, None]:
        """Process: one sample of every part per interval."""
        interval_s = self.interval_s
        name = self.recorder.scenario_name
        sample_index = 0
        while True:
            yield self.env.timeout(interval_s)
            now = float(self.env.now)
            backplane_queue = float(self.backplane.queue_length) if self.backplane else math.nan
            for server in self.servers:
                server.settle()  # vectorised fan-outs that have ended since
                connections = int(self.population.per_server[server.index])
                self.recorder.resource(
                    ResourceSample(
                        "model",
                        name,
                        now,
                        server.index,
                        cpu_utilization=server.meter.busy_s(sample_index) / (interval_s * server.cores),
                        connections=connections,
                        memory_bytes=self.memory_base_bytes
                        + connections * self.memory_per_connection_bytes
                        + server.outgoing_bytes,
                        threads=float(server.pool.threads),
                        threadpool_queue=float(server.pool.queue_length),
                        ports_in_use=float(sum(pool.in_use for pool in server.proxy_pools)),
                        ports_time_wait=float(sum(pool.time_wait_at(now) for pool in server.proxy_pools)),
                        backplane_queue=backplane_queue,
                    )
                )
            if self.client_pools:
                # The clients' side of the port story: every NAT address's pool, summed.
                self.recorder.resource(
                    ResourceSample(
                        "model",
                        name,
                        now,
                        NO_SERVER,
                        cpu_utilization=math.nan,
                        connections=self.population.connected,
                        memory_bytes=math.nan,
                        ports_in_use=float(sum(pool.in_use for pool in self.client_pools)),
                        ports_time_wait=float(sum(pool.time_wait_at(now) for pool in self.client_pools)),
                        backplane_queue=backplane_queue,
                    )
                )
            sample_index += 1
