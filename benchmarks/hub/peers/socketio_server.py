"""python-socketio on aiohttp: clients emit ``broadcast``; the server emits ``msg`` to everyone.

With ``--redis`` the server uses python-socketio's ``AsyncRedisManager``, so an emit reaches the
clients of every server sharing that Redis.
"""

from __future__ import annotations

import asyncio

import socketio
from _common import parse_options, serve_until_signal
from aiohttp import web


async def main() -> None:
    """Build the Socket.IO server and serve it."""
    options = parse_options("python-socketio broadcast peer")
    manager = socketio.AsyncRedisManager(options.redis) if options.redis else None
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        transports=["websocket"],
        http_compression=False,
        compression_threshold=1 << 30,
    )

    @sio.on("broadcast")  # type: ignore[untyped-decorator]
    async def on_broadcast(sid: str, payload: str) -> None:
        await sio.emit("msg", payload)

    app = web.Application()
    sio.attach(app)
    await serve_until_signal(app, options)


if __name__ == "__main__":
    asyncio.run(main())
