"""A Redis-like pub/sub backplane: one FIFO server with a deterministic service time.

Every PUBLISH costs Redis ``a + b·K`` (K = subscribed app servers; a ≈ 15 µs, b ≈ 0.5 µs per
subscriber for 100 B, docs/SOURCES.md#redis-pubsub-cost). Publishes queue FIFO, so with Poisson
arrivals the backplane is an M/D/1 queue whose mean wait is Pollaczek-Khinchine's ``ρ / (2μ(1-ρ))``.
Each subscriber has an output buffer in Redis: a subscriber that falls more than 32 MB behind is
disconnected and misses everything until it resubscribes (``client-output-buffer-limit pubsub 32mb``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

__all__ = ["SimBackplane"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class SimBackplane:
    """Publishes go through one FIFO lane; delivery to each subscribed server after a latency.

    Example (two publishes at once to three servers: the second waits the first's 1 ms service):

        >>> import simpy
        >>> from simscale.model import SimBackplane
        >>> env = simpy.Environment()
        >>> backplane = SimBackplane(env, 3, publish_base_s=0.001, publish_per_subscriber_s=0.0, latency_s=0.0,
        ...                          output_buffer_limit_bytes=1e6, resubscribe_s=1.0)
        >>> delivered = []
        >>> first = env.process(backplane.publish(100, lambda server: delivered.append((server, env.now))))
        >>> second = env.process(backplane.publish(100, lambda server: delivered.append((server, env.now))))
        >>> env.run()
        >>> first.value, second.value, backplane.publishes
        (0, 0.001, 2)
        >>> delivered[:3]
        [(0, 0.001), (1, 0.001), (2, 0.001)]
    """

    def __init__(
        self,
        env: simpy.Environment,
        subscribers: int,
        *,
        publish_base_s: float,
        publish_per_subscriber_s: float,
        latency_s: float,
        output_buffer_limit_bytes: float,
        resubscribe_s: float,
        outage: tuple[float, float] | None = None,
    ) -> None:
        self.env = env
        self.lane = simpy.Resource(env, capacity=1)
        self.publish_base_s = publish_base_s
        self.publish_per_subscriber_s = publish_per_subscriber_s
        self.latency_s = latency_s
        self.output_buffer_limit_bytes = output_buffer_limit_bytes
        self.resubscribe_s = resubscribe_s
        self.subscribed = [True] * subscribers
        self.pending_bytes = np.zeros(subscribers, dtype=np.float64)
        """Per server: what Redis holds in its output buffer for that subscriber."""
        self.publishes = 0
        self.wait_total_s = 0.0
        self.disconnects = 0
        self.missed = [0] * subscribers
        self.outage = outage
        """(start, end) of a window when Redis is down: publishes then are lost (pub/sub buffers nothing)."""
        self.lost = 0
        self.received = [0] * subscribers
        """Per server: publishes it took from the backplane and delivered (the receivers count them)."""
        self.subscribes = 0
        self._reads_booked: list[tuple[IntArray, FloatArray, float]] = []
        """Reads booked by vectorised fan-outs, (servers, when, bytes), applied once their time comes."""
        self._reads_settled_at_s = -math.inf

    @property
    def queue_length(self) -> int:
        """Publishes waiting or in service."""
        return len(self.lane.queue) + self.lane.count

    def service_time_s(self, channel_subscribers: Sequence[int] | None = None) -> float:
        """Redis time for one PUBLISH to the current subscribers (of the channel, when given)."""
        if channel_subscribers is None:
            return self.publish_base_s + self.publish_per_subscriber_s * sum(self.subscribed)
        listening = sum(1 for server in channel_subscribers if self.subscribed[server])
        return self.publish_base_s + self.publish_per_subscriber_s * listening

    def subscribe(self) -> Generator[Any, Any, None]:
        """Process: one SUBSCRIBE or UNSUBSCRIBE command (a server's first member of a group joined, or
        its last one left); it queues in the same lane as the publishes and costs a publish's base time."""
        if self.latency_s:
            yield self.env.timeout(self.latency_s)
        with self.lane.request() as turn:
            yield turn
            yield self.env.timeout(self.publish_base_s)
        self.subscribes += 1

    def publish(
        self,
        payload_bytes: float,
        deliver: Callable[[int], None] | None = None,
        channel_subscribers: Sequence[int] | None = None,
        *,
        deliver_all: Callable[[IntArray], None] | None = None,
    ) -> Generator[Any, Any, float]:
        """Process: send to Redis, queue, get served, then hand to every subscriber. Returns the wait.

        ``channel_subscribers``: the servers subscribed to the publish's channel (a group, user or connection
        channel); ``None`` for ``:all``, to which every server subscribes. ``deliver_all``, instead of
        ``deliver``: called once with every server the message reached (vectorised fan-outs).
        """
        if self.latency_s:
            yield self.env.timeout(self.latency_s)
        if self.outage is not None and self.outage[0] <= self.env.now < self.outage[1]:
            self.lost += 1
            return 0.0
        arrived = self.env.now
        with self.lane.request() as turn:
            yield turn
            waited = self.env.now - arrived
            yield self.env.timeout(self.service_time_s(channel_subscribers))
        self.publishes += 1
        self.wait_total_s += waited
        if channel_subscribers is None:
            targets = [i for i, on in enumerate(self.subscribed) if on]
        else:
            targets = [i for i in channel_subscribers if self.subscribed[i]]
        if deliver_all is not None:
            self.env.process(self._fan_out_together(targets, payload_bytes, deliver_all))
        elif deliver is not None:
            self.env.process(self._fan_out(targets, payload_bytes, deliver))
        return waited

    def _fan_out(
        self, targets: list[int], payload_bytes: float, deliver: Callable[[int], None]
    ) -> Generator[Any, Any, None]:
        if self.latency_s:
            yield self.env.timeout(self.latency_s)
        for server in targets:
            if not self.subscribed[server]:
                self.missed[server] += 1
                continue
            self.pending_bytes[server] += payload_bytes
            if self.pending_bytes[server] > self.output_buffer_limit_bytes:
                self._disconnect(server)
                self.missed[server] += 1
                continue
            deliver(server)

    def _fan_out_together(
        self, targets: list[int], payload_bytes: float, deliver_all: Callable[[IntArray], None]
    ) -> Generator[Any, Any, None]:
        """:meth:`_fan_out` for every target at once (vectorised fan-outs): one numpy step, one hand-over."""
        if self.latency_s:
            yield self.env.timeout(self.latency_s)
        self._settle_reads()
        servers = np.asarray(targets, dtype=np.int64)
        listening = np.asarray(self.subscribed, dtype=bool)[servers]
        for server in servers[~listening].tolist():
            self.missed[server] += 1
        live = servers[listening]
        self.pending_bytes[live] += payload_bytes
        over = self.pending_bytes[live] > self.output_buffer_limit_bytes
        for server in live[over].tolist():
            self._disconnect(server)
            self.missed[server] += 1
        if len(reached := live[~over]):
            deliver_all(reached)

    def consumed(self, server: int, payload_bytes: float) -> None:
        """The subscriber read a message: its output buffer in Redis shrinks."""
        self.pending_bytes[server] = max(0.0, self.pending_bytes[server] - payload_bytes)

    def consumed_at(self, servers: IntArray, at_s: FloatArray, payload_bytes: float) -> None:
        """Vectorised fan-outs on ``servers`` (distinct) will read the message at ``at_s``: booked now, applied
        when that time comes (before the next publish reaches them)."""
        self._reads_booked.append((servers, at_s, payload_bytes))
        self._reads_settled_at_s = -math.inf

    def _settle_reads(self) -> None:
        now = float(self.env.now)
        if now == self._reads_settled_at_s:
            return
        self._reads_settled_at_s = now
        waiting: list[tuple[IntArray, FloatArray, float]] = []
        pending = self.pending_bytes
        for servers, at_s, payload_bytes in self._reads_booked:
            done = at_s <= now
            read = servers[done]
            pending[read] = np.maximum(0.0, pending[read] - payload_bytes)
            if not done.all():
                waiting.append((servers[~done], at_s[~done], payload_bytes))
        self._reads_booked = waiting

    def _disconnect(self, server: int) -> None:
        self.subscribed[server] = False
        self.pending_bytes[server] = 0.0
        # Its booked reads are of a buffer that is gone.
        self._reads_booked = [(s[s != server], a[s != server], b) for s, a, b in self._reads_booked]
        self.disconnects += 1
        self.env.process(self._resubscribe(server))

    def _resubscribe(self, server: int) -> Generator[Any, Any, None]:
        yield self.env.timeout(self.resubscribe_s)
        self.subscribed[server] = True
