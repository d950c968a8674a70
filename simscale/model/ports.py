"""Ephemeral TCP ports: a pool per (source address, destination) with TIME_WAIT.

From one source address to one destination address:port only the source port varies, so at most
``ports`` connections (28,232 on default Linux) exist at once, and each closed connection keeps its
port for 60 s of TIME_WAIT (docs/SOURCES.md#tcp-ports-and-time_wait). New connections per second
are therefore bounded by ports / 60 s ≈ 470/s, and an exhausted pool refuses connections while the
CPU idles. As a queue it is M/G/c/c (Erlang B), whose blocking depends on the holding time only
through its mean.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PortPool"]


class PortPool:
    """Counts ports in use and in TIME_WAIT; ``acquire`` grants what is free and refuses the rest.

    Example (a closed connection's port stays in TIME_WAIT for ``time_wait_s``):

        >>> from simscale.model import PortPool
        >>> pool = PortPool(ports=3, time_wait_s=60.0)
        >>> pool.acquire(now_s=0.0, wanted=5)  # only three exist
        3
        >>> pool.release(now_s=1.0, count=2)
        >>> pool.available(now_s=30.0), pool.time_wait_at(now_s=30.0), pool.available(now_s=61.0)
        (0, 2, 2)
    """

    __slots__ = ("_time_wait", "in_use", "ports", "time_wait_count", "time_wait_s")

    def __init__(self, ports: int, time_wait_s: float) -> None:
        if ports < 1:
            raise ValueError(f"ports must be >= 1, got {ports}")
        if time_wait_s < 0:
            raise ValueError(f"time_wait_s must be >= 0, got {time_wait_s}")
        self.ports = ports
        self.time_wait_s = time_wait_s
        self.in_use = 0
        self.time_wait_count = 0
        self._time_wait: deque[tuple[float, int]] = deque()  # (free again at, ports), in time order

    def _expire(self, now_s: float) -> None:
        while self._time_wait and self._time_wait[0][0] <= now_s:
            _, count = self._time_wait.popleft()
            self.time_wait_count -= count

    def available(self, now_s: float) -> int:
        """Ports free at ``now_s``."""
        self._expire(now_s)
        return self.ports - self.in_use - self.time_wait_count

    def time_wait_at(self, now_s: float) -> int:
        """Ports still in TIME_WAIT at ``now_s``."""
        self._expire(now_s)
        return self.time_wait_count

    def acquire(self, now_s: float, wanted: int = 1) -> int:
        """Take up to ``wanted`` ports; returns how many were granted."""
        granted = max(0, min(wanted, self.available(now_s)))
        self.in_use += granted
        return granted

    def release(self, now_s: float, count: int = 1) -> None:
        """Close ``count`` connections: their ports enter TIME_WAIT."""
        if count <= 0:
            return
        if count > self.in_use:
            raise ValueError(f"cannot release {count} ports, only {self.in_use} in use")
        self.in_use -= count
        if self.time_wait_s > 0:
            self.time_wait_count += count
            self._time_wait.append((now_s + self.time_wait_s, count))
