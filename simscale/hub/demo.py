"""``simscale hub demo``: two real hub servers, one Redis, and a page that shows the backplane at work.

Two people in two rooms of one building, each talking to their own receptionist: without an intercom
between the receptionists, a word said in one room never reaches the other. The page puts that on a
screen. Each chat pane is the official ``@microsoft/signalr`` browser client connected to a different
``simscale hub serve`` process; both processes use one redis-server as their backplane (the intercom).

The switch is honest: turning the backplane **off stops the redis-server process**. Each hub keeps
serving its own clients (``direct-local`` routing writes to the sender's own server's clients before
publishing), every publish fails and is counted as a loss, so a message reaches only the pane that
sent it. Turning it **on starts Redis again on the same port**; the hubs notice on their own,
reconnect with backoff and subscribe again (see :mod:`simscale.backplane.redis_backplane`), and from
then on a message reaches both panes. The demo process never relays a chat message itself.

This process (`DemoServer`) serves the page on aiohttp, starts and stops the processes, and polls
each hub's ``/health`` and ``/metrics`` twice a second for the counters the page shows. The browser
client is served from ``demo_page/node_modules`` (``npm ci`` at set-up time), never copied into the
repository.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from simscale.backplane.redis_server import RedisServer, RedisServerError

__all__ = ["CLIENT_SCRIPT", "PAGE_DIR", "RATE_WINDOW_S", "DemoServer", "ServerStats", "missing_client_message"]

PAGE_DIR = Path(__file__).with_name("demo_page")
"""index.html, app.js, demo.css and the npm package (package.json + package-lock.json) of the page."""

CLIENT_SCRIPT = PAGE_DIR / "node_modules" / "@microsoft" / "signalr" / "dist" / "browser" / "signalr.min.js"
"""The official browser client, as ``npm ci`` in `PAGE_DIR` installs it."""

_PANES = ("a", "b")
_POLL_INTERVAL_S = 0.5
RATE_WINDOW_S = 3.0
"""The per-second rates the page shows are averaged over about this long."""
_RECONNECTED_TIMEOUT_S = 15.0
"""How long switching the backplane on waits for both hubs to report it connected again."""
_DISCONNECTED_TIMEOUT_S = 5.0
_STATIC = {"/": "index.html", "/app.js": "app.js", "/demo.css": "demo.css"}
_CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def missing_client_message() -> str:
    """What to run when the browser client is not installed.

    Example:
        >>> "npm ci" in missing_client_message()
        True
    """
    return (
        f"the demo page needs the official SignalR browser client, which is not installed in {PAGE_DIR}: "
        f"run `cd {PAGE_DIR} && npm ci` (Node 20 and npm), or `bash scripts/setup.sh demo`"
    )


@dataclass
class ServerStats:
    """What the page shows for one hub server, refreshed from its ``/health`` and ``/metrics``.

    Example:
        >>> ServerStats(pane="a", name="server-a", url="http://127.0.0.1:5001/chatHub").messages_per_s
        0.0
    """

    pane: str
    """``a`` or ``b``: the chat pane connected to this server."""
    name: str
    url: str
    """The hub's ``http://127.0.0.1:PORT/chatHub`` (the browser turns it into ``ws://``)."""
    reachable: bool = False
    connections: int = 0
    messages_per_s: float = 0.0
    """Hub invocations received from this server's own clients per second (a chat message is one)."""
    deliveries_per_s: float = 0.0
    """Hub messages this server wrote to its own clients per second."""
    publishes: int = 0
    """Envelopes published on the backplane since the server started."""
    losses: int = 0
    """Publishes lost because the backplane was down."""
    backplane_state: str = "unknown"
    """``connected``, ``reconnecting`` or ``stopped``, as the hub reports it."""
    _samples: collections.deque[tuple[float, float, float]] = field(
        default_factory=lambda: collections.deque(maxlen=64), repr=False
    )
    """(time, invocations, deliveries) of recent polls: the rates are taken over `RATE_WINDOW_S`."""

    def update(self, health: dict[str, Any], metrics: dict[str, float], now_s: float) -> None:
        """Take a fresh ``/health`` answer and parsed ``/metrics`` sample taken at ``now_s``."""
        self.reachable = True
        self.connections = int(health.get("connections", 0))
        backplane = health.get("backplane", {})
        self.backplane_state = str(backplane.get("state", "unknown"))
        self.publishes = int(backplane.get("publishes", 0))
        self.losses = int(backplane.get("losses", 0))
        invocations = metrics.get("simscale_hub_invocations_total", 0.0)
        deliveries = metrics.get("simscale_hub_deliveries_total", 0.0)
        samples = self._samples
        samples.append((now_s, invocations, deliveries))
        while len(samples) > 2 and now_s - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()  # keep one sample at least a window old
        then_s, invocations_then, deliveries_then = samples[0]
        if now_s > then_s:
            self.messages_per_s = max(0.0, invocations - invocations_then) / (now_s - then_s)
            self.deliveries_per_s = max(0.0, deliveries - deliveries_then) / (now_s - then_s)

    def public(self) -> dict[str, Any]:
        """The JSON the page reads (the private sample left out)."""
        data = asdict(self)
        data.pop("_samples")
        return data


def parse_prometheus(text: str) -> dict[str, float]:
    """``name value`` lines of a Prometheus text exposition (labels are not used by the hub)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            samples[name] = float(value)
    return samples


async def _start_hub(name: str, backplane_url: str) -> tuple[asyncio.subprocess.Process, str]:
    argv = [
        *(sys.executable, "-m", "simscale.cli", "hub", "serve", "--host", "127.0.0.1", "--port", "0"),
        *("--name", name, "--backplane", backplane_url, "--routing", "direct-local"),
    ]
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30.0):
            while True:
                line = await process.stdout.readline()
                if not line:
                    raise RuntimeError(f"hub server {name} exited before listening")
                text = line.decode().strip()
                if text.startswith("listening on "):
                    return process, text.removeprefix("listening on ").rstrip("/") + "/chatHub"
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(10.0):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


class DemoServer:
    """The demo: a redis-server, two hub processes (panes ``a`` and ``b``) and the page's web server.

    Use it as an async context manager; `url` is the page once entered. `set_backplane` stops or
    starts Redis and waits (bounded) until both hubs report the outcome.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     async with DemoServer(port=0) as demo:
        ...         print("demo at", demo.url)
        ...         await demo.set_backplane(False)  # now a message stays on its own server
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port!r}")
        self.host = host
        self.port = port
        self.url = ""
        self.redis = RedisServer()
        self.stats: list[ServerStats] = []
        self.backplane_on = True
        self._processes: list[asyncio.subprocess.Process] = []
        self._stack = contextlib.AsyncExitStack()
        self._switching = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    # ---- life cycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> DemoServer:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        stack = self._stack
        stack.callback(self.redis.stop)
        await asyncio.to_thread(self.redis.start)
        for pane in _PANES:
            name = f"server-{pane}"
            # Pushed as soon as it runs: the hubs stop before Redis (LIFO), so none logs a lost link.
            process, url = await _start_hub(name, self.redis.url)
            self._processes.append(process)
            stack.push_async_callback(_stop_process, process)
            self.stats.append(ServerStats(pane=pane, name=name, url=url))
        self._session = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)))
        await self._poll_once()
        poller = asyncio.create_task(self._poll())
        stack.push_async_callback(self._cancel, poller)
        app = web.Application()
        app.router.add_get("/api/state", self._state_handler)
        app.router.add_post("/api/backplane", self._backplane_handler)
        app.router.add_get("/signalr.js", self._client_handler)
        for route, filename in _STATIC.items():
            app.router.add_get(route, self._static_handler(filename))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        stack.push_async_callback(self._runner.cleanup)
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{bound_port}/"

    @staticmethod
    async def _cancel(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def wait_hub_exit(self) -> str:
        """Return the name of the first hub process that exits on its own (the demo cannot go on without it)."""
        waiters = {asyncio.ensure_future(p.wait()): s.name for p, s in zip(self._processes, self.stats, strict=True)}
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return waiters[next(iter(done))]

    # ---- the switch -----------------------------------------------------------------------------

    async def set_backplane(self, on: bool) -> None:
        """Start (``on``) or stop Redis, then wait until both hubs report it connected (or not).

        Raises:
            TimeoutError: a hub did not report the change in time.
        """
        async with self._switching:
            if on:
                await asyncio.to_thread(self.redis.restart)
            else:
                await asyncio.to_thread(self.redis.stop)
            self.backplane_on = on
            timeout_s = _RECONNECTED_TIMEOUT_S if on else _DISCONNECTED_TIMEOUT_S
            async with asyncio.timeout(timeout_s):
                while True:
                    await self._poll_once()
                    if all((s.backplane_state == "connected") == on for s in self.stats):
                        return
                    await asyncio.sleep(0.1)

    # ---- counters -------------------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(_POLL_INTERVAL_S)
            await self._poll_once()

    async def _poll_once(self) -> None:
        await asyncio.gather(*(self._poll_server(stats) for stats in self.stats))

    async def _poll_server(self, stats: ServerStats) -> None:
        assert self._session is not None
        base = stats.url.removesuffix("/chatHub")
        try:
            async with self._session.get(f"{base}/health") as response:
                health = await response.json()
            async with self._session.get(f"{base}/metrics") as response:
                metrics = parse_prometheus(await response.text())
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            stats.reachable = False
            return
        stats.update(health, metrics, time.monotonic())

    def state(self) -> dict[str, Any]:
        """What ``GET /api/state`` answers: the switch, Redis, and each server's counters."""
        return {
            "backplane_on": self.backplane_on,
            "redis_running": self.redis.is_running,
            "client_installed": CLIENT_SCRIPT.is_file(),
            "servers": [stats.public() for stats in self.stats],
        }

    # ---- HTTP handlers --------------------------------------------------------------------------

    async def _state_handler(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def _backplane_handler(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            on = body["on"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return web.json_response({"error": 'send {"on": true} or {"on": false}'}, status=400)
        if not isinstance(on, bool):
            return web.json_response({"error": '"on" must be true or false'}, status=400)
        try:
            await self.set_backplane(on)
        except TimeoutError:
            return web.json_response({**self.state(), "error": "a hub did not report the change in time"}, status=504)
        except RedisServerError as error:
            return web.json_response({**self.state(), "error": f"Redis did not start again: {error}"}, status=503)
        return web.json_response(self.state())

    async def _client_handler(self, request: web.Request) -> web.StreamResponse:
        if not CLIENT_SCRIPT.is_file():
            return web.Response(status=404, text=missing_client_message())
        return web.FileResponse(CLIENT_SCRIPT, headers={"Content-Type": "text/javascript"})

    @staticmethod
    def _static_handler(filename: str) -> Any:
        path = PAGE_DIR / filename

        async def handler(request: web.Request) -> web.StreamResponse:
            content_type = _CONTENT_TYPES[path.suffix]
            return web.Response(body=path.read_bytes(), content_type=content_type, charset="utf-8")

        return handler
