"""Who is connected to one hub on this server, and how a message reaches them (fan-out).

The lifetime manager is the hub's switchboard. It keeps the local connections, groups and users in
dictionaries and, for every send, (1) encodes the invocation **once per protocol**, (2) writes the
same bytes to every matching local connection, then (3) publishes one envelope, in ASP.NET Core's
Redis layout, for the other servers. The routing rule that decides who delivers what comes from
:mod:`simscale.backplane.routing`, the same rule the SimPy model applies.

Subscriptions follow ASP.NET Core's Redis backplane: ``{prefix}:all`` from start-up, a group channel
while at least one local connection is in the group (reference-counted), one channel per local
connection and one per local user. Adding a connection that lives on another server to a group goes
as a command on ``:internal:groups``, acknowledged by the owner on ``:internal:ack:{server}`` (the ack
carries the owner's refusal when a bound refused the join, and the join then fails with it).
When the backplane is down, local delivery goes on and sends count a loss; subscriptions asked for
meanwhile are the backplane's business (it records them and makes them when it is back), so this module
keeps no bookkeeping of its own for an outage.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from simscale.backplane.base import Backplane, BackplaneUnavailable, MessageHandler
from simscale.backplane.channels import ChannelKind, ChannelNames
from simscale.backplane.envelope import (
    Envelope,
    EnvelopeError,
    GroupAck,
    GroupAction,
    GroupCommand,
    SequenceGaps,
)
from simscale.backplane.routing import RoutingMode, accepts_from_backplane, delivers_locally_on_send
from simscale.hub.connection import HubConnection, frame_records
from simscale.hub.hub import HubError
from simscale.hub.metrics import HubCounters
from simscale.protocol import SUPPORTED_PROTOCOLS, InvocationMessage

__all__ = ["HubLifetimeManager"]

_log = logging.getLogger(__name__)

BACKPLANE_CALL_TIMEOUT_S = 1.0
"""Longest an unsubscribe may hold up a disconnect or a LeaveGroup (a subscribe is bounded by the
backplane itself: it returns once the subscription is made or recorded)."""

_INT32_LIMIT = 2**31 - 1
"""Group command ids travel as 32-bit integers."""

GROUP_ACK_TIMEOUT_S = 30.0
"""ASP.NET Core's ``AckHandler`` gives up on a remote group command after 30 s."""


class HubLifetimeManager:
    """Local connections, groups and users of one hub, and the fan-out to them.

    Args:
        channels: channel names of this hub on the backplane.
        backplane: shared by every hub of the server; started and stopped by the server.
        server_name: this server's name, used for echo suppression.
        routing_mode: who delivers a sender's own local clients (see ``simscale.backplane.routing``).
        counters: the server's counters.
        group_ack_timeout_s: how long a group change for a connection on another server waits
            for that server's ack.
        max_groups_per_connection: groups one local connection may be in (``None``: no bound).
        max_group_name_bytes: longest group name in UTF-8 bytes (``None``: no bound).
    """

    def __init__(
        self,
        channels: ChannelNames,
        backplane: Backplane,
        server_name: str,
        routing_mode: RoutingMode,
        counters: HubCounters,
        group_ack_timeout_s: float = GROUP_ACK_TIMEOUT_S,
        *,
        max_groups_per_connection: int | None = None,
        max_group_name_bytes: int | None = None,
    ) -> None:
        self.channels = channels
        self.backplane = backplane
        self.server_name = server_name
        self.routing_mode = routing_mode
        self._deliver_locally = delivers_locally_on_send(routing_mode)
        self._counters = counters
        self.connections: dict[str, HubConnection] = {}
        """Handshaken local connections by connection id."""
        self.groups: dict[str, set[HubConnection]] = {}
        self.users: dict[str, set[HubConnection]] = {}
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._subscribed: set[str] = set()
        self.group_ack_timeout_s = group_ack_timeout_s
        self.max_groups_per_connection = max_groups_per_connection
        self.max_group_name_bytes = max_group_name_bytes
        self._internal_handlers: dict[str, MessageHandler] = {
            channels.internal_groups: self._on_group_command,
            channels.internal_ack(server_name): self._on_group_ack,
        }
        # One bound method for every channel: each ``self.on_backplane_message`` makes a new object,
        # and the backplane keeps the handler of every per-connection subscription.
        self._on_message: MessageHandler = self.on_backplane_message
        self._command_ids = itertools.count(1)
        self._all_sequence = itertools.count(1)
        """This server's publish numbers on ``all`` (see :mod:`simscale.backplane.envelope`)."""
        self._sequence_gaps = SequenceGaps()
        self._awaiting_acks: dict[int, asyncio.Future[None]] = {}

    # ---- start / stop ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe ``:all``, ``:internal:groups`` and this server's ack channel.

        While the backplane is down they are recorded by it and made when it is back.
        """
        await self._subscribe(self.channels.all)
        for channel in self._internal_handlers:
            await self._subscribe(channel)

    async def stop(self) -> None:
        """Drop every subscription this hub holds."""
        for channel in list(self._subscribed):
            await self._unsubscribe(channel)

    # ---- connections ----------------------------------------------------------------------------

    async def add_connection(self, connection: HubConnection) -> None:
        """Register a handshaken connection and subscribe its connection (and user) channel."""
        self.connections[connection.connection_id] = connection
        await self._subscribe(self.channels.connection(connection.connection_id))
        user_id = connection.user_id
        if user_id is not None:
            members = self.users.get(user_id)
            if members is None:
                self.users[user_id] = {connection}
                await self._subscribe(self.channels.user(user_id))
            else:
                members.add(connection)

    async def remove_connection(self, connection: HubConnection) -> None:
        """Forget a connection: leave its groups, drop its channels."""
        if self.connections.pop(connection.connection_id, None) is None:
            return
        for group in list(connection.groups):
            await self._leave(connection, group)
        await self._unsubscribe(self.channels.connection(connection.connection_id))
        user_id = connection.user_id
        if user_id is not None:
            members = self.users.get(user_id)
            if members is not None:
                members.discard(connection)
                if not members:
                    del self.users[user_id]
                    await self._unsubscribe(self.channels.user(user_id))

    # ---- groups ---------------------------------------------------------------------------------

    async def add_to_group(self, connection_id: str, group: str) -> None:
        """Add a connection to ``group``; returns once the group reaches it.

        A local connection joins at once and this returns when the group channel is subscribed; a
        connection on another server is added by a command on ``:internal:groups``, and this returns
        when its server acknowledges (as ASP.NET Core's Redis backplane does).

        Raises:
            LookupError: no server acknowledged within ``group_ack_timeout_s``.
            HubError: the name is longer than ``max_group_name_bytes``, or the connection (local, or
                on the server that refused the command) is already in ``max_groups_per_connection``
                groups; the message names the limit.
        """
        self._check_group_name(group)
        connection = self.connections.get(connection_id)
        if connection is None:
            await self._remote_group_command(GroupAction.ADD, connection_id, group)
            return
        await self._join(connection, group)

    def _check_group_name(self, group: str) -> None:
        limit = self.max_group_name_bytes
        # A UTF-8 character is at most 4 bytes: most names need no encoding to pass.
        if limit is not None and len(group) * 4 > limit and len(group.encode("utf-8", "surrogatepass")) > limit:
            self._counters.group_name_refusals += 1
            raise HubError(f"The group name is longer than max_group_name_bytes ({limit} bytes).")

    async def _join(self, connection: HubConnection, group: str) -> None:
        limit = self.max_groups_per_connection
        if limit is not None and len(connection.groups) >= limit and group not in connection.groups:
            self._counters.group_refusals += 1
            raise HubError(f"The connection is already in max_groups_per_connection ({limit}) groups.")
        if not connection.join_group(group):
            return
        members = self.groups.get(group)
        if members is None:
            self.groups[group] = {connection}
        else:
            members.add(connection)
        await self._subscribe(self.channels.group(group))

    async def remove_from_group(self, connection_id: str, group: str) -> None:
        """Take a connection out of ``group``; the channel goes when the last local member leaves.

        Raises:
            LookupError: the connection is remote and no server acknowledged in time.
        """
        connection = self.connections.get(connection_id)
        if connection is None:
            await self._remote_group_command(GroupAction.REMOVE, connection_id, group)
            return
        await self._leave(connection, group)

    async def _remote_group_command(self, action: GroupAction, connection_id: str, group: str) -> None:
        command_id = next(self._command_ids) % _INT32_LIMIT
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._awaiting_acks[command_id] = acked
        try:
            command = GroupCommand(command_id, self.server_name, action, group, connection_id)
            await self.backplane.publish(self.channels.internal_groups, command.encode())
            async with asyncio.timeout(self.group_ack_timeout_s):
                await acked
        except (BackplaneUnavailable, TimeoutError):
            raise LookupError(f"no server acknowledged the group change for {connection_id!r}") from None
        finally:
            self._awaiting_acks.pop(command_id, None)

    async def _on_group_command(self, channel: str, payload: bytes) -> None:
        try:
            command = GroupCommand.decode(payload)
        except EnvelopeError as error:
            _log.warning("dropped a malformed group command: %s", error)
            return
        connection = self.connections.get(command.connection_id)
        if connection is None:
            return  # another server's connection (or our own command echoed back)
        refusal: str | None = None
        if command.action is GroupAction.ADD:
            try:
                self._check_group_name(command.group_name)
                await self._join(connection, command.group_name)
            except HubError as refused:
                # The ack carries the refusal, so the sender's call fails with it: an ack alone would
                # tell the sender the connection joined when it did not.
                refusal = str(refused)
                _log.info("group command for %s refused: %s", connection.connection_id, refused)
        else:
            await self._leave(connection, command.group_name)
        ack = GroupAck(command.id, refusal)
        try:
            await self.backplane.publish(self.channels.internal_ack(command.server_name), ack.encode())
        except BackplaneUnavailable as error:
            _log.info("group ack to %s lost: %s", command.server_name, error)

    async def _on_group_ack(self, channel: str, payload: bytes) -> None:
        try:
            ack = GroupAck.decode(payload)
        except EnvelopeError as error:
            _log.warning("dropped a malformed group ack: %s", error)
            return
        waiter = self._awaiting_acks.get(ack.id)
        if waiter is not None and not waiter.done():
            if ack.refusal is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(HubError(ack.refusal))

    async def _leave(self, connection: HubConnection, group: str) -> None:
        connection.leave_group(group)
        members = self.groups.get(group)
        if members is None:
            return
        members.discard(connection)
        if not members:
            del self.groups[group]
            await self._unsubscribe(self.channels.group(group))

    # ---- fan-out --------------------------------------------------------------------------------

    async def send(
        self,
        kind: str,
        key: str,
        target: str,
        arguments: tuple[Any, ...],
        excluded: tuple[str, ...] = (),
    ) -> None:
        """Invoke ``target(*arguments)`` on an audience: local clients first, then the backplane.

        Args:
            kind: ``all``, ``group``, ``connection`` or ``user``.
            key: group name, connection id or user id (empty for ``all``).
            target: the client-side method name.
            arguments: its arguments.
            excluded: connection ids that must not receive it.
        """
        channel_kind = ChannelKind(kind)
        message = InvocationMessage(target, tuple(arguments))
        # One encoding per protocol, shared by every recipient and by the envelope.
        payloads = {name: protocol.encode(message) for name, protocol in SUPPORTED_PROTOCOLS.items()}
        if channel_kind is ChannelKind.CONNECTION:
            local = self.connections.get(key)
            if local is not None:
                # Like ASP.NET Core: a local connection is written directly, never published.
                if key not in excluded:
                    self._write(local, payloads)
                return
        elif self._deliver_locally:
            self.deliver(channel_kind, key, payloads, excluded)
        sequence = next(self._all_sequence) if channel_kind is ChannelKind.ALL else None
        envelope = Envelope(channel_kind, key, payloads, excluded, self.server_name, sequence)
        await self._publish(self._channel_for(channel_kind, key), envelope.encode())

    def deliver(self, kind: ChannelKind, key: str, payloads: Mapping[str, bytes], excluded: Iterable[str] = ()) -> int:
        """Write pre-encoded payloads to the matching local connections; returns how many."""
        recipients: Iterable[HubConnection]
        if kind is ChannelKind.ALL:
            recipients = self.connections.values()
        elif kind is ChannelKind.GROUP:
            recipients = self.groups.get(key, ())
        elif kind is ChannelKind.USER:
            recipients = self.users.get(key, ())
        else:
            single = self.connections.get(key)
            recipients = () if single is None else (single,)
        excluded_ids = frozenset(excluded)
        # Frame each protocol's bytes once; every recipient gets the very same frame object.
        frames: dict[str, tuple[bytes, int]] = {}
        count = 0
        # Iterate a snapshot: a write may abort a slow consumer, whose clean-up edits these sets later.
        for connection in tuple(recipients):
            if excluded_ids and connection.connection_id in excluded_ids:
                continue
            protocol = connection.protocol
            if protocol is None:
                continue
            framed = frames.get(protocol.name)
            if framed is None:
                payload = payloads.get(protocol.name)
                if payload is None:
                    continue  # an envelope from a server that did not encode this protocol
                framed = frames[protocol.name] = (frame_records(payload, protocol.transfer_format), len(payload))
            if connection.write_frame(framed[0], framed[1]):
                count += 1
        return count

    @staticmethod
    def _write(connection: HubConnection, payloads: Mapping[str, bytes]) -> bool:
        protocol = connection.protocol
        if protocol is None:
            return False
        payload = payloads.get(protocol.name)
        return payload is not None and connection.write(payload)

    def _channel_for(self, kind: ChannelKind, key: str) -> str:
        if kind is ChannelKind.ALL:
            return self.channels.all
        if kind is ChannelKind.GROUP:
            return self.channels.group(key)
        if kind is ChannelKind.USER:
            return self.channels.user(key)
        return self.channels.connection(key)

    async def _publish(self, channel: str, payload: bytes) -> None:
        try:
            await self.backplane.publish(channel, payload)
        except BackplaneUnavailable as error:
            # The backplane counts the loss; the sender's call still succeeds for local clients.
            _log.debug("publish on %s lost: %s", channel, error)

    async def on_backplane_message(self, channel: str, payload: bytes) -> None:
        """Deliver an envelope that arrived from the backplane, unless it is our own echo."""
        address = self.channels.parse(channel)
        if address is None:
            return
        try:
            envelope = Envelope.decode(payload, address.kind, address.target)
        except EnvelopeError as error:
            _log.warning("dropped a malformed envelope on %s: %s", channel, error)
            return
        origin = envelope.origin_server
        if envelope.sequence is not None and address.kind is ChannelKind.ALL and origin != self.server_name:
            # Our own numbers are skipped: what we could not publish is already in the backplane's losses.
            missed = self._sequence_gaps.observe(envelope.origin_server, envelope.sequence)
            if missed:
                self._counters.backplane_missed += missed
                _log.warning(
                    "missed %d messages from %s on %s (backplane gap)", missed, envelope.origin_server, channel
                )
        if not accepts_from_backplane(self.routing_mode, envelope.origin_server, self.server_name):
            return
        self._counters.backplane_messages_received += 1
        self.deliver(address.kind, address.target, envelope.payloads, envelope.excluded_connection_ids)

    # ---- subscriptions --------------------------------------------------------------------------

    async def _subscribe(self, channel: str) -> None:
        """Subscribe ``channel`` once; concurrent callers wait for the same subscription."""
        if channel in self._subscribed:
            return
        running = self._subscribing.get(channel)
        if running is not None:
            await asyncio.shield(running)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._subscribing[channel] = done
        try:
            # Never raises for an outage: the backplane records the subscription and makes it later.
            await self.backplane.subscribe(channel, self._internal_handlers.get(channel, self._on_message))
            self._subscribed.add(channel)
        finally:
            del self._subscribing[channel]
            done.set_result(None)

    async def _unsubscribe(self, channel: str) -> None:
        if channel not in self._subscribed:
            return
        self._subscribed.discard(channel)
        try:
            async with asyncio.timeout(BACKPLANE_CALL_TIMEOUT_S):
                await self.backplane.unsubscribe(channel, self._internal_handlers.get(channel, self._on_message))
        except (BackplaneUnavailable, TimeoutError) as error:
            _log.info("unsubscribe %s failed: %s", channel, error)
