"""The floor: a bare aiohttp WebSocket broadcast loop at ``/ws``.

Every text frame a client sends is written to every connected client. ``POST /negotiate`` answers a
fresh id as JSON: the least work an HTTP negotiate before the socket can do (the sustained-connects
figure times negotiate + WebSocket + handshake for every stack). With ``--redis`` the server
also publishes the frame (prefixed by its own id) on one Redis channel; the other servers' subscribers
write it to their clients and each server drops its own echo. That is the least work a "broadcast to
all" across servers can do, and the same delivery rule simscale (direct-local) and socket.io's Redis
adapter follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from _common import parse_options, serve_until_signal
from aiohttp import WSMsgType, web

CHANNEL = "floor:all"
SERVER_ID = os.urandom(6).hex()
clients: set[web.WebSocketResponse] = set()


async def broadcast(text: str) -> None:
    """Write ``text`` to every local client (the loop being measured)."""
    for ws in tuple(clients):
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(text)


async def negotiate(request: web.Request) -> web.Response:
    """A connection id, as JSON (nothing is reserved: the socket's ``?id=`` is ignored)."""
    return web.json_response({"connectionId": os.urandom(12).hex()})


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    """Accept a client and relay what it sends."""
    ws = web.WebSocketResponse(autoping=True, compress=False)
    await ws.prepare(request)
    clients.add(ws)
    publish = request.app.get("publish")
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            await broadcast(message.data)
            if publish is not None:
                await publish(CHANNEL, f"{SERVER_ID}|{message.data}")
    finally:
        clients.discard(ws)
    return ws


async def relay_from_redis(pubsub: Any) -> None:
    """Deliver every message on the shared channel to the local clients."""
    async for item in pubsub.listen():
        if item.get("type") != "message":
            continue
        origin, _, text = item["data"].decode().partition("|")
        if origin != SERVER_ID:
            await broadcast(text)


async def main() -> None:
    """Build the app and serve it."""
    options = parse_options("bare aiohttp WebSocket broadcast loop")
    app = web.Application()
    app.router.add_get("/ws", handle_ws)
    app.router.add_post("/negotiate", negotiate)
    if options.redis:
        import redis.asyncio as aioredis

        publisher = aioredis.from_url(options.redis)
        subscriber = aioredis.from_url(options.redis)
        pubsub = subscriber.pubsub()
        await pubsub.subscribe(CHANNEL)
        app["publish"] = publisher.publish
        app["relay"] = asyncio.create_task(relay_from_redis(pubsub))
    await serve_until_signal(app, options)


if __name__ == "__main__":
    asyncio.run(main())
