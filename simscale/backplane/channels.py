"""Redis channel names, laid out exactly as ASP.NET Core's Redis backplane names them.

Think of the backplane as a building's intercom: ``{prefix}:all`` is the speaker in every room, a group
channel is a speaker only in rooms that have a member of that group, and a connection channel is the
phone of one person. Every hub server subscribes to ``:all`` and ``:internal:groups``; it subscribes to a
group, user or connection channel only while it owns at least one matching local connection.

Pure module: no asyncio, no redis. The SimPy model uses the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DEFAULT_PREFIX", "ChannelAddress", "ChannelKind", "ChannelNames"]

DEFAULT_PREFIX = "SimScale.ChatHub"
"""ASP.NET Core uses the hub's full type name; ours mimics ``Namespace.ChatHub``."""


class ChannelKind(StrEnum):
    """The audience an invocation channel addresses.

    Example:

        >>> from simscale.backplane import ChannelKind, ChannelNames
        >>> ChannelNames("Chat").parse("Chat:group:room").kind is ChannelKind.GROUP
        True
    """

    ALL = "all"
    GROUP = "group"
    CONNECTION = "connection"
    USER = "user"


@dataclass(frozen=True)
class ChannelAddress:
    """A parsed invocation channel: its kind and target (empty for ``all``).

    Example:

        >>> from simscale.backplane import ChannelNames
        >>> address = ChannelNames("Chat").parse("Chat:user:ann")
        >>> address.kind.value, address.target
        ('user', 'ann')
    """

    kind: ChannelKind
    target: str = ""


@dataclass(frozen=True)
class ChannelNames:
    """Builds and parses the channel names of one hub.

    Args:
        prefix: the hub's name, e.g. ``"SimScale.ChatHub"``. Apps sharing one Redis are isolated by a
            different *channel* prefix on the backplane, not by this one.

    Example (the names ASP.NET Core's Redis backplane uses):

        >>> from simscale.backplane import ChannelNames
        >>> names = ChannelNames("Chat")
        >>> names.all, names.group("room"), names.internal_ack("server-1")
        ('Chat:all', 'Chat:group:room', 'Chat:internal:ack:server-1')
    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not self.prefix:
            raise ValueError(f"prefix must be a non-empty string (the hub name), got {self.prefix!r}")

    @property
    def all(self) -> str:
        """``{prefix}:all``: every server subscribes at start-up."""
        return f"{self.prefix}:all"

    def group(self, group_name: str) -> str:
        """``{prefix}:group:{group_name}``."""
        return f"{self.prefix}:group:{group_name}"

    def connection(self, connection_id: str) -> str:
        """``{prefix}:connection:{connection_id}``."""
        return f"{self.prefix}:connection:{connection_id}"

    def user(self, user_id: str) -> str:
        """``{prefix}:user:{user_id}``."""
        return f"{self.prefix}:user:{user_id}"

    @property
    def internal_groups(self) -> str:
        """``{prefix}:internal:groups``: add/remove commands for connections on other servers."""
        return f"{self.prefix}:internal:groups"

    def internal_ack(self, server_name: str) -> str:
        """``{prefix}:internal:ack:{server_name}``: acks for group commands that server sent."""
        return f"{self.prefix}:internal:ack:{server_name}"

    def for_address(self, address: ChannelAddress) -> str:
        """The channel name of a parsed address (inverse of `parse`)."""
        if address.kind is ChannelKind.ALL:
            return self.all
        return f"{self.prefix}:{address.kind.value}:{address.target}"

    def parse(self, channel: str) -> ChannelAddress | None:
        """Reads an invocation channel back into kind and target.

        Returns:
            The address, or ``None`` for internal channels and channels of another prefix.
        """
        head = f"{self.prefix}:"
        if not channel.startswith(head):
            return None
        rest = channel[len(head) :]
        if rest == ChannelKind.ALL.value:
            return ChannelAddress(ChannelKind.ALL)
        # Split once: group names and user ids may themselves contain ':'.
        kind_text, sep, target = rest.partition(":")
        if not sep or kind_text == ChannelKind.ALL.value:
            return None
        try:
            kind = ChannelKind(kind_text)
        except ValueError:
            return None  # "internal" and anything unknown
        return ChannelAddress(kind, target)
