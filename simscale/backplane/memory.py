"""In-process backplane: hub servers in one process share a `MemoryBus`.

It is the default backplane and the test double for the Redis one: same interface, same at-most-once,
per-channel FIFO semantics, handlers run on the subscriber's own task (as with Redis), never inside
`publish`, and the same outage behaviour (`MemoryBus.go_down`, `MemoryBus.come_back`). Hub servers in
*different* processes using ``memory`` do not see each other: that is the honest "no backplane" configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from simscale.backplane.base import DEFAULT_PUBLISH_TIMEOUT_S, Backplane, BackplaneState, BackplaneUnavailable
from simscale.backplane.channels import DEFAULT_PREFIX

__all__ = ["MemoryBackplane", "MemoryBus"]

logger = logging.getLogger(__name__)


class MemoryBus:
    """Channel → subscribed backplanes, within one process and one event loop.

    Example (an outage, as when Redis dies, and the recovery):

        >>> import asyncio
        >>> from simscale.backplane import BackplaneState, MemoryBackplane, MemoryBus
        >>> async def outage() -> list[str]:
        ...     bus = MemoryBus()
        ...     async with MemoryBackplane(bus) as backplane:
        ...         states = [backplane.state.value]
        ...         bus.go_down()
        ...         states.append(backplane.state.value)
        ...         bus.come_back()
        ...         return [*states, backplane.state.value]
        >>> asyncio.run(outage())
        ['connected', 'reconnecting', 'connected']
    """

    _shared: MemoryBus | None = None

    def __init__(self) -> None:
        # dicts as insertion-ordered sets, so fan-out order is deterministic.
        self._subscribers: dict[str, dict[MemoryBackplane, None]] = {}
        self._attached: dict[MemoryBackplane, None] = {}
        """Started backplanes, connected or waiting for the bus to come back."""
        self._up = True

    @property
    def is_up(self) -> bool:
        """False between `go_down` and `come_back`."""
        return self._up

    def go_down(self) -> None:
        """An outage, as when Redis dies: every message published from now on is lost, every attached
        backplane reports RECONNECTING, and the bus forgets every subscription. Idempotent."""
        if not self._up:
            return
        self._up = False
        self._subscribers.clear()
        for backplane in tuple(self._attached):
            backplane._transport_lost()

    def come_back(self) -> None:
        """Ends the outage: each attached backplane subscribes its channels again and reports CONNECTED."""
        if self._up:
            return
        self._up = True
        for backplane in tuple(self._attached):
            backplane._transport_back()

    def attach(self, backplane: MemoryBackplane) -> None:
        """Starts telling ``backplane`` about outages (called when it starts)."""
        self._attached[backplane] = None

    def detach(self, backplane: MemoryBackplane) -> None:
        """Forgets ``backplane`` and its subscriptions (called when it stops)."""
        self._attached.pop(backplane, None)
        self.unsubscribe_all(backplane)

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
        """Queues ``payload`` for every subscribed backplane; returns how many there were.

        Raises:
            BackplaneUnavailable: while the bus is down (the message is lost).
        """
        if not self._up:
            raise BackplaneUnavailable(f"memory bus is down; message on {channel!r} lost")
        receivers = tuple(self._subscribers.get(channel, ()))
        for backplane in receivers:
            try:
                backplane._enqueue(channel, payload)
            except RuntimeError:
                # Its event loop is gone (a test that never stopped it): forget it rather than fail.
                self.unsubscribe_all(backplane)
        return len(receivers)

    def subscribe(self, channel: str, backplane: MemoryBackplane) -> None:
        """Adds ``backplane`` to ``channel`` (idempotent; ignored while the bus is down)."""
        if self._up:
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

    Example:

        >>> import asyncio
        >>> from simscale.backplane import MemoryBackplane, MemoryBus
        >>> async def subscribers() -> int:
        ...     bus = MemoryBus()
        ...     async with MemoryBackplane(bus, server_name="one") as backplane:
        ...         await backplane.subscribe("hub:all", lambda channel, payload: None)
        ...         return bus.subscriber_count("hub:all")
        >>> asyncio.run(subscribers())
        1
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

    def _open_inbox(self) -> None:
        if self._inbox is None:
            self._inbox = asyncio.Queue()
            self._pump = asyncio.create_task(self._pump_inbox(self._inbox), name=f"memory-backplane-{self}")

    async def _open(self) -> None:
        if not self.bus.is_up:
            raise BackplaneUnavailable("memory bus is down")
        self._open_inbox()
        self.bus.attach(self)

    def _reconnect_in_background(self) -> None:
        # Nothing to poll: the bus tells every attached backplane when it comes back.
        self.bus.attach(self)

    def _transport_lost(self) -> None:
        if self.state is BackplaneState.CONNECTED:
            self._set_state(BackplaneState.RECONNECTING)

    def _transport_back(self) -> None:
        if self.state is not BackplaneState.RECONNECTING:
            return
        self._open_inbox()
        for channel in self.channels:
            self.bus.subscribe(channel, self)
        self._note_reconnected()

    async def _close(self) -> None:
        self.bus.detach(self)
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
