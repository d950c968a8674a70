"""Shared start-up for the Python peer servers: options, file-descriptor limit, TLS, ready line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import ssl
import sys

from aiohttp import web


def parse_options(description: str) -> argparse.Namespace:
    """Parse the options every peer server accepts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis", default="", help="redis:// URL of a shared Redis (two-server runs)")
    parser.add_argument("--tls-cert", default="", help="PEM certificate chain (enables TLS)")
    parser.add_argument("--tls-key", default="", help="PEM private key")
    return parser.parse_args()


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def tls_context(options: argparse.Namespace) -> ssl.SSLContext | None:
    """Build the server TLS context when a certificate was given."""
    if not options.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(options.tls_cert, options.tls_key)
    return context


async def serve_until_signal(app: web.Application, options: argparse.Namespace) -> None:
    """Serve ``app`` on 127.0.0.1, print the ready line, and stop on SIGTERM/SIGINT."""
    raise_fd_limit()
    context = tls_context(options)
    # backlog: the load generator opens connections in bursts of a few hundred.
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", options.port, ssl_context=context, backlog=4096)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if context else "http"
    print(f"listening on {scheme}://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner.cleanup(), timeout=3)
    sys.exit(0)
