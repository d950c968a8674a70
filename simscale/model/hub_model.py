"""The whole hub deployment as one SimPy model: clients, load balancer, servers, ports, backplane.

How a broadcast travels (one event per server, never one per recipient — REFERENCE Part 2 §B2):

1. a random connected client sends at ``t0``; after the uplink latency its server runs the hub
   method (a work item: thread, then CPU);
2. routing (:mod:`simscale.backplane.routing`, the same rule the real hub uses) decides who fans
   out: the origin directly (and only then does it publish, as the real hub does) and/or every
   server that receives the publish from the backplane;
3. each fan-out is ONE work item costing ``serialize + n_local × send_per_recipient`` of CPU; the
   recipients' receive times ``start + serialize + k·send + downlink_k`` (k = 1..n) are computed in
   numpy (sampled for large fan-outs, delivery counts kept exact) straight into a histogram.

Connections are batches of rows in :class:`~simscale.model.population.ClientPopulation`: the load
balancer, the port pools, the connection limit and the handshake (a work item with the 15 s
timeout) act on whole batches. Keep-alive is one tick per server per second that pings one phase
(1/15) of its clients; a client that hears nothing for 30 s drops and reconnects with the default
delays — in a starved thread pool that is the feedback loop of REFERENCE Part 2 §A1.

The model never plots and never imports pandas: it emits the records of
:mod:`simscale.metrics.records`.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
import simpy

from simscale.backplane.routing import RoutingMode, accepts_from_backplane, delivers_locally_on_send
from simscale.config.scenario import Scenario
from simscale.metrics.records import (
    NO_SERVER,
    BroadcastRecord,
    ConnectionEvent,
    ConnectionEventKind,
    DeliveryRecord,
    ResourceSample,
    RunRecords,
)
from simscale.model.backplane import SimBackplane
from simscale.model.cpu import Cpu
from simscale.model.kernel import CountingEnvironment
from simscale.model.population import ClientPopulation
from simscale.model.ports import PortPool
from simscale.model.server import SimServer
from simscale.model.topology import build_topology

__all__ = ["HubModel", "ModelRun"]

IntArray = npt.NDArray[np.int64]

_HEARTBEAT_S = 1.0
"""ASP.NET Core checks keep-alives on a ~1 s heartbeat tick (REFERENCE Part 1 §1.6)."""
_RETRY_SLOT_S = 0.01
"""Reconnect attempts due within the same 10 ms are handled as one batch."""
_CHURN_SLOT_S = 0.05
_BACKPLANE_ENVELOPE_OVERHEAD_BYTES = 64
_MAX_INVOCATION_BACKLOG = 1_000
_LOOP_BUSY_WINDOW_S = 0.5
"""The load generator's recent busy fraction (what its stalls depend on) is averaged over about this long."""


@dataclass(slots=True)
class _PendingFanOut:
    """One fan-out's messages on their way to, or waiting in, the load generator's sockets."""

    server: SimServer
    broadcast_id: int
    origin_index: int
    sent_at_s: float
    counted: bool
    recipients: int
    arrivals_s: npt.NDArray[np.float64]
    """Arrival time at each sampled socket, in the order the server writes them."""
    received_s: npt.NDArray[np.float64]
    """When the loop read each of them (NaN: not yet)."""
    written: simpy.Event
    """Succeeds when the server has written the whole fan-out."""


@dataclass(frozen=True, slots=True)
class _DueSend:
    """A broadcast whose time has come, waiting for the load generator's loop to send it."""

    broadcast_id: int
    origin_index: int
    counted: bool


class _ReadPass:
    """The reads one pass of the load generator's loop will make, committed when they have happened."""

    __slots__ = ("_pauses", "_plan", "end_s", "started_s")

    def __init__(
        self,
        plan: list[tuple[list[_PendingFanOut], npt.NDArray[np.int64], npt.NDArray[np.float64]]],
        started_s: float,
        end_s: float,
    ) -> None:
        self._plan = plan
        """Per group of fan-outs (same server, same sample): the sample columns read and when."""
        self.started_s = started_s
        self.end_s = end_s
        """When the pass ends if it is not paused."""
        self._pauses: list[tuple[float, float]] = []

    def pause(self, cpu_done_s: float, paused_s: float) -> None:
        """The pass stepped aside for ``paused_s`` after ``cpu_done_s`` of its work."""
        self._pauses.append((self.started_s + cpu_done_s, paused_s))

    def commit(self) -> None:
        """Record the reads: each takes what has arrived in its socket by the time it happens."""
        for members, columns, planned_s in self._plan:
            read_s = planned_s.copy()
            for at_planned_s, paused_s in self._pauses:
                read_s[planned_s > at_planned_s] += paused_s
            for fan_out in members:
                taken = _unread_arrivals_s(fan_out)[columns] <= read_s
                fan_out.received_s[columns[taken]] = read_s[taken]


def _unread_arrivals_s(fan_out: _PendingFanOut) -> npt.NDArray[np.float64]:
    """Arrival times of the sampled messages not read yet (inf for those already read)."""
    return np.where(np.isnan(fan_out.received_s), fan_out.arrivals_s, np.inf)


@dataclass(frozen=True, slots=True)
class ModelRun:
    """What one run of the model produced."""

    records: RunRecords
    events: int
    wall_s: float
    topology: nx.Graph
    backplane_disconnects: int
    backplane_lost_publishes: int = 0


class HubModel:
    """Build once from a :class:`Scenario` and an explicit RNG, then :meth:`run`."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        s = scenario
        self.scenario = s
        self.rng = rng
        self.env = CountingEnvironment()
        self.records = RunRecords()
        self.horizon_s = s.duration_s + s.drain_s
        self.phases = max(1, round(s.keepalive_interval_s / _HEARTBEAT_S))
        shared = Cpu(self.env, s.shared_host_cores, s.cpu_time_slice_s) if s.shared_host_cores else None
        self.servers = [
            SimServer(
                self.env,
                index,
                profile=s.server_profile,
                cpu=shared or Cpu(self.env, s.cores_per_server, s.cpu_time_slice_s),
                cores=s.cores_per_server,
                min_threads=s.threads_min,
                max_threads=s.max_threads,
                injection_interval_s=s.thread_injection_interval_s,
                horizon_s=self.horizon_s,
                sample_interval_s=s.sample_interval_s,
                phases=self.phases,
                proxy_pools=[PortPool(s.ephemeral_ports, s.time_wait_s) for _ in range(s.proxy_addresses)]
                if s.proxy_hop
                else [],
            )
            for index in range(s.servers)
        ]
        self.population = ClientPopulation(s.clients, s.servers, self.phases, s.client_addresses)
        self.client_pools = (
            [PortPool(s.ephemeral_ports, s.time_wait_s) for _ in range(s.client_addresses)]
            if s.client_addresses
            else []
        )
        self.routing = RoutingMode(s.backplane_routing)
        self.backplane = (
            SimBackplane(
                self.env,
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
        # The load generator: one event loop, on the shared host's cores or a core of its own.
        self.loadgen_cpu: Cpu | None = (shared or Cpu(self.env, 1)) if s.client_host == "one-loop" else None
        self._loadgen_pending: list[_PendingFanOut] = []
        """Fan-outs whose messages the load generator has not all read yet."""
        self._loadgen_due_sends: list[_DueSend] = []
        """Broadcasts whose scheduled time has come and that the load generator's loop has not sent yet."""
        self._loadgen_wakeup: simpy.Event | None = None
        self._loadgen_in_pass = False
        self._loadgen_stopped: simpy.Event | None = None
        """Set when the drain is over: the loop finishes ``_loadgen_passes_left`` more passes, then this."""
        self._loadgen_passes_left = 0
        self._loadgen_stalled_on: simpy.Event | None = None
        """What the woken loop waits for on a writing server's core before it can read anything."""
        self._loadgen_busy = 0.0
        """The loop's busy fraction (exponential average) as of ``_loadgen_busy_at_s``."""
        self._loadgen_busy_at_s = 0.0
        self._loadgen_last_send_s = 0.0
        self._round_robin_next = 0
        self._proxy_next = 0
        self._broadcast_ids = 0
        self._payload_bytes = s.message_bytes * 2 + _BACKPLANE_ENVELOPE_OVERHEAD_BYTES

    # ============================================================================================
    # running
    # ============================================================================================
    def run(self, progress: Callable[[float], None] | None = None) -> ModelRun:
        """Simulate ``duration_s`` plus ``drain_s`` and return the records.

        Args:
            progress: called with the fraction of simulated time done (0-1), about 100 times a run.
        """
        started = time.perf_counter()
        s = self.scenario
        everyone = np.arange(s.clients, dtype=np.int64)
        if s.connect_ramp_s > 0:
            offsets = np.sort(self.rng.uniform(0.0, s.connect_ramp_s, s.clients))
            self._schedule_attempts(everyone[np.argsort(offsets, kind="stable")], offsets)
        else:
            self._connect_initial(everyone)
        for server in self.servers:
            self.env.process(self._heartbeat(server))
        self.env.process(self._sampler())
        if s.broadcasts_enabled:
            self.env.process(self._broadcasts())
        if s.invocation_rate_per_client_per_s > 0:
            self.env.process(self._invocations())
        if s.connection_lifetime_s > 0:
            self.env.process(self._churn())
        if s.silent_clients_fraction > 0:
            self.env.process(self._silence())
        if self.loadgen_cpu is not None:
            self.env.process(self._loadgen_loop(self.loadgen_cpu))
        if progress is None:
            self.env.run(until=self.horizon_s)
        else:
            for step in range(1, 101):
                self.env.run(until=self.horizon_s * step / 100)
                progress(step / 100)
        if self.loadgen_cpu is not None:
            self._loadgen_drain()
        return ModelRun(
            records=self.records,
            events=self.env.events_processed,
            wall_s=time.perf_counter() - started,
            topology=build_topology(s, self.population.server_of),
            backplane_disconnects=self.backplane.disconnects if self.backplane else 0,
            backplane_lost_publishes=self.backplane.lost if self.backplane else 0,
        )

    # ============================================================================================
    # connections
    # ============================================================================================
    def _event(self, kind: ConnectionEventKind, server: int, reason: str, clients: int) -> None:
        if clients:
            self.records.connections.append(
                ConnectionEvent("model", self.scenario.name, float(self.env.now), server, kind, reason, clients)
            )

    def _choose_servers(self, ids: IntArray) -> IntArray:
        """The load balancer's choice for each client in ``ids``."""
        s = self.scenario
        count = len(ids)
        if s.load_balancer == "round-robin":
            chosen = (self._round_robin_next + np.arange(count)) % s.servers
            self._round_robin_next = int((self._round_robin_next + count) % s.servers)
            return chosen.astype(np.int64)
        if s.load_balancer == "sticky-ip":
            addresses = self.population.address[ids]
            return np.array([_sticky_hash(int(a)) % s.servers for a in addresses], dtype=np.int64)
        # least-connections: give each newcomer to the currently least-loaded server.
        loads = self.population.per_server.astype(np.int64) + np.array(
            [server.handshakes_in_progress for server in self.servers], dtype=np.int64
        )
        chosen = np.empty(count, dtype=np.int64)
        for position in range(count):
            target = int(np.argmin(loads))
            chosen[position] = target
            loads[target] += 1
        return chosen

    def _take_client_ports(self, ids: IntArray) -> tuple[IntArray, IntArray]:
        """Split ``ids`` into (granted, refused) by their source address's port pool."""
        if not self.client_pools:
            return ids, ids[:0]
        now = float(self.env.now)
        addresses = self.population.address[ids]
        order = np.argsort(addresses, kind="stable")
        ids, addresses = ids[order], addresses[order]
        unique, starts, counts = np.unique(addresses, return_index=True, return_counts=True)
        keep = np.zeros(len(ids), dtype=bool)
        for address, start, count in zip(unique.tolist(), starts.tolist(), counts.tolist(), strict=True):
            granted = self.client_pools[address].acquire(now, count)
            keep[start : start + granted] = True
        return ids[keep], ids[~keep]

    def _release_to_pools(self, pools: list[PortPool], addresses: npt.NDArray[np.integer[Any]]) -> None:
        """Close one connection per entry of ``addresses``: its port in that address's pool enters TIME_WAIT."""
        if not pools or len(addresses) == 0:
            return
        now = float(self.env.now)
        unique, counts = np.unique(addresses, return_counts=True)
        for address, count in zip(unique.tolist(), counts.tolist(), strict=True):
            pools[address].release(now, count)

    def _release_client_ports(self, ids: IntArray) -> None:
        self._release_to_pools(self.client_pools, self.population.address[ids])

    def _take_proxy_ports(self, server: SimServer, ids: IntArray) -> tuple[IntArray, IntArray]:
        if not server.proxy_pools:
            return ids, ids[:0]
        now = float(self.env.now)
        granted_parts: list[IntArray] = []
        remaining = ids
        # Spread the batch over the proxy's source addresses, starting where the last batch ended.
        for step in range(len(server.proxy_pools)):
            if len(remaining) == 0:
                break
            address = (self._proxy_next + step) % len(server.proxy_pools)
            granted = server.proxy_pools[address].acquire(now, len(remaining))
            self.population.proxy_address[remaining[:granted]] = address
            granted_parts.append(remaining[:granted])
            remaining = remaining[granted:]
        self._proxy_next = (self._proxy_next + 1) % len(server.proxy_pools)
        granted_ids = np.concatenate(granted_parts) if granted_parts else ids[:0]
        return granted_ids, remaining

    def _release_proxy_ports(self, server: SimServer, ids: IntArray) -> None:
        self._release_to_pools(server.proxy_pools, self.population.proxy_address[ids])

    def _admit(self, ids: IntArray) -> list[tuple[SimServer, IntArray]]:
        """Ports, balancer and connection limit for a batch; returns the batches per server that
        may start a handshake (the rest are refused here)."""
        s = self.scenario
        ids, refused = self._take_client_ports(ids)
        self._fail(refused, NO_SERVER, "ports_exhausted", ConnectionEventKind.REFUSED)
        if len(ids) == 0:
            return []
        chosen = self._choose_servers(ids)
        admitted: list[tuple[SimServer, IntArray]] = []
        for server in self.servers:
            batch = ids[chosen == server.index]
            if len(batch) == 0:
                continue
            room = s.max_connections_per_server - int(self.population.per_server[server.index])
            room -= server.handshakes_in_progress
            over_limit = batch[max(room, 0) :]
            batch = batch[: max(room, 0)]
            batch, no_proxy_port = self._take_proxy_ports(server, batch)
            rejected = np.concatenate([over_limit, no_proxy_port])
            self._release_client_ports(rejected)
            self._fail(over_limit, server.index, "connection_limit", ConnectionEventKind.REFUSED)
            self._fail(no_proxy_port, server.index, "proxy_ports_exhausted", ConnectionEventKind.REFUSED)
            if len(batch):
                admitted.append((server, batch))
        return admitted

    def _connect_initial(self, ids: IntArray) -> None:
        """Clients that are already connected when the run starts (no handshake work)."""
        for server, batch in self._admit(ids):
            self._attach(server, batch)

    def _attach(self, server: SimServer, ids: IntArray) -> None:
        now = float(self.env.now)
        self.population.attach(ids, server.index, now)
        self._event(ConnectionEventKind.CONNECTED, server.index, "ok", len(ids))
        lifetime_s = self.scenario.connection_lifetime_s
        if lifetime_s > 0:
            self.population.close_at[ids] = now + self.rng.exponential(lifetime_s, len(ids))

    def _schedule_attempts(self, ids: IntArray, delays_s: npt.NDArray[np.float64] | float) -> None:
        """Attempt to connect ``ids`` after their delays, batched into 10 ms slots."""
        if len(ids) == 0:
            return
        delays = np.broadcast_to(np.asarray(delays_s, dtype=np.float64), ids.shape)
        slots = np.floor(delays / _RETRY_SLOT_S).astype(np.int64)
        unique, inverse = np.unique(slots, return_inverse=True)
        if len(unique) == 1:
            self.env.process(self._attempt_batch(ids, float(delays.min())))
            return
        order = np.argsort(inverse, kind="stable")
        boundaries = np.flatnonzero(np.diff(inverse[order])) + 1
        for group in np.split(order, boundaries):
            self.env.process(self._attempt_batch(ids[group], float(delays[group].min())))

    def _attempt_batch(self, ids: IntArray, delay_s: float) -> Generator[Any, Any, None]:
        if delay_s > 0:
            yield self.env.timeout(delay_s)
        # Only clients still waiting to connect (not connected meanwhile, not given up).
        ids = ids[(self.population.server_of[ids] < 0) & ~self.population.gave_up[ids]]
        for server, batch in self._admit(ids):
            self.env.process(self._handshake(server, batch, float(self.env.now)))

    def _handshake(self, server: SimServer, ids: IntArray, attempted_at_s: float) -> Generator[Any, Any, None]:
        s = self.scenario
        server.handshakes_in_progress += len(ids)
        try:
            yield server.pool.acquire()
            if self.env.now - attempted_at_s > s.handshake_timeout_s:
                # The client gave up waiting; the server finds a dead socket and moves on.
                server.pool.release()
                self._release_ports(server, ids)
                self._fail(ids, server.index, "handshake_timeout", ConnectionEventKind.REFUSED)
                return
            yield from server.use_cpu(s.handshake_cpu_s * len(ids))
            server.pool.release()
        finally:
            server.handshakes_in_progress -= len(ids)
        self._attach(server, ids)

    def _release_ports(self, server: SimServer, ids: IntArray) -> None:
        self._release_client_ports(ids)
        self._release_proxy_ports(server, ids)

    def _fail(self, ids: IntArray, server: int, reason: str, kind: ConnectionEventKind) -> None:
        """Attempts that failed: record them, then retry with the reconnect delays or give up."""
        if len(ids) == 0:
            return
        s = self.scenario
        self._event(kind, server, reason, len(ids))
        population = self.population
        population.failed_attempts[ids] += 1
        exhausted = ids[(population.failed_attempts[ids] >= len(s.reconnect_delays_s)) | (not s.reconnect)]
        retry = ids[(population.failed_attempts[ids] < len(s.reconnect_delays_s)) & s.reconnect]
        self._give_up(exhausted)
        if len(retry):
            delays = np.asarray(s.reconnect_delays_s, dtype=np.float64)[population.failed_attempts[retry]]
            self._schedule_attempts(retry, self._jitter(delays))

    def _give_up(self, ids: IntArray) -> None:
        if len(ids) == 0:
            return
        population = self.population
        population.gave_up[ids] = True
        after_drop = ids[population.was_dropped[ids]]
        never_connected = ids[~population.was_dropped[ids]]
        self._event(ConnectionEventKind.GAVE_UP, NO_SERVER, "retries_exhausted_after_drop", len(after_drop))
        self._event(ConnectionEventKind.GAVE_UP, NO_SERVER, "retries_exhausted", len(never_connected))

    def _jitter(self, delays: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        spread = self.scenario.reconnect_jitter
        if spread <= 0:
            return delays
        return delays * self.rng.uniform(1.0 - spread, 1.0 + spread, len(delays))

    def _disconnect(self, ids: IntArray, reason: str, kind: ConnectionEventKind, *, client_gone: bool = False) -> None:
        """Close established connections; dropped clients start their reconnect sequence (unless gone)."""
        if len(ids) == 0:
            return
        population = self.population
        servers = population.server_of[ids]
        for server in self.servers:
            batch = ids[servers == server.index]
            if len(batch):
                self._release_ports(server, batch)
                self._event(kind, server.index, reason, len(batch))
        population.detach(ids)
        population.was_dropped[ids] = kind is ConnectionEventKind.DROPPED
        if client_gone:
            population.gave_up[ids] = True  # nobody is left on that side to reconnect
        elif kind is ConnectionEventKind.CLOSED:
            self._schedule_attempts(ids, 0.0)  # the app opens a new connection right away
        elif self.scenario.reconnect:
            delays = np.full(len(ids), self.scenario.reconnect_delays_s[0])
            self._schedule_attempts(ids, self._jitter(delays))
        else:
            self._give_up(ids)

    def _silence(self) -> Generator[Any, Any, None]:
        """Some clients stop sending and reading without closing; the server notices only by timeout."""
        s = self.scenario
        yield self.env.timeout(s.silent_at_s)
        connected = np.flatnonzero(self.population.server_of >= 0).astype(np.int64)
        count = round(s.silent_clients_fraction * len(connected))
        if count == 0:
            return
        silent = np.sort(self.rng.choice(connected, size=count, replace=False))
        # Each one last pinged somewhere within its keep-alive interval before going silent.
        last_heard_s = s.silent_at_s - self.rng.uniform(0.0, s.client_keepalive_interval_s, count)
        drop_at_s = last_heard_s + s.client_timeout_s
        order = np.argsort(drop_at_s, kind="stable")
        silent, drop_at_s = silent[order], drop_at_s[order]
        # The server's heartbeat checks once a second: drop in one batch per tick.
        ticks = np.ceil(drop_at_s / _HEARTBEAT_S)
        for tick in np.unique(ticks):
            yield self.env.timeout(max(0.0, tick * _HEARTBEAT_S - self.env.now))
            batch = silent[ticks == tick]
            batch = batch[self.population.server_of[batch] >= 0]
            self._disconnect(batch, "client_timeout", ConnectionEventKind.DROPPED, client_gone=True)

    def _churn(self) -> Generator[Any, Any, None]:
        """Clients close after their connection lifetime and reconnect (fills TIME_WAIT)."""
        population = self.population
        while True:
            yield self.env.timeout(_CHURN_SLOT_S)
            due = np.flatnonzero(population.close_at <= self.env.now)
            self._disconnect(due.astype(np.int64), "client_stop", ConnectionEventKind.CLOSED)

    # ============================================================================================
    # keep-alive and the server timeout
    # ============================================================================================
    def _heartbeat(self, server: SimServer) -> Generator[Any, Any, None]:
        s = self.scenario
        tick = 0
        while True:
            yield self.env.timeout(_HEARTBEAT_S)
            self._check_server_timeouts(server)
            phase = tick % self.phases
            tick += 1
            # One ping per client of this phase, and the clients' own pings read back.
            cost_s = int(self.population.per_server_phase[server.index, phase]) * s.keepalive_cpu_s * 2
            self.env.process(self._ping(server, phase, cost_s))

    def _ping(self, server: SimServer, phase: int, cost_s: float) -> Generator[Any, Any, None]:
        yield from server.work(cost_s)
        server.last_ping_at_s[phase] = self.env.now

    def _check_server_timeouts(self, server: SimServer) -> None:
        """Clients that heard nothing (no ping, no message) for ``server_timeout_s`` drop."""
        now = float(self.env.now)
        limit_s = self.scenario.server_timeout_s
        heard = np.maximum(server.last_ping_at_s, server.last_message_at_s)
        silent_phases = np.flatnonzero((now - heard > limit_s) & (self.population.per_server_phase[server.index] > 0))
        if len(silent_phases) == 0:
            return
        population = self.population
        candidates = np.flatnonzero((population.server_of == server.index) & np.isin(population.phase, silent_phases))
        timed_out = candidates[population.connected_at[candidates] < now - limit_s]
        self._disconnect(timed_out.astype(np.int64), "server_timeout", ConnectionEventKind.DROPPED)

    # ============================================================================================
    # broadcasts
    # ============================================================================================
    def _network_delay_s(self, count: int | None = None) -> Any:
        s = self.scenario
        if count is None:
            jitter = self.rng.exponential(s.network_jitter_s) if s.network_jitter_s else 0.0
            return s.network_latency_s + jitter
        if s.network_jitter_s:
            return s.network_latency_s + self.rng.exponential(s.network_jitter_s, count)
        return np.full(count, s.network_latency_s)

    def _broadcasts(self) -> Generator[Any, Any, None]:
        s = self.scenario
        mean_gap_s = 1.0 / s.broadcast_rate_per_s
        replay = iter(s.broadcast_offsets_s)
        while True:
            if s.broadcast_offsets_s:
                next_s = next(replay, None)
                if next_s is None:
                    return
                yield self.env.timeout(max(0.0, next_s - self.env.now))
            else:
                yield self.env.timeout(self.rng.exponential(mean_gap_s))
            if self.env.now >= s.duration_s:
                return
            sender = self.population.random_connected(self.rng)
            if sender < 0:
                continue
            broadcast_id = self._broadcast_ids
            self._broadcast_ids += 1
            origin = int(self.population.server_of[sender])
            sent_at = float(self.env.now)
            counted = sent_at >= s.warmup_s
            if self.loadgen_cpu is not None:
                # The load generator's broadcast task is due: its event loop sends when it gets to it.
                self._loadgen_due_sends.append(_DueSend(broadcast_id, origin, counted))
                self._loadgen_poke()
                continue
            if counted:
                self.records.broadcasts.append(
                    BroadcastRecord("model", s.name, broadcast_id, origin, sent_at, self.population.connected)
                )
            self.env.process(self._send_broadcast(broadcast_id, self.servers[origin], sent_at, counted))

    def _send_broadcast(
        self, broadcast_id: int, origin: SimServer, sent_at_s: float, counted: bool, *, delay_s: float = 0.0
    ) -> Generator[Any, Any, None]:
        s = self.scenario
        if delay_s > 0:
            yield self.env.timeout(delay_s)
        yield self.env.timeout(self._network_delay_s())
        # Read and dispatch SendMessage, serialise the outgoing message once per protocol.
        yield from origin.work(s.invocation_cpu_s + s.serialize_cpu_s)
        backplane = self.backplane
        if backplane is None:
            self.env.process(self._fan_out(origin, broadcast_id, origin.index, sent_at_s, counted))
            return
        if delivers_locally_on_send(self.routing):
            # The hub writes to its own clients first and publishes for the others once it has.
            yield from self._fan_out(origin, broadcast_id, origin.index, sent_at_s, counted)

        def deliver(server_index: int) -> None:
            self.env.process(self._receive_publish(server_index, broadcast_id, origin, sent_at_s, counted))

        self.env.process(backplane.publish(self._payload_bytes, deliver))

    def _receive_publish(
        self, server_index: int, broadcast_id: int, origin: SimServer, sent_at_s: float, counted: bool
    ) -> Generator[Any, Any, None]:
        server = self.servers[server_index]
        assert self.backplane is not None
        if accepts_from_backplane(self.routing, origin.name, server.name):
            yield from self._fan_out(server, broadcast_id, origin.index, sent_at_s, counted, from_backplane=True)
            return
        # Our own echo: read it and drop it (it still costs a read).
        yield from server.work(self.scenario.invocation_cpu_s)
        self.backplane.consumed(server_index, self._payload_bytes)

    def _fan_out(
        self,
        server: SimServer,
        broadcast_id: int,
        origin_index: int,
        sent_at_s: float,
        counted: bool,
        *,
        from_backplane: bool = False,
    ) -> Generator[Any, Any, None]:
        s = self.scenario
        queued_bytes = float(self.population.per_server[server.index] * s.message_bytes)
        server.buffered_bytes += queued_bytes
        yield server.pool.acquire()
        if from_backplane and self.backplane is not None:
            self.backplane.consumed(server.index, self._payload_bytes)
        recipients = int(self.population.per_server[server.index])
        # Work waiting behind this fan-out means writes batch up: the busy per-recipient cost applies.
        send_s = s.send_cpu_per_recipient_s
        if s.send_cpu_per_recipient_busy_s > 0 and server.pool.queue_length > 0:
            send_s = s.send_cpu_per_recipient_busy_s
        # The message was serialised once at the origin; a copy from the backplane costs a read.
        overhead_s = s.invocation_cpu_s if from_backplane else 0.0
        announce: Callable[[float], None] | None = None
        pending: _PendingFanOut | None = None
        pauses: list[tuple[float, float]] = []
        """(CPU done, time waited) for each time the fan-out stepped aside on a time-shared core."""
        if self.loadgen_cpu is not None and recipients > 0:
            positions = self._sample_positions(recipients)

            def announce(started_s: float) -> None:
                # The load generator reads the sockets while the server is still writing them.
                nonlocal pending
                arrivals_s = self._arrivals_s(started_s + overhead_s, positions, send_s)
                pending = _PendingFanOut(
                    server, broadcast_id, origin_index, sent_at_s, counted, recipients, arrivals_s,
                    np.full(len(arrivals_s), np.nan), self.env.event(),
                )  # fmt: skip
                self._loadgen_arrive(pending)

        def pause(cpu_done_s: float, paused_s: float) -> None:
            if pending is None:
                pauses.append((cpu_done_s, paused_s))
                return
            # The sockets written after the pause get their message that much later.
            later = (overhead_s + positions * send_s > cpu_done_s) & np.isnan(pending.received_s)
            pending.arrivals_s[later] += paused_s

        started = yield from server.use_cpu(overhead_s + recipients * send_s, on_start=announce, on_pause=pause)
        if pending is not None:
            pending.written.succeed()
        server.pool.release()
        server.buffered_bytes -= queued_bytes
        if recipients == 0:
            return
        server.last_message_at_s = float(self.env.now)
        if announce is None:
            sampled = self._sample_positions(recipients)
            arrivals_s = self._arrivals_s(started + overhead_s, sampled, send_s)
            for cpu_done_s, paused_s in pauses:
                arrivals_s[overhead_s + sampled * send_s > cpu_done_s] += paused_s
            if counted:
                self._record_fan_out(server, broadcast_id, origin_index, sent_at_s, recipients, arrivals_s)

    def _arrivals_s(
        self, writes_start_s: float, positions: npt.NDArray[np.float64], send_s: float
    ) -> npt.NDArray[np.float64]:
        """When the messages written at ``positions`` (1-based) reach their recipients."""
        delays_s: npt.NDArray[np.float64] = self._network_delay_s(len(positions))
        return writes_start_s + positions * send_s + delays_s

    def _sample_positions(self, recipients: int) -> npt.NDArray[np.float64]:
        """Write positions (1-based) of the recipients whose latency is computed."""
        sample = min(recipients, self.scenario.latency_samples_per_fanout)
        if sample == recipients:
            return np.arange(1, recipients + 1, dtype=np.float64)
        return np.sort(self.rng.integers(1, recipients + 1, sample)).astype(np.float64)

    def _record_fan_out(
        self,
        server: SimServer,
        broadcast_id: int,
        origin_index: int,
        sent_at_s: float,
        recipients: int,
        received_s: npt.NDArray[np.float64],
        *,
        delivered: int | None = None,
    ) -> None:
        """Record a fan-out whose sampled recipients received it at ``received_s`` (``delivered``: how
        many of the ``recipients`` got it, when not all did)."""
        latencies = received_s - sent_at_s
        self.records.latency.add(latencies, weight=(recipients if delivered is None else delivered) / len(latencies))
        self.records.deliveries.append(
            DeliveryRecord(
                "model",
                self.scenario.name,
                broadcast_id,
                server.index,
                origin_index,
                sent_at_s,
                recipients,
                recipients if delivered is None else delivered,
                float(latencies.mean()),
                float(latencies.max()),
            )
        )

    def _loadgen_arrive(self, fan_out: _PendingFanOut) -> None:
        self._loadgen_pending.append(fan_out)
        mean_s = self.scenario.loadgen_stall_mean_s
        wakeup = self._loadgen_wakeup
        if mean_s > 0 and wakeup is not None and not wakeup.triggered:
            # Woken by the server's writes, the loop lands on the writing server's core and waits there
            # until the fan-out is written, or until it is moved to a free core (sooner when busier).
            busy = self._loadgen_recent_busy()
            stall_s = self.rng.exponential(mean_s * math.exp(-busy / self.scenario.loadgen_stall_busy_scale))
            self._loadgen_stalled_on = fan_out.written | self.env.timeout(stall_s)
        self._loadgen_poke()

    def _loadgen_recent_busy(self) -> float:
        """The loop's busy fraction, averaged exponentially over the last ``_LOOP_BUSY_WINDOW_S``."""
        return self._loadgen_busy * math.exp(-(float(self.env.now) - self._loadgen_busy_at_s) / _LOOP_BUSY_WINDOW_S)

    def _loadgen_note_pass(self, started_s: float, ended_s: float) -> None:
        """Fold a pass into the busy average: idle until ``started_s``, busy until ``ended_s``."""
        before = self._loadgen_busy * math.exp(-(started_s - self._loadgen_busy_at_s) / _LOOP_BUSY_WINDOW_S)
        kept = math.exp(-(ended_s - started_s) / _LOOP_BUSY_WINDOW_S)
        self._loadgen_busy = before * kept + (1.0 - kept)
        self._loadgen_busy_at_s = ended_s

    def _loadgen_poke(self) -> None:
        """Wake the load generator's loop if it is waiting: it has something new to look at."""
        wakeup = self._loadgen_wakeup
        if wakeup is not None and not wakeup.triggered:
            wakeup.succeed()

    def _loadgen_loop(self, cpu: Cpu) -> Generator[Any, Any, None]:
        """The load generator's one event loop, pass by pass, as asyncio runs it.

        A pass asks ``select`` which sockets are ready (waiting only when nothing is ready and the
        broadcast task is not runnable), runs the broadcast task first if an earlier pass woke it,
        then reads every socket that was ready, one read per socket taking every message waiting in
        it. Timers are looked at after ``select``: a broadcast whose time came during a pass has its
        timer noticed at the next pass, which wakes the task, and the task sends at the start of the
        pass after that — so a busy loop sends late (together with any other broadcast overdue by
        then), and, like the real load generator, stamps the send when it happens. A pass that reads
        costs a wake-up (select, the loop's own work) plus ``per_read + messages·per_delivery`` per
        read: a loop that keeps up sees few sockets per pass and one message per read; one that falls
        behind sees hundreds of sockets per pass and several messages per read, which bounds how far
        it falls behind.
        """
        s = self.scenario
        task_runnable = False
        while True:
            stalled_on, self._loadgen_stalled_on = self._loadgen_stalled_on, None
            if stalled_on is not None and not stalled_on.processed:
                yield stalled_on
            if not task_runnable:
                next_s = min(self._loadgen_next_arrival_s(), math.inf if not self._loadgen_due_sends else 0.0)
                if next_s > self.env.now:
                    if self._loadgen_stopped is not None:
                        self._loadgen_stopped.succeed()  # the drain is over and nothing is left to read
                        return
                    wakeup = self._loadgen_wakeup = self.env.event()
                    if math.isfinite(next_s):
                        yield wakeup | self.env.timeout(next_s - self.env.now)
                    else:
                        yield wakeup
                    self._loadgen_wakeup = None
                    continue
            self._loadgen_in_pass = True
            lane = cpu.lanes.request()
            yield lane
            select_s = float(self.env.now)
            # The broadcast task's timer is noticed now; the task itself runs in the next pass.
            timer_due = bool(self._loadgen_due_sends) and not task_runnable
            at_s = select_s
            if task_runnable:
                for due in self._loadgen_due_sends:
                    at_s += s.loadgen_cpu_per_send_s
                    self._loadgen_send(due, at_s)
                self._loadgen_due_sends = []
                task_runnable = False
            reads = self._read_pass(select_s, at_s) if self._loadgen_pending else None
            if reads is not None:
                at_s = reads.end_s
            if at_s > select_s:
                # On time-shared cores a long pass steps aside for waiting work; its reads happen that much later.
                lane = yield from cpu.hold(
                    lane,
                    at_s - select_s,
                    on_pause=None if reads is None else reads.pause,
                )
            cpu.lanes.release(lane)
            if reads is not None:
                reads.commit()
            self._loadgen_in_pass = False
            self._loadgen_note_pass(select_s, float(self.env.now))
            task_runnable = timer_due
            self._record_finished_fan_outs()
            if self._loadgen_stopped is not None:
                self._loadgen_passes_left -= 1
                if self._loadgen_passes_left <= 0:
                    self._loadgen_stopped.succeed()
                    return

    def _loadgen_drain(self) -> None:
        """Run on as the load generator does: it waits ``drain_s`` after its last send, however late
        its busy loop sent it; then record what the fan-outs still being read have delivered so far."""
        drain_s = self.scenario.drain_s
        while self._loadgen_due_sends or self._loadgen_last_send_s + drain_s > self.env.now:
            # Broadcasts still due are sent once the loop gets to them: step on until it has.
            self.env.run(until=max(self._loadgen_last_send_s + drain_s, float(self.env.now) + _RETRY_SLOT_S))
        if drain_s > 0:
            # The real load generator checks its deadline in its broadcast task, which a timer wakes:
            # the timer is noticed at the select after the deadline, and the task runs in the pass
            # after that. So the pass in progress is finished and one more reads every socket ready
            # by then. (With no drain it stops right after its last send, reading nothing more.)
            self._loadgen_passes_left = 2 if self._loadgen_in_pass else 1
            stopped = self._loadgen_stopped = self.env.event()
            self._loadgen_poke()
            self.env.run(until=stopped)
        for fan_out in self._loadgen_pending:
            read = ~np.isnan(fan_out.received_s)
            if fan_out.counted and read.any():
                self._record_read(fan_out, read)
        self._loadgen_pending = []

    def _loadgen_next_arrival_s(self) -> float:
        """When the earliest message the load generator has not read reaches its socket (inf: none)."""
        if not self._loadgen_pending:
            return math.inf
        return min(float(_unread_arrivals_s(f).min()) for f in self._loadgen_pending)

    def _loadgen_send(self, due: _DueSend, sent_at_s: float) -> None:
        s = self.scenario
        self._loadgen_last_send_s = sent_at_s
        if due.counted:
            self.records.broadcasts.append(
                BroadcastRecord(
                    "model", s.name, due.broadcast_id, due.origin_index, sent_at_s, self.population.connected
                )
            )
        self.env.process(
            self._send_broadcast(
                due.broadcast_id,
                self.servers[due.origin_index],
                sent_at_s,
                due.counted,
                delay_s=sent_at_s - float(self.env.now),
            )
        )

    def _record_finished_fan_outs(self) -> None:
        done: list[_PendingFanOut] = []
        still_pending: list[_PendingFanOut] = []
        for fan_out in self._loadgen_pending:
            (still_pending if np.isnan(fan_out.received_s).any() else done).append(fan_out)
        if not done:
            return
        self._loadgen_pending = still_pending
        for fan_out in done:
            if fan_out.counted:
                self._record_read(fan_out)

    def _record_read(self, fan_out: _PendingFanOut, read: npt.NDArray[np.bool_] | None = None) -> None:
        """Record what the load generator read of ``fan_out``: all of it, or the sampled sockets ``read``."""
        received_s = fan_out.received_s if read is None else fan_out.received_s[read]
        self._record_fan_out(
            fan_out.server,
            fan_out.broadcast_id,
            fan_out.origin_index,
            fan_out.sent_at_s,
            fan_out.recipients,
            received_s,
            delivered=None if read is None else round(fan_out.recipients * float(read.mean())),
        )

    def _read_pass(self, select_s: float, start_s: float) -> _ReadPass | None:
        """Plan the reads, from ``start_s``, of every socket that was ready at ``select_s`` (None: none was).

        Sockets are identified by write position (the servers write their clients in a fixed order),
        grouped by server, and read in the order they became ready; a sample stands for
        ``recipients / samples`` sockets. A read takes every message that has arrived in its socket by
        the time it happens, so its cost depends on when it happens: first estimated with one message
        per read, then with the messages that arrived by the estimated times.
        """
        s = self.scenario
        readable: list[tuple[npt.NDArray[np.float64], list[_PendingFanOut]]] = []
        groups: dict[tuple[int, int], list[_PendingFanOut]] = {}
        for fan_out in self._loadgen_pending:
            groups.setdefault((fan_out.server.index, len(fan_out.arrivals_s)), []).append(fan_out)
        for members in groups.values():
            readable.append((np.stack([_unread_arrivals_s(f) for f in members]), members))
        firsts = [unread.min(axis=0) for unread, _ in readable]
        ready_s = np.concatenate(firsts)
        owner = np.concatenate([np.full(len(first), g) for g, first in enumerate(firsts)])
        block = np.concatenate([np.arange(len(first)) for first in firsts])
        scale = np.concatenate(
            [np.full(len(first), max(f.recipients for f in members) / len(first)) for first, (_, members) in
             zip(firsts, readable, strict=True)]
        )  # fmt: skip
        order = np.argsort(ready_s, kind="stable")
        order = order[ready_s[order] <= select_s]
        if not len(order):
            return None
        owner, block, scale = owner[order], block[order], scale[order]
        start_s += s.loadgen_cpu_per_wakeup_s

        def reads_at(messages: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return start_s + np.cumsum(scale * (s.loadgen_cpu_per_read_s + messages * s.loadgen_cpu_per_delivery_s))

        messages = np.ones(len(order))
        for _ in range(2):
            read_s = reads_at(messages)
            for g, (unread, _) in enumerate(readable):
                mine = owner == g
                messages[mine] = np.maximum(np.count_nonzero(unread[:, block[mine]] <= read_s[mine], axis=0), 1)
        read_s = reads_at(messages)
        plan = [
            (members, block[mine], read_s[mine])
            for g, (_, members) in enumerate(readable)
            if len(mine := np.flatnonzero(owner == g))
        ]
        return _ReadPass(plan, select_s, float(read_s[-1]))

    # ============================================================================================
    # other hub methods (what starves a thread pool)
    # ============================================================================================
    def _invocations(self) -> Generator[Any, Any, None]:
        s = self.scenario
        population = self.population
        # Thinning: candidates at the all-clients rate, kept only when the client is connected.
        mean_gap_s = 1.0 / (s.invocation_rate_per_client_per_s * s.clients)
        while True:
            yield self.env.timeout(self.rng.exponential(mean_gap_s))
            if self.env.now >= s.duration_s:
                return
            client = int(self.rng.integers(s.clients))
            server_index = int(population.server_of[client])
            if server_index < 0:
                continue
            # One invocation at a time per connection (MaximumParallelInvocationsPerClient = 1).
            if population.invocation_busy[client]:
                if population.invocation_backlog[client] < _MAX_INVOCATION_BACKLOG:
                    population.invocation_backlog[client] += 1
                continue
            population.invocation_busy[client] = True
            self.env.process(self._invoke(client, self.servers[server_index]))

    def _invoke(self, client: int, server: SimServer) -> Generator[Any, Any, None]:
        s = self.scenario
        population = self.population
        while True:
            yield self.env.timeout(self._network_delay_s())
            read_s = s.invocation_cpu_s + s.method_cpu_s / 2
            reply_s = s.method_cpu_s / 2 + s.serialize_cpu_s + s.send_cpu_per_recipient_s
            if s.method_kind == "async":
                # The thread goes back to the pool while the method awaits its I/O.
                yield from server.work(read_s)
                yield self.env.timeout(s.method_wait_s)
                yield from server.work(reply_s)
            else:
                yield from server.work(
                    read_s + reply_s, s.method_wait_s, blocking_on_task=s.method_kind == "sync-over-async"
                )
            if population.invocation_backlog[client] > 0 and population.server_of[client] == server.index:
                population.invocation_backlog[client] -= 1
                continue
            population.invocation_backlog[client] = 0
            population.invocation_busy[client] = False
            return

    # ============================================================================================
    # sampling
    # ============================================================================================
    def _sampler(self) -> Generator[Any, Any, None]:
        s = self.scenario
        interval_s = s.sample_interval_s
        sample_index = 0
        while True:
            yield self.env.timeout(interval_s)
            now = float(self.env.now)
            backplane_queue = float(self.backplane.queue_length) if self.backplane else math.nan
            for server in self.servers:
                connections = int(self.population.per_server[server.index])
                self.records.resources.append(
                    ResourceSample(
                        "model",
                        s.name,
                        now,
                        server.index,
                        cpu_utilization=server.meter.busy_s(sample_index) / (interval_s * server.cores),
                        connections=connections,
                        memory_bytes=s.memory_base_bytes
                        + connections * s.memory_per_connection_bytes
                        + server.buffered_bytes,
                        threads=float(server.pool.threads),
                        threadpool_queue=float(server.pool.queue_length),
                        ports_in_use=float(sum(pool.in_use for pool in server.proxy_pools)),
                        ports_time_wait=float(sum(pool.time_wait_at(now) for pool in server.proxy_pools)),
                        backplane_queue=backplane_queue,
                    )
                )
            if self.client_pools:
                # The clients' side of the port story: every NAT address's pool, summed.
                self.records.resources.append(
                    ResourceSample(
                        "model",
                        s.name,
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


def _sticky_hash(address: int) -> int:
    """A stable hash of a client address (ip_hash): the same address always maps the same way."""
    return zlib.crc32(address.to_bytes(8, "little"))
