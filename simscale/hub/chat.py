"""The built-in chat hub, compatible with the ASP.NET Core SignalR chat tutorial.

The tutorial's page calls ``SendMessage(user, message)`` and listens for ``ReceiveMessage``; the
other methods are what simscale's tests, load generator and notebooks exercise: a round trip
(``Echo``), groups, users, and a server-to-client stream (``Counter``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from simscale.hub.hub import Hub

__all__ = ["ChatHub"]


class ChatHub(Hub):
    """``SendMessage``, ``Echo``, ``JoinGroup``, ``LeaveGroup``, ``SendToGroup``, ``SendToUser``,
    ``SendToConnection`` and ``Counter``.

    Example (the default hub at ``/chatHub``; a stream of three items):

        >>> import asyncio
        >>> from simscale.client import HubClient
        >>> from simscale.hub import HubServer
        >>> async def count() -> list[int]:
        ...     server = HubServer()
        ...     client = HubClient(f"{await server.listen('127.0.0.1', 0)}/chatHub")
        ...     try:
        ...         await client.start()
        ...         return [item async for item in client.stream("Counter", 3, 0)]
        ...     finally:
        ...         await client.stop()
        ...         await server.close()
        >>> asyncio.run(count())
        [0, 1, 2]
    """

    async def send_message(self, user: str, message: str) -> None:
        """Every client receives ``ReceiveMessage(user, message)``."""
        await self.clients.all.send("ReceiveMessage", user, message)

    async def echo(self, value: Any) -> Any:
        """Return ``value`` unchanged (a round trip to measure latency)."""
        return value

    async def join_group(self, group: str) -> None:
        """Join ``group``; completes once this server hears the group's backplane channel."""
        await self.groups.add(self.context.connection_id, group)

    async def leave_group(self, group: str) -> None:
        """Leave ``group``."""
        await self.groups.remove(self.context.connection_id, group)

    async def send_to_group(self, group: str, user: str, message: str) -> None:
        """Every member of ``group`` receives ``ReceiveMessage(user, message)``."""
        await self.clients.group(group).send("ReceiveMessage", user, message)

    async def send_to_user(self, user_id: str, user: str, message: str) -> None:
        """Every connection of user ``user_id``, on any server, receives ``ReceiveMessage(user, message)``."""
        await self.clients.user(user_id).send("ReceiveMessage", user, message)

    async def send_to_connection(self, connection_id: str, user: str, message: str) -> None:
        """Connection ``connection_id``, on any server, receives ``ReceiveMessage(user, message)``."""
        await self.clients.client(connection_id).send("ReceiveMessage", user, message)

    async def counter(self, count: int, delay_ms: int) -> AsyncGenerator[int, None]:
        """Stream ``0 .. count-1``, one item every ``delay_ms`` milliseconds."""
        delay_s = max(0, delay_ms) / 1000.0
        for value in range(count):
            yield value
            if delay_s:
                await asyncio.sleep(delay_s)
