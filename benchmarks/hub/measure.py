"""One peer, one run: the scenarios that produce every figure in the table.

A run of a peer has three scenarios, each with fresh server processes:

1. ``single``: one server. Warm up, connect the idle population (connections/s, RSS per idle
   connection, idle CPU over a window), keep the fan-out population, then a burst (deliveries/s,
   server CPU µs per delivery) and paced rates (p50/p99, delivered fraction).
2. ``redis``: two servers sharing a real Redis, clients split between them, the sender on the first;
   the same burst and paced rates (server CPU is the sum of both servers).
3. ``tls``: one server with a self-signed certificate: RSS per idle TLS connection, connections/s.
4. ``sustain``: one server; for ``sustain_s`` seconds, ``sustain_in_flight`` clients at a time each
   negotiate, upgrade and complete the handshake, then drop (a reconnect storm): sustained connects/s.

Figures are flat ``{metric: value}`` dictionaries; a scenario that fails records ``error:<scenario>``
and leaves its metrics out, so one broken peer never stops the benchmark.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.hub.catalog import Peer
from benchmarks.hub.processes import LoadGenProcess, RedisProcess, ServerProcess

Figures = dict[str, Any]
WARM_CLIENTS = 16


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; ``full()`` is the benchmark's full size, ``quick()`` a smoke run."""

    idle_connections: int
    tls_connections: int
    fanout_clients: int
    burst_broadcasts: int
    burst_repeats: int
    rates_per_s: tuple[int, ...]
    rate_duration_s: float
    drain_s: float
    burst_drain_s: float
    idle_window_s: float
    """Shortest idle-CPU window; it is stretched to the peer's keep-alive period when
    ``idle_window_spans_keepalive``."""
    settle_s: float
    idle_window_spans_keepalive: bool
    sustain_s: float = 30.0
    """How long the sustained-connects figure keeps connecting."""
    sustain_in_flight: int = 100
    """Clients being connected at once for that figure."""

    def __post_init__(self) -> None:
        if not self.sustain_s > 0:
            raise ValueError(f"sustain_s must be > 0 seconds, got {self.sustain_s!r}")
        if self.sustain_in_flight < 1:
            raise ValueError(f"sustain_in_flight must be >= 1, got {self.sustain_in_flight!r}")

    @classmethod
    def full(cls) -> Sizes:
        """10k idle connections, 1,000 fan-out clients, 5k/20k/50k deliveries/s offered."""
        return cls(10_000, 2_000, 1_000, 60, 3, (5_000, 20_000, 50_000), 2.0, 2.0, 20.0, 10.0, 1.5, True)

    @classmethod
    def quick(cls) -> Sizes:
        """Tiny sizes for a smoke run (well under a minute for two peers)."""
        return cls(300, 100, 50, 20, 1, (1_000, 5_000), 1.0, 1.0, 5.0, 1.0, 0.3, False, sustain_s=2.0)


@dataclass
class Context:
    """What every scenario needs: sizes, log folder, TLS files, a Redis URL."""

    sizes: Sizes
    log_dir: Path
    tls_files: tuple[Path, Path, Path] | None
    """(certificate chain, key, CA) or None when TLS is skipped."""
    redis: RedisProcess | None
    signalr_protocol: str = "json"
    sustain: bool = True
    """Whether to measure the sustained-connects figure."""


def _loadgen(peer: Peer, context: Context, urls: list[str], tag: str, tls_ca: Path | None = None) -> LoadGenProcess:
    spec = {
        "adapter": peer.adapter,
        "urls": urls,
        "signalr_protocol": context.signalr_protocol,
        "tls_ca": str(tls_ca) if tls_ca else None,
    }
    return LoadGenProcess(spec, context.log_dir / f"loadgen-{peer.key}-{tag}.log")


def _connect_timeout(count: int) -> float:
    return 60.0 + count / 100.0


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy (all processes, ours and others')."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _burst_and_rates(
    servers: list[ServerProcess], loadgen: LoadGenProcess, sizes: Sizes, prefix: str, figures: Figures
) -> None:
    """Warm-up burst, measured burst, then the paced rates; server CPU summed over ``servers``."""

    def server_cpu() -> float:
        return sum(server.cpu_s() for server in servers)

    loadgen.call(sizes.burst_drain_s + 30, "burst", broadcasts=max(2, sizes.burst_broadcasts // 10),
                 drain_s=sizes.burst_drain_s)  # fmt: skip
    # Several bursts; the fastest is the one least disturbed by the rest of the (shared) machine.
    # CPU per delivery is summed over all of them: it barely depends on the disturbance.
    bursts: list[tuple[dict[str, Any], float, float]] = []
    for _ in range(sizes.burst_repeats):
        cpu_before, machine_before = server_cpu(), machine_busy_s()
        answer = loadgen.call(sizes.burst_drain_s + 60, "burst", broadcasts=sizes.burst_broadcasts,
                              drain_s=sizes.burst_drain_s)  # fmt: skip
        cpu_s = server_cpu() - cpu_before
        foreign_s = max(0.0, machine_busy_s() - machine_before - cpu_s - answer["loadgen_cpu_s"])
        bursts.append((answer, cpu_s, foreign_s))
    burst, cpu_s, foreign_s = max(bursts, key=lambda item: item[0]["deliveries_per_s"])
    figures[f"{prefix}burst_foreign_cpu"] = foreign_s / max(burst["wall_s"], 1e-9)
    figures[f"{prefix}burst_deliveries_per_s"] = burst["deliveries_per_s"]
    figures[f"{prefix}burst_all_deliveries_per_s"] = [round(item[0]["deliveries_per_s"]) for item in bursts]
    figures[f"{prefix}burst_delivered_fraction"] = min(item[0]["delivered_fraction"] for item in bursts)
    figures[f"{prefix}burst_recipients"] = burst["recipients"]
    figures[f"{prefix}burst_loadgen_cpu"] = burst["loadgen_cpu_fraction"]
    figures[f"{prefix}burst_server_cpu"] = cpu_s / max(burst["wall_s"], 1e-9)
    delivered = sum(item[0]["delivered"] for item in bursts)
    total_cpu_s = sum(item[1] for item in bursts)
    if delivered and total_cpu_s > 0:
        figures[f"{prefix}cpu_us_per_delivery"] = total_cpu_s / delivered * 1e6
        # What one fully busy server core would deliver: independent of the load generator's ceiling.
        figures[f"{prefix}deliveries_per_server_cpu_s"] = delivered / total_cpu_s
    errors = [item[0]["reader_errors"] for item in bursts if item[0].get("reader_errors")]
    if errors:
        figures[f"{prefix}burst_reader_errors"] = errors[-1]
    for rate in sizes.rates_per_s:
        cpu_before = server_cpu()
        answer = loadgen.call(sizes.rate_duration_s + sizes.drain_s + 60, "rate", deliveries_per_s=rate,
                              duration_s=sizes.rate_duration_s, drain_s=sizes.drain_s)  # fmt: skip
        cpu_s = server_cpu() - cpu_before
        key = f"{prefix}rate{rate}"
        figures[f"{key}_p50_ms"] = answer["p50_ms"]
        figures[f"{key}_p99_ms"] = answer["p99_ms"]
        figures[f"{key}_delivered_fraction"] = answer["delivered_fraction"]
        figures[f"{key}_loadgen_cpu"] = answer["loadgen_cpu_fraction"]
        figures[f"{key}_server_cpu"] = cpu_s / max(answer["wall_s"], 1e-9)
        figures[f"{key}_late_sends"] = answer["late_sends"]


def _idle_population(
    server: ServerProcess, loadgen: LoadGenProcess, count: int, sizes: Sizes, prefix: str, figures: Figures,
    idle_window_s: float | None,
) -> None:  # fmt: skip
    """Connect ``count`` clients after a warm-up; RSS per connection, connections/s, idle CPU."""
    loadgen.call(_connect_timeout(WARM_CLIENTS), "connect", count=WARM_CLIENTS)
    time.sleep(sizes.settle_s)
    rss_before = server.rss_bytes()
    connected = loadgen.call(_connect_timeout(count), "connect", count=count)
    figures[f"{prefix}connections_per_s"] = connected["connections_per_s"]
    figures[f"{prefix}connect_failed"] = connected["failed"]
    figures[f"{prefix}connect_loadgen_cpu"] = connected["loadgen_cpu_fraction"]
    if connected["failed"]:
        figures[f"{prefix}connect_failures"] = connected["failures"]
    loadgen.call(sizes.settle_s + 30, "sleep", seconds=sizes.settle_s)
    rss_after = server.rss_bytes()
    if connected["opened"]:
        figures[f"{prefix}rss_per_idle_conn_kb"] = (rss_after - rss_before) / connected["opened"] / 1024
    figures[f"{prefix}server_rss_mb"] = rss_after / 2**20
    if idle_window_s is not None:
        figures[f"{prefix}idle_window_s"] = idle_window_s
        cpu_before, wall_before = server.cpu_s(), time.perf_counter()
        idle = loadgen.call(idle_window_s + 30, "sleep", seconds=idle_window_s)
        figures[f"{prefix}idle_cpu_pct"] = (server.cpu_s() - cpu_before) / (time.perf_counter() - wall_before) * 100
        figures[f"{prefix}idle_loadgen_cpu"] = idle["loadgen_cpu_fraction"]
        figures[f"{prefix}idle_clients_alive"] = idle["clients"]


def _record_timings(loadgen: LoadGenProcess, figures: Figures) -> None:
    for command, seconds in loadgen.seconds_by_command.items():
        key = f"seconds:loadgen:{command}"
        figures[key] = round(figures.get(key, 0.0) + seconds, 1)


def _scenario(name: str, figures: Figures, body: Callable[[], None]) -> None:
    started = time.perf_counter()
    try:
        body()
    except Exception as error:
        figures[f"error:{name}"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    figures[f"seconds:{name}"] = round(time.perf_counter() - started, 1)


def measure_peer(peer: Peer, context: Context, run_index: int) -> Figures:
    """All scenarios for one peer in one run."""
    figures: Figures = {"loadavg_1m": os.getloadavg()[0]}
    sizes = context.sizes
    tag = f"run{run_index}"
    window = sizes.idle_window_s
    if sizes.idle_window_spans_keepalive:
        window = max(window, peer.keepalive_s)

    def single() -> None:
        server = ServerProcess(peer.key, peer.command(), context.log_dir / f"server-{peer.key}-{tag}.log")
        loadgen: LoadGenProcess | None = None
        try:
            loadgen = _loadgen(peer, context, [server.url], tag)
            figures["framing"] = loadgen.ready.get("framing", peer.adapter)
            _idle_population(server, loadgen, sizes.idle_connections, sizes, "", figures, idle_window_s=window)
            loadgen.call(120, "close", keep=sizes.fanout_clients)
            _burst_and_rates([server], loadgen, sizes, "", figures)
            figures["server_alive"] = server.alive()
        finally:
            if loadgen is not None:
                _record_timings(loadgen, figures)
                loadgen.stop()
            server.stop()

    def redis() -> None:
        assert context.redis is not None and peer.redis_option is not None
        servers: list[ServerProcess] = []
        loadgen: LoadGenProcess | None = None
        try:
            for index in range(2):
                log = context.log_dir / f"server-{peer.key}-{tag}-redis{index}.log"
                servers.append(ServerProcess(f"{peer.key}#{index}", peer.command(redis_url=context.redis.url), log))
            loadgen = _loadgen(peer, context, [server.url for server in servers], f"{tag}-redis")
            answer = loadgen.call(_connect_timeout(sizes.fanout_clients), "connect", count=sizes.fanout_clients)
            figures["redis_connect_failed"] = answer["failed"]
            time.sleep(sizes.settle_s)
            redis_cpu_before = context.redis.cpu_s()
            _burst_and_rates(servers, loadgen, sizes, "redis_", figures)
            figures["redis_redis_cpu_s"] = context.redis.cpu_s() - redis_cpu_before
        finally:
            if loadgen is not None:
                _record_timings(loadgen, figures)
                loadgen.stop()
            for server in servers:
                server.stop()

    def tls() -> None:
        assert context.tls_files is not None and peer.tls_options is not None
        chain, key, ca = context.tls_files
        server = ServerProcess(peer.key, peer.command(tls=(chain, key)),
                               context.log_dir / f"server-{peer.key}-{tag}-tls.log")  # fmt: skip
        loadgen: LoadGenProcess | None = None
        try:
            loadgen = _loadgen(peer, context, [server.url], f"{tag}-tls", tls_ca=ca)
            _idle_population(server, loadgen, sizes.tls_connections, sizes, "tls_", figures, idle_window_s=None)
        finally:
            if loadgen is not None:
                _record_timings(loadgen, figures)
                loadgen.stop()
            server.stop()

    def sustain() -> None:
        server = ServerProcess(peer.key, peer.command(), context.log_dir / f"server-{peer.key}-{tag}-sustain.log")
        loadgen: LoadGenProcess | None = None
        try:
            loadgen = _loadgen(peer, context, [server.url], f"{tag}-sustain")
            loadgen.call(_connect_timeout(WARM_CLIENTS), "connect", count=WARM_CLIENTS)
            cpu_before = server.cpu_s()
            answer = loadgen.call(sizes.sustain_s + 60, "sustain", seconds=sizes.sustain_s,
                                  in_flight=sizes.sustain_in_flight)  # fmt: skip
            figures["sustained_connects_per_s"] = answer["connects_per_s"]
            figures["sustained_connects"] = answer["connects"]
            figures["sustained_connect_failed"] = answer["failed"]
            if answer["failed"]:
                figures["sustained_connect_failures"] = answer["failures"]
            figures["sustain_loadgen_cpu"] = answer["loadgen_cpu_fraction"]
            cpu_s = server.cpu_s() - cpu_before
            figures["sustain_server_cpu"] = cpu_s / max(answer["wall_s"], 1e-9)
            if answer["connects"]:
                # On a shared machine the rate follows the scheduler; the CPU each connect costs does not.
                figures["cpu_us_per_sustained_connect"] = cpu_s / answer["connects"] * 1e6
            figures["sustain_server_alive"] = server.alive()
        finally:
            if loadgen is not None:
                _record_timings(loadgen, figures)
                loadgen.stop()
            server.stop()

    _scenario("single", figures, single)
    if context.sustain:
        _scenario("sustain", figures, sustain)
    if context.redis is not None and peer.redis_option is not None:
        _scenario("redis", figures, redis)
    if context.tls_files is not None and peer.tls_options is not None:
        _scenario("tls", figures, tls)
    return figures


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a 127.0.0.1 server certificate (trustme)."""
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    chain, key, ca = folder / "server-chain.pem", folder / "server-key.pem", folder / "ca.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(chain))
    certificate.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    return chain, key, ca
