"""The Hub base class: what application code subclasses, and the proxies it talks through.

A hub is a switchboard operator. Clients call its methods by name; the methods answer the caller
(a return value becomes a Completion) and place calls to other clients through ``self.clients``:
everybody, everybody else, one connection, a group, or every connection of one user. As in
ASP.NET Core a new hub object is made for every invocation, so instance attributes do not survive
between calls; keep shared state on the class or elsewhere.

Example:
    class ChatHub(Hub):
        async def send_message(self, user: str, message: str) -> None:
            await self.clients.all.send("ReceiveMessage", user, message)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simscale.hub.connection import HubConnection
    from simscale.hub.lifetime import HubLifetimeManager

__all__ = ["ClientProxy", "GroupManager", "Hub", "HubClients", "HubError"]


class HubError(Exception):
    """An error whose message is meant for the caller (sent in the Completion, like HubException).

    Any other exception a hub method raises reaches the client only as a generic sentence, so
    internal details never leak.

    Example:

        >>> from simscale.hub import HubError
        >>> str(HubError("room is full"))
        'room is full'
    """


class ClientProxy:
    """One audience (all, a group, a connection, a user) to which messages can be sent.

    Example (what ``self.clients.all`` is inside a hub method; see `Hub` for a whole hub):

        >>> from simscale.hub import ClientProxy
        >>> [name for name in vars(ClientProxy) if not name.startswith("_")]
        ['send']
    """

    __slots__ = ("_excluded", "_key", "_kind", "_lifetime")

    def __init__(self, lifetime: HubLifetimeManager, kind: str, key: str = "", excluded: tuple[str, ...] = ()) -> None:
        self._lifetime = lifetime
        self._kind = kind
        self._key = key
        self._excluded = excluded

    async def send(self, target: str, *arguments: Any) -> None:
        """Invoke client method ``target`` with ``arguments`` on every connection of the audience.

        Returns once local connections have been written to and the backplane publish has been
        attempted; a backplane outage is counted as a loss, not raised.
        """
        await self._lifetime.send(self._kind, self._key, target, arguments, self._excluded)


class HubClients:
    """The audiences reachable from inside a hub method (``self.clients``).

    Example (the audiences a hub method can address):

        >>> from simscale.hub import HubClients
        >>> sorted(name for name in vars(HubClients) if not name.startswith("_"))
        ['all', 'all_except', 'caller', 'client', 'group', 'others', 'others_in_group', 'user']
    """

    __slots__ = ("_caller_id", "_lifetime")

    def __init__(self, lifetime: HubLifetimeManager, caller_id: str) -> None:
        self._lifetime = lifetime
        self._caller_id = caller_id

    @property
    def all(self) -> ClientProxy:
        """Every connection of this hub, on every server."""
        return ClientProxy(self._lifetime, "all")

    @property
    def others(self) -> ClientProxy:
        """Every connection except the caller."""
        return ClientProxy(self._lifetime, "all", excluded=(self._caller_id,))

    @property
    def caller(self) -> ClientProxy:
        """The connection that made the current invocation."""
        return ClientProxy(self._lifetime, "connection", self._caller_id)

    def client(self, connection_id: str) -> ClientProxy:
        """One connection, local or on another server."""
        return ClientProxy(self._lifetime, "connection", connection_id)

    def all_except(self, *connection_ids: str) -> ClientProxy:
        """Every connection except ``connection_ids``."""
        return ClientProxy(self._lifetime, "all", excluded=connection_ids)

    def group(self, name: str) -> ClientProxy:
        """Every member of group ``name``."""
        return ClientProxy(self._lifetime, "group", name)

    def others_in_group(self, name: str) -> ClientProxy:
        """Every member of group ``name`` except the caller."""
        return ClientProxy(self._lifetime, "group", name, excluded=(self._caller_id,))

    def user(self, user_id: str) -> ClientProxy:
        """Every connection authenticated as ``user_id``."""
        return ClientProxy(self._lifetime, "user", user_id)


class GroupManager:
    """Group membership (``self.groups``); membership lives only in the owning server's memory.

    A connection on another server is added or removed through the backplane
    (``:internal:groups``), and the call returns once that server acknowledged.

    Example (the chat hub's JoinGroup calls ``self.groups.add``; a group send then reaches the member):

        >>> import asyncio
        >>> from simscale.client import HubClient
        >>> from simscale.hub import HubServer
        >>> async def join_and_hear() -> list[object]:
        ...     server = HubServer()
        ...     client, heard = HubClient(f"{await server.listen('127.0.0.1', 0)}/chatHub"), asyncio.Queue()
        ...     client.on("ReceiveMessage", lambda *arguments: heard.put_nowait(list(arguments)))
        ...     try:
        ...         await client.start()
        ...         await client.invoke("JoinGroup", "room")
        ...         await client.invoke("SendToGroup", "room", "ann", "hi room")
        ...         return await asyncio.wait_for(heard.get(), 5.0)
        ...     finally:
        ...         await client.stop()
        ...         await server.close()
        >>> asyncio.run(join_and_hear())
        ['ann', 'hi room']
    """

    __slots__ = ("_lifetime",)

    def __init__(self, lifetime: HubLifetimeManager) -> None:
        self._lifetime = lifetime

    async def add(self, connection_id: str, group: str) -> None:
        """Put a connection in ``group``; returns once the group's messages reach it.

        Raises:
            LookupError: the connection is on no server that answered within ``group_ack_timeout_s``.
            HubError: the name is longer than ``max_group_name_bytes``, or the connection (on this
                server) is already in ``max_groups_per_connection`` groups; raised from a hub method it
                becomes the caller's Completion error, which names the limit.
        """
        await self._lifetime.add_to_group(connection_id, group)

    async def remove(self, connection_id: str, group: str) -> None:
        """Take a connection out of ``group`` (same rules as :meth:`add`)."""
        await self._lifetime.remove_from_group(connection_id, group)


class Hub:
    """Base class of every hub. Subclasses add ``async def`` methods (or async generators to stream).

    Public methods that a subclass defines are callable by clients, in PascalCase or snake_case.
    Subclasses may override :meth:`on_connected` and :meth:`on_disconnected`; nothing else here is
    meant to be overridden.

    Example (a hub of our own, served at ``/shout`` and called by a client):

        >>> import asyncio
        >>> from simscale.client import HubClient
        >>> from simscale.hub import Hub, HubServer
        >>> class Shout(Hub):
        ...     async def shout(self, text: str) -> str:
        ...         await self.clients.all.send("Heard", text.upper())
        ...         return text.upper()
        >>> async def call() -> str:
        ...     server = HubServer({"/shout": Shout})
        ...     client = HubClient(f"{await server.listen('127.0.0.1', 0)}/shout")
        ...     try:
        ...         await client.start()
        ...         return await client.invoke("Shout", "hello")
        ...     finally:
        ...         await client.stop()
        ...         await server.close()
        >>> asyncio.run(call())
        'HELLO'
    """

    _connection: HubConnection
    _lifetime: HubLifetimeManager

    def _attach(self, connection: HubConnection, lifetime: HubLifetimeManager) -> None:
        self._connection = connection
        self._lifetime = lifetime

    @property
    def context(self) -> HubConnection:
        """The calling connection: ``connection_id``, ``user_id``, ``items`` (per-connection dict)."""
        return self._connection

    @property
    def clients(self) -> HubClients:
        """The audiences this hub can send to."""
        return HubClients(self._lifetime, self._connection.connection_id)

    @property
    def groups(self) -> GroupManager:
        """Add and remove connections to and from groups."""
        return GroupManager(self._lifetime)

    async def on_connected(self) -> None:
        """Called once the handshake succeeded; raising closes the connection."""

    async def on_disconnected(self, error: Exception | None) -> None:
        """Called once the connection is gone (``error`` is why, when it was not a clean close)."""
