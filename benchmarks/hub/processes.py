"""Child processes the harness owns: peer servers, the load generator, Redis and py-spy.

Every process is started by the harness, measured through psutil by its own pid, and stopped by that
pid (SIGTERM, then SIGKILL after a grace period). Output goes to log files under the run's log folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import psutil

READY_LINE = re.compile(r"listening on (https?)://127\.0\.0\.1:(\d+)")
REPO = Path(__file__).resolve().parents[2]


class BenchError(RuntimeError):
    """A process failed to start, answer, or stay up."""


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def process_cpu_s(ps: psutil.Process) -> float:
    """CPU seconds of a process: the sum of its threads' ``schedstat`` run time (ns resolution).

    psutil's ``cpu_times`` ticks in 10 ms steps, too coarse for a short burst; the scheduler's own
    accounting is exact. Falls back to psutil where ``/proc/PID/task/*/schedstat`` is unreadable.
    """
    total_ns = 0
    try:
        for task in Path(f"/proc/{ps.pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total_ns += int((task / "schedstat").read_text().split()[0])
    except OSError:
        times = ps.cpu_times()
        return float(times.user + times.system)
    return total_ns / 1e9


def _pump(stream: IO[str], log: IO[str], lines: queue.Queue[str | None]) -> None:
    """Copy a child's output to its log and hand each line to the harness."""
    for line in stream:
        log.write(line)
        log.flush()
        lines.put(line)
    lines.put(None)


def _stop(process: subprocess.Popen[Any], grace_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class ServerProcess:
    """One peer server; ready once it prints ``listening on http(s)://127.0.0.1:PORT``."""

    def __init__(self, name: str, argv: list[str], log_path: Path, ready_timeout_s: float = 60.0) -> None:
        """Start the server and wait for its ready line."""
        self.name = name
        self.argv = argv
        self._log = log_path.open("w")
        self._log.write("$ " + " ".join(argv) + "\n")
        self._log.flush()
        self.process = subprocess.Popen(
            argv,
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=_pump, args=(self.process.stdout, self._log, self._lines), daemon=True).start()
        self.url = self._await_ready(ready_timeout_s)
        self.ps = psutil.Process(self.process.pid)

    def _await_ready(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise BenchError(f"{self.name}: no ready line within {timeout_s:.0f} s")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.stop()
                raise BenchError(f"{self.name}: exited before it was ready (see {self._log.name})")
            found = READY_LINE.search(line)
            if found:
                scheme = "wss" if found.group(1) == "https" else "ws"
                return f"{scheme}://127.0.0.1:{found.group(2)}"

    def alive(self) -> bool:
        """Whether the server is still running."""
        return self.process.poll() is None

    def cpu_s(self) -> float:
        """CPU seconds so far (nanosecond scheduler accounting, all threads)."""
        return process_cpu_s(self.ps)

    def rss_bytes(self) -> int:
        """Resident set size now."""
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; close the log."""
        _stop(self.process)
        self._log.close()


class LoadGenProcess:
    """The load generator process, driven one JSON command per line."""

    def __init__(self, spec: dict[str, Any], log_path: Path) -> None:
        """Start ``python -m benchmarks.hub.loadgen`` and wait for its ready answer."""
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.hub.loadgen", json.dumps(spec)],
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, daemon=True).start()
        self.ps = psutil.Process(self.process.pid)
        self.seconds_by_command: dict[str, float] = {}
        self.ready = self._answer(60.0)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _answer(self, timeout_s: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise BenchError(f"load generator: no answer within {timeout_s:.0f} s") from None
        if line is None:
            raise BenchError(f"load generator exited (see {self._log.name})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"load generator: {answer['error']}")
        return answer

    def call(self, timeout_s: float, cmd: str, **arguments: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **arguments}) + "\n")
        self.process.stdin.flush()
        started = time.perf_counter()
        answer = self._answer(timeout_s)
        self.seconds_by_command[cmd] = self.seconds_by_command.get(cmd, 0.0) + time.perf_counter() - started
        return answer

    def stop(self) -> None:
        """Ask it to quit (it closes its clients), then make sure it is gone."""
        if self.process.poll() is None and self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.process.stdin.write('{"cmd": "quit"}\n')
                self.process.stdin.flush()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _stop(self.process)
        self._log.close()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    """A throw-away redis-server on 127.0.0.1 (no persistence)."""

    def __init__(self, log_path: Path) -> None:
        """Start it and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server not found on PATH")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = log_path.open("w")
        argv = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.5) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    self.ps = psutil.Process(self.process.pid)
                    return
            time.sleep(0.05)
        self.stop()
        raise BenchError("redis-server did not answer PING")

    def cpu_s(self) -> float:
        """User + system CPU seconds so far."""
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        """Stop redis-server."""
        _stop(self.process)
        self._log.close()


def start_profiler(
    py_spy: Path, pid: int, out_path: Path, duration_s: int, native: bool = False
) -> subprocess.Popen[str]:
    """Start ``py-spy record`` (raw collapsed stacks) against ``pid``.

    Non-blocking by default; ``native`` adds C frames (the interpreter, asyncio's and aiohttp's C
    parts, the GC), which needs py-spy to pause the process for each sample.
    """
    mode = ["--native"] if native else ["--nonblocking"]
    argv = [
        str(py_spy), "record", *mode, "--format", "raw", "--rate", "250",
        "--duration", str(duration_s), "-o", str(out_path), "--pid", str(pid),
    ]  # fmt: skip
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )


def wait_profiler(profiler: subprocess.Popen[str], timeout_s: float) -> str:
    """Wait for py-spy to finish; return its stderr tail."""
    try:
        _, err = profiler.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(profiler)
        _, err = profiler.communicate()
    return (err or "")[-400:]


def child_env() -> dict[str, str]:
    """Environment for children: unbuffered Python, no inherited virtualenv activation."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("VIRTUAL_ENV", None)
    return env
