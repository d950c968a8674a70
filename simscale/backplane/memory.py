"""In-process backplane: hub servers in one process share a `MemoryBus`.

It is the default backplane and the test double for the Redis one: same interface, same at-most-once,
per-channel FIFO semantics, and handlers run on the subscriber's own task (as with Redis), never inside
`publish`. Hub servers in *different* processes using ``memory`` do not see each other: that is the
honest "no backplane" configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from simscale.backplane.base import DEFAULT_PUBLISH_TIMEOUT_S, Backplane
from simscale.backplane.channels import DEFAULT_PREFIX

__all__ = ["MemoryBackplane", "MemoryBus"]

logger = logging.getLogger(__name__)


class MemoryBus:
    """Channel → subscribed backplanes, within one process and one event loop."""

    _shared: MemoryBus | None = None

    def __init__(self) -> None:
        # dict as an insertion-ordered set, so fan-out order is deterministic.
        self._subscribers: dict[str, dict[MemoryBackplane, None]] = {}

    @classmethod
    def shared(cls) -> MemoryBus:
        """The process-wide bus used by ``MemoryBackplane()`` without an explicit bus."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def subscriber_count(self, channel: str) -> int:
        """Backplanes subscribed to ``channel`` (what Redis' PUBLISH reply would say)."""
        return len(self._subscribers.get(channel, ()))

    def publish(self, channel: str, payload: bytes) -> int:
        """Queues ``payload`` for every subscribed backplane; returns how many there were."""
        receivers = tuple(self._subscribers.get(channel, ()))
        for backplane in receivers:
            try:
                backplane._enqueue(channel, payload)
            except RuntimeError:
                # Its event loop is gone (a test that never stopped it): forget it rather than fail.
                self.unsubscribe_all(backplane)
        return len(receivers)

    def subscribe(self, channel: str, backplane: MemoryBackplane) -> None:
        """Adds ``backplane`` to ``channel`` (idempotent)."""
        self._subscribers.setdefault(channel, {})[backplane] = None

    def unsubscribe(self, channel: str, backplane: MemoryBackplane) -> None:
        """Removes ``backplane`` from ``channel`` (idempotent)."""
        members = self._subscribers.get(channel)
        if members is not None:
            members.pop(backplane, None)
            if not members:
                del self._subscribers[channel]

    def unsubscribe_all(self, backplane: MemoryBackplane) -> None:
        """Removes ``backplane`` from every channel."""
        for channel in [c for c, members in self._subscribers.items() if backplane in members]:
            self.unsubscribe(channel, backplane)


class MemoryBackplane(Backplane):
    """A backplane over a `MemoryBus`.

    Args:
        bus: the bus shared by the servers to join; the process-wide `MemoryBus.shared` when omitted.
        prefix: hub name for `names`.
        server_name: this server's name; generated when omitted.
        publish_timeout_s: publish deadline (never reached in memory, kept for the shared interface).
    """

    def __init__(
        self,
        bus: MemoryBus | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        server_name: str | None = None,
        publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
    ) -> None:
        super().__init__(prefix=prefix, server_name=server_name, publish_timeout_s=publish_timeout_s)
        self.bus = bus if bus is not None else MemoryBus.shared()
        self._inbox: asyncio.Queue[tuple[str, bytes] | None] | None = None
        self._pump: asyncio.Task[None] | None = None

    def _enqueue(self, channel: str, payload: bytes) -> None:
        if self._inbox is not None:
            self._inbox.put_nowait((channel, payload))

    async def _pump_inbox(self, inbox: asyncio.Queue[tuple[str, bytes] | None]) -> None:
        # One task per backplane keeps per-channel order; ends at the None queued by _close.
        while (item := await inbox.get()) is not None:
            await self._dispatch(*item)

    async def _open(self) -> None:
        self._inbox = asyncio.Queue()
        self._pump = asyncio.create_task(self._pump_inbox(self._inbox), name=f"memory-backplane-{self}")

    async def _close(self) -> None:
        self.bus.unsubscribe_all(self)
        inbox, self._inbox = self._inbox, None
        pump, self._pump = self._pump, None
        if inbox is not None:
            inbox.put_nowait(None)
        # Messages still queued are dropped, as a stopped Redis subscriber would never read them. A
        # handler may be the one stopping us: then the pump ends by itself at the None.
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _publish(self, channel: str, payload: bytes) -> None:
        self.bus.publish(channel, payload)

    async def _subscribe(self, channels: Sequence[str]) -> None:
        for channel in channels:
            self.bus.subscribe(channel, self)

    async def _unsubscribe(self, channels: Sequence[str]) -> None:
        for channel in channels:
            self.bus.unsubscribe(channel, self)

    def __repr__(self) -> str:
        return f"MemoryBackplane(server_name={self.server_name!r}, state={self.state.value})"
