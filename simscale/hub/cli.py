"""``simscale hub serve``, ``hub cluster`` and ``hub demo``: run real hub servers from the shell.

``serve`` runs one server and prints ``listening on URL`` (flushed) once it accepts connections, so
scripts and tests can wait for that line. ``cluster`` starts N ``serve`` processes that share a
backplane (starting its own redis-server when asked for ``redis`` without a URL) and prints each URL.
``demo`` runs two servers and a Redis behind a browser page (:mod:`simscale.hub.demo`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from simscale.backplane.base import Backplane
from simscale.backplane.factory import create_backplane
from simscale.backplane.memory import MemoryBus
from simscale.backplane.routing import DEFAULT_ROUTING_MODE, RoutingMode
from simscale.hub.auth import (
    AnonymousAuthenticator,
    Authenticator,
    StaticTokenAuthenticator,
    TokenIsUserAuthenticator,
)
from simscale.hub.nginx import STICKY_POLICIES
from simscale.hub.settings import HubSettings
from simscale.hub.transports.types import TransportSettings, parse_transports

__all__ = ["register"]

_STARTUP_TIMEOUT_S = 30.0

# (flag, HubSettings field, type, help)
_LIMIT_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    (
        "--keepalive-interval-s",
        "keepalive_interval_s",
        float,
        "send a hub Ping after this long without sending",
    ),
    ("--client-timeout-s", "client_timeout_s", float, "close a client silent for this long"),
    ("--handshake-timeout-s", "handshake_timeout_s", float, "close a client not handshaken by then"),
    ("--max-message-bytes", "max_message_bytes", int, "largest incoming hub message"),
    ("--max-parallel-invocations", "max_parallel_invocations", int, "invocations at once per connection"),
    ("--max-buffered-bytes", "max_buffered_bytes", int, "outgoing backlog before a slow consumer is closed"),
    ("--max-connections", "max_connections", int, "connections beyond which the server answers 503"),
    ("--max-groups-per-connection", "max_groups_per_connection", int, "groups one connection may be in"),
    ("--max-group-name-bytes", "max_group_name_bytes", int, "longest group name in UTF-8 bytes"),
    ("--max-streams-per-connection", "max_streams_per_connection", int, "streams one connection may run at once"),
    ("--max-reservations", "max_reservations", int, "negotiated but unused tokens over all clients"),
    (
        "--max-reservations-per-address",
        "max_reservations_per_address",
        int,
        "negotiated but unused tokens per client address",
    ),
    ("--negotiate-ttl-s", "negotiate_ttl_s", float, "lifetime of a negotiated but unused token"),
)


def register(subparsers: Any) -> None:
    """Add ``hub serve``, ``hub cluster`` and ``hub demo`` to the top-level ``simscale`` command."""
    raw = argparse.RawDescriptionHelpFormatter
    hub = subparsers.add_parser(
        "hub",
        help="run real SignalR-compatible hub servers",
        description=(
            "Run real SignalR-compatible hub servers (ChatHub at /chatHub): one with `serve`, several\n"
            "processes sharing a backplane with `cluster`, two of them behind a browser page with `demo`."
        ),
        epilog=(
            "Examples:\n  simscale hub serve --port 5000\n  simscale hub cluster --servers 3 --backplane redis\n"
            "  simscale hub demo --port 8000"
        ),
        formatter_class=raw,
    )
    commands = hub.add_subparsers(dest="hub_command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run one hub server (ChatHub at /chatHub)",
        description=(
            "Run one hub server until SIGINT or SIGTERM. It prints `listening on URL` once it accepts\n"
            "connections (scripts can wait for that line); clients connect to URL/chatHub."
        ),
        epilog=(
            "Examples:\n"
            "  simscale hub serve\n"
            "  simscale hub serve --port 0 --backplane redis://127.0.0.1:6379 --name server-a\n"
            "  simscale hub serve --tls-cert cert.pem --tls-key key.pem --token secret=alice"
        ),
        formatter_class=raw,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=5000, help="port, 0 picks a free one (default: 5000)")
    _add_common(serve)
    serve.add_argument(
        "--name", default=None, help="server name on the backplane (default: none, host name plus a random suffix)"
    )
    serve.add_argument(
        "--tls-cert", default=None, help="PEM certificate chain: serve https/wss (default: none, plain http/ws)"
    )
    serve.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert (default: none)")
    serve.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN=USER",
        help="accept bearer TOKEN as user USER, repeatable; anonymous clients stay allowed (default: none)",
    )
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="what the server logs on stderr (default: warning)",
    )
    serve.set_defaults(handler=serve_command)

    cluster = commands.add_parser(
        "cluster",
        help="run N hub server processes sharing a backplane",
        description=(
            "Start N `hub serve` processes that share a backplane (with `--backplane redis`, a private\n"
            "redis-server too), print each server's URL and then `cluster ready`; stop them all on\n"
            "SIGINT or SIGTERM. With `--proxy nginx`, an nginx in front of them (round robin, or\n"
            "sticky with `--sticky ip_hash`) prints `proxy listening on URL` before `cluster ready`;\n"
            "the cluster then keeps running while at least one server is alive."
        ),
        epilog=(
            "Examples:\n"
            "  simscale hub cluster --servers 3 --backplane redis\n"
            "  simscale hub cluster --servers 2 --base-port 5001 --backplane redis://127.0.0.1:6379\n"
            "  simscale hub cluster --servers 3 --backplane redis --proxy nginx --sticky ip_hash"
        ),
        formatter_class=raw,
    )
    cluster.add_argument(
        "--servers", type=int, required=True, help="number of server processes (default: none, required)"
    )
    cluster.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    cluster.add_argument(
        "--base-port", type=int, default=0, help="server i listens on BASE+i; 0 picks free ports (default: 0)"
    )
    cluster.add_argument(
        "--proxy",
        default="none",
        choices=["none", "nginx"],
        help="a load balancer in front of the servers: nginx (Debian's, in a temp dir) (default: none)",
    )
    cluster.add_argument(
        "--sticky",
        default="none",
        choices=list(STICKY_POLICIES),
        help="with --proxy nginx: ip_hash (sticky sessions) or none (round robin) (default: none)",
    )
    _add_common(cluster)
    cluster.set_defaults(handler=cluster_command)

    demo = commands.add_parser(
        "demo",
        help="two hub servers, a Redis backplane and a browser page with a switch for it",
        description=(
            "Start a redis-server and two `hub serve` processes sharing it, and serve a page with two chat\n"
            "panes (the official @microsoft/signalr browser client, one pane per server), live counters\n"
            "per server and a backplane switch: off stops Redis, so a message reaches only its own pane;\n"
            "on starts it again and the hubs reconnect. Prints `demo at URL`; stops on SIGINT or SIGTERM.\n"
            "The page's client comes from npm: run `npm ci` in simscale/hub/demo_page first\n"
            "(bash scripts/setup.sh demo does)."
        ),
        epilog="Examples:\n  simscale hub demo\n  simscale hub demo --port 0",
        formatter_class=raw,
    )
    demo.add_argument("--port", type=int, default=8000, help="port of the page, 0 picks a free one (default: 8000)")
    demo.set_defaults(handler=demo_command)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backplane",
        default="memory",
        help="memory (in-process only), redis (cluster: start a redis-server) or redis://HOST:PORT (default: memory)",
    )
    parser.add_argument(
        "--routing",
        default=DEFAULT_ROUTING_MODE.value,
        choices=[mode.value for mode in RoutingMode],
        help=f"who delivers to the sender's own clients (default: {DEFAULT_ROUTING_MODE.value})",
    )
    parser.add_argument(
        "--transports",
        default="all",
        help="transports negotiate offers and requests may use: all, or a comma-separated list of "
        "WebSockets, ServerSentEvents, LongPolling; another gets 404 (default: all)",
    )
    parser.add_argument(
        "--users-from-tokens",
        action="store_true",
        help="a bearer token names its user: its text is the user id (load tests; checks nothing) (default: off)",
    )
    defaults = HubSettings()
    for flag, field_name, kind, help_text in _LIMIT_FLAGS:
        parser.add_argument(
            flag, type=kind, default=getattr(defaults, field_name), help=f"{help_text} (default: %(default)s)"
        )


def _settings(args: argparse.Namespace) -> HubSettings:
    return HubSettings(**{field_name: getattr(args, field_name) for _, field_name, _, _ in _LIMIT_FLAGS})


def _limit_arguments(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    for flag, field_name, _, _ in _LIMIT_FLAGS:
        argv += [flag, str(getattr(args, field_name))]
    return argv


def _check_backplane_spec(spec: str, *, allow_bare_redis: bool = False) -> None:
    if spec == "memory" or spec.startswith(("redis://", "rediss://")):
        return
    if allow_bare_redis and spec == "redis":
        return
    extra = ", redis" if allow_bare_redis else ""
    raise ValueError(f"--backplane must be memory{extra} or a redis:// URL, got {spec!r}")


def make_backplane(spec: str, server_name: str | None) -> Backplane:
    """The backplane named on the command line: ``memory`` or a ``redis://`` / ``rediss://`` URL."""
    _check_backplane_spec(spec)
    # A private bus: one serve process is one server, whatever else runs in the process.
    return create_backplane(spec, server_name=server_name, bus=MemoryBus() if spec == "memory" else None)


def _authenticator(pairs: Sequence[str], users_from_tokens: bool = False) -> Authenticator:
    if users_from_tokens:
        if pairs:
            raise ValueError("--users-from-tokens and --token do not go together")
        return TokenIsUserAuthenticator()
    if not pairs:
        return AnonymousAuthenticator()
    table: dict[str, str] = {}
    for pair in pairs:
        token, sep, user = pair.partition("=")
        if not sep or not token or not user:
            raise ValueError(f"--token must look like TOKEN=USER, got {pair!r}")
        table[token] = user
    return StaticTokenAuthenticator(table)


def _ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"cannot load the TLS certificate or key: {error}") from None
    return context


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (one descriptor per client); returns it."""
    try:
        import resource
    except ImportError:  # not on this platform
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def _check_port(port: int, flag: str) -> None:
    if not 0 <= port <= 65535:
        raise ValueError(f"{flag} must be between 0 and 65535, got {port}")


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def serve_command(args: argparse.Namespace) -> int:
    """``simscale hub serve``: run until SIGINT or SIGTERM."""
    from simscale.hub.server import HubServer

    _check_port(args.port, "--port")
    settings = _settings(args)
    transport_settings = TransportSettings(enabled=parse_transports(args.transports))
    authenticator = _authenticator(args.token, args.users_from_tokens)
    ssl_context = _ssl_context(args.tls_cert, args.tls_key)
    backplane = make_backplane(args.backplane, args.name)
    raise_open_file_limit()
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def run() -> None:
        server = HubServer(
            settings=settings,
            transport_settings=transport_settings,
            backplane=backplane,
            server_name=args.name,
            authenticator=authenticator,
            routing_mode=RoutingMode(args.routing),
        )
        stop = _stop_event()
        url = await server.listen(args.host, args.port, ssl_context)
        print(f"listening on {url}", flush=True)
        try:
            await stop.wait()
        finally:
            await server.close()

    try:
        asyncio.run(run())
    except OSError as error:  # port in use, address not available
        print(f"simscale: error: {error}", file=sys.stderr)
        return 2
    return 0


async def _start_server_process(argv: list[str]) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    async with asyncio.timeout(_STARTUP_TIMEOUT_S):
        while True:
            line = await process.stdout.readline()
            if not line:
                raise RuntimeError(f"server process exited before listening: {' '.join(argv)}")
            text = line.decode().strip()
            if text.startswith("listening on "):
                return process, text.removeprefix("listening on ")


def cluster_command(args: argparse.Namespace) -> int:
    """``simscale hub cluster``: N ``hub serve`` processes; prints each URL; stops them on a signal."""
    if args.servers < 1:
        raise ValueError(f"--servers must be >= 1, got {args.servers}")
    _check_port(args.base_port, "--base-port")
    _check_backplane_spec(args.backplane, allow_bare_redis=True)
    _settings(args)  # validate before starting anything
    parse_transports(args.transports)

    async def run() -> None:
        async with contextlib.AsyncExitStack() as stack:
            backplane = args.backplane
            if backplane == "redis":
                from simscale.backplane.redis_server import RedisServer

                redis_server = stack.enter_context(RedisServer())
                backplane = redis_server.url
                print(f"redis on {backplane}", flush=True)
            elif backplane == "memory" and args.servers > 1:
                print("note: the memory backplane does not connect separate processes", flush=True)
            stop = _stop_event()
            processes: list[asyncio.subprocess.Process] = []
            urls: list[str] = []

            async def terminate() -> None:
                for process in processes:
                    if process.returncode is None:
                        process.terminate()
                for process in processes:
                    try:
                        async with asyncio.timeout(10):
                            await process.wait()
                    except TimeoutError:
                        process.kill()
                        await process.wait()

            stack.push_async_callback(terminate)
            for index in range(args.servers):
                port = args.base_port + index if args.base_port else 0
                argv = [
                    sys.executable,
                    "-m",
                    "simscale.cli",
                    "hub",
                    "serve",
                    "--host",
                    args.host,
                    "--port",
                    str(port),
                    "--backplane",
                    backplane,
                    "--routing",
                    args.routing,
                    "--name",
                    f"server-{index}",
                    "--transports",
                    args.transports,
                    *_limit_arguments(args),
                    *(["--users-from-tokens"] if args.users_from_tokens else []),
                ]
                process, url = await _start_server_process(argv)
                processes.append(process)
                urls.append(url)
                print(f"server {index} listening on {url}", flush=True)
            if args.proxy == "nginx":
                from simscale.hub.nginx import NginxProxy

                upstreams = [urlsplit(url).netloc for url in urls]
                # Above the 90 s long-poll timeout (ASP.NET Core's doc: 100 s) and twice the keep-alive.
                read_timeout_s = max(100.0, 2 * args.keepalive_interval_s + 10.0)
                proxy = stack.enter_context(NginxProxy(upstreams, sticky=args.sticky, read_timeout_s=read_timeout_s))
                print(f"proxy listening on {proxy.url}", flush=True)
            print("cluster ready", flush=True)
            stopped = asyncio.ensure_future(stop.wait())
            exits = {asyncio.ensure_future(p.wait()): index for index, p in enumerate(processes)}
            try:
                while exits:
                    done, _ = await asyncio.wait([stopped, *exits], return_when=asyncio.FIRST_COMPLETED)
                    if stopped in done or args.proxy == "none":
                        break
                    # Behind a proxy a lost server is a scenario, not the end: nginx routes around it.
                    for waiter in done:
                        print(f"server {exits.pop(waiter)} exited", flush=True)
            finally:
                for waiter in [stopped, *exits]:
                    waiter.cancel()

    asyncio.run(run())
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """``simscale hub demo``: serve the backplane demo until SIGINT or SIGTERM."""
    from simscale.hub.demo import CLIENT_SCRIPT, DemoServer, missing_client_message

    _check_port(args.port, "--port")
    if not CLIENT_SCRIPT.is_file():
        print(f"simscale: error: {missing_client_message()}", file=sys.stderr)
        return 2

    async def run() -> int:
        # Loopback only: the hubs the page's clients connect to listen on 127.0.0.1 too.
        async with DemoServer(port=args.port) as demo:
            stop = _stop_event()
            print(f"demo at {demo.url}", flush=True)
            hub_exit = asyncio.ensure_future(demo.wait_hub_exit())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([hub_exit, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not hub_exit.done():
                hub_exit.cancel()
                return 0
            print(f"simscale: error: hub {hub_exit.result()} exited; stopping the demo", file=sys.stderr)
            return 1

    try:
        return asyncio.run(run())
    except OSError as error:  # port in use
        print(f"simscale: error: {error}", file=sys.stderr)
        return 2
