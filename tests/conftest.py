"""Suite-wide fixtures: a real redis-server for everything marked ``redis``.

The server is started once per session on a free 127.0.0.1 port (no disk, no persistence) and is always
stopped at the end; ``redis_url`` hands each test an empty database. Tests that need to crash or
password-protect a server start their own `RedisServer` instead of touching the shared one.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from simscale.backplane.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server shared by the whole session (fails loudly when no binary is installed)."""
    with RedisServer() as server:
        yield server


def _flush_all(server: RedisServer) -> None:
    # Raw RESP keeps the fixture independent of the client library under test.
    with socket.create_connection((server.host, server.port), timeout=2.0) as conn:
        conn.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        reply = conn.recv(64)
    if not reply.startswith(b"+OK"):
        raise RuntimeError(f"FLUSHALL failed: {reply!r}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the shared redis-server, flushed; restarted first if an earlier test broke it."""
    if not redis_server.is_running:
        redis_server.restart()
    _flush_all(redis_server)
    return redis_server.url
