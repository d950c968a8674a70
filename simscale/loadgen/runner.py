"""Run a load test against real hubs and describe it with the model's record vocabulary.

Three phases, like a fire drill: everybody comes in (connect, round-robin over the URLs), the
alarm rings at random times (a seeded Poisson stream of ``SendMessage`` broadcasts from random
connected clients), and everybody leaves (stop). Each broadcast carries the sender's send time;
each recipient subtracts it from the time its bytes were read from the socket, on the same
``time.perf_counter`` clock. Clients are :class:`~simscale.client.lean.LeanHubClient`: the
protocol is decoded in the socket callback, with no task per client, so a receive time does not
include the reading of every other socket that was ready at the same moment.

The generator must stay lighter than the server it measures, so nothing is kept per delivery:
deliveries are tallied per (broadcast, server) in numpy arrays and latencies go into a
:class:`~simscale.metrics.histogram.LatencyHistogram` in chunks.

A client whose connection drops reconnects as the model's clients do (``reconnect_delays_s``,
``reconnect_jitter``): an attempt after each delay in turn, every failed attempt a REFUSED record with
its reason, a GAVE_UP record after the last. With several URLs the generator stands in for the load
balancer the model puts in front: the first attempt goes to another server than the one that dropped
the client (a balancer's health check takes a dead server out), the attempts round-robin over the
URLs, and one that refused a TCP connection is skipped for ``_DOWN_FOR_S`` (nginx's passive health
check, ``max_fails=1 fail_timeout=10s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import resource
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
from yarl import URL

from simscale._version import __version__
from simscale.client.hub_client import HubConnectionError
from simscale.client.lean import LeanHubClient
from simscale.client.websocket import HandshakeError, ReadCounter
from simscale.config.membership import (
    connections_of_user,
    draw_connection_send,
    draw_group_send,
    draw_membership,
    draw_user_send,
    sends_rng,
    user_of_clients,
)
from simscale.loadgen.config import LoadConfig
from simscale.metrics.histogram import LatencyHistogram
from simscale.metrics.records import (
    NO_SERVER,
    BroadcastRecord,
    ConnectionEvent,
    ConnectionEventKind,
    DeliveryRecord,
    RunRecords,
    RunSummary,
)
from simscale.metrics.summary import clients_connected_mean, delivered_fraction_all_clients, servers_reached_per_send
from simscale.protocol import ConnectionState, InvocationMessage

__all__ = ["ConnectionFailure", "LoadResult", "describe_failure", "raise_open_file_limit", "run_load"]

_LATENCY_CHUNK = 65_536
_POLL_S = 0.01
_STOP_TIMEOUT_S = 30.0
_MAX_SCHEDULE_ROUNDS = 100
_KEEPALIVE_INTERVAL_S = 15.0
"""Every client pings this often, as the official clients do (servers drop one silent for 30 s)."""
_KEEPALIVE_SLICES = 15
_RECONNECT_STREAM = 0x52454E
"""Second seed word of the reconnect jitter's own random stream (the send schedule's stream stays as it was)."""
_DOWN_FOR_S = 10.0
"""A server that refused a TCP connection gets no reconnect attempts for this long: nginx's defaults
``max_fails=1 fail_timeout=10s`` (https://nginx.org/en/docs/http/ngx_http_upstream_module.html#server)."""


@dataclass(frozen=True, slots=True)
class ConnectionFailure:
    """One kind of failed connection attempt: to which server, why, and how many clients it hit.

    Attributes:
        server: index of the URL in the run's ``urls``.
        url: that URL.
        reason: the stable code also written into the REFUSED connection event (``connection_refused``,
            ``http_404``, ``handshake_refused``, ``handshake_timeout``, …).
        detail: the same for a person, from the first attempt that failed this way: ``connection
            refused (127.0.0.1:9)``, ``HTTP 404 from /chatHub/negotiate``, ``handshake error: …``.
        clients: attempts that failed this way.

    Example (two clients against a port nobody listens on):

        >>> import asyncio, socket
        >>> from simscale.loadgen import LoadConfig, run_load
        >>> with socket.socket() as probe:
        ...     probe.bind(("127.0.0.1", 0))
        ...     port = probe.getsockname()[1]
        >>> config = LoadConfig(urls=(f"http://127.0.0.1:{port}/chatHub",), clients=2, broadcast_rate_per_s=1.0,
        ...                     duration_s=0.2, drain_s=0.1, seed=1)
        >>> result = asyncio.run(run_load(config))
        >>> [(failure.reason, failure.clients) for failure in result.connection_failures]
        [('connection_refused', 2)]
    """

    server: int
    url: str
    reason: str
    detail: str
    clients: int


@dataclass(slots=True)
class LoadResult:
    """What a load test measured.

    Attributes:
        records: broadcasts, per-(broadcast, server) deliveries, connection events, latencies.
        summary: the headline figures (``source="hub"``; what a client cannot see is ``None``).
        loadgen_cpu_s: CPU seconds this process used (compare with ``summary.wall_s``).
        connected_clients: clients connected when the broadcasts started.
        send_failures: broadcasts whose send failed (not counted anywhere else).
        foreign_messages: ``ReceiveMessage`` calls that were not this run's broadcasts.
        broadcast_cpu_s: CPU seconds this process used from the first scheduled send to the end of
            the drain (connecting and stopping left out): what calibration divides by deliveries.
        broadcast_wall_s: wall seconds of that same phase.
        broadcast_started_at_s: ``time.perf_counter()`` when that phase began (to read other processes'
            CPU over the same window).
        socket_reads: socket reads the clients made in that phase (each may carry several messages).
        loop_wakeups: event-loop passes in that phase that read at least one socket (a loop that
            falls behind reads many sockets per pass, and its cost per message falls).
        loop_passes: with ``trace_loop_passes``, each of those passes as ``(first read, end, reads)``,
            in seconds on the clock of the records' ``sent_at_s``.
        connection_failures: the failed connection attempts (first connects and reconnects), one entry
            per (server, reason).
        started_at_s: ``time.perf_counter()`` at the records' time 0 (to place an outside event, such as
            a server killed, on the records' clock).
        reconnected: reconnect attempts that succeeded (each also a CONNECTED record).
        gave_up: clients that used up their reconnect delays (each also a GAVE_UP record).

    Example (five clients on a real hub for half a second; :func:`run_load` returns this):

        >>> import asyncio
        >>> from simscale.hub import HubServer
        >>> from simscale.loadgen import LoadConfig, run_load
        >>> async def load_test():
        ...     server = HubServer()
        ...     url = await server.listen("127.0.0.1", 0)
        ...     try:
        ...         return await run_load(LoadConfig(urls=(f"{url}/chatHub",), clients=5, broadcast_rate_per_s=10.0,
        ...                                          duration_s=0.5, drain_s=0.5, seed=1))
        ...     finally:
        ...         await server.close()
        >>> result = asyncio.run(load_test())
        >>> result.summary.source, result.connected_clients, result.send_failures
        ('hub', 5, 0)
        >>> len(result.records.broadcasts) == result.summary.broadcasts
        True
    """

    records: RunRecords
    summary: RunSummary
    loadgen_cpu_s: float
    connected_clients: int = 0
    send_failures: int = 0
    foreign_messages: int = 0
    broadcast_cpu_s: float = 0.0
    broadcast_wall_s: float = 0.0
    broadcast_started_at_s: float = 0.0
    socket_reads: int = 0
    loop_wakeups: int = 0
    loop_passes: tuple[tuple[float, float, int], ...] = ()
    connection_failures: tuple[ConnectionFailure, ...] = ()
    started_at_s: float = 0.0
    reconnected: int = 0
    gave_up: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        """The summary's fields plus the load generator's own figures (``--json`` output)."""
        document: dict[str, Any] = {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in asdict(self.summary).items()
        }
        document["loadgen_cpu_s"] = round(self.loadgen_cpu_s, 4)
        wall_s = self.summary.wall_s
        document["loadgen_cpu_utilization"] = round(self.loadgen_cpu_s / wall_s, 4) if wall_s else None
        document["connected_clients"] = self.connected_clients
        document["send_failures"] = self.send_failures
        document["loadgen_broadcast_cpu_s"] = round(self.broadcast_cpu_s, 4)
        document["socket_reads"] = self.socket_reads
        document["loop_wakeups"] = self.loop_wakeups
        document["connection_failures"] = [asdict(failure) for failure in self.connection_failures]
        document["reconnected"] = self.reconnected
        document["gave_up"] = self.gave_up
        document["simscale_version"] = __version__
        return document


def describe_failure(error: HubConnectionError, url: str, timeout_s: float) -> str:
    """Why one connection attempt to ``url`` failed, in words a person can act on.

    ``error.reason`` is a short code made for records; this says which address refused, which path
    answered which HTTP status, or what the server said when it refused the handshake.
    """
    cause = error.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):  # negotiate could not open its TCP connection
        if isinstance(cause.os_error, ConnectionRefusedError):
            return f"connection refused ({cause.host}:{cause.port})"
        return f"cannot connect to {cause.host}:{cause.port}: {cause.os_error.strerror or cause.os_error}"
    target = URL(url)
    if isinstance(cause, ConnectionRefusedError):  # the WebSocket's own connect, after negotiate
        return f"connection refused ({target.host}:{target.port})"
    if error.reason.startswith("http_"):
        status = error.reason.removeprefix("http_")
        if isinstance(cause, HandshakeError | aiohttp.WSServerHandshakeError):
            return f"HTTP {status} on the WebSocket upgrade of {target.path}"
        # Without such a cause the status came from negotiate, which the clients raise themselves.
        return f"HTTP {status} from {target.path.rstrip('/')}/negotiate"
    if error.reason == "handshake_refused":
        return f"handshake error: {str(error).removeprefix('handshake refused: ')}"
    if error.reason == "handshake_timeout":
        return f"no open connection within {timeout_s:g} s (negotiate, upgrade and handshake)"
    return str(error)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (each client holds a socket); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, 1_048_576, 65_536):
        if target == resource.RLIM_INFINITY or target <= soft:
            continue
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


def poisson_offsets_s(rate_per_s: float, horizon_s: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Send times (seconds from the start of the broadcast phase) of a Poisson stream up to ``horizon_s``."""
    if rate_per_s <= 0:
        return np.empty(0)
    expected = rate_per_s * horizon_s
    batch = int(expected + 10 * math.sqrt(expected) + 20)
    parts: list[npt.NDArray[np.float64]] = []
    last = 0.0
    for _ in range(_MAX_SCHEDULE_ROUNDS):  # almost always one round
        offsets = last + np.cumsum(rng.exponential(1.0 / rate_per_s, size=batch))
        parts.append(offsets)
        last = float(offsets[-1])
        if last >= horizon_s:
            break
    offsets = np.concatenate(parts)
    return offsets[offsets < horizon_s]


class _Tally:
    """Per-(broadcast, server) delivery counts and latency sums, in numpy arrays."""

    def __init__(self, broadcasts: int, servers: int, first_measured: int) -> None:
        shape = (broadcasts, servers)
        self.broadcasts = broadcasts
        self.first_measured = first_measured
        self.delivered = np.zeros(shape, dtype=np.int64)
        self.latency_sum_s = np.zeros(shape)
        self.latency_max_s = np.full(shape, -math.inf)
        self.recipients = np.zeros(shape, dtype=np.int64)
        self.sent_at_s = np.full(broadcasts, math.nan)
        self.origin_server = np.full(broadcasts, -1, dtype=np.int64)
        self.connected_clients = np.zeros(broadcasts, dtype=np.int64)
        self.histogram = LatencyHistogram()
        self._chunk = np.empty(_LATENCY_CHUNK)
        self._filled = 0
        self.delivered_total = 0
        """Deliveries of any sent broadcast (warm-up included): what the drain waits for."""
        self.expected_total = 0
        self.foreign = 0
        self.uncounted = 0
        """Deliveries to a client that reconnected after the send (it was not among the recipients)."""

    def note_send(
        self, index: int, sent_at_s: float, origin: int, connected: int, per_server: npt.NDArray[np.int64]
    ) -> None:
        self.sent_at_s[index] = sent_at_s
        self.origin_server[index] = origin
        self.connected_clients[index] = connected
        self.recipients[index] = per_server
        self.expected_total += connected

    def forget_send(self, index: int) -> None:
        self.expected_total -= int(self.connected_clients[index])
        self.sent_at_s[index] = math.nan
        self.connected_clients[index] = 0
        self.recipients[index] = 0

    def record(self, index: int, server: int, latency_s: float) -> None:
        if not 0 <= index < self.broadcasts:
            self.foreign += 1
            return
        self.delivered[index, server] += 1
        self.latency_sum_s[index, server] += latency_s
        if latency_s > self.latency_max_s[index, server]:
            self.latency_max_s[index, server] = latency_s
        self.delivered_total += 1
        if index >= self.first_measured:
            self._chunk[self._filled] = latency_s
            self._filled += 1
            if self._filled == _LATENCY_CHUNK:
                self.flush()

    def flush(self) -> None:
        if self._filled:
            self.histogram.add(self._chunk[: self._filled])
            self._filled = 0


class _Member:
    """One client of the run: which server it is on and how it tallies what it receives."""

    __slots__ = ("client", "connected_since_s", "index", "position", "prefix", "server", "tally")

    def __init__(self, server: int, tally: _Tally, prefix: str, index: int = -1) -> None:
        self.client: LeanHubClient | None = None
        self.index = index
        """The client's index in the run (client ``i`` of ``clients``)."""
        self.server = server
        self.tally = tally
        self.prefix = prefix
        self.position = -1
        """Index in the run's list of connected members (-1 when not connected)."""
        self.connected_since_s = 0.0
        """``time.perf_counter()`` when its current connection was counted as connected."""

    def on_invocation(self, invocation: InvocationMessage, received_s: float) -> None:
        if invocation.target != "ReceiveMessage":
            return
        prefix = self.prefix
        try:
            user, message = invocation.arguments
            if not user.startswith(prefix):
                raise ValueError(user)
            index = int(user[len(prefix) :])
            sent_s = float(message[: message.index("|")])
        except (AttributeError, ValueError, TypeError):
            self.tally.foreign += 1
            return
        if sent_s < self.connected_since_s:
            # Sent before this (re)connection was counted, so not among the send's recipients: counting it
            # would push the delivered fraction past 1 in a reconnect storm.
            self.tally.uncounted += 1
            return
        self.tally.record(index, self.server, received_s - sent_s)


class _Run:
    """The mutable state of one run (kept off the public API)."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.prefix = f"lg{secrets.token_hex(3)}-"
        horizon_s = config.warmup_s + config.duration_s
        self.offsets_s = poisson_offsets_s(config.broadcast_rate_per_s, horizon_s, self.rng)
        first_measured = int(np.searchsorted(self.offsets_s, config.warmup_s, side="left"))
        self.tally = _Tally(len(self.offsets_s), config.servers, first_measured)
        self.connected: list[_Member] = []
        self.per_server = np.zeros(config.servers, dtype=np.int64)
        self.records = RunRecords()
        self.stopping = False
        self.dropped = 0
        self.refused = 0
        self.send_failures = 0
        self.read_counter = ReadCounter(trace=config.trace_loop_passes)
        self.broadcast_cpu_s = 0.0
        self.broadcast_wall_s = 0.0
        self.broadcast_started_at_s = 0.0
        self.socket_reads = 0
        self.loop_wakeups = 0
        self.failures: list[ConnectionFailure] = []
        self.by_client: list[_Member | None] = [None] * config.clients
        self.connected_mask = np.zeros(config.clients, dtype=bool)
        """``connected_mask[i]``: client ``i`` is connected now."""
        self.pick_rng = sends_rng(config.seed)
        """Picks each group send's group and sender: the model's stream and rule for the same seed."""
        """Each client's member once it connected (``None``: it never did)."""
        self.group_members = (
            draw_membership(
                seed=config.seed,
                clients=config.clients,
                groups=config.groups,
                group_size=config.group_size,
                groups_per_client=config.groups_per_client,
                connections_per_user=1,
            ).members
            if config.send_target == "group"
            else None
        )
        """The groups' client indices: the membership the model draws for the same seed and sizes."""
        self.reconnect_rng = np.random.default_rng([config.seed, _RECONNECT_STREAM])
        """Draws the reconnect jitter (a stream of its own: the sends stay those of the same seed without it)."""
        self.reconnect_refused: Counter[tuple[int, str]] = Counter()
        self.reconnect_details: dict[tuple[int, str], str] = {}
        self.reconnect_tasks: set[asyncio.Task[None]] = set()
        self.reconnected = 0
        self.gave_up = 0
        self.next_server = 0
        """Round-robin cursor of the reconnect attempts over the URLs."""
        self.down_until_s = np.zeros(config.servers)
        """Per server: no reconnect attempt goes there before this time (it refused a TCP connection)."""
        self.session: aiohttp.ClientSession | None = None
        self.gate: asyncio.Semaphore | None = None
        self.user_of = (
            user_of_clients(config.clients, config.connections_per_user) if config.send_target == "user" else None
        )
        """Each client's user (the model's mapping), or ``None`` when nobody sends to users."""
        self.t0 = time.perf_counter()

    def group_name(self, group: int) -> str:
        """The hub group of group ``group`` (prefixed by the run, so runs on one hub do not mix)."""
        return f"{self.prefix}g{group}"

    def user_name(self, user: int) -> str:
        """User ``user``'s id, which is also its bearer token (prefixed by the run, like the groups)."""
        return f"{self.prefix}u{user}"

    def access_token(self, index: int) -> str | None:
        """The bearer token client ``index`` connects with: its user's own with user sends."""
        if self.user_of is None:
            return self.config.access_token
        return self.user_name(int(self.user_of[index]))

    def now_s(self) -> float:
        return time.perf_counter() - self.t0

    def attach(self, member: _Member) -> None:
        member.connected_since_s = time.perf_counter()
        member.position = len(self.connected)
        self.connected.append(member)
        self.per_server[member.server] += 1
        if member.index >= 0:
            self.connected_mask[member.index] = True

    def detach(self, member: _Member) -> None:
        position = member.position
        if position < 0:
            return
        last = self.connected.pop()
        if last is not member:
            self.connected[position] = last
            last.position = position
        member.position = -1
        self.per_server[member.server] -= 1
        if member.index >= 0:
            self.connected_mask[member.index] = False

    def on_close(self, member: _Member, reason: str | None) -> None:
        self.detach(member)
        if not self.stopping:
            self.dropped += 1
            self.records.connections.append(
                ConnectionEvent(
                    "hub",
                    self.config.scenario,
                    self.now_s(),
                    member.server,
                    ConnectionEventKind.DROPPED,
                    reason or "server_closed",
                )
            )
            task = asyncio.get_running_loop().create_task(self.reconnect(member, member.server))
            self.reconnect_tasks.add(task)
            task.add_done_callback(self.reconnect_tasks.discard)

    def new_client(self, member: _Member, session: aiohttp.ClientSession) -> LeanHubClient:
        config = self.config
        client = member.client = LeanHubClient(
            config.urls[member.server],
            member.on_invocation,
            protocol=config.protocol,
            access_token=config.access_token,
            session=session,
            handshake_timeout_s=config.connect_timeout_s,
            read_counter=self.read_counter,
        )
        return client

    def pick_server(self, avoid: int) -> int:
        """The next URL round-robin, skipping ``avoid`` and servers marked down (unless nothing else is left)."""
        servers = self.config.servers
        now_s = self.now_s()
        candidates = [
            (self.next_server + step) % servers
            for step in range(servers)
            if (self.next_server + step) % servers != avoid or servers == 1
        ]
        up = [server for server in candidates if self.down_until_s[server] <= now_s]
        server = (up or candidates)[0]
        self.next_server = (server + 1) % servers
        return server

    def jittered(self, delay_s: float) -> float:
        """``delay_s`` × U(1 - jitter, 1 + jitter), as the model's clients draw it (no draw without jitter)."""
        spread = self.config.reconnect_jitter
        if spread <= 0:
            return delay_s
        return delay_s * float(self.reconnect_rng.uniform(1.0 - spread, 1.0 + spread))

    async def reconnect(self, member: _Member, dropped_from: int) -> None:
        """Attempt after each reconnect delay in turn until one succeeds; give up after the last."""
        config = self.config
        assert self.session is not None and self.gate is not None
        for attempt, delay_s in enumerate(config.reconnect_delays_s):
            wait_s = self.jittered(delay_s)
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            async with self.gate:
                if self.stopping:
                    return
                member.server = self.pick_server(dropped_from if attempt == 0 else -1)
                client = self.new_client(member, self.session)
                try:
                    await client.start()
                except HubConnectionError as error:
                    self.note_reconnect_failure(member.server, error)
                    continue
                except asyncio.CancelledError:
                    client.abort()
                    raise
            self.reconnected += 1
            self.records.connections.append(
                ConnectionEvent(
                    "hub", config.scenario, self.now_s(), member.server, ConnectionEventKind.CONNECTED, "ok"
                )
            )
            client.on_close(lambda reason: self.on_close(member, reason))
            self.attach(member)
            if client.state is ConnectionState.CLOSED:  # closed before the callback was in place
                self.on_close(member, client.close_reason)
            else:
                self.rejoin_groups(member, client)
            return
        self.gave_up += 1
        self.records.connections.append(
            ConnectionEvent(
                "hub", config.scenario, self.now_s(), NO_SERVER, ConnectionEventKind.GAVE_UP,
                "retries_exhausted_after_drop",
            )
        )  # fmt: skip

    def rejoin_groups(self, member: _Member, client: LeanHubClient) -> None:
        """A new connection is in no group: join the client's groups again (what an app's onreconnected does)."""
        if self.group_members is None:
            return
        for group in np.flatnonzero((self.group_members == member.index).any(axis=1)).tolist():
            with contextlib.suppress(HubConnectionError):
                client.send("JoinGroup", self.group_name(group))

    def note_reconnect_failure(self, server: int, error: HubConnectionError) -> None:
        config, now_s = self.config, self.now_s()
        self.refused += 1
        key = (server, error.reason)
        self.reconnect_refused[key] += 1
        self.reconnect_details.setdefault(key, describe_failure(error, config.urls[server], config.connect_timeout_s))
        if error.reason == "connection_refused":
            self.down_until_s[server] = now_s + _DOWN_FOR_S
        self.records.connections.append(
            ConnectionEvent("hub", config.scenario, now_s, server, ConnectionEventKind.REFUSED, error.reason)
        )

    async def cancel_reconnects(self) -> None:
        tasks = list(self.reconnect_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def all_failures(self) -> tuple[ConnectionFailure, ...]:
        """First-connect failures and reconnect failures, one entry per (server, reason)."""
        merged = {(failure.server, failure.reason): failure for failure in self.failures}
        for (server, reason), count in sorted(self.reconnect_refused.items()):
            known = merged.get((server, reason))
            merged[(server, reason)] = (
                dataclasses.replace(known, clients=known.clients + count)
                if known is not None
                else ConnectionFailure(
                    server, self.config.urls[server], reason, self.reconnect_details[(server, reason)], count
                )
            )
        return tuple(merged[key] for key in sorted(merged))

    async def connect(self, session: aiohttp.ClientSession) -> list[_Member]:
        config = self.config
        gate = self.gate = asyncio.Semaphore(config.connect_concurrency)
        self.session = session
        refused: Counter[tuple[int, str]] = Counter()
        details: dict[tuple[int, str], str] = {}

        async def connect_one(index: int) -> _Member | None:
            server = index % config.servers
            member = _Member(server, self.tally, self.prefix, index)
            client = member.client = LeanHubClient(
                config.urls[server],
                member.on_invocation,
                protocol=config.protocol,
                access_token=self.access_token(index),
                session=session,
                handshake_timeout_s=config.connect_timeout_s,
                read_counter=self.read_counter,
            )
            async with gate:
                try:
                    await client.start()
                except HubConnectionError as error:
                    refused[(server, error.reason)] += 1
                    details.setdefault(
                        (server, error.reason), describe_failure(error, config.urls[server], config.connect_timeout_s)
                    )
                    return None
            client.on_close(lambda reason: self.on_close(member, reason))
            self.attach(member)
            self.by_client[index] = member
            if client.state is ConnectionState.CLOSED:  # closed before the callback was in place
                self.on_close(member, client.close_reason)
            return member

        results = await asyncio.gather(*(connect_one(i) for i in range(config.clients)))
        members = [m for m in results if m is not None]
        now_s = self.now_s()
        for server in range(config.servers):
            count = int(sum(1 for m in members if m.server == server))
            if count:
                self.records.connections.append(
                    ConnectionEvent("hub", config.scenario, now_s, server, ConnectionEventKind.CONNECTED, "ok", count)
                )
        for (server, reason), count in sorted(refused.items()):
            self.refused += count
            self.records.connections.append(
                ConnectionEvent("hub", config.scenario, now_s, server, ConnectionEventKind.REFUSED, reason, count)
            )
            self.failures.append(
                ConnectionFailure(server, config.urls[server], reason, details[(server, reason)], count)
            )
        return members

    async def join_groups(self) -> int:
        """Every connected client calls JoinGroup for each of its groups; returns the calls sent.

        The calls are non-blocking; the servers subscribe the group channels while ``join_settle_s``
        passes (and the warm-up's sends are not counted)."""
        if self.group_members is None:
            return 0
        joins = 0
        for group, row in enumerate(self.group_members.tolist()):
            for client_index in row:
                member = self.by_client[client_index]
                if member is None or member.client is None or member.position < 0:
                    continue
                with contextlib.suppress(HubConnectionError):
                    member.client.send("JoinGroup", self.group_name(group))
                    joins += 1
        await asyncio.sleep(self.config.join_settle_s)
        return joins

    def _pick_group_sender(self) -> tuple[int, _Member, list[_Member]] | None:
        """A random group, a random connected member to send, and its connected members."""
        assert self.group_members is not None
        group, sender = draw_group_send(self.pick_rng, self.group_members, self.connected_mask)
        if sender < 0:
            return None
        connected = [
            member
            for client_index in self.group_members[group].tolist()
            if (member := self.by_client[client_index]) is not None and member.position >= 0
        ]
        chosen = self.by_client[sender]
        assert chosen is not None
        return group, chosen, connected

    def _pick_user_send(self) -> tuple[int, _Member, list[_Member]] | None:
        """A random connected sender, a random user, and that user's connected connections."""
        config = self.config
        user, sender = draw_user_send(self.pick_rng, config.users, self.connected_mask)
        if sender < 0:
            return None
        connected = [
            member
            for client_index in connections_of_user(user, config.connections_per_user, config.clients).tolist()
            if (member := self.by_client[client_index]) is not None and member.position >= 0
        ]
        chosen = self.by_client[sender]
        assert chosen is not None
        return user, chosen, connected

    def _pick_connection_send(self) -> tuple[str, _Member, list[_Member]] | None:
        """A random connected sender, a random client, and that client's connection if it is connected."""
        target, sender = draw_connection_send(self.pick_rng, self.connected_mask)
        if sender < 0:
            return None
        member = self.by_client[target]
        client = None if member is None or member.position < 0 else member.client
        # A client that is not connected has no connection: the send goes to an id nobody holds.
        connection_id = None if client is None else client.connection_id
        chosen = self.by_client[sender]
        assert chosen is not None
        audience = [] if member is None or connection_id is None else [member]
        return connection_id or f"{self.prefix}c{target}", chosen, audience

    def _pick_audience(self) -> tuple[str, str, _Member, list[_Member]] | None:
        """A targeted send: the hub method, its audience's key, the sender and the connected recipients."""
        if self.group_members is not None:
            group_pick = self._pick_group_sender()
            if group_pick is None:
                return None
            group, member, audience = group_pick
            return "SendToGroup", self.group_name(group), member, audience
        if self.user_of is not None:
            user_pick = self._pick_user_send()
            if user_pick is None:
                return None
            user, member, audience = user_pick
            return "SendToUser", self.user_name(user), member, audience
        connection_pick = self._pick_connection_send()
        if connection_pick is None:
            return None
        return ("SendToConnection", *connection_pick)

    async def broadcast(self) -> None:
        config, tally = self.config, self.tally
        padding = config.message_bytes
        # The event loop's own thread: a caller's sampling threads are not the load generator.
        counter = self.read_counter
        cpu_start_s, reads_start, wakeups_start = time.thread_time(), counter.reads, counter.wakeups
        start = self.broadcast_started_at_s = time.perf_counter()
        for index, offset_s in enumerate(self.offsets_s.tolist()):  # bounded by the schedule
            delay_s = start + offset_s - time.perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            group_args: tuple[str, ...] = ()
            method = "SendMessage"
            if config.send_target == "all":
                if not self.connected:
                    continue
                member = self.connected[int(self.rng.integers(len(self.connected)))]
                recipients, per_server = len(self.connected), self.per_server
            else:
                # Drawn even with nobody connected (then nothing is sent), as the model draws it: the
                # picks of later sends stay in step.
                picked = self._pick_audience()
                if picked is None:
                    continue
                method, key, member, audience = picked
                group_args = (key,)
                recipients = len(audience)
                per_server = np.bincount([m.server for m in audience], minlength=config.servers).astype(np.int64)
            sent_s = time.perf_counter()
            head = f"{sent_s!r}|"
            message = head + "x" * max(0, padding - len(head))
            tally.note_send(index, sent_s - self.t0, member.server, recipients, per_server)
            try:
                assert member.client is not None
                member.client.send(method, *group_args, f"{self.prefix}{index}", message)
            except HubConnectionError:
                tally.forget_send(index)
                self.send_failures += 1
        end_s = start + config.warmup_s + config.duration_s
        remaining_s = end_s - time.perf_counter()
        if remaining_s > 0:
            await asyncio.sleep(remaining_s)
        deadline = time.perf_counter() + config.drain_s
        while tally.delivered_total < tally.expected_total and time.perf_counter() < deadline:
            await asyncio.sleep(_POLL_S)
        tally.flush()
        self.broadcast_cpu_s = time.thread_time() - cpu_start_s
        self.broadcast_wall_s = time.perf_counter() - start
        self.socket_reads = counter.reads - reads_start
        self.loop_wakeups = counter.wakeups - wakeups_start

    async def keep_alive(self) -> None:
        """Ping every connected client once per interval, a slice at a time (runs until cancelled)."""
        tick = 0
        while True:
            await asyncio.sleep(_KEEPALIVE_INTERVAL_S / _KEEPALIVE_SLICES)
            for member in self.connected[tick % _KEEPALIVE_SLICES :: _KEEPALIVE_SLICES]:
                if member.client is not None:
                    with contextlib.suppress(HubConnectionError):
                        member.client.ping()
            tick += 1

    async def stop(self, members: list[_Member]) -> None:
        self.stopping = True
        await self.cancel_reconnects()
        gate = asyncio.Semaphore(self.config.connect_concurrency)
        closed: Counter[int] = Counter()

        async def stop_one(member: _Member) -> None:
            async with gate:
                if member.position >= 0:
                    closed[member.server] += 1
                if member.client is not None:
                    await member.client.stop()

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await asyncio.gather(*(stop_one(m) for m in members))
        now_s = self.now_s()
        for server, count in sorted(closed.items()):
            self.records.connections.append(
                ConnectionEvent(
                    "hub", self.config.scenario, now_s, server, ConnectionEventKind.CLOSED, "client_stop", count
                )
            )

    def build_records(self) -> tuple[int, int]:
        """Fill broadcast and delivery records for the measured, sent broadcasts."""
        config, tally, records = self.config, self.tally, self.records
        measured = [
            index for index in range(tally.first_measured, tally.broadcasts) if not math.isnan(tally.sent_at_s[index])
        ]
        for index in measured:
            origin = int(tally.origin_server[index])
            sent_at_s = float(tally.sent_at_s[index])
            records.broadcasts.append(
                BroadcastRecord(
                    "hub",
                    config.scenario,
                    index,
                    origin,
                    sent_at_s,
                    int(tally.connected_clients[index]),
                    config.send_target,
                )
            )
            for server in range(config.servers):
                delivered = int(tally.delivered[index, server])
                records.deliveries.append(
                    DeliveryRecord(
                        "hub",
                        config.scenario,
                        index,
                        server,
                        origin,
                        sent_at_s,
                        int(tally.recipients[index, server]),
                        delivered,
                        float(tally.latency_sum_s[index, server]) / delivered if delivered else math.nan,
                        float(tally.latency_max_s[index, server]) if delivered else math.nan,
                        config.send_target,
                    )
                )
        records.latency = tally.histogram
        delivered_total = sum(record.delivered for record in records.deliveries)
        expected_total = sum(record.connected_clients for record in records.broadcasts)
        return delivered_total, expected_total


def _ms_or_none(histogram: LatencyHistogram, q: float) -> float | None:
    value = histogram.quantile_s(q)
    return None if math.isnan(value) else value * 1000.0


async def run_load(config: LoadConfig, *, on_phase: Callable[[str], None] | None = None) -> LoadResult:
    """Connect ``config.clients`` clients, broadcast, measure, disconnect.

    Bounded in time: connecting (each attempt bounded by ``connect_timeout_s``), warm-up plus
    duration, at most ``drain_s`` of drain, and at most 30 s of stopping.

    ``on_phase`` (if given) is called in the event loop with ``"broadcast_start"`` just before the
    first scheduled send and ``"broadcast_end"`` once the drain is over, so a caller can read other
    processes' counters exactly at the phase boundaries.

    Example (against simscale's own hub on a free port; ``simscale loadgen`` does this from a shell):

        >>> import asyncio
        >>> from simscale.hub import HubServer
        >>> from simscale.loadgen import LoadConfig, run_load
        >>> async def load_test():
        ...     server = HubServer()
        ...     url = await server.listen("127.0.0.1", 0)
        ...     try:
        ...         return await run_load(LoadConfig(urls=(f"{url}/chatHub",), clients=5, broadcast_rate_per_s=10.0,
        ...                                          duration_s=0.5, drain_s=0.5, seed=1))
        ...     finally:
        ...         await server.close()
        >>> result = asyncio.run(load_test())
        >>> result.summary.clients, result.summary.delivered_fraction
        (5, 1.0)
    """
    raise_open_file_limit()
    cpu_start_s = time.process_time()
    run = _Run(config)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        keepalive = asyncio.create_task(run.keep_alive())
        try:
            members = await run.connect(session)
            connected_at_start = len(run.connected)
            run.records.clients_ever_connected = len(members)  # the load generator connects each client once
            await run.join_groups()
            try:
                if on_phase is not None:
                    on_phase("broadcast_start")
                await run.broadcast()
                if on_phase is not None:
                    on_phase("broadcast_end")
            finally:
                await run.stop(members)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
    delivered, expected = run.build_records()
    wall_s = time.perf_counter() - run.t0
    histogram = run.records.latency
    summary = RunSummary(
        scenario=config.scenario,
        servers=None,
        clients=config.clients,
        duration_s=float(config.duration_s),
        broadcasts=len(run.records.broadcasts),
        delivered_fraction=delivered / expected if expected else None,
        latency_p50_ms=_ms_or_none(histogram, 0.5),
        latency_p99_ms=_ms_or_none(histogram, 0.99),
        connections_refused=run.refused,
        connections_dropped=run.dropped,
        cpu_utilization_max=None,
        wall_s=wall_s,
        events=None,
        deliveries=delivered,
        deliveries_per_s=delivered / config.duration_s,
        source="hub",
        clients_connected=clients_connected_mean(run.records),
        clients_never_connected=config.clients - (run.records.clients_ever_connected or 0),
        delivered_fraction_all_clients=delivered_fraction_all_clients(run.records, config.clients),
        servers_reached_per_send=servers_reached_per_send(run.records),
    )
    return LoadResult(
        records=run.records,
        summary=summary,
        loadgen_cpu_s=time.process_time() - cpu_start_s,
        connected_clients=connected_at_start,
        send_failures=run.send_failures,
        foreign_messages=run.tally.foreign,
        broadcast_cpu_s=run.broadcast_cpu_s,
        broadcast_wall_s=run.broadcast_wall_s,
        broadcast_started_at_s=run.broadcast_started_at_s,
        socket_reads=run.socket_reads,
        loop_wakeups=run.loop_wakeups,
        loop_passes=tuple(
            (started_s - run.t0, ended_s - run.t0, reads) for started_s, ended_s, reads in run.read_counter.passes
        ),
        connection_failures=run.all_failures(),
        started_at_s=run.t0,
        reconnected=run.reconnected,
        gave_up=run.gave_up,
    )
