"""The deployment: the one structural part of the model, which builds the parts and wires them.

It is the only model code that reads the :class:`~simscale.config.scenario.Scenario`: it turns the
fields into the leaves (servers with their thread pool, CPU and proxy ports; the client population
and its ports; the simulated backplane) and the behaviours that act on them, each a component of its
own module, then runs the SimPy environment:

========================  ===================================================================
component                 what it models
========================  ===================================================================
``balancer``              which server a connecting client is sent to (one class per policy)
``connections``           ports → balancer → connection limit → proxy ports → handshake;
                          retries, disconnects, churn, silent clients
``keepalive``             pings by phase and the server timeout
``broadcasts``            sources → publish → every server's fan-out
``client_host``           the clients' side of a send and a read: ``free`` or ``one-loop``
``invocations``           other hub-method calls (what starves a thread pool)
``negotiation``           negotiate + transport as two requests through the balancer (404s)
``handshakes``            handshakes one by one when they block; the admission limit
``failures``              a server crash, partition or rolling deploy
``sampler``               resource samples of every part
``recorder``              the run's records
========================  ===================================================================

The model never plots and never imports pandas: it emits the records of
:mod:`simscale.metrics.records`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from simscale.backplane.routing import RoutingMode
from simscale.config.scenario import Scenario
from simscale.metrics.display import html_table, repr_value
from simscale.metrics.records import RunRecords
from simscale.model.backplane import SimBackplane
from simscale.model.balancer import make_load_balancer
from simscale.model.broadcasts import Broadcasts
from simscale.model.client_host import ClientHost, FreeClientHost
from simscale.model.connections import Connections
from simscale.model.cpu import Cpu
from simscale.model.failures import ServerFailures
from simscale.model.fanout import FanOutTiming
from simscale.model.handshakes import PerClientHandshakes
from simscale.model.invocations import Invocations
from simscale.model.keepalive import KeepAlive, keepalive_phases
from simscale.model.kernel import CountingEnvironment
from simscale.model.loadgen_loop import LoopCosts, OneLoopClientHost
from simscale.model.network import Network
from simscale.model.population import ClientPopulation
from simscale.model.ports import PortPool
from simscale.model.recorder import Recorder
from simscale.model.sampler import ResourceSampler
from simscale.model.server import SimServer
from simscale.model.topology import build_topology

__all__ = ["Deployment", "HubModel", "ModelRun"]


@dataclass(frozen=True, slots=True, repr=False)
class ModelRun:
    """What one run of the model produced (its ``repr`` counts the records instead of printing them).

    Example:

        >>> import numpy as np
        >>> from simscale import preset
        >>> from simscale.model import Deployment
        >>> scenario = preset("single-server", clients=20, duration_s=5.0, warmup_s=1.0, seed=1)
        >>> run = Deployment(scenario, np.random.default_rng(scenario.seed)).run()
        >>> run  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        ModelRun(events=1,995, wall_s=..., backplane_disconnects=0, backplane_lost_publishes=0,
                 records: broadcasts=86, ...)
    """

    records: RunRecords
    events: int
    wall_s: float
    topology: nx.Graph
    backplane_disconnects: int
    backplane_lost_publishes: int = 0

    def _rows(self) -> list[tuple[str, object]]:
        return [
            ("events", self.events),
            ("wall_s", self.wall_s),
            ("backplane_disconnects", self.backplane_disconnects),
            ("backplane_lost_publishes", self.backplane_lost_publishes),
        ]

    def __repr__(self) -> str:
        figures = ", ".join(f"{name}={repr_value(value)}" for name, value in self._rows())
        return (
            f"ModelRun({figures}, records: {self.records.describe()}, "
            f"topology: {self.topology.number_of_nodes():,} nodes)"
        )

    def _repr_html_(self) -> str:
        """What Jupyter displays: the run's counts in a small table."""
        return html_table(
            "ModelRun",
            [*self._rows(), ("records", self.records.describe()), ("topology nodes", self.topology.number_of_nodes())],
        )


class Deployment:
    """Build once from a :class:`Scenario` and an explicit RNG, then :meth:`run`.

    ``HubModel`` is another name for it. :func:`simscale.simulate` does this and summarises the run.

    Example:

        >>> import numpy as np
        >>> from simscale import preset
        >>> from simscale.model import Deployment
        >>> scenario = preset("no-backplane", clients=30, duration_s=4.0, warmup_s=1.0, seed=1)
        >>> deployment = Deployment(scenario, np.random.default_rng(scenario.seed))
        >>> len(deployment.servers)
        3
        >>> run = deployment.run()
        >>> sorted({record.server for record in run.records.deliveries})
        [0, 1, 2]
    """

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        s = scenario
        self.scenario = s
        self.rng = rng
        self.env = env = CountingEnvironment()
        self.horizon_s = s.duration_s + s.drain_s
        self.recorder = Recorder(env, s.name)
        phases = keepalive_phases(s.keepalive_interval_s)
        shared = Cpu(env, s.shared_host_cores, s.cpu_time_slice_s) if s.shared_host_cores else None
        self.servers = [
            SimServer(
                env,
                index,
                profile=s.server_profile,
                cpu=shared or Cpu(env, s.cores_per_server, s.cpu_time_slice_s),
                cores=s.cores_per_server,
                min_threads=s.threads_min,
                max_threads=s.max_threads,
                injection_interval_s=s.thread_injection_interval_s,
                horizon_s=self.horizon_s,
                sample_interval_s=s.sample_interval_s,
                phases=phases,
                proxy_pools=[PortPool(s.ephemeral_ports, s.time_wait_s) for _ in range(s.proxy_addresses)]
                if s.proxy_hop
                else [],
            )
            for index in range(s.servers)
        ]
        self.population = population = ClientPopulation(s.clients, s.servers, phases, s.client_addresses)
        client_pools = [PortPool(s.ephemeral_ports, s.time_wait_s) for _ in range(s.client_addresses)]
        self.backplane = (
            SimBackplane(
                env,
                s.servers,
                publish_base_s=s.backplane_publish_base_s,
                publish_per_subscriber_s=s.backplane_publish_per_subscriber_s,
                latency_s=s.backplane_latency_s,
                output_buffer_limit_bytes=s.backplane_output_buffer_limit_bytes,
                resubscribe_s=s.backplane_resubscribe_s,
                outage=(s.backplane_outage_at_s, s.backplane_outage_at_s + s.backplane_outage_s)
                if s.backplane_outage_s > 0
                else None,
            )
            if s.backplane == "redis"
            else None
        )
        network = Network(rng, latency_s=s.network_latency_s, jitter_s=s.network_jitter_s)
        timing = FanOutTiming(rng, network, s.latency_samples_per_fanout)
        self.client_host: ClientHost = (
            OneLoopClientHost(
                env,
                rng,
                shared or Cpu(env, 1),  # the load generator: the shared host's cores or a core of its own
                self.recorder,
                population,
                timing,
                LoopCosts(
                    per_delivery_s=s.loadgen_cpu_per_delivery_s,
                    per_read_s=s.loadgen_cpu_per_read_s,
                    per_wakeup_s=s.loadgen_cpu_per_wakeup_s,
                    per_send_s=s.loadgen_cpu_per_send_s,
                    stall_mean_s=s.loadgen_stall_mean_s,
                    stall_busy_scale=s.loadgen_stall_busy_scale,
                    drain_s=s.drain_s,
                ),
            )
            if s.client_host == "one-loop"
            else FreeClientHost(self.recorder, population, timing)
        )
        self.connections = Connections(
            env,
            rng,
            self.recorder,
            population,
            self.servers,
            make_load_balancer(s.load_balancer, population, self.servers, rng),
            client_pools=client_pools,
            max_connections_per_server=s.max_connections_per_server,
            handshake_cpu_s=s.handshake_cpu_s,
            handshake_timeout_s=s.handshake_timeout_s,
            reconnect=s.reconnect,
            reconnect_delays_s=s.reconnect_delays_s,
            reconnect_jitter=s.reconnect_jitter,
            connection_lifetime_s=s.connection_lifetime_s,
            negotiate=not s.skip_negotiation,
        )
        self._wire_misbehaviour(s)
        self.keepalive = KeepAlive(
            env,
            population,
            self.servers,
            phases=phases,
            keepalive_cpu_s=s.keepalive_cpu_s,
            server_timeout_s=s.server_timeout_s,
            drop=self.connections.drop,
        )
        self.broadcasts = Broadcasts(
            env,
            rng,
            population,
            self.servers,
            network,
            self.backplane,
            self.client_host,
            routing=RoutingMode(s.backplane_routing),
            rate_per_s=s.broadcast_rate_per_s,
            offsets_s=s.broadcast_offsets_s,
            duration_s=s.duration_s,
            warmup_s=s.warmup_s,
            message_bytes=s.message_bytes,
            invocation_cpu_s=s.invocation_cpu_s,
            serialize_cpu_s=s.serialize_cpu_s,
            send_cpu_per_recipient_s=s.send_cpu_per_recipient_s,
            send_cpu_per_recipient_busy_s=s.send_cpu_per_recipient_busy_s,
        )
        self.invocations = Invocations(
            env,
            rng,
            population,
            self.servers,
            network,
            rate_per_client_per_s=s.invocation_rate_per_client_per_s,
            duration_s=s.duration_s,
            method_kind=s.method_kind,
            method_wait_s=s.method_wait_s,
            method_cpu_s=s.method_cpu_s,
            invocation_cpu_s=s.invocation_cpu_s,
            serialize_cpu_s=s.serialize_cpu_s,
            send_cpu_per_recipient_s=s.send_cpu_per_recipient_s,
        )
        self.sampler = ResourceSampler(
            env,
            self.recorder,
            population,
            self.servers,
            self.backplane,
            client_pools,
            interval_s=s.sample_interval_s,
            memory_base_bytes=s.memory_base_bytes,
            memory_per_connection_bytes=s.memory_per_connection_bytes,
        )

    def _wire_misbehaviour(self, s: Scenario) -> None:
        """Blocking handshakes, the admission limit and server failures: only when a scenario asks."""
        if s.handshake_wait_s > 0 or s.max_concurrent_handshakes > 0:
            self.connections.per_client_handshakes = PerClientHandshakes(
                self.env,
                self.connections,
                wait_s=s.handshake_wait_s,
                cpu_s=s.handshake_cpu_s,
                timeout_s=s.handshake_timeout_s,
                max_concurrent=s.max_concurrent_handshakes,
            )
        self.failures = (
            ServerFailures(
                self.env,
                self.rng,
                self.population,
                self.servers,
                self.connections,
                kind=s.server_failure_kind,
                at_s=s.server_failure_at_s,
                server=s.server_failure_server,
                duration_s=s.server_failure_duration_s,
                deploy_interval_s=s.deploy_interval_s,
                keepalive_interval_s=s.keepalive_interval_s,
                server_timeout_s=s.server_timeout_s,
            )
            if s.server_failure_kind != "none"
            else None
        )

    def run(self, progress: Callable[[float], None] | None = None) -> ModelRun:
        """Simulate ``duration_s`` plus ``drain_s`` and return the records.

        Args:
            progress: called with the fraction of simulated time done (0-1), about 100 times a run.
        """
        started = time.perf_counter()
        s, env = self.scenario, self.env
        # The order processes start in is part of the model: SimPy breaks ties by it.
        self.connections.start(s.connect_ramp_s)
        self.keepalive.start()
        env.process(self.sampler.run())
        if s.broadcasts_enabled:
            env.process(self.broadcasts.source())
        if s.invocation_rate_per_client_per_s > 0:
            env.process(self.invocations.source())
        if s.connection_lifetime_s > 0:
            env.process(self.connections.churn())
        if s.silent_clients_fraction > 0:
            env.process(
                self.connections.silence(
                    at_s=s.silent_at_s,
                    fraction=s.silent_clients_fraction,
                    client_keepalive_interval_s=s.client_keepalive_interval_s,
                    client_timeout_s=s.client_timeout_s,
                )
            )
        if self.failures is not None:
            env.process(self.failures.run())
        self.client_host.start()
        if progress is None:
            env.run(until=self.horizon_s)
        else:
            for step in range(1, 101):
                env.run(until=self.horizon_s * step / 100)
                progress(step / 100)
        self.client_host.finish()
        self.recorder.clients_ever_connected(int(self.population.ever_connected.sum()))
        self.recorder.first_connects(self.connections.first_connects_attempted, self.connections.first_connects_failed)
        return ModelRun(
            records=self.recorder.records,
            events=env.events_processed,
            wall_s=time.perf_counter() - started,
            topology=build_topology(
                name=s.name,
                servers=s.servers,
                load_balancer=s.load_balancer,
                backplane=s.backplane,
                server_of=self.population.server_of,
            ),
            backplane_disconnects=self.backplane.disconnects if self.backplane else 0,
            backplane_lost_publishes=self.backplane.lost if self.backplane else 0,
        )


HubModel = Deployment
"""The name the model had before it was split into components (kept for existing code)."""
