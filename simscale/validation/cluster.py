"""A real cluster on loopback for a few seconds: N hub processes, optionally joined by a real Redis.

`live_cluster` is what a notebook or a test uses to run the hub for real without managing processes
itself. It starts a throw-away ``redis-server`` on a free 127.0.0.1 port (when the backplane is Redis),
then ``servers`` ``simscale hub serve`` processes pointing at it, waits until each one has printed
``listening on URL`` (printed once it accepts connections and has subscribed to the backplane), and
yields a `LiveCluster`. On leaving the ``with`` block, normally or by an exception, every hub and then
Redis is stopped: a notebook cell that fails half-way must not leave processes competing for the cores
the next measurement needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from simscale.backplane.redis_server import RedisServer, RedisServerError
from simscale.backplane.routing import RoutingMode
from simscale.validation.processes import HubProcess

__all__ = ["ClusterBackplane", "LiveCluster", "live_cluster"]

ClusterBackplane = Literal["redis", "memory"]
"""``redis``: one real redis-server shared by every hub; ``memory``: each hub alone (no backplane)."""

_MAX_SERVERS = 16
"""More hub processes than this on one machine measure the scheduler, not the hub."""


@dataclass(frozen=True)
class LiveCluster:
    """The running processes of a `live_cluster`.

    Attributes:
        servers: the hub processes, in server order (client ``i`` of the load generator goes to
            ``servers[i % len(servers)]``).
        redis: the shared redis-server, or ``None`` with the ``memory`` backplane. `RedisServer.kill`
            crashes it (the hubs stay up); `RedisServer.restart` brings it back on the same port.

    Example:

        >>> from simscale.validation import live_cluster
        >>> with live_cluster(2, backplane="memory") as cluster:
        ...     print(len(cluster.urls), all(url.endswith("/chatHub") for url in cluster.urls))
        2 True
    """

    servers: tuple[HubProcess, ...]
    redis: RedisServer | None

    @property
    def urls(self) -> tuple[str, ...]:
        """The hubs' ``http://127.0.0.1:PORT/chatHub`` URLs, in server order."""
        return tuple(server.url for server in self.servers)

    def running(self) -> tuple[bool, ...]:
        """Whether each process is alive: the hubs in order, then Redis when there is one."""
        hubs = tuple(server.process.poll() is None for server in self.servers)
        return hubs if self.redis is None else (*hubs, self.redis.is_running)


@contextlib.contextmanager
def live_cluster(
    servers: int = 2,
    *,
    backplane: ClusterBackplane = "redis",
    routing: RoutingMode | str = RoutingMode.DIRECT_LOCAL,
    extra_flags: Sequence[str] = (),
    start_timeout_s: float = 30.0,
) -> Iterator[LiveCluster]:
    """Start ``servers`` real hub processes (and a redis-server), yield them, stop them all on exit.

    Args:
        servers: hub processes to start, 1 to 16.
        backplane: ``redis`` starts a redis-server on a free 127.0.0.1 port and points every hub at
            it; ``memory`` gives each hub a private in-memory backplane (servers that do not know each
            other).
        routing: who delivers to the sender's own clients (`RoutingMode` or its value).
        extra_flags: more ``simscale hub serve`` flags, the same for every hub.
        start_timeout_s: the longest wait for Redis and for each hub to be ready.

    Raises:
        ValueError: a bad ``servers``, ``backplane``, ``routing`` or ``start_timeout_s``.
        RedisServerError: no redis-server binary (the message says how to install one), or it did not
            start in time.
        RuntimeError: a hub did not start in time (with the end of its log).

    Example (one hub process with its own in-memory backplane; ``backplane="redis"`` adds a Redis):

        >>> import urllib.request
        >>> from simscale.validation import live_cluster
        >>> with live_cluster(1, backplane="memory") as cluster:
        ...     health = urllib.request.urlopen(cluster.urls[0].removesuffix("/chatHub") + "/health").status
        ...     alive = cluster.running()
        >>> health, alive, cluster.running()
        (200, (True,), (False,))
    """
    if not 1 <= servers <= _MAX_SERVERS:
        raise ValueError(f"servers must be in 1..{_MAX_SERVERS}, got {servers!r}")
    if backplane not in ("redis", "memory"):
        raise ValueError(f"backplane must be 'redis' or 'memory', got {backplane!r}")
    mode = RoutingMode(routing)
    if not start_timeout_s > 0:
        raise ValueError(f"start_timeout_s must be > 0 seconds, got {start_timeout_s!r}")
    with contextlib.ExitStack() as stack:
        redis: RedisServer | None = None
        spec = "memory"
        if backplane == "redis":
            try:
                redis = RedisServer(startup_timeout_s=start_timeout_s)
            except RedisServerError as error:
                raise RedisServerError(f"live_cluster(backplane='redis') needs a redis-server: {error}") from error
            # Pushed before it starts: a start that fails half-way is still cleaned up.
            stack.callback(redis.stop)
            redis.start()
            spec = redis.url
        hubs: list[HubProcess] = []
        for index in range(servers):
            hub = HubProcess(
                "--backplane", spec, "--routing", mode.value, *extra_flags,
                name=f"server-{index}", start_timeout_s=start_timeout_s,
            )  # fmt: skip
            # LIFO: the hubs stop before Redis, so none of them logs a lost subscription on the way out.
            stack.callback(hub.stop)
            hubs.append(hub)
        yield LiveCluster(servers=tuple(hubs), redis=redis)
