"""Redis pub/sub backplane, wire-compatible with ASP.NET Core's ``StackExchangeRedis`` backplane.

Each server holds two kinds of Redis connections, built together as one *link*: a pool for PUBLISH and
one dedicated subscriber connection read by a single task. Redis pub/sub is fire-and-forget: a message
published while a server is not subscribed, or while Redis is down, is simply gone. So when the link
breaks this backend

1. fails every `publish` fast (`BackplaneUnavailable`, counted as a loss) and reports RECONNECTING;
2. reconnects with capped exponential backoff and jitter, so a fleet of servers does not hammer a
   Redis that just came back all in the same millisecond;
3. subscribes every channel again (Redis forgets subscriptions with the connection), including the
   ones requested while it was down, and only then reports CONNECTED.

A SUBSCRIBE that Redis does not confirm within ``subscribe_timeout_s`` counts as a broken link too, and
``start(keep_trying=True)`` against an unreachable Redis starts at step 2. Reconnect and backoff live
here only; the base class knows nothing about them, and the hub knows nothing about either.

The reader task only reads; handlers run one message at a time on a separate dispatcher task (which
keeps per-channel order), so a handler may itself subscribe and wait for Redis' confirmation. Between the
two sits a bounded queue: when handlers fall behind it fills, the reader stops reading, and once Redis'
output buffer for this subscriber passes ``client-output-buffer-limit pubsub`` (32 MB by default) Redis
drops the connection; the link is rebuilt and what was published meanwhile is lost, as with ASP.NET Core.

Publishes are pipelined: every `publish` called while the link's writer is busy joins the next batch,
and the writer sends a whole batch as one pipeline on one connection (one round trip for a burst of
broadcasts, like StackExchange.Redis' multiplexer, which writes whatever is queued in one go). One writer
sending one batch at a time keeps the order in which `publish` was called, across batches too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised only without redis-py
    raise ImportError(
        "the Redis backplane needs redis-py with asyncio support: `pip install 'redis>=5'` "
        "(or use the in-process backplane: create_backplane('memory'))"
    ) from exc

from simscale.backplane.base import DEFAULT_PUBLISH_TIMEOUT_S, Backplane, BackplaneState, BackplaneUnavailable
from simscale.backplane.channels import DEFAULT_PREFIX

__all__ = ["RedisBackplane", "redact_url"]

logger = logging.getLogger(__name__)

_SUBSCRIBE_BATCH = 500
"""Channels per SUBSCRIBE when resubscribing (a server holds one channel per local connection)."""
_INBOX_MESSAGES = 10_000
"""Messages read but not yet handled; a full inbox stops the reader (back-pressure onto Redis)."""
_MAX_EMPTY_READS = 10_000
"""Consecutive empty reads tolerated before the subscriber connection is declared broken."""
_CLOSE_TIMEOUT_S = 1.0
_PUBLISH_BATCH = 1_000
"""Most PUBLISHes in one pipeline: bounds the bytes one round trip holds and how long a batch waits."""
_POOL_CONNECTIONS = 4
"""The publish writer (one batch at a time), a spare for PING and for commands issued while a batch
is out: redis-py fails with "Too many connections" past its pool, which must never look like a lost link."""

_NETWORK_ERRORS = (RedisError, OSError)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _PubSub(Protocol):
    """The part of redis-py's asyncio ``PubSub`` this backend uses (redis-py leaves it untyped)."""

    async def connect(self) -> None: ...

    async def execute_command(self, *args: bytes | str) -> None: ...

    async def get_message(self, *, timeout: float | None) -> Any: ...

    def ping(self, message: str | None = ...) -> Awaitable[Any]: ...

    async def aclose(self) -> None: ...


class _RedisLink:
    """One connection generation: a publish pool and a subscriber connection with its reader task.

    A link never reconnects by itself; when anything fails it is marked closed and thrown away, and
    the backplane builds a new one. That keeps redis-py's own reconnect logic out of the picture.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        pubsub: _PubSub,
        on_message: Callable[[bytes, bytes], Awaitable[None]],
        health_check_interval_s: float,
        on_round_trip: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self._on_round_trip = on_round_trip
        self.pubsub = pubsub
        self.closed = asyncio.Event()
        self.failure = ""
        self._on_message = on_message
        self._health_check_interval_s = health_check_interval_s
        self._waiters: dict[bytes, list[asyncio.Future[bool]]] = {}
        """Awaited SUBSCRIBE confirmations by wire channel: True if confirmed, False if the link broke."""
        self._last_read_s = time.monotonic()
        self._silence: tuple[float, float] | None = None
        """(began, ended) of the last stretch with nothing read for over two health-check periods
        (Redis silent, or this process stopped); forgotten once the link has lived on after it."""
        self._inbox: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue(_INBOX_MESSAGES)
        self._reader: asyncio.Task[None] | None = None
        self._health: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._outbox: list[tuple[bytes, bytes, asyncio.Future[None]]] = []
        """PUBLISHes waiting for the writer, in call order."""
        self._writer: asyncio.Task[None] | None = None

    @property
    def silent_since_s(self) -> float:
        """Since when the link has given no sign of life: the start of a recent long silence (say this
        process was stopped for 20 s, and Redis dropped the subscriber meanwhile, which the reader sees
        only after reading what was buffered before), else the last read."""
        return self._silence[0] if self._silence is not None else self._last_read_s

    def _note_read(self) -> None:
        now_s = time.monotonic()
        if now_s - self._last_read_s > 2 * self._health_check_interval_s:
            self._silence = (self._last_read_s, now_s)
        self._last_read_s = now_s

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="redis-backplane-reader")
        self._health = asyncio.create_task(self._check_health(), name="redis-backplane-health")
        self._dispatcher = asyncio.create_task(self._dispatch(), name="redis-backplane-dispatcher")

    def fail(self, reason: object) -> None:
        """Marks the link broken and releases everyone waiting for a confirmation."""
        if self.closed.is_set():
            return
        self.failure = str(reason) or type(reason).__name__
        self.closed.set()
        outbox, self._outbox = self._outbox, []
        _fail_all(outbox, BackplaneUnavailable(f"Redis connection lost ({self.failure})"))
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)
        self._waiters.clear()

    async def subscribe(self, wire_channels: Sequence[bytes], timeout_s: float) -> bool:
        """Sends SUBSCRIBE and waits for Redis to confirm every channel.

        Returns:
            True when confirmed, False when the link broke first (the reconnection will subscribe).

        Raises:
            TimeoutError: when Redis did not confirm within ``timeout_s``.
            RedisError, OSError: when the command could not be sent.
        """
        if self.closed.is_set():
            return False
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[bool]] = []
        for channel in wire_channels:
            waiter: asyncio.Future[bool] = loop.create_future()
            self._waiters.setdefault(channel, []).append(waiter)
            waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                for start in range(0, len(wire_channels), _SUBSCRIBE_BATCH):
                    batch = wire_channels[start : start + _SUBSCRIBE_BATCH]
                    await self.pubsub.execute_command("SUBSCRIBE", *batch)
                confirmed = await asyncio.gather(*waiters)
        finally:
            for channel, waiter in zip(wire_channels, waiters, strict=True):
                waiter.cancel()
                pending = self._waiters.get(channel)
                if pending is not None and waiter in pending:
                    pending.remove(waiter)
                    if not pending:
                        del self._waiters[channel]
        return all(confirmed)

    def publish(self, wire_channel: bytes, payload: bytes) -> asyncio.Future[None]:
        """Queues one PUBLISH for the writer; the future is done once Redis answered its batch.

        The future fails with `BackplaneUnavailable` when the batch could not be sent.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed.is_set():
            future.set_exception(BackplaneUnavailable(f"Redis connection lost ({self.failure})"))
            return future
        self._outbox.append((wire_channel, payload, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_publishes(), name="redis-backplane-writer")
        return future

    async def _write_publishes(self) -> None:
        """Sends what is queued as pipelines, one batch at a time, until nothing is left."""
        try:
            while self._outbox and not self.closed.is_set():
                taken = self._outbox[:_PUBLISH_BATCH]
                del self._outbox[:_PUBLISH_BATCH]
                # A publish whose caller gave up (the deadline) is counted lost: it must not go out late.
                batch = [entry for entry in taken if not entry[2].done()]
                if not batch:
                    continue
                pipe = self.client.pipeline(transaction=False)
                for wire_channel, payload, _ in batch:
                    pipe.publish(wire_channel, payload)
                self._on_round_trip()
                try:
                    replies = await pipe.execute(raise_on_error=False)
                except RedisConnectionError as exc:
                    # The reader may not notice for a while: tell the supervisor now.
                    self.fail(exc)
                    _fail_all(batch, BackplaneUnavailable(f"Redis unavailable; {len(batch)} messages lost: {exc}"))
                    return
                except _NETWORK_ERRORS as exc:
                    _fail_all(batch, BackplaneUnavailable(f"Redis PUBLISH pipeline failed: {exc}"))
                    continue
                for (_, _, future), reply in zip(batch, replies, strict=True):
                    if future.done():
                        continue  # its caller gave up (the publish deadline): counted as lost there
                    if isinstance(reply, Exception):
                        future.set_exception(BackplaneUnavailable(f"Redis refused a PUBLISH: {reply}"))
                    else:
                        future.set_result(None)
        finally:
            self._writer = None
            if self.closed.is_set():
                outbox, self._outbox = self._outbox, []
                _fail_all(outbox, BackplaneUnavailable(f"Redis connection lost ({self.failure})"))

    async def unsubscribe(self, wire_channels: Sequence[bytes]) -> None:
        """Sends UNSUBSCRIBE (no confirmation needed: late messages are dropped by dispatch)."""
        if not self.closed.is_set():
            await self.pubsub.execute_command("UNSUBSCRIBE", *wire_channels)

    async def _read(self) -> None:
        empty_reads = 0
        try:
            while True:
                message: dict[str, Any] | None = await self.pubsub.get_message(timeout=None)
                self._note_read()
                if message is None:
                    # Blocking reads return None only for replies redis-py swallows; a long run of
                    # them would mean a spinning loop on a broken connection.
                    empty_reads += 1
                    if empty_reads > _MAX_EMPTY_READS:
                        self.fail("subscriber connection returns nothing")
                        return
                    continue
                empty_reads = 0
                kind = message["type"]
                if kind == "message":
                    await self._inbox.put((message["channel"], message["data"]))
                    self._last_read_s = time.monotonic()  # a wait for inbox room is not Redis' silence
                elif kind == "subscribe":
                    for waiter in self._waiters.pop(message["channel"], ()):
                        if not waiter.done():
                            waiter.set_result(True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the read loop means the link is unusable
            self.fail(exc)

    async def _dispatch(self) -> None:
        # Ends at the None that aclose() queues after the last message read.
        while (item := await self._inbox.get()) is not None:
            try:
                await self._on_message(*item)
            except Exception:  # handlers' errors are caught earlier; this guards the loop itself
                logger.exception("Redis backplane dropped a message it could not dispatch")

    async def _check_health(self) -> None:
        # A SIGKILLed Redis closes the socket and the reader sees it at once; a silent network
        # failure does not, so PING periodically and give up when nothing came back for two periods.
        interval_s = self._health_check_interval_s
        while not self.closed.is_set():
            slept_from_s = time.monotonic()
            await asyncio.sleep(interval_s)
            if time.monotonic() - slept_from_s > 2 * interval_s:
                # We overslept (this process was stopped, or its event loop blocked): the reader has
                # not had its turn yet, so silence says nothing about Redis. Look again next period.
                continue
            silence = self._silence
            if silence is not None and time.monotonic() - silence[1] > 2 * interval_s:
                self._silence = None  # the link lived on after it: that silence cost nothing
            if not self._inbox.full() and time.monotonic() - self._last_read_s > 2 * interval_s:
                self.fail(f"no reply from Redis for {2 * interval_s:g} s")
                return
            try:
                await self.pubsub.ping()
            except _NETWORK_ERRORS as exc:
                self.fail(exc)
                return

    async def aclose(self) -> None:
        """Stops reading, lets handlers finish what was already read (bounded), closes; never raises."""
        self.fail("closed")
        for task in (self._reader, self._health, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        dispatcher = self._dispatcher
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(None)
        # A handler may be the one stopping the backplane: it must not wait for itself.
        if dispatcher is not None and dispatcher is not asyncio.current_task():
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(dispatcher), _CLOSE_TIMEOUT_S)
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await dispatcher
        with contextlib.suppress(*_NETWORK_ERRORS, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self.pubsub.aclose()
        with contextlib.suppress(*_NETWORK_ERRORS, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self.client.aclose()


def _fail_all(batch: Sequence[tuple[bytes, bytes, asyncio.Future[None]]], error: BackplaneUnavailable) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(error)


class RedisBackplane(Backplane):
    """A backplane over Redis pub/sub (``redis://`` or ``rediss://``, password in the URL).

    Args:
        url: e.g. ``redis://:secret@127.0.0.1:6379/0`` or ``rediss://host:6380``.
        prefix: hub name for `names` (ASP.NET Core uses the hub's full type name).
        channel_prefix: prepended to every channel on the wire, like StackExchange.Redis'
            ``ChannelPrefix``; two apps on one Redis with different channel prefixes never hear each other.
        server_name: this server's name; generated when omitted.
        publish_timeout_s: `publish` gives up after this long (also the socket timeout of PUBLISH).
        connect_timeout_s: limit for establishing one link (TCP, AUTH, first PING).
        subscribe_timeout_s: limit for Redis to confirm a SUBSCRIBE.
        health_check_interval_s: PING period on the subscriber connection; a link with no reply for two
            periods is declared lost (one PING a second per server costs Redis next to nothing, and
            finds a silent link in 2-3 s).
        reconnect_base_delay_s: first backoff delay; doubles per failed attempt.
        reconnect_max_delay_s: backoff cap.
        max_reconnect_attempts: give up (state STOPPED) after this many failed attempts in a row;
            ``None`` retries until `stop`, as ASP.NET Core does.
        rng: random source for the jitter (pass a seeded one for reproducible tests).

    Example (two servers on a real redis-server):

        >>> import asyncio
        >>> from simscale.backplane import RedisBackplane, RedisServer
        >>> async def through_redis(url: str) -> bytes:
        ...     heard: asyncio.Queue[bytes] = asyncio.Queue()
        ...     async with RedisBackplane(url) as sender, RedisBackplane(url) as receiver:
        ...         await receiver.subscribe("hub:all", lambda channel, payload: heard.put_nowait(payload))
        ...         await sender.publish("hub:all", b"hello")
        ...         return await asyncio.wait_for(heard.get(), 5.0)
        >>> with RedisServer() as server:
        ...     asyncio.run(through_redis(server.url))
        b'hello'
    """

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        channel_prefix: str = "",
        *,
        server_name: str | None = None,
        publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
        connect_timeout_s: float = 2.0,
        subscribe_timeout_s: float = 5.0,
        health_check_interval_s: float = 1.0,
        reconnect_base_delay_s: float = 0.05,
        reconnect_max_delay_s: float = 2.0,
        max_reconnect_attempts: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(prefix=prefix, server_name=server_name, publish_timeout_s=publish_timeout_s)
        scheme = urlsplit(url).scheme
        if scheme not in ("redis", "rediss"):
            raise ValueError(f"url must start with redis:// or rediss://, got {redact_url(url)!r}")
        for name, value in (
            ("connect_timeout_s", connect_timeout_s),
            ("subscribe_timeout_s", subscribe_timeout_s),
            ("health_check_interval_s", health_check_interval_s),
            ("reconnect_base_delay_s", reconnect_base_delay_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if not reconnect_max_delay_s >= reconnect_base_delay_s:
            raise ValueError(
                f"reconnect_max_delay_s must be >= reconnect_base_delay_s ({reconnect_base_delay_s}), "
                f"got {reconnect_max_delay_s!r}"
            )
        if max_reconnect_attempts is not None and max_reconnect_attempts < 1:
            raise ValueError(f"max_reconnect_attempts must be >= 1 or None, got {max_reconnect_attempts!r}")
        self.url = url
        self.channel_prefix = channel_prefix
        self.connect_timeout_s = connect_timeout_s
        self.subscribe_timeout_s = subscribe_timeout_s
        self.health_check_interval_s = health_check_interval_s
        self.reconnect_base_delay_s = reconnect_base_delay_s
        self.reconnect_max_delay_s = reconnect_max_delay_s
        self.max_reconnect_attempts = max_reconnect_attempts
        self._rng = rng if rng is not None else random.Random()
        self._link: _RedisLink | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._publish_round_trips = 0

    @property
    def publish_round_trips(self) -> int:
        """Pipelines sent: each carries every publish that was waiting (fewer than `publishes` in a burst)."""
        return self._publish_round_trips

    def _count_round_trip(self) -> None:
        self._publish_round_trips += 1

    def __repr__(self) -> str:
        url = redact_url(self.url)
        return f"RedisBackplane({url!r}, server_name={self.server_name!r}, state={self.state.value})"

    # ----------------------------------------------------------------------------------- wire names
    def _wire(self, channel: str) -> bytes:
        return (self.channel_prefix + channel).encode()

    async def _on_wire_message(self, wire_channel: bytes, payload: bytes) -> None:
        channel = wire_channel.decode(errors="surrogateescape")
        if not channel.startswith(self.channel_prefix):
            return
        await self._dispatch(channel[len(self.channel_prefix) :], payload)

    # ------------------------------------------------------------------------------------- links
    async def _open_link(self) -> _RedisLink:
        client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout_s,
            socket_timeout=self.publish_timeout_s,
            # No retries and no health checks inside redis-py: a failure must surface at once so
            # this backend decides what to do (fail the publish, rebuild the link, resubscribe).
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            protocol=2,
            client_name=f"simscale-backplane:{self.server_name}",
            max_connections=_POOL_CONNECTIONS,
        )
        pubsub = cast(_PubSub, client.pubsub())
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await client.ping()
                await pubsub.connect()
        except BaseException as exc:
            with contextlib.suppress(*_NETWORK_ERRORS, TimeoutError):
                await pubsub.aclose()
                await client.aclose()
            if isinstance(exc, (*_NETWORK_ERRORS, TimeoutError)):
                raise BackplaneUnavailable(f"cannot reach Redis at {redact_url(self.url)}: {exc}") from exc
            raise
        link = _RedisLink(client, pubsub, self._on_wire_message, self.health_check_interval_s, self._count_round_trip)
        link.start()
        return link

    def _backoff_s(self, attempt: int) -> float:
        """Delay before reconnection attempt ``attempt`` (0-based): capped exponential, equal jitter."""
        ceiling_s = min(self.reconnect_max_delay_s, self.reconnect_base_delay_s * 2.0 ** min(attempt, 30))
        # Keep half, randomise half: never zero (no hot loop), never synchronised across servers.
        return ceiling_s / 2 + self._rng.uniform(0, ceiling_s / 2)

    async def _resubscribe(self, link: _RedisLink) -> bool:
        wanted = self.channels
        if wanted:
            try:
                await link.subscribe([self._wire(c) for c in wanted], self.subscribe_timeout_s)
            except (*_NETWORK_ERRORS, TimeoutError) as exc:
                link.fail(exc)
                return False
            # Channels dropped while we were subscribing them would otherwise stay subscribed.
            still_wanted = set(self.channels)
            stale = [self._wire(c) for c in wanted if c not in still_wanted]
            if stale:
                with contextlib.suppress(*_NETWORK_ERRORS):
                    await link.unsubscribe(stale)
        return not link.closed.is_set()

    async def _supervise(self) -> None:
        """Watches the link; when it breaks, rebuilds it with backoff and resubscribes everything."""
        failed_attempts = 0
        while True:
            link = self._link
            if link is not None:
                await link.closed.wait()
                logger.warning("Redis backplane %s lost (%s); reconnecting", redact_url(self.url), link.failure)
                # The gap began at the link's last sign of life: a server frozen for 20 s (or a link
                # Redis dropped at its output-buffer limit meanwhile) was silent all that time.
                self._note_link_lost(link.silent_since_s)
                self._set_state(BackplaneState.RECONNECTING)
                # Still reachable as self._link while closing, so a stop() meanwhile finishes the job.
                await link.aclose()
                if self._link is link:
                    self._link = None
            if self.max_reconnect_attempts is not None and failed_attempts >= self.max_reconnect_attempts:
                logger.error("Redis backplane %s: giving up after %d attempts", redact_url(self.url), failed_attempts)
                self._set_state(BackplaneState.STOPPED)
                return
            await asyncio.sleep(self._backoff_s(failed_attempts))
            if self.state is BackplaneState.STOPPED:
                return  # stop() won the race (a cancel that redis-py swallowed must not keep us alive)
            try:
                link = await self._open_link()
            except Exception as exc:  # whatever it is, the supervisor must live on and retry
                failed_attempts += 1
                logger.info("Redis backplane reconnect attempt %d failed: %s", failed_attempts, exc)
                continue
            self._link = link
            if await self._resubscribe(link):
                failed_attempts = 0
                self._note_reconnected()
                logger.info(
                    "Redis backplane %s back; %d channels resubscribed",
                    redact_url(self.url),
                    len(self.channels),
                )

    # ------------------------------------------------------------------------------------- hooks
    async def _open(self) -> None:
        self._link = await self._open_link()
        self._start_supervisor()

    def _reconnect_in_background(self) -> None:
        # Without a link the supervisor starts at its backoff-and-reconnect step.
        self._link = None
        self._start_supervisor()

    def _start_supervisor(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="redis-backplane-supervisor")

    async def _close(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        link, self._link = self._link, None
        if link is not None:
            await link.aclose()

    async def _publish(self, channel: str, payload: bytes) -> None:
        link = self._link
        if link is None or link.closed.is_set():
            raise BackplaneUnavailable(f"Redis connection lost; message on {channel!r} lost")
        # Queued synchronously, so concurrent publishes go out in the order they were called.
        await link.publish(self._wire(channel), payload)

    async def _subscribe(self, channels: Sequence[str]) -> None:
        link = self._link
        if link is None or link.closed.is_set():
            return  # recorded in the base class; the reconnection subscribes it
        wire = [self._wire(c) for c in channels]
        try:
            await link.subscribe(wire, self.subscribe_timeout_s)
        except TimeoutError:
            # A subscriber connection that does not confirm within the deadline is as good as broken:
            # rebuild it, and the new link subscribes every recorded channel, this one included.
            link.fail(f"Redis did not confirm SUBSCRIBE {list(channels)!r} within {self.subscribe_timeout_s} s")
        except _NETWORK_ERRORS as exc:
            link.fail(exc)  # the reconnection subscribes it

    async def _unsubscribe(self, channels: Sequence[str]) -> None:
        link = self._link
        if link is None:
            return  # the next link subscribes only what is still wanted
        try:
            await link.unsubscribe([self._wire(c) for c in channels])
        except _NETWORK_ERRORS as exc:
            link.fail(exc)
