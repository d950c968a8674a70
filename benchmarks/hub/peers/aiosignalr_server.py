"""aiosignalr (PyPI) hub at ``/chatHub``: ``SendMessage(user, message)`` → ``ReceiveMessage`` to all.

aiosignalr ships no Redis backplane, so this peer has no two-server variant.
"""

from __future__ import annotations

import asyncio

from _common import parse_options, serve_until_signal
from aiosignalr.server import Hub, SignalRServer


class ChatHub(Hub):  # type: ignore[misc]  # aiosignalr ships no type information
    """The same chat hub simscale ships."""

    async def SendMessage(self, user: str, message: str) -> None:
        """Broadcast to every connection."""
        await self.clients.all_.send("ReceiveMessage", user, message)


async def main() -> None:
    """Build the hub application and serve it."""
    options = parse_options("aiosignalr broadcast peer")
    if options.redis:
        raise SystemExit("aiosignalr has no Redis backplane")
    server = SignalRServer(ChatHub)
    app = server.create_application(path="/chatHub")
    await serve_until_signal(app, options)


if __name__ == "__main__":
    asyncio.run(main())
