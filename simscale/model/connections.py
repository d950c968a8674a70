"""Connections: how clients get onto a server, lose their connection, and try again.

A connection attempt goes client port → load balancer → the server's connection limit → a proxy
port → handshake (a work item on the server, given up after the handshake timeout). Whatever fails
on the way is refused with its reason and retried on the reconnect delays (0, 2, 10, 30 s by
default, with optional jitter) until they run out. Established connections close when the client
stops (churn: the app opens a new one at once), drop when the server or the client times them out
(reconnect with the first delay), or go silent (the client is gone; only a timeout notices).

Clients move in batches of rows of :class:`~simscale.model.population.ClientPopulation`: attempts
due within the same 10 ms are one batch, so a reconnect storm costs events per batch, not per client.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from simscale.metrics.records import NO_SERVER, ConnectionEventKind
from simscale.model.balancer import LoadBalancer
from simscale.model.keepalive import HEARTBEAT_S
from simscale.model.negotiation import NOT_FOUND_REASON, route_connects
from simscale.model.population import ClientPopulation
from simscale.model.ports import PortPool
from simscale.model.recorder import Recorder
from simscale.model.server import SimServer

__all__ = ["Connections"]

IntArray = npt.NDArray[np.int64]

_RETRY_SLOT_S = 0.01
"""Reconnect attempts due within the same 10 ms are handled as one batch."""
_CHURN_SLOT_S = 0.05
"""Connections whose lifetime ends within the same 50 ms close together."""


class Connections:
    """Admission, handshakes, retries and disconnects of the whole client population."""

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        recorder: Recorder,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        balancer: LoadBalancer,
        *,
        client_pools: list[PortPool],
        max_connections_per_server: int,
        handshake_cpu_s: float,
        handshake_timeout_s: float,
        reconnect: bool,
        reconnect_delays_s: tuple[float, ...],
        reconnect_jitter: float,
        connection_lifetime_s: float,
        service_room: Callable[[], int] | None = None,
        negotiate: bool = False,
    ) -> None:
        self.env = env
        self.rng = rng
        self.recorder = recorder
        self.population = population
        self.servers = servers
        self.balancer = balancer
        self.client_pools = client_pools
        """One port pool per client (NAT) address; empty when client ports are not modelled."""
        self.max_connections_per_server = max_connections_per_server
        self.handshake_cpu_s = handshake_cpu_s
        self.handshake_timeout_s = handshake_timeout_s
        self.reconnect = reconnect
        self.reconnect_delays_s = reconnect_delays_s
        self.reconnect_jitter = reconnect_jitter
        self.connection_lifetime_s = connection_lifetime_s
        self._proxy_next = 0
        self.service_room = service_room
        """Azure SignalR Service's free connection slots (``None``: self-hosted, no quota)."""
        self.on_attached: list[Callable[[int, IntArray], None]] = []
        """Called with (server index, client ids) after clients connected (e.g. they join their groups)."""
        self.on_detaching: list[Callable[[int, IntArray], None]] = []
        """Called with (server index, client ids) just before their connections close (they leave groups)."""
        self.negotiate = negotiate
        """Whether clients negotiate first (two requests through the balancer) or skip it."""
        self.per_client_handshakes: Callable[[SimServer, IntArray, float], Generator[Any, Any, None]] | None = None
        """When set (by :mod:`simscale.model.handshakes`), runs the handshakes instead of one batch work item."""
        self.first_connects_attempted = 0
        self.first_connects_failed = 0

    # --- getting connected -----------------------------------------------------------------------
    def start(self, connect_ramp_s: float) -> None:
        """Every client connects: spread over ``connect_ramp_s``, or already connected at time 0."""
        everyone = np.arange(self.population.size, dtype=np.int64)
        if connect_ramp_s > 0:
            offsets = np.sort(self.rng.uniform(0.0, connect_ramp_s, self.population.size))
            self.schedule_attempts(everyone[np.argsort(offsets, kind="stable")], offsets)
        else:
            # Already connected when the run starts: no handshake work.
            for server, batch in self._admit(everyone):
                self._attach(server, batch)

    def schedule_attempts(self, ids: IntArray, delays_s: npt.NDArray[np.float64] | float) -> None:
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
            handshake = self.per_client_handshakes or self._handshake
            self.env.process(handshake(server, batch, float(self.env.now)))

    def _admit(self, ids: IntArray) -> list[tuple[SimServer, IntArray]]:
        """Ports, balancer and connection limit for a batch; returns the batches per server that
        may start a handshake (the rest are refused here)."""
        self.first_connects_attempted += self._first_attempts(ids)
        ids, refused = self._take_client_ports(ids)
        self._fail(refused, NO_SERVER, "ports_exhausted", ConnectionEventKind.REFUSED)
        if self.service_room is not None:  # the service's quota: client plus server connections
            room = self.service_room()
            self._release_to_pools(self.client_pools, self.population.address[ids[room:]])
            self._fail(ids[room:], NO_SERVER, "service_quota", ConnectionEventKind.REFUSED)
            ids = ids[:room]
        if len(ids) and not any(server.up for server in self.servers):
            self._release_to_pools(self.client_pools, self.population.address[ids])
            self._fail(ids, NO_SERVER, "no_server_up", ConnectionEventKind.REFUSED)
            return []
        if len(ids) == 0:
            return []
        chosen, not_found = route_connects(self.balancer, ids, negotiate=self.negotiate)
        if not_found.any():
            self._release_to_pools(self.client_pools, self.population.address[ids[not_found]])
            for server in np.unique(chosen[not_found]).tolist():
                self._fail(ids[not_found & (chosen == server)], server, NOT_FOUND_REASON, ConnectionEventKind.REFUSED)
            ids, chosen = ids[~not_found], chosen[~not_found]
        admitted: list[tuple[SimServer, IntArray]] = []
        # Each server's batch in arrival order, from one stable sort rather than one pass per server.
        order = np.argsort(chosen, kind="stable")
        bounds = np.searchsorted(chosen[order], np.arange(len(self.servers) + 1))
        for server in self.servers:
            batch = ids[order[bounds[server.index] : bounds[server.index + 1]]]
            if len(batch) == 0:
                continue
            room = self.max_connections_per_server - int(self.population.per_server[server.index])
            room -= server.handshakes_in_progress
            over_limit = batch[max(room, 0) :]
            batch = batch[: max(room, 0)]
            batch, no_proxy_port = self._take_proxy_ports(server, batch)
            rejected = np.concatenate([over_limit, no_proxy_port])
            self._release_to_pools(self.client_pools, self.population.address[rejected])
            self._fail(over_limit, server.index, "connection_limit", ConnectionEventKind.REFUSED)
            self._fail(no_proxy_port, server.index, "proxy_ports_exhausted", ConnectionEventKind.REFUSED)
            if len(batch):
                admitted.append((server, batch))
        return admitted

    def _handshake(self, server: SimServer, ids: IntArray, attempted_at_s: float) -> Generator[Any, Any, None]:
        server.handshakes_in_progress += len(ids)
        try:
            ran = yield from server.work_unless(
                self.handshake_cpu_s * len(ids), lambda now_s: now_s - attempted_at_s > self.handshake_timeout_s
            )
            if not ran:
                # The client gave up waiting; the server finds a dead socket and moves on.
                self._release_ports(server, ids)
                self._fail(ids, server.index, "handshake_timeout", ConnectionEventKind.REFUSED)
                return
        finally:
            server.handshakes_in_progress -= len(ids)
        if not server.up:  # it went down meanwhile
            self._release_ports(server, ids)
            self._fail(ids, server.index, "server_down", ConnectionEventKind.REFUSED)
            return
        self._attach(server, ids)

    def _attach(self, server: SimServer, ids: IntArray) -> None:
        now = float(self.env.now)
        self.population.attach(ids, server.index, now)
        for attached in self.on_attached:
            attached(server.index, ids)
        self.recorder.connection_event(ConnectionEventKind.CONNECTED, server.index, "ok", len(ids))
        if self.connection_lifetime_s > 0:
            self.population.close_at[ids] = now + self.rng.exponential(self.connection_lifetime_s, len(ids))

    # --- ports -----------------------------------------------------------------------------------
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

    def _release_to_pools(self, pools: list[PortPool], addresses: npt.NDArray[np.integer[Any]]) -> None:
        """Close one connection per entry of ``addresses``: its port in that address's pool enters TIME_WAIT."""
        if not pools or len(addresses) == 0:
            return
        now = float(self.env.now)
        unique, counts = np.unique(addresses, return_counts=True)
        for address, count in zip(unique.tolist(), counts.tolist(), strict=True):
            pools[address].release(now, count)

    def _release_ports(self, server: SimServer, ids: IntArray) -> None:
        self._release_to_pools(self.client_pools, self.population.address[ids])
        self._release_to_pools(server.proxy_pools, self.population.proxy_address[ids])

    # --- failing and retrying --------------------------------------------------------------------
    def _fail(self, ids: IntArray, server: int, reason: str, kind: ConnectionEventKind) -> None:
        """Attempts that failed: record them, then retry with the reconnect delays or give up."""
        if len(ids) == 0:
            return
        self.recorder.connection_event(kind, server, reason, len(ids))
        population = self.population
        self.first_connects_failed += self._first_attempts(ids)
        population.failed_attempts[ids] += 1
        attempts = len(self.reconnect_delays_s)
        exhausted = ids[(population.failed_attempts[ids] >= attempts) | (not self.reconnect)]
        retry = ids[(population.failed_attempts[ids] < attempts) & self.reconnect]
        self._give_up(exhausted)
        if len(retry):
            delays = np.asarray(self.reconnect_delays_s, dtype=np.float64)[population.failed_attempts[retry]]
            self.schedule_attempts(retry, self._jitter(delays))

    def _first_attempts(self, ids: IntArray) -> int:
        """How many of ``ids`` are on the first connect attempt of their life."""
        return int((~self.population.ever_connected[ids] & (self.population.failed_attempts[ids] == 0)).sum())

    def _give_up(self, ids: IntArray) -> None:
        if len(ids) == 0:
            return
        population = self.population
        population.gave_up[ids] = True
        after_drop = ids[population.was_dropped[ids]]
        never_connected = ids[~population.was_dropped[ids]]
        record = self.recorder.connection_event
        record(ConnectionEventKind.GAVE_UP, NO_SERVER, "retries_exhausted_after_drop", len(after_drop))
        record(ConnectionEventKind.GAVE_UP, NO_SERVER, "retries_exhausted", len(never_connected))

    def _jitter(self, delays: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        spread = self.reconnect_jitter
        if spread <= 0:
            return delays
        return delays * self.rng.uniform(1.0 - spread, 1.0 + spread, len(delays))

    # --- losing connections ----------------------------------------------------------------------
    def disconnect(self, ids: IntArray, reason: str, kind: ConnectionEventKind, *, client_gone: bool = False) -> None:
        """Close established connections; dropped clients start their reconnect sequence (unless gone)."""
        if len(ids) == 0:
            return
        population = self.population
        servers = population.server_of[ids]
        for server in self.servers:
            batch = ids[servers == server.index]
            if len(batch):
                for detaching in self.on_detaching:
                    detaching(server.index, batch)
                self._release_ports(server, batch)
                self.recorder.connection_event(kind, server.index, reason, len(batch))
        population.detach(ids)
        population.was_dropped[ids] = kind is ConnectionEventKind.DROPPED
        if client_gone:
            population.gave_up[ids] = True  # nobody is left on that side to reconnect
        elif kind is ConnectionEventKind.CLOSED:
            self.schedule_attempts(ids, 0.0)  # the app opens a new connection right away
        elif self.reconnect:
            delays = np.full(len(ids), self.reconnect_delays_s[0])
            self.schedule_attempts(ids, self._jitter(delays))
        else:
            self._give_up(ids)

    def drop(self, ids: IntArray, reason: str) -> None:
        """The server dropped ``ids`` (a timeout): they reconnect on the first delay."""
        self.disconnect(ids, reason, ConnectionEventKind.DROPPED)

    def churn(self) -> Generator[Any, Any, None]:
        """Process: clients close after their connection lifetime and reconnect (fills TIME_WAIT)."""
        population = self.population
        while True:
            yield self.env.timeout(_CHURN_SLOT_S)
            due = np.flatnonzero(population.close_at <= self.env.now)
            self.disconnect(due.astype(np.int64), "client_stop", ConnectionEventKind.CLOSED)

    def silence(
        self, *, at_s: float, fraction: float, client_keepalive_interval_s: float, client_timeout_s: float
    ) -> Generator[Any, Any, None]:
        """Process: some clients stop sending and reading without closing; only a timeout notices."""
        yield self.env.timeout(at_s)
        connected = np.flatnonzero(self.population.server_of >= 0).astype(np.int64)
        count = round(fraction * len(connected))
        if count == 0:
            return
        silent = np.sort(self.rng.choice(connected, size=count, replace=False))
        # Each one last pinged somewhere within its keep-alive interval before going silent.
        last_heard_s = at_s - self.rng.uniform(0.0, client_keepalive_interval_s, count)
        drop_at_s = last_heard_s + client_timeout_s
        order = np.argsort(drop_at_s, kind="stable")
        silent, drop_at_s = silent[order], drop_at_s[order]
        # The server's heartbeat checks once a second: drop in one batch per tick.
        ticks = np.ceil(drop_at_s / HEARTBEAT_S)
        for tick in np.unique(ticks):
            yield self.env.timeout(max(0.0, tick * HEARTBEAT_S - self.env.now))
            batch = silent[ticks == tick]
            batch = batch[self.population.server_of[batch] >= 0]
            self.disconnect(batch, "client_timeout", ConnectionEventKind.DROPPED, client_gone=True)
