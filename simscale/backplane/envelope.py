"""What travels between hub servers, in ASP.NET Core's Redis backplane layout (MessagePack).

An invocation is serialised once per hub protocol on the sending server ("pre-serialised"): the receiving
server picks the bytes for each client's protocol and writes them to the socket as they are. Layouts,
each a MessagePack array (``RedisProtocol.cs`` in dotnet/aspnetcore):

* invocation: ``[excluded_connection_ids: [str], {protocol_name: bin, ...}, origin?]`` where ``origin`` is
  ``origin_server`` or ``[origin_server, sequence]``
* group command: ``[id: int, server_name: str, action: int, group_name: str, connection_id: str]``
* ack: ``[id: int]``

Every reader ignores extra trailing items, as ASP.NET Core's readers do.

**Origin marker.** simscale adds the publishing server's name as a third item, and only when it is
known. ASP.NET Core reads a third and fourth item (invocation id, return channel) only when the array has
*more than three* items, so a three-item array is read by it as a plain invocation and the marker is
ignored. On decode, arrays with four or more items are treated as ASP.NET client-result invocations: items
2 and 3 are its invocation id and return channel, and a marker, if any, would be the fifth item.

**Publish sequence.** A server numbers what it publishes on the ``all`` channel (1, 2, 3, ...) and sends the
number with its marker, ``[origin_server, sequence]``. The marker stays the third of three items, which
ASP.NET Core never reads (``ReadInvocation`` reads items 2 and 3 only when there are more than three), so
the layout stays interoperable. Every server hears ``all`` for its whole life, so a receiver that sees an
origin's number jump from 7 to 11 knows it missed 3 messages (:class:`SequenceGaps`); on other channels a
receiver subscribes and unsubscribes, and a jump proves nothing, so they carry no number.

Pure module: standard library + msgpack, no asyncio, no redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import msgpack

from simscale.backplane.channels import ChannelKind

__all__ = [
    "PROTOCOL_JSON",
    "PROTOCOL_MESSAGEPACK",
    "Envelope",
    "EnvelopeError",
    "GroupAck",
    "GroupAction",
    "GroupCommand",
    "SequenceGaps",
]

PROTOCOL_JSON = "json"
PROTOCOL_MESSAGEPACK = "messagepack"

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


class EnvelopeError(ValueError):
    """Bytes from the backplane that are not a valid envelope, command or ack.

    Example:

        >>> from simscale.backplane import EnvelopeError, GroupAck
        >>> try:
        ...     GroupAck.decode(b"not messagepack")
        ... except EnvelopeError as error:
        ...     print(type(error).__name__)
        EnvelopeError
    """


def _unpack_array(data: bytes, what: str, min_items: int) -> list[Any]:
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise EnvelopeError(f"{what}: not MessagePack ({exc})") from exc
    if not isinstance(value, list):
        raise EnvelopeError(f"{what}: expected a MessagePack array, got {type(value).__name__}")
    if len(value) < min_items:
        raise EnvelopeError(f"{what}: expected at least {min_items} items, got {len(value)}")
    return value


def _pack(value: list[Any]) -> bytes:
    # use_bin_type: str stays 'str' and bytes become 'bin', which is what ASP.NET Core reads.
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _require_int32(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not _INT32_MIN <= value <= _INT32_MAX:
        raise EnvelopeError(f"{name} must be a 32-bit integer, got {value!r}")
    return value


def _require_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise EnvelopeError(f"{name} must be a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Envelope:
    """One hub invocation on its way to other servers.

    Attributes:
        channel_kind: the audience (``all``, ``group``, ``connection``, ``user``); not on the wire, the
            channel name carries it.
        target: group name, connection id or user id; empty for ``all``. Not on the wire either.
        payloads: protocol name (``"json"``, ``"messagepack"``) → the framed hub message, ready for the
            socket (JSON text + 0x1E, or VarInt length + MessagePack body).
        excluded_connection_ids: connections that must not receive it (``AllExcept``, ``OthersInGroup``).
        origin_server: name of the publishing server, for echo suppression; empty when unknown.
        sequence: the origin's publish number on the ``all`` channel (from 1); ``None`` when it has none.
            Sent only together with ``origin_server``.

    Example (a round trip through the wire format):

        >>> from simscale.backplane import ChannelKind, Envelope
        >>> sent = Envelope(ChannelKind.ALL, "", {"json": b'{"type":1}'}, origin_server="server-1")
        >>> received = Envelope.decode(sent.encode(), ChannelKind.ALL, "")
        >>> received.payload_for("json"), received.origin_server
        (b'{"type":1}', 'server-1')
    """

    channel_kind: ChannelKind
    target: str
    payloads: Mapping[str, bytes] = field(hash=False)
    excluded_connection_ids: tuple[str, ...] = ()
    origin_server: str = ""
    sequence: int | None = None

    def __post_init__(self) -> None:
        # Copy into read-only containers so a frozen envelope really is immutable once shared.
        payloads = dict(self.payloads)
        for name, body in payloads.items():
            if not isinstance(name, str) or not isinstance(body, bytes):
                raise EnvelopeError(f"payloads must map str to bytes, got {name!r}: {type(body).__name__}")
        object.__setattr__(self, "payloads", MappingProxyType(payloads))
        object.__setattr__(self, "excluded_connection_ids", tuple(self.excluded_connection_ids))
        object.__setattr__(self, "channel_kind", ChannelKind(self.channel_kind))

    def payload_for(self, protocol_name: str) -> bytes:
        """The framed bytes for one hub protocol.

        Raises:
            KeyError: naming the protocols the envelope carries.
        """
        try:
            return self.payloads[protocol_name]
        except KeyError:
            raise KeyError(
                f"envelope has no {protocol_name!r} payload (has: {', '.join(sorted(self.payloads))})"
            ) from None

    def encode(self) -> bytes:
        """MessagePack bytes in the ASP.NET Core invocation layout (plus the origin marker, if known)."""
        items: list[Any] = [list(self.excluded_connection_ids), dict(self.payloads)]
        if self.origin_server:
            items.append(self.origin_server if self.sequence is None else [self.origin_server, self.sequence])
        return _pack(items)

    @classmethod
    def decode(cls, data: bytes, channel_kind: ChannelKind = ChannelKind.ALL, target: str = "") -> Envelope:
        """Reads an invocation published by simscale or by ASP.NET Core.

        Args:
            data: the Redis message body.
            channel_kind: the kind of the channel it arrived on (see `ChannelNames.parse`).
            target: the channel's target (group name, connection id or user id).

        Raises:
            EnvelopeError: when the bytes are not an invocation.
        """
        items = _unpack_array(data, "invocation", 2)
        raw_excluded, raw_payloads = items[0], items[1]
        # MessagePack-CSharp reads nil where an array is expected as "no ids"; accept it too.
        excluded = () if raw_excluded is None else raw_excluded
        if not isinstance(excluded, list | tuple):
            raise EnvelopeError("invocation: item 0 (excluded connection ids) must be an array")
        excluded_ids = tuple(_require_str("excluded connection id", cid) for cid in excluded)
        if not isinstance(raw_payloads, dict):
            raise EnvelopeError("invocation: item 1 (payloads) must be a map")
        payloads: dict[str, bytes] = {}
        for name, body in raw_payloads.items():
            name = _require_str("protocol name", name)
            if body is None:
                body = b""  # ASP.NET Core reads a nil payload as empty
            elif isinstance(body, str):
                body = body.encode()  # written as 'str' by a writer without the bin type
            elif not isinstance(body, bytes):
                raise EnvelopeError(f"invocation: payload {name!r} must be bin, got {type(body).__name__}")
            payloads[name] = body
        origin_index = 2 if len(items) == 3 else 4
        origin = items[origin_index] if len(items) > origin_index else ""
        sequence = None
        if isinstance(origin, list) and len(origin) >= 2:
            origin, number = origin[0], origin[1]
            if isinstance(number, int) and not isinstance(number, bool) and number >= 1:
                sequence = number
        return cls(
            channel_kind=channel_kind,
            target=target,
            payloads=payloads,
            excluded_connection_ids=excluded_ids,
            origin_server=origin if isinstance(origin, str) else "",
            sequence=sequence if isinstance(origin, str) and origin else None,
        )


class SequenceGaps:
    """Counts the messages a receiver never got, from each origin's publish sequence.

    ``observe`` is called for every numbered envelope in arrival order. The first number heard from an
    origin sets where counting starts; a number at or below the last one means the origin started
    again (a restarted server counts from 1 anew), and counting restarts there too.

    Args:
        max_origins: origins remembered (the least recently heard is forgotten first), so servers that
            come and go cannot grow it without bound.
    """

    __slots__ = ("_last", "max_origins")

    def __init__(self, max_origins: int = 1_024) -> None:
        if max_origins < 1:
            raise ValueError(f"max_origins must be >= 1, got {max_origins!r}")
        self.max_origins = max_origins
        self._last: dict[str, int] = {}

    def observe(self, origin: str, sequence: int) -> int:
        """Note ``sequence`` from ``origin``; how many of its numbers were skipped since the last one."""
        last = self._last.pop(origin, None)
        self._last[origin] = sequence  # re-inserted: the dict's order is the recency order
        if last is None:
            if len(self._last) > self.max_origins:
                del self._last[next(iter(self._last))]
            return 0
        return sequence - last - 1 if sequence > last else 0


class GroupAction(IntEnum):
    """Group command actions; the numbers are ASP.NET Core's wire values (0 is unused there).

    Example:

        >>> from simscale.backplane import GroupAction
        >>> int(GroupAction.ADD), int(GroupAction.REMOVE)
        (1, 2)
    """

    ADD = 1
    REMOVE = 2


@dataclass(frozen=True)
class GroupCommand:
    """Add/remove a connection owned by another server to/from a group (``:internal:groups``).

    Attributes:
        id: per-sender command id (32-bit), echoed back in the `GroupAck`.
        server_name: the sender, which waits for the ack on ``:internal:ack:{server_name}``.
        action: add or remove.
        group_name: the group.
        connection_id: the connection; only the server that owns it acts and acks.

    Example:

        >>> from simscale.backplane import GroupAction, GroupCommand
        >>> command = GroupCommand(7, "server-1", GroupAction.ADD, "room", "conn-1")
        >>> GroupCommand.decode(command.encode()) == command
        True
    """

    id: int
    server_name: str
    action: GroupAction
    group_name: str
    connection_id: str

    def __post_init__(self) -> None:
        _require_int32("id", self.id)
        object.__setattr__(self, "action", GroupAction(self.action))

    def encode(self) -> bytes:
        """``[id, server_name, action, group_name, connection_id]`` as MessagePack."""
        return _pack([self.id, self.server_name, int(self.action), self.group_name, self.connection_id])

    @classmethod
    def decode(cls, data: bytes) -> GroupCommand:
        """Reads a group command, ignoring extra trailing items.

        Raises:
            EnvelopeError: when the bytes are not a group command.
        """
        items = _unpack_array(data, "group command", 5)
        action_value = _require_int32("action", items[2])
        try:
            action = GroupAction(action_value)
        except ValueError:
            raise EnvelopeError(f"group command: unknown action {action_value}") from None
        return cls(
            id=_require_int32("id", items[0]),
            server_name=_require_str("server name", items[1]),
            action=action,
            group_name=_require_str("group name", items[3]),
            connection_id=_require_str("connection id", items[4]),
        )


@dataclass(frozen=True)
class GroupAck:
    """Acknowledges a `GroupCommand` by its id (``:internal:ack:{server}``).

    ASP.NET Core's ack is ``[id]`` alone. When the owner refused the change (a hub bound such as
    ``max_groups_per_connection``), simscale appends the refusal as a second item, so the sender's
    call fails with it instead of succeeding; ASP.NET Core's reader takes the id and skips the rest.

    Attributes:
        id: the command's id.
        refusal: why the owner refused the change (``None``: it was made).

    Example:

        >>> from simscale.backplane import GroupAck
        >>> GroupAck.decode(GroupAck(7).encode())
        GroupAck(id=7, refusal=None)
        >>> GroupAck.decode(GroupAck(7, "too many groups").encode()).refusal
        'too many groups'
    """

    id: int
    refusal: str | None = None

    def __post_init__(self) -> None:
        _require_int32("id", self.id)

    def encode(self) -> bytes:
        """``[id]`` as MessagePack, or ``[id, refusal]`` when the change was refused."""
        return _pack([self.id] if self.refusal is None else [self.id, self.refusal])

    @classmethod
    def decode(cls, data: bytes) -> GroupAck:
        """Reads an ack, ignoring extra trailing items.

        Raises:
            EnvelopeError: when the bytes are not an ack.
        """
        items = _unpack_array(data, "ack", 1)
        refusal = _require_str("refusal", items[1]) if len(items) > 1 and items[1] is not None else None
        return cls(_require_int32("id", items[0]), refusal)
