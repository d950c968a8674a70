"""Real hub server processes on loopback, watched with psutil (CPU time and RSS)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import psutil

__all__ = [
    "HUB_CGROUP_ENV",
    "CpuSampler",
    "HubProcess",
    "HubProcesses",
    "pin_process",
    "pinned_here",
    "place_hub_process",
    "run_blocking",
]

T = TypeVar("T")

_LISTENING = re.compile(r"listening on (\S+)")
_START_TIMEOUT_S = 30.0
_TAIL_LINES = 200

HUB_CGROUP_ENV = "SIMSCALE_HUB_CGROUP"
"""When set to a cgroup directory, every hub process and redis-server joins it (its ``cgroup.procs``):
how ``benchmarks/validation_transfer.py`` gives the hubs a CPU quota."""


def pin_process(pid: int, cores: frozenset[int] | None) -> None:
    """Pin every thread of process ``pid`` to ``cores`` (threads it starts later inherit it); None: leave it.

    ``os.sched_setaffinity`` sets one thread, so each task under ``/proc/PID/task`` is set; a thread that
    ended meanwhile is skipped.
    """
    if cores is None:
        return
    try:
        threads = [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for thread in threads:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(thread, cores)


def place_hub_process(pid: int, cores: frozenset[int] | None, environ: dict[str, str] | None = None) -> None:
    """Put a hub (or redis-server) process where the placement says: pinned to ``cores``, and into the
    cgroup named by ``SIMSCALE_HUB_CGROUP`` in ``environ`` (default: this process's environment) if set."""
    cgroup = (os.environ if environ is None else environ).get(HUB_CGROUP_ENV)
    if cgroup:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
            procs.write(f"{pid}\n")
    pin_process(pid, cores)


@contextlib.contextmanager
def pinned_here(cores: frozenset[int] | None) -> Iterator[None]:
    """Pin this process (the load generator runs in it) to ``cores`` for a ``with`` block, then restore it."""
    if cores is None:
        yield
        return
    before = frozenset(os.sched_getaffinity(0))
    pin_process(os.getpid(), cores)
    try:
        yield
    finally:
        pin_process(os.getpid(), before)


class HubProcess:
    """One ``simscale hub serve --port 0`` subprocess bound to 127.0.0.1.

    Its output is read for as long as it runs, by one thread per stream keeping the last lines: a hub
    that logs a lot under overload must never block on a full pipe (it would stall mid-run and the
    measurement would blame the hub's design for our harness).
    """

    def __init__(
        self,
        *flags: str,
        name: str,
        command: Sequence[str] | None = None,
        start_timeout_s: float = _START_TIMEOUT_S,
        cores: frozenset[int] | None = None,
    ) -> None:
        """``flags`` go to ``simscale hub serve``; ``command`` replaces that whole command line (a hub
        under a profiler, say): it must print ``listening on URL`` on stdout. ``start_timeout_s`` bounds
        the wait for that line; past it the process is stopped and `RuntimeError` raised. ``cores``: pin
        the process to these cores (None: run where the scheduler puts it); it also joins the cgroup
        named by ``SIMSCALE_HUB_CGROUP`` when that is set (:func:`place_hub_process`)."""
        if not start_timeout_s > 0:
            raise ValueError(f"start_timeout_s must be > 0 seconds, got {start_timeout_s!r}")
        self.start_timeout_s = start_timeout_s
        if command is None:
            command = [
                *(sys.executable, "-m", "simscale.cli", "hub", "serve", "--host", "127.0.0.1", "--port", "0"),
                *("--name", name, *flags),
            ]
        self.process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            place_hub_process(self.process.pid, cores)  # before it starts threads: they inherit both
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise
        self.cores = cores
        self.name = name
        self.stdout_tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._listening = threading.Event()
        self._url = ""
        self._readers = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self.stdout_tail, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, self.stderr_tail, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.base_url = self._wait_for_url()
        pin_process(self.process.pid, cores)  # threads started before the first pinning took hold
        self.url = self.base_url.rstrip("/") + "/chatHub"
        self.handle = psutil.Process(self.process.pid)

    def _drain(self, stream: IO[str] | None, tail: collections.deque[str], watch_for_url: bool) -> None:
        if stream is None:
            return
        with contextlib.suppress(ValueError, OSError):  # the stream closed under us at stop()
            for line in stream:
                tail.append(line.rstrip("\n"))
                if watch_for_url and not self._listening.is_set():
                    match = _LISTENING.search(line)
                    if match:
                        self._url = match.group(1)
                        self._listening.set()
        if watch_for_url:
            self._listening.set()  # the process is gone: stop waiting for a URL that will not come

    def _wait_for_url(self) -> str:
        if not self._listening.wait(self.start_timeout_s) or not self._url:
            self.stop()
            raise RuntimeError(f"hub server {self.name} did not start: {self.log_tail()[-500:]}")
        return self._url

    def log_tail(self) -> str:
        """The last lines the process wrote to stderr."""
        return "\n".join(self.stderr_tail)

    def cpu_s(self) -> float:
        """CPU seconds used so far (all threads; nanosecond precision from schedstat where available)."""
        try:
            # /proc/PID/schedstat counts on-CPU time in ns; psutil's cpu_times ticks in 10 ms.
            with open(f"/proc/{self.process.pid}/schedstat") as stat:
                return int(stat.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            times = self.handle.cpu_times()
            return float(times.user + times.system)

    def backplane_messages_received(self) -> int:
        """The hub's own counter of messages it took from the backplane and delivered (``GET /health``)."""
        import json
        import urllib.request

        with urllib.request.urlopen(self.base_url.rstrip("/") + "/health", timeout=10) as response:
            return int(json.loads(response.read())["backplane_messages_received"])

    def rss_bytes(self) -> float:
        """Resident memory now."""
        return float(self.handle.memory_info().rss)

    def stop(self) -> None:
        """Terminate (then kill) the process."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for reader in self._readers:
            reader.join(5.0)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class HubProcesses:
    """``count`` hub processes sharing one backplane spec (``memory`` = independent servers)."""

    def __init__(self, count: int, backplane: str, *extra_flags: str, cores: frozenset[int] | None = None) -> None:
        self.servers: list[HubProcess] = []
        try:
            for index in range(count):
                self.servers.append(
                    HubProcess("--backplane", backplane, *extra_flags, name=f"server-{index}", cores=cores)
                )
        except BaseException:
            self.stop()
            raise

    @property
    def urls(self) -> tuple[str, ...]:
        """The hub URLs, in server order."""
        return tuple(server.url for server in self.servers)

    def stop(self) -> None:
        """Stop every process."""
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class CpuSampler:
    """Samples the CPU seconds and RSS of processes every ``interval_s`` on a background thread."""

    processes: list[HubProcess]
    interval_s: float = 0.2
    times_s: list[float] = field(default_factory=list)
    cpu_s: list[list[float]] = field(default_factory=list)
    rss_bytes: list[list[float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            cpu = [process.cpu_s() for process in self.processes]
            rss = [process.rss_bytes() for process in self.processes]
            self.times_s.append(time.perf_counter())
            self.cpu_s.append(cpu)
            self.rss_bytes.append(rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> Self:
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def utilization(self, server: int, start_s: float, end_s: float) -> float:
        """Mean CPU utilisation (fraction of one core) of ``server`` between two perf_counter times."""
        times = self.times_s
        cpu = [row[server] for row in self.cpu_s]
        if len(times) < 2 or end_s <= start_s:
            return float("nan")

        def at(moment: float) -> float:
            # Linear interpolation of the cumulative CPU seconds.
            for index in range(1, len(times)):
                if times[index] >= moment:
                    t0, t1 = times[index - 1], times[index]
                    weight = 0.0 if t1 == t0 else (moment - t0) / (t1 - t0)
                    return cpu[index - 1] + weight * (cpu[index] - cpu[index - 1])
            return cpu[-1]

        return (at(end_s) - at(start_s)) / (end_s - start_s)

    def rss_bytes_at(self, server: int, moment_s: float) -> float:
        """RSS of ``server`` at the first sample taken at or after ``moment_s`` (the last one if none)."""
        for when, row in zip(self.times_s, self.rss_bytes, strict=True):
            if when >= moment_s:
                return row[server]
        return self.rss_bytes[-1][server]

    def peak_rss_bytes(self, server: int) -> float:
        """The largest RSS sampled for ``server``."""
        return max(row[server] for row in self.rss_bytes)


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from synchronous code, even inside Jupyter's running loop.

    ``asyncio.run`` refuses to start under a running loop (a notebook), so there it runs on a
    short-lived worker thread with a loop of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coroutine).result()
