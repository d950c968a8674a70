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
``audiences``             sends to a group, a user or a connection: only servers holding a
                          recipient subscribe to its channel, receive and fan out
``client_host``           the clients' side of a send and a read: ``free`` or ``one-loop``
``invocations``           other hub-method calls (what starves a thread pool)
``negotiation``           negotiate + transport as two requests through the balancer (404s)
``handshakes``            handshakes one by one when they block; the admission limit
``failures``              a server crash, partition or rolling deploy
``sampler``               resource samples of every part
``recorder``              the run's records
``service``               Azure SignalR Service: units, quota, fan-out, billing (``hosting``)
``web``                   ordinary web requests, on the SignalR servers or a tier of their own
========================  ===================================================================

The model never plots and never imports pandas: it emits the records of
:mod:`simscale.metrics.records`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np

from simscale.backplane.channels import ChannelKind
from simscale.backplane.routing import RoutingMode
from simscale.config.hosting import service_units_for
from simscale.config.membership import draw_group_send, draw_membership, draw_user_audience, sends_rng
from simscale.config.scenario import Scenario
from simscale.model.audiences import Audiences
from simscale.model.backplane import SimBackplane
from simscale.model.balancer import make_load_balancer
from simscale.model.broadcasts import Broadcasts
from simscale.model.client_host import ClientHost, FreeClientHost
from simscale.model.connections import Connections
from simscale.model.cpu import Cpu, own_machine
from simscale.model.fanout import FanOutTiming
from simscale.model.invocations import Invocations
from simscale.model.keepalive import KeepAlive, keepalive_phases
from simscale.model.kernel import CountingEnvironment
from simscale.model.loadgen_loop import LoopCosts, OneLoopClientHost
from simscale.model.misbehaviour import MISBEHAVIOUR_FIELDS, wire_misbehaviour
from simscale.model.network import Network
from simscale.model.population import ClientPopulation
from simscale.model.ports import PortPool
from simscale.model.recorder import Recorder
from simscale.model.run import ModelRun
from simscale.model.sampler import ResourceSampler
from simscale.model.server import SimServer
from simscale.model.service import ServiceBroadcasts, SignalRService
from simscale.model.topology import build_topology
from simscale.model.web import WebTraffic

__all__ = ["Deployment", "HubModel", "ModelRun"]


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
        own_host = partial(own_machine, parallel_speed=s.cpu_parallel_speed)  # a server's own machine
        # One machine when servers share a host: the hubs' cores and the load generator's own (pinned apart).
        machine = own_machine(s.shared_host_cores + s.loadgen_own_cores, parallel_speed=s.cpu_parallel_speed)
        shared = Cpu(env, s.shared_host_cores, s.cpu_time_slice_s, machine) if s.shared_host_cores else None
        self.shared = shared
        self.servers = [
            SimServer(
                env,
                index,
                profile=s.server_profile,
                cpu=shared or Cpu(env, s.cores_per_server, s.cpu_time_slice_s, own_host(s.cores_per_server)),
                cores=s.cores_per_server,
                min_threads=s.threads_min,
                max_threads=s.max_threads,
                injection_interval_s=s.thread_injection_interval_s,
                horizon_s=self.horizon_s,
                sample_interval_s=s.sample_interval_s,
                phases=phases,
                proxy_pools=[PortPool(s.ephemeral_ports, s.time_wait_s) for _ in range(s.proxy_addresses)]
                if s.proxy_hop and s.hosting == "self-hosted"  # on the service, clients never reach the app servers
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
        # --- hosting: Azure SignalR Service in front of the app servers (None: self-hosted)
        self.service = (
            SignalRService(
                env,
                population,
                self.servers,
                units=s.service_units
                or service_units_for(
                    s.clients + s.servers * s.server_connections_per_hub, s.service_tier, s.service_connections_per_unit
                ),
                connections_per_unit=s.service_connections_per_unit,
                server_connections_per_hub=s.server_connections_per_hub,
                messages_per_unit_per_s=s.service_messages_per_unit_per_s,
                message_bytes=s.message_bytes,
                horizon_s=self.horizon_s,
                sample_interval_s=s.sample_interval_s,
                phases=phases,
            )
            if s.hosting == "azure-signalr"
            else None
        )
        network = Network(rng, latency_s=s.network_latency_s, jitter_s=s.network_jitter_s)
        timing = FanOutTiming(rng, network, s.latency_samples_per_fanout)
        # The load generator: pinned to cores of its own, or on the shared host's cores, or a core of its own.
        own = Cpu(env, s.loadgen_own_cores, s.cpu_time_slice_s, machine) if s.loadgen_own_cores else None
        loadgen_cpu = own or shared or Cpu(env, 1)
        self.loadgen_cpu = own if s.client_host == "one-loop" else None
        """The load generator's own cores, when it is pinned apart from the hubs."""
        self.client_host: ClientHost = (
            OneLoopClientHost(
                env,
                rng,
                loadgen_cpu,
                self.recorder,
                population,
                timing,
                LoopCosts(
                    per_delivery_s=s.loadgen_cpu_per_delivery_s,
                    per_read_s=s.loadgen_cpu_per_read_s,
                    per_wakeup_s=s.loadgen_cpu_per_wakeup_s,
                    per_send_s=s.loadgen_cpu_per_send_s,
                    stall_mean_s=0.0 if s.loadgen_own_cores else s.loadgen_stall_mean_s,  # never on a hub's core
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
            # On the service an app server's clients are logical connections: no socket limit applies.
            max_connections_per_server=s.max_connections_per_server if self.service is None else s.clients,
            handshake_cpu_s=s.handshake_cpu_s,
            handshake_timeout_s=s.handshake_timeout_s,
            reconnect=s.reconnect,
            reconnect_delays_s=s.reconnect_delays_s,
            reconnect_jitter=s.reconnect_jitter,
            connection_lifetime_s=s.connection_lifetime_s,
            service_room=self.service.room if self.service else None,
            negotiate=not s.skip_negotiation,
        )
        misbehaviour = {name: getattr(s, name) for name in MISBEHAVIOUR_FIELDS}
        self.failures = wire_misbehaviour(env, rng, population, self.servers, self.connections, **misbehaviour)
        self.keepalive = KeepAlive(
            env,
            population,
            self.servers,
            phases=phases,
            keepalive_cpu_s=s.keepalive_cpu_s,
            server_timeout_s=s.server_timeout_s,
            drop=self.connections.drop,
        )
        self.broadcasts = (partial(ServiceBroadcasts, self.service) if self.service else Broadcasts)(
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
        self.audiences = self._audiences(network) if s.send_target != "all" else None
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
        # --- web traffic: on the SignalR servers (web_servers = 0) or on a tier of their own
        web_tier = [
            SimServer(
                env, 1_000 + index, profile=s.server_profile,
                cpu=Cpu(env, s.cores_per_server, s.cpu_time_slice_s, own_host(s.cores_per_server)),
                cores=s.cores_per_server, min_threads=s.threads_min, max_threads=s.max_threads,
                injection_interval_s=s.thread_injection_interval_s, horizon_s=self.horizon_s,
                sample_interval_s=s.sample_interval_s, phases=phases, proxy_pools=[],
            )
            for index in range(s.web_servers)
        ]  # fmt: skip
        self.web = WebTraffic(
            env, rng, network, web_tier or self.servers, rate_per_s=s.web_request_rate_per_s,
            cpu_s=s.web_request_cpu_s, wait_s=s.web_request_wait_s, blocking=s.web_request_kind == "blocking",
            timeout_s=s.web_request_timeout_s, warmup_s=s.warmup_s, duration_s=s.duration_s,
        )  # fmt: skip
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

    def _audiences(self, network: Network) -> Audiences:
        """Group, user or connection sends, with the membership drawn from the seed; wired to the
        connections so clients join their groups when they connect and leave when they go."""
        s = self.scenario
        membership = draw_membership(
            seed=s.seed,
            clients=s.clients,
            groups=s.groups if s.send_target == "group" else 0,
            group_size=s.group_size if s.send_target == "group" else 0,
            groups_per_client=s.groups_per_client,
            connections_per_user=s.connections_per_user,
        )
        pick_rng = sends_rng(s.seed)
        users, per_user = (membership.users, s.connections_per_user) if s.send_target == "user" else (s.clients, 1)
        audiences = Audiences(
            self.env,
            self.rng,
            self.recorder,
            self.population,
            self.servers,
            network,
            self.backplane,
            self.client_host,
            kind=ChannelKind(s.send_target),
            pick_rng=pick_rng,
            pick_group_send=lambda connected: draw_group_send(pick_rng, membership.members, connected),
            group_members=membership.members,
            pick_user_send=partial(draw_user_audience, pick_rng, users, per_user, s.clients),
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
        self.connections.on_attached.append(audiences.attached)
        self.connections.on_detaching.append(audiences.detaching)
        return audiences

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
            env.process(self.broadcasts.source() if self.audiences is None else self.audiences.source())
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
        if s.web_request_rate_per_s > 0:
            env.process(self.web.source())
        if self.service and s.service_drop_server_connection_at_s > 0:
            assert isinstance(self.broadcasts, ServiceBroadcasts)
            drop_at_s = s.service_drop_server_connection_at_s
            env.process(self.broadcasts.drop_server_connection(drop_at_s, self.connections.drop))
        if self.failures is not None:
            env.process(self.failures.run())
        self.client_host.start()
        if self.shared is not None and s.shared_host_neighbour_share > 0 and s.cpu_time_slice_s > 0:
            # Work outside the model on the hubs' cores: one neighbour per core, their turns spread evenly.
            share, cores = s.shared_host_neighbour_share, s.shared_host_cores
            for index in range(cores):
                env.process(self.shared.neighbour(share, s.cpu_time_slice_s / share * index / cores))
        if self.loadgen_cpu is not None and s.loadgen_neighbour_share > 0 and s.cpu_time_slice_s > 0:
            share, cores = s.loadgen_neighbour_share, s.loadgen_own_cores
            for index in range(cores):
                env.process(self.loadgen_cpu.neighbour(share, s.cpu_time_slice_s / share * index / cores))
        if progress is None:
            env.run(until=self.horizon_s)
        else:
            for step in range(1, 101):
                env.run(until=self.horizon_s * step / 100)
                progress(step / 100)
        self.client_host.finish()
        self.recorder.clients_ever_connected(int(self.population.ever_connected.sum()))
        self.recorder.records.backplane_messages_received_per_server = (
            list(self.backplane.received) if self.backplane else [0] * s.servers
        )
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
                service_units=self.service.units if self.service else 0,
                server_connections_per_hub=s.server_connections_per_hub,
            ),
            backplane_disconnects=self.backplane.disconnects if self.backplane else 0,
            backplane_lost_publishes=self.backplane.lost if self.backplane else 0,
            service=self.service.stats(
                measured_s=s.duration_s - s.warmup_s,
                included_per_unit_per_day=s.service_included_messages_per_unit_per_day,
                unit_price_per_day_usd=s.service_unit_price_per_day_usd,
                price_per_million_usd=s.service_price_per_million_messages_usd,
            )
            if self.service
            else None,
            web=self.web.stats() if s.web_request_rate_per_s > 0 else None,
        )


HubModel = Deployment
"""The name the model had before it was split into components (kept for existing code)."""
