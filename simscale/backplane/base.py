"""The async `Backplane` interface and the work every backend shares.

A backplane is the building's intercom between hub servers: a server publishes bytes on a channel and
every server subscribed to that channel hears them once. This base class owns everything that does not
depend on the wire:

* subscription reference counting per channel (the backend subscribes on the first reference and
  unsubscribes on the last, like ASP.NET Core's ``RedisSubscriptionManager``);
* handler dispatch (each distinct handler once per message, errors logged, never fatal);
* the connection state machine and the counters; the publish deadline;
* gap accounting: each time a connected transport is lost, `gaps` counts one and `gap_seconds` adds how
  long the link was silent until it was back (a log line says it), so an operator can see when messages
  may have been missed, even those nobody could count.

A backend implements only these hooks:

* ``_open()`` / ``_close()``: acquire / release its transport;
* ``_reconnect_in_background()``: keep trying to acquire it after a failed ``_open`` (``start(keep_trying=True)``);
* ``_publish(channel, payload)``: raise `BackplaneUnavailable` when the message cannot be sent;
* ``_subscribe(channels)`` / ``_unsubscribe(channels)``: return once the transport confirmed, or at once
  while it is down;

and calls ``_dispatch(channel, payload)`` for every message it receives. Concurrent ``publish`` calls
must go out in the order they were made (the hub does not wait for one publish before starting the
next, so that order is each sender's order on the other servers); a backend that queues or pipelines
takes each message into its queue before its first suspension. A backend that knows the link
went silent before it noticed the loss reports it with ``_note_link_lost(silent_since_s)`` before it
reports RECONNECTING; otherwise the gap starts when the state leaves CONNECTED.

An outage is handled here and in the backend, nowhere else. The base class remembers every wanted
channel (the reference counts), so a subscription asked for while the transport is down is recorded and
`subscribe` returns without raising; the backend, when its transport comes back, subscribes every
channel in `channels` again (a pub/sub transport forgets subscriptions with the connection) and only then
reports CONNECTED through ``_note_reconnected``. Callers such as the hub's lifetime manager keep no
pending-subscription bookkeeping of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Self

from simscale.backplane.channels import DEFAULT_PREFIX, ChannelNames

__all__ = [
    "DEFAULT_PUBLISH_TIMEOUT_S",
    "Backplane",
    "BackplaneState",
    "BackplaneUnavailable",
    "MessageHandler",
    "default_server_name",
]

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_TIMEOUT_S = 0.9
"""Publish deadline: under the 1 s the contract promises, leaving room for the event loop to notice."""

MessageHandler = Callable[[str, bytes], Awaitable[None] | None]
"""Called as ``handler(channel, payload)`` for each message; may be a plain function or a coroutine."""


class BackplaneUnavailable(ConnectionError):
    """The backplane cannot carry a message now; the message is lost (pub/sub buffers nothing).

    Example (a stopped backplane refuses to publish, and counts the loss):

        >>> import asyncio
        >>> from simscale.backplane import BackplaneUnavailable, MemoryBackplane, MemoryBus
        >>> backplane = MemoryBackplane(MemoryBus())
        >>> try:
        ...     asyncio.run(backplane.publish("hub:all", b"hello"))
        ... except BackplaneUnavailable as error:
        ...     print(error)
        backplane is stopped; message on 'hub:all' lost
        >>> backplane.losses
        1
    """


class BackplaneState(StrEnum):
    """Connection state of a backplane.

    Example:

        >>> from simscale.backplane import BackplaneState, MemoryBackplane, MemoryBus
        >>> MemoryBackplane(MemoryBus()).state is BackplaneState.STOPPED
        True
        >>> [state.value for state in BackplaneState]
        ['connected', 'reconnecting', 'stopped']
    """

    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


_TRANSITIONS: dict[BackplaneState, frozenset[BackplaneState]] = {
    # STOPPED -> RECONNECTING: start(keep_trying=True) while the transport cannot be reached.
    BackplaneState.STOPPED: frozenset({BackplaneState.CONNECTED, BackplaneState.RECONNECTING}),
    BackplaneState.CONNECTED: frozenset({BackplaneState.RECONNECTING, BackplaneState.STOPPED}),
    BackplaneState.RECONNECTING: frozenset({BackplaneState.CONNECTED, BackplaneState.STOPPED}),
}


def default_server_name() -> str:
    """``{host}_{random hex}``, the shape ASP.NET Core gives its server names."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex}"


@dataclass(eq=False)
class _Subscription:
    """One channel: its handlers with their reference counts, and the lock that orders changes."""

    handlers: dict[MessageHandler, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Tasks holding or waiting for the lock; the entry is dropped only when none is left."""


class Backplane(ABC):
    """Publish/subscribe between hub servers.

    Args:
        prefix: hub name used by `names` to build channel names.
        server_name: this server's name (echo suppression, group acks); generated when omitted.
        publish_timeout_s: `publish` raises `BackplaneUnavailable` after this long.

    Subscriptions made before `start` (or kept across `stop`) are made when the backplane starts.

    Example (two servers on one in-process bus; any backend behaves the same):

        >>> import asyncio
        >>> from simscale.backplane import MemoryBackplane, MemoryBus
        >>> async def one_message() -> list[bytes]:
        ...     bus, heard = MemoryBus(), asyncio.Queue()
        ...     async with MemoryBackplane(bus) as sender, MemoryBackplane(bus) as receiver:
        ...         await receiver.subscribe("hub:all", lambda channel, payload: heard.put_nowait(payload))
        ...         await sender.publish("hub:all", b"hello")
        ...         return [await asyncio.wait_for(heard.get(), 1.0)]
        >>> asyncio.run(one_message())
        [b'hello']
    """

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        server_name: str | None = None,
        publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
    ) -> None:
        if not publish_timeout_s > 0:
            raise ValueError(f"publish_timeout_s must be > 0 seconds, got {publish_timeout_s!r}")
        self.names = ChannelNames(prefix)
        """Channel names of this hub (``names.all``, ``names.group(g)``, …)."""
        self.server_name = server_name or default_server_name()
        self.publish_timeout_s = publish_timeout_s
        self._state = BackplaneState.STOPPED
        self._state_changed = asyncio.Event()
        self._lifecycle_lock = asyncio.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._publishes = 0
        self._losses = 0
        self._reconnects = 0
        self._received = 0
        self._gaps = 0
        self._closed_gap_seconds = 0.0
        self._gap_started_s: float | None = None
        """When the current gap began (the link's last sign of life); ``None`` while connected."""

    # ----------------------------------------------------------------------------------- observation
    @property
    def state(self) -> BackplaneState:
        """Current connection state."""
        return self._state

    @property
    def publishes(self) -> int:
        """Messages handed to the transport successfully."""
        return self._publishes

    @property
    def losses(self) -> int:
        """Messages `publish` could not send (each raised `BackplaneUnavailable`)."""
        return self._losses

    @property
    def reconnects(self) -> int:
        """Times the transport came back after being lost."""
        return self._reconnects

    @property
    def gaps(self) -> int:
        """Times a connected transport was lost (each a stretch in which messages were missed)."""
        return self._gaps

    @property
    def gap_seconds(self) -> float:
        """Total seconds of every gap, from the link's last sign of life until it was back (the current
        gap, if any, counts up to now)."""
        started_s = self._gap_started_s
        ongoing_s = 0.0 if started_s is None else max(0.0, time.monotonic() - started_s)
        return self._closed_gap_seconds + ongoing_s

    @property
    def received(self) -> int:
        """Messages received that had at least one handler."""
        return self._received

    @property
    def channels(self) -> tuple[str, ...]:
        """Channels with at least one subscription, in subscription order."""
        return tuple(name for name, sub in self._subscriptions.items() if sub.handlers)

    def subscription_count(self, channel: str) -> int:
        """Outstanding `subscribe` calls on a channel (the reference count)."""
        sub = self._subscriptions.get(channel)
        return sum(sub.handlers.values()) if sub else 0

    async def wait_for_state(self, state: BackplaneState, timeout_s: float) -> None:
        """Waits until the backplane is in ``state``.

        Raises:
            TimeoutError: when it is not within ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            while self._state is not state:
                event = self._state_changed
                await event.wait()

    # ------------------------------------------------------------------------------------- lifecycle
    async def start(self, *, keep_trying: bool = False) -> None:
        """Connects and makes the subscriptions already requested. Idempotent.

        Args:
            keep_trying: when the transport cannot be reached, do not raise: report RECONNECTING and
                keep trying in the background (a hub server serves its local clients meanwhile).

        Raises:
            BackplaneUnavailable: when the transport cannot be reached and ``keep_trying`` is false.
        """
        async with self._lifecycle_lock:
            if self._state is not BackplaneState.STOPPED:
                return
            try:
                await self._open()
            except BackplaneUnavailable as exc:
                if not keep_trying:
                    raise
                logger.warning("backplane %s unavailable at start, will keep trying: %s", self.server_name, exc)
                self._set_state(BackplaneState.RECONNECTING)
                self._reconnect_in_background()
                return
            self._set_state(BackplaneState.CONNECTED)
            pending = self.channels
            if pending:
                try:
                    await self._subscribe(pending)
                except BaseException:
                    await self._stop_locked()
                    raise

    async def stop(self) -> None:
        """Disconnects. Subscriptions are kept and made again by the next `start`. Idempotent."""
        async with self._lifecycle_lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        if self._state is BackplaneState.STOPPED:
            return
        self._set_state(BackplaneState.STOPPED)
        # Pending undos are moot: the transport's subscriptions end with it.
        for task in tuple(self._background):
            task.cancel()
        await self._close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------------------------- pub / sub
    async def publish(self, channel: str, payload: bytes) -> None:
        """Sends ``payload`` to every server subscribed to ``channel``, at most once.

        Raises:
            BackplaneUnavailable: within `publish_timeout_s` when the transport is down; the message is
                lost and counted in `losses`.
        """
        _check_channel(channel)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        if self._state is not BackplaneState.CONNECTED:
            self._losses += 1
            raise BackplaneUnavailable(f"backplane is {self._state.value}; message on {channel!r} lost")
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await self._publish(channel, bytes(payload))
        except BackplaneUnavailable:
            self._losses += 1
            raise
        except TimeoutError as exc:
            self._losses += 1
            raise BackplaneUnavailable(
                f"publish on {channel!r} not done within {self.publish_timeout_s} s; message lost"
            ) from exc
        self._publishes += 1

    async def subscribe(self, channel: str, handler: MessageHandler) -> None:
        """Adds one reference to ``channel`` for ``handler``; returns once the subscription is active.

        The same handler subscribed twice is called once per message and needs two `unsubscribe` calls.
        While the transport is down (or when it did not confirm in time, which the backend treats as a
        broken connection) the subscription is recorded, `subscribe` returns without raising, and the
        backend makes it when the transport is back. Only a cancelled call records nothing.
        """
        _check_channel(channel)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        sub = self._subscriptions.setdefault(channel, _Subscription())
        sub.users += 1
        try:
            async with sub.lock:
                first = not sub.handlers
                sub.handlers[handler] = sub.handlers.get(handler, 0) + 1
                if first and self._state is not BackplaneState.STOPPED:
                    try:
                        await self._subscribe((channel,))
                    except BaseException:
                        _drop_reference(sub, handler)
                        if not sub.handlers:
                            # The transport may still make the subscription (a timeout or a cancel
                            # does not take back a sent SUBSCRIBE); undo it once we release the lock.
                            self._undo_later(channel)
                        raise
        finally:
            sub.users -= 1
            self._forget_if_unused(channel, sub)

    async def unsubscribe(self, channel: str, handler: MessageHandler | None = None) -> None:
        """Removes one reference to ``channel``; the last one stops delivery on this server.

        Args:
            channel: the channel.
            handler: whose reference to drop; the most recently added handler when omitted.
                Unknown channels and handlers are ignored, so cleanup paths can call it freely.
        """
        sub = self._subscriptions.get(channel)
        if sub is None:
            return
        sub.users += 1
        try:
            async with sub.lock:
                if not sub.handlers:
                    return
                key = handler if handler is not None else next(reversed(sub.handlers))
                if key not in sub.handlers:
                    return
                _drop_reference(sub, key)
                if not sub.handlers and self._state is not BackplaneState.STOPPED:
                    try:
                        await self._unsubscribe((channel,))
                    except BackplaneUnavailable as exc:
                        # Delivery already stopped locally (no handler left); a stray subscription on
                        # the transport only costs bandwidth and disappears with the next reconnect.
                        logger.warning("unsubscribe %r not confirmed: %s", channel, exc)
        finally:
            sub.users -= 1
            self._forget_if_unused(channel, sub)

    def _undo_later(self, channel: str) -> None:
        task = asyncio.get_running_loop().create_task(self._undo_subscription(channel))
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    async def _undo_subscription(self, channel: str) -> None:
        sub = self._subscriptions.setdefault(channel, _Subscription())
        sub.users += 1
        try:
            async with sub.lock:
                # Someone may have subscribed meanwhile; then the subscription is wanted after all.
                if not sub.handlers and self._state is not BackplaneState.STOPPED:
                    await self._unsubscribe((channel,))
        except BackplaneUnavailable as exc:
            logger.warning("could not undo the subscription to %r: %s", channel, exc)
        finally:
            sub.users -= 1
            self._forget_if_unused(channel, sub)

    def _forget_if_unused(self, channel: str, sub: _Subscription) -> None:
        if not sub.handlers and sub.users == 0 and self._subscriptions.get(channel) is sub:
            del self._subscriptions[channel]

    # ------------------------------------------------------------------------------ for backends
    async def _dispatch(self, channel: str, payload: bytes) -> None:
        """Hands a received message to the channel's handlers (each distinct handler once)."""
        sub = self._subscriptions.get(channel)
        if sub is None or not sub.handlers:
            return  # arrived after the last unsubscribe: delivery has stopped
        self._received += 1
        for handler in tuple(sub.handlers):
            try:
                result = handler(channel, payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # One faulty handler must not stop the receive loop for every other channel.
                logger.exception("backplane handler %r failed on %r", handler, channel)

    def _set_state(self, state: BackplaneState) -> None:
        """Moves to ``state``; refuses transitions the state machine does not allow."""
        if state is self._state:
            return
        if state not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"backplane cannot go from {self._state.value} to {state.value}")
        logger.info("backplane %s: %s -> %s", self.server_name, self._state.value, state.value)
        if state is BackplaneState.RECONNECTING:
            self._note_link_lost()  # a no-op when the backend already said since when it was silent
        elif state is BackplaneState.STOPPED:
            self._end_gap()
        self._state = state
        # Wake every waiter, then start a fresh event for the next change.
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    def _note_reconnected(self) -> None:
        """Counts a reconnection, closes the gap (logging how long the link was silent), moves to CONNECTED."""
        self._reconnects += 1
        silent_s = self._end_gap()
        if silent_s is not None:
            logger.warning(
                "backplane %s: link back after %.1f s silent (gap %d, %.1f s of gaps in all); "
                "messages published meanwhile did not reach this server",
                self.server_name,
                silent_s,
                self._gaps,
                self._closed_gap_seconds,
            )
        self._set_state(BackplaneState.CONNECTED)

    def _note_link_lost(self, silent_since_s: float | None = None) -> None:
        """Starts a gap, unless one is running: the link was lost, silent since ``silent_since_s``
        (a ``time.monotonic()`` reading; now when omitted). Only a connected link opens a gap."""
        if self._gap_started_s is not None or self._state is not BackplaneState.CONNECTED:
            return
        now_s = time.monotonic()
        self._gaps += 1
        self._gap_started_s = now_s if silent_since_s is None else min(silent_since_s, now_s)
        logger.warning(
            "backplane %s: link lost, silent for %.1f s so far (gap %d)",
            self.server_name,
            now_s - self._gap_started_s,
            self._gaps,
        )

    def _end_gap(self) -> float | None:
        started_s, self._gap_started_s = self._gap_started_s, None
        if started_s is None:
            return None
        silent_s = max(0.0, time.monotonic() - started_s)
        self._closed_gap_seconds += silent_s
        return silent_s

    # ------------------------------------------------------------------------------------- hooks
    @abstractmethod
    async def _open(self) -> None:
        """Acquires the transport. Raises `BackplaneUnavailable` when it cannot."""

    @abstractmethod
    async def _close(self) -> None:
        """Releases the transport; must not raise."""

    @abstractmethod
    def _reconnect_in_background(self) -> None:
        """After a failed ``_open`` under ``start(keep_trying=True)``: keep trying until `stop`.

        Once the transport is acquired the backend subscribes `channels` and calls ``_note_reconnected``.
        """

    @abstractmethod
    async def _publish(self, channel: str, payload: bytes) -> None:
        """Sends one message. Raises `BackplaneUnavailable` when it cannot."""

    @abstractmethod
    async def _subscribe(self, channels: Sequence[str]) -> None:
        """Subscribes; returns once the transport confirmed, or at once while it is down (the base class
        has recorded the channels and the backend subscribes them when the transport is back). Must not
        raise `BackplaneUnavailable`."""

    @abstractmethod
    async def _unsubscribe(self, channels: Sequence[str]) -> None:
        """Unsubscribes (late messages are dropped by `_dispatch` anyway)."""


def _check_channel(channel: str) -> None:
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"channel must be a non-empty string, got {channel!r}")


def _drop_reference(sub: _Subscription, handler: MessageHandler) -> None:
    count = sub.handlers.get(handler, 0)
    if count > 1:
        sub.handlers[handler] = count - 1
    else:
        sub.handlers.pop(handler, None)
