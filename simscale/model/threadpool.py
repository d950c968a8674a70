"""The .NET thread pool as a pool of thread tokens that grows when starved.

A work item must hold a thread to run. The pool starts with ``min_threads`` tokens (the .NET
default is one per core). A *gate* wakes every 0.5 s and, while work is queued and every thread is
busy, adds one thread — the slow "1-2 threads per second" growth of starvation
(docs/SOURCES.md#thread-pool-injection, ``PortableThreadPool.GateThread``). Blocking on a task
(sync-over-async) is noticed by the pool, which then injects faster: one per core at once, then one per 25 ms, the
delay growing by 25 ms per core's worth of threads, capped at 250 ms (.NET 6 ``BlockingConfig``).

``simpy.Resource.capacity`` is read-only, so the tokens live in a ``simpy.Container``; injecting a
thread is ``put(1)``.

The asyncio hub is the degenerate case: one "thread" (the event loop) that never grows.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

__all__ = ["ThreadPool"]

_BLOCKING_DELAY_STEP_S = 0.025
_BLOCKING_DELAY_MAX_S = 0.250
_CPU_HIGH = 0.8


class ThreadPool:
    """Thread tokens with starvation injection; ``inject=False`` gives a fixed-size pool (M/M/c).

    Example (two threads, three one-second work items: the third waits for a thread):

        >>> import simpy
        >>> from simscale.model import ThreadPool
        >>> env = simpy.Environment()
        >>> pool = ThreadPool(env, min_threads=2, max_threads=2, inject=False)
        >>> finished_s = []
        >>> def work(env):
        ...     yield pool.acquire()
        ...     yield env.timeout(1.0)
        ...     pool.release()
        ...     finished_s.append(env.now)
        >>> for _ in range(3):
        ...     _ = env.process(work(env))
        >>> env.run()
        >>> finished_s
        [1.0, 1.0, 2.0]
    """

    def __init__(
        self,
        env: simpy.Environment,
        min_threads: int,
        max_threads: int,
        injection_interval_s: float = 0.5,
        *,
        inject: bool = True,
        cores: int = 1,
        cpu_utilization: Callable[[], float] | None = None,
    ) -> None:
        if min_threads < 1:
            raise ValueError(f"min_threads must be >= 1, got {min_threads}")
        if max_threads < min_threads:
            raise ValueError(f"max_threads must be >= min_threads ({min_threads}), got {max_threads}")
        self.env = env
        self.min_threads = min_threads
        self.max_threads = max_threads
        self.threads = min_threads
        self.injection_interval_s = injection_interval_s
        self.cores = cores
        self._cpu_utilization = cpu_utilization or (lambda: 0.0)
        self._tokens = simpy.Container(env, init=min_threads, capacity=max_threads)
        self._blocking_injector_running = False
        self._blocking_extra = 0
        self.completed = 0
        if inject:
            env.process(self._gate())

    # --- use ------------------------------------------------------------------------------------
    def acquire(self) -> simpy.events.Event:
        """An event that fires when a thread is free for the caller."""
        return self._tokens.get(1)

    def release(self) -> None:
        """Give a thread back."""
        self.completed += 1
        self._tokens.put(1)

    @property
    def queue_length(self) -> int:
        """Work items waiting for a thread."""
        return len(self._tokens.get_queue)

    @property
    def busy_threads(self) -> int:
        """Threads currently held by work items."""
        return self.threads - int(self._tokens.level)

    def notify_blocking(self) -> None:
        """A work item blocks on a task (sync-over-async): start the faster injection."""
        if not self._blocking_injector_running:
            self._blocking_injector_running = True
            self.env.process(self._blocking_injector())

    # --- growth ---------------------------------------------------------------------------------
    def _add_thread(self) -> None:
        if self.threads < self.max_threads:
            self.threads += 1
            self._tokens.put(1)

    def _starved(self) -> bool:
        return self.queue_length > 0 and self._tokens.level == 0 and self.threads < self.max_threads

    def _gate(self) -> Generator[Any, Any, None]:
        while True:
            yield self.env.timeout(self.injection_interval_s)
            # .NET holds back when the CPU is already busy: more threads would not help.
            if self._starved() and self._cpu_utilization() < _CPU_HIGH:
                self._add_thread()

    def _blocking_injector(self) -> Generator[Any, Any, None]:
        try:
            while self._starved():
                if self._blocking_extra >= self.cores:
                    steps = 1 + (self._blocking_extra - self.cores) // self.cores
                    yield self.env.timeout(min(_BLOCKING_DELAY_STEP_S * steps, _BLOCKING_DELAY_MAX_S))
                    if not self._starved():
                        break
                self._blocking_extra += 1
                self._add_thread()
        finally:
            self._blocking_injector_running = False
