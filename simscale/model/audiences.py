"""Sends to a group, a user or one connection: only the servers holding a recipient take part.

A broadcast is a speaker in every room; a group send is a speaker only in the rooms that hold a member
(docs/SOURCES.md#redis-backplane-behaviour: one Redis channel per group, subscribed by a server while it
holds at least one member). How a targeted send travels (one event per server, never per recipient):

1. the source picks an audience at Poisson times (a random group, user or connection) and a sender: a
   connected member of the group, or any connected client for a user or a connection;
2. the sender's server runs the hub method and serialises the message once per protocol;
3. without a backplane it writes to its own recipients only. With Redis and ``direct-local`` routing it
   writes its own recipients first, then publishes on the audience's channel; with ``via-backplane``
   even its own recipients get the message through Redis. A connection on the sender's server is
   written directly and never published (as ASP.NET Core does);
4. Redis serves the PUBLISH in ``a + b·K`` with K the *channel's* subscribers, and hands it only to
   them; each fans out to its own recipients (the sender drops its echo, which still costs a read).

Joining is paid as the hub pays it: a connecting client's ``JoinGroup`` calls cost a hub invocation each,
and a server's first member of a group makes it SUBSCRIBE that group's channel (its last member leaving,
UNSUBSCRIBE), both commands queueing in the backplane's lane.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from simscale.backplane.channels import ChannelKind
from simscale.backplane.routing import RoutingMode, delivers_locally_on_send
from simscale.model.backplane import SimBackplane
from simscale.model.broadcasts import BACKPLANE_ENVELOPE_OVERHEAD_BYTES
from simscale.model.client_host import ClientHost
from simscale.model.fanout_path import FanOutCosts, FanOutPath
from simscale.model.network import Network
from simscale.model.population import ClientPopulation
from simscale.model.recorder import Recorder
from simscale.model.server import SimServer

__all__ = ["Audiences", "GroupSubscriptions"]

IntArray = npt.NDArray[np.int64]


class GroupSubscriptions:
    """Each server's connected members of each group, kept in step with connects and disconnects.

    A server is subscribed to a group's channel while it holds at least one connected member.

    Example (clients 0-3 on two servers; group 0 is {0, 1}, group 1 is {1, 3}):

        >>> import numpy as np
        >>> subs = GroupSubscriptions(np.array([[0, 1], [1, 3]]), clients=4, servers=2)
        >>> subs.attached(0, np.array([0, 1])), subs.attached(1, np.array([2, 3]))
        (2, 1)
        >>> subs.subscribers(1).tolist(), int(subs.local[0, 1]), int(subs.local[1, 1])
        ([0, 1], 1, 1)
        >>> subs.detaching(1, np.array([3]))
        1
        >>> subs.subscribers(1).tolist()
        [0]
    """

    def __init__(self, members: IntArray, *, clients: int, servers: int) -> None:
        flat = members.ravel()
        groups_of_flat = np.repeat(np.arange(members.shape[0], dtype=np.int64), members.shape[1])
        order = np.argsort(flat, kind="stable")
        self._groups_sorted = groups_of_flat[order]
        counts = np.bincount(flat, minlength=clients)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.local = np.zeros((servers, members.shape[0]), dtype=np.int64)
        """``local[s, g]``: connected members of group ``g`` on server ``s``."""

    def groups_of(self, ids: IntArray) -> IntArray:
        """The groups of every client in ``ids``, one entry per membership."""
        counts = self._starts[ids + 1] - self._starts[ids]
        total = int(counts.sum())
        if total == 0:
            return ids[:0]
        # Each client's slice of the sorted memberships, laid end to end.
        shift = np.repeat(self._starts[ids] - (np.cumsum(counts) - counts), counts)
        return self._groups_sorted[shift + np.arange(total)]

    def attached(self, server: int, ids: IntArray) -> int:
        """``ids`` connected to ``server`` and joined their groups; returns the channels newly subscribed."""
        groups = self.groups_of(ids)
        before = self.local[server, groups] > 0
        np.add.at(self.local[server], groups, 1)
        return len(np.unique(groups[~before]))

    def detaching(self, server: int, ids: IntArray) -> int:
        """``ids`` leave ``server`` (and their groups); returns the channels unsubscribed."""
        groups = self.groups_of(ids)
        np.add.at(self.local[server], groups, -1)
        return len(np.unique(groups[self.local[server, groups] == 0]))

    def subscribers(self, group: int) -> IntArray:
        """The servers subscribed to ``group``'s channel (holding a connected member)."""
        return np.flatnonzero(self.local[:, group] > 0).astype(np.int64)


class Audiences:
    """The source of group, user or connection sends, their publish on the audience's channel and the
    fan-out of every server that holds a recipient."""

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        recorder: Recorder,
        population: ClientPopulation,
        servers: Sequence[SimServer],
        network: Network,
        backplane: SimBackplane | None,
        client_host: ClientHost,
        *,
        kind: ChannelKind,
        pick_rng: np.random.Generator,
        pick_group_send: Callable[[npt.NDArray[np.bool_]], tuple[int, int]],
        group_members: IntArray,
        pick_user_send: Callable[[npt.NDArray[np.bool_]], tuple[IntArray, int]],
        routing: RoutingMode,
        rate_per_s: float,
        offsets_s: tuple[float, ...],
        duration_s: float,
        warmup_s: float,
        message_bytes: int,
        invocation_cpu_s: float,
        serialize_cpu_s: float,
        send_cpu_per_recipient_s: float,
        send_cpu_per_recipient_busy_s: float,
    ) -> None:
        if kind is ChannelKind.ALL:
            raise ValueError("Audiences sends to a group, a user or a connection; broadcasts are Broadcasts")
        self.env = env
        self.rng = rng
        self.recorder = recorder
        self.population = population
        self.servers = servers
        self.network = network
        self.backplane = backplane
        self.client_host = client_host
        self.kind = kind
        self.pick_rng = pick_rng
        """Picks each send's audience and sender (a stream of its own, as the load generator's)."""
        self.pick_group_send = pick_group_send
        """Given who is connected, a group and its sender (-1: none connected): the load generator's own
        rule on the same stream, so the same seed picks the same sends."""
        self.group_members = group_members
        """``group_members[g]``: the clients of group ``g`` (drawn by the deployment from the seed)."""
        self.pick_user_send = pick_user_send
        """Given who is connected, a user's connections and a sender (-1: none connected): the load
        generator's rule on the same stream, as for groups. For connection sends the deployment makes
        every client its own user, so the one target connection is drawn by the same rule."""
        self.routing = routing
        self.rate_per_s = rate_per_s
        self.offsets_s = offsets_s
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.message_bytes = message_bytes
        self.invocation_cpu_s = invocation_cpu_s
        self.serialize_cpu_s = serialize_cpu_s
        self.send_cpu_per_recipient_s = send_cpu_per_recipient_s
        self.send_cpu_per_recipient_busy_s = send_cpu_per_recipient_busy_s
        self.payload_bytes = message_bytes * 2 + BACKPLANE_ENVELOPE_OVERHEAD_BYTES
        costs = FanOutCosts(
            message_bytes, self.payload_bytes, invocation_cpu_s, send_cpu_per_recipient_s, send_cpu_per_recipient_busy_s
        )
        self.path = FanOutPath(env, list(servers), backplane, client_host, costs, routing=routing)
        """Every server's receipt and fan-out (shared with broadcasts)."""
        self.groups = (
            GroupSubscriptions(group_members, clients=population.size, servers=len(servers))
            if kind is ChannelKind.GROUP
            else None
        )
        self._audience: dict[int, IntArray] = {}
        """The recipients (client ids) of each send in flight."""
        self._next_id = 0
        self.sends = 0
        self.subscribe_commands = 0

    # --- joining and leaving groups --------------------------------------------------------------
    def attached(self, server_index: int, ids: IntArray) -> None:
        """Clients connected: each calls JoinGroup for its groups; new channels are subscribed."""
        if self.groups is None:
            return
        joins = len(self.groups.groups_of(ids))
        new_channels = self.groups.attached(server_index, ids)
        self._pay_membership(server_index, joins, new_channels)

    def detaching(self, server_index: int, ids: IntArray) -> None:
        """Clients disconnect: the server drops them from their groups; emptied channels are unsubscribed."""
        if self.groups is None:
            return
        emptied = self.groups.detaching(server_index, ids)
        self._pay_membership(server_index, 0, emptied)

    def _pay_membership(self, server_index: int, joins: int, channel_commands: int) -> None:
        if joins:
            self.env.process(self.servers[server_index].work(self.invocation_cpu_s * joins))
        if self.backplane is not None:
            self.subscribe_commands += channel_commands
            for _ in range(channel_commands):
                self.env.process(self.backplane.subscribe())

    # --- the sends -------------------------------------------------------------------------------
    def _pick(self) -> tuple[IntArray, int]:
        """An audience (its client ids) and a connected sender (-1: nobody can send to it now)."""
        if self.kind is ChannelKind.GROUP:
            group, sender = self.pick_group_send(self.population.server_of >= 0)
            return self.group_members[group], sender
        # A connection send is a user send where every client is its own user: the same draws.
        return self.pick_user_send(self.population.server_of >= 0)

    def local_recipients(self, send_id: int, server_index: int) -> int:
        """Recipients of send ``send_id`` connected to ``server_index`` now."""
        return int(np.count_nonzero(self.population.server_of[self._audience[send_id]] == server_index))

    def _holders(self, send_id: int) -> IntArray:
        """The servers subscribed to the send's channel: those holding a connected recipient."""
        where = self.population.server_of[self._audience[send_id]]
        return np.unique(where[where >= 0]).astype(np.int64)

    def source(self) -> Generator[Any, Any, None]:
        """Process: sends fall due until ``duration_s``, each to a random audience."""
        mean_gap_s = 1.0 / self.rate_per_s
        replay = iter(self.offsets_s)
        while True:
            if self.offsets_s:
                next_s = next(replay, None)
                if next_s is None:
                    return
                yield self.env.timeout(max(0.0, next_s - self.env.now))
            else:
                yield self.env.timeout(self.rng.exponential(mean_gap_s))
            if self.env.now >= self.duration_s:
                return
            audience, sender = self._pick()
            if sender < 0:
                continue
            send_id = self._next_id
            self._next_id += 1
            self._audience[send_id] = audience
            self.recorder.audience(send_id, self.kind.value, self._connected_counter(audience))
            due_at_s = float(self.env.now)
            origin = int(self.population.server_of[sender])
            self.client_host.broadcast_due(send_id, origin, due_at_s, due_at_s >= self.warmup_s, self.send)

    def _connected_counter(self, audience: IntArray) -> Callable[[], int]:
        server_of = self.population.server_of
        return lambda: int(np.count_nonzero(server_of[audience] >= 0))

    def send(
        self, broadcast_id: int, origin_index: int, sent_at_s: float, counted: bool, *, delay_s: float = 0.0
    ) -> None:
        """The sender's client sends ``broadcast_id`` (a send's id) ``delay_s`` from now."""
        self.env.process(self._deliver(broadcast_id, self.servers[origin_index], sent_at_s, counted, delay_s))

    def _deliver(
        self, send_id: int, origin: SimServer, sent_at_s: float, counted: bool, delay_s: float
    ) -> Generator[Any, Any, None]:
        if delay_s > 0:
            yield self.env.timeout(delay_s)
        yield self.env.timeout(self.network.delay_s())
        yield from origin.work(self.invocation_cpu_s + self.serialize_cpu_s)
        self.sends += 1
        backplane = self.backplane
        local_only = self.kind is ChannelKind.CONNECTION and self.local_recipients(send_id, origin.index) > 0
        if backplane is None or local_only:
            # No backplane, or a connection on this very server: written directly, never published.
            yield from self._fan_out(origin, send_id, origin.index, sent_at_s, counted)
            return
        if delivers_locally_on_send(self.routing):
            yield from self._fan_out(origin, send_id, origin.index, sent_at_s, counted)

        def deliver(server_index: int) -> None:
            self.env.process(self._receive_publish(server_index, send_id, origin, sent_at_s, counted))

        subscribers = self._holders(send_id).tolist()
        self.env.process(backplane.publish(self.payload_bytes, deliver, channel_subscribers=subscribers))

    def _receive_publish(
        self, server_index: int, send_id: int, origin: SimServer, sent_at_s: float, counted: bool
    ) -> Generator[Any, Any, None]:
        recipients = partial(self.local_recipients, send_id)
        yield from self.path.receive_publish(
            server_index, send_id, origin, sent_at_s, counted, recipients, skip_empty=True
        )

    def _fan_out(
        self, server: SimServer, send_id: int, origin_index: int, sent_at_s: float, counted: bool
    ) -> Generator[Any, Any, None]:
        recipients = partial(self.local_recipients, send_id)
        yield from self.path.fan_out(server, send_id, origin_index, sent_at_s, counted, recipients, skip_empty=True)
