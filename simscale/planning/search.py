"""The search, pure: closed forms bound the range, rules judge a candidate and pick the next ones.

Nothing here simulates or opens an executor (that is :mod:`simscale.planning.planner`), so every
rule is tested with numbers in, numbers out. The closed forms, per deployment of ``n`` servers:

* **ports**: round-robin puts ``ceil(clients / n)`` connections on each backend; a proxy holds one
  ephemeral port per connection per source address toward a backend (plus, with churn, the ports
  closed connections hold through TIME_WAIT);
* **connection_limit**: the same connections against ``max_connections_per_server``;
* **threads**: blocking hub methods hold a thread each: their offered load (Erlang C's A) must stay
  below the pool's maximum, and the M/M/c wait with the pool's minimum is reported;
* **cpu**: every server writes every broadcast to each of its local clients (the Redis backplane
  brings the others' broadcasts), so CPU per second = rate × (local clients × CPU per recipient +
  serialisation) + dispatch + keep-alives;
* **memory**: base + connections × memory per connection;
* **backplane**: Redis serves one PUBLISH per broadcast at ``a + b·n`` (Pollaczek–Khinchine gives the
  wait); its utilisation *grows* with servers, so it caps the range from above;
* **latency**: a server writes a broadcast to its local clients one after another, so the p99
  recipient is written about ``0.99 × local clients × CPU per recipient`` after the first; that floor
  ignores queueing, so it is a lower bound and simulations decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simscale.config.scenario import Scenario
from simscale.metrics.queueing import mmc_mean_wait_s, pollaczek_khinchine_wait_s
from simscale.planning.request import CONSTRAINTS, Constraint, NoDeploymentFits, PlanRequest

__all__ = [
    "Estimate",
    "Measurement",
    "Verdict",
    "answer_of",
    "estimate",
    "judge",
    "lower_bound",
    "next_candidates",
]


@dataclass(frozen=True, slots=True)
class Estimate:
    """The closed forms of one deployment size (see the module docstring)."""

    servers: int
    connections_per_server: int
    ports_per_backend_needed: float
    port_capacity_per_backend: int
    proxy_addresses_needed: int
    max_connections_per_server: int
    thread_load_erlangs: float
    thread_pool_wait_ms: float
    max_threads: int
    cpu_utilization_estimate: float
    memory_per_server_bytes: float
    backplane_utilization: float
    backplane_wait_ms: float
    latency_floor_ms: float

    def failures(self, request: PlanRequest) -> list[Constraint]:
        """The limits these closed forms say are exceeded, in :data:`CONSTRAINTS` order."""
        failed: list[Constraint] = []
        if self.ports_per_backend_needed > self.port_capacity_per_backend:
            failed.append("ports")
        if self.connections_per_server > self.max_connections_per_server:
            failed.append("connection_limit")
        if self.thread_load_erlangs >= self.max_threads:
            failed.append("threads")
        if self.cpu_utilization_estimate > request.cpu_headroom:
            failed.append("cpu")
        if (
            request.memory_per_server_bytes is not None
            and self.memory_per_server_bytes > request.memory_per_server_bytes
        ):
            failed.append("memory")
        if self.backplane_utilization > request.backplane_utilization_max:
            failed.append("backplane")
        if self.latency_floor_ms > request.latency_p99_ms:
            failed.append("latency")
        return failed

    def usage(self, request: PlanRequest) -> dict[Constraint, float]:
        """Each closed-form figure as a fraction of its limit (1 = at the limit)."""
        usage: dict[Constraint, float] = {
            "ports": self.ports_per_backend_needed / self.port_capacity_per_backend,
            "connection_limit": self.connections_per_server / self.max_connections_per_server,
            "threads": self.thread_load_erlangs / self.max_threads,
            "backplane": self.backplane_utilization / request.backplane_utilization_max,
        }
        if request.memory_per_server_bytes is not None:
            usage["memory"] = self.memory_per_server_bytes / request.memory_per_server_bytes
        return usage


def estimate(scenario: Scenario, servers: int) -> Estimate:
    """The closed forms for ``scenario`` (its load) spread over ``servers`` servers."""
    s = scenario
    per_server = math.ceil(s.clients / servers)
    churn = 1.0 + (s.time_wait_s / s.connection_lifetime_s if s.connection_lifetime_s > 0 else 0.0)
    ports_needed = per_server * churn
    capacity = s.ephemeral_ports * s.proxy_addresses if s.proxy_hop else s.max_connections_per_server
    if s.client_addresses > 0:
        # Each shared client address opens at most ephemeral_ports connections to the load balancer,
        # however many servers stand behind it.
        per_address = math.ceil(s.clients / s.client_addresses) * churn
        if per_address > s.ephemeral_ports:
            ports_needed = max(ports_needed, per_address * capacity / s.ephemeral_ports)
    # Threads: only blocking methods hold a thread while they wait.
    calls_per_s = per_server * s.invocation_rate_per_client_per_s
    hold_s = s.method_cpu_s + (s.method_wait_s if s.method_kind != "async" else 0.0)
    thread_load = calls_per_s * hold_s
    threads = s.threads_min
    thread_wait_s = mmc_mean_wait_s(calls_per_s, hold_s, threads) if calls_per_s > 0 and hold_s > 0 else 0.0
    # CPU per second of one server.
    rate = s.broadcast_rate_per_s if s.broadcasts_enabled else 0.0
    local_rate = rate if s.backplane == "redis" or servers == 1 else rate / servers
    cpu_s_per_s = (
        local_rate * (per_server * s.send_cpu_per_recipient_s + s.serialize_cpu_s)
        + rate / servers * s.invocation_cpu_s
        + calls_per_s * (s.invocation_cpu_s + s.method_cpu_s)
        + per_server / s.client_keepalive_interval_s * s.keepalive_cpu_s
    )
    cores = 1 if s.server_profile == "asyncio-hub" else s.cores_per_server
    # Redis: one PUBLISH per broadcast, each served in a + b·(subscribed servers).
    if s.backplane == "redis" and rate > 0:
        publish_s = s.backplane_publish_base_s + s.backplane_publish_per_subscriber_s * servers
        backplane_utilization = rate * publish_s
        backplane_wait_s = pollaczek_khinchine_wait_s(rate, publish_s) if publish_s > 0 else 0.0
    else:
        backplane_utilization, backplane_wait_s = 0.0, 0.0
    floor_s = 0.99 * per_server * s.send_cpu_per_recipient_s + s.network_latency_s
    if s.backplane == "redis":
        floor_s += s.backplane_latency_s
    return Estimate(
        servers=servers,
        connections_per_server=per_server,
        ports_per_backend_needed=ports_needed,
        port_capacity_per_backend=capacity,
        proxy_addresses_needed=max(1, math.ceil(ports_needed / s.ephemeral_ports)) if s.proxy_hop else 0,
        max_connections_per_server=s.max_connections_per_server,
        thread_load_erlangs=thread_load,
        thread_pool_wait_ms=thread_wait_s * 1000.0,
        max_threads=s.max_threads,
        cpu_utilization_estimate=cpu_s_per_s / cores,
        memory_per_server_bytes=s.memory_base_bytes + per_server * s.memory_per_connection_bytes,
        backplane_utilization=backplane_utilization,
        backplane_wait_ms=backplane_wait_s * 1000.0,
        latency_floor_ms=floor_s * 1000.0,
    )


def lower_bound(scenario: Scenario, request: PlanRequest, max_servers: int) -> int:
    """The fewest servers the closed forms allow; :class:`NoDeploymentFits` when none up to ``max_servers``.

    Example:

        >>> from simscale.planning import PlanRequest
        >>> from simscale.planning.search import lower_bound
        >>> from simscale.scenarios import preset
        >>> request = PlanRequest(clients=60_000, broadcast_rate_per_s=30.0, cpu_headroom=0.6)
        >>> lower_bound(preset("backplane", clients=60_000, broadcast_rate_per_s=30.0), request, 64)
        3
    """
    first_failures: list[Constraint] = []
    for servers in range(1, max_servers + 1):
        failures = estimate(scenario, servers).failures(request)
        if not failures:
            return servers
        if servers == 1:
            first_failures = failures
        if "backplane" in failures:
            break  # more servers only load Redis more: nothing larger can fit
    last = estimate(scenario, servers)
    raise NoDeploymentFits(_infeasible_reason(scenario, request, last, first_failures, max_servers))


def _infeasible_reason(
    scenario: Scenario, request: PlanRequest, last: Estimate, first_failures: list[Constraint], max_servers: int
) -> str:
    failures = last.failures(request)
    if "backplane" in failures:
        return (
            f"backplane: Redis would be {last.backplane_utilization:.0%} busy with {last.servers} servers "
            f"(at most {request.backplane_utilization_max:.0%}), and more servers only add subscribers"
        )
    if request.backplane == "none":
        limit = (first_failures or failures or ["latency"])[0]
        return f"{limit}: without a backplane one server must carry every client, and it cannot"
    limit = failures[0] if failures else "latency"
    return f"{limit}: even {max_servers} servers exceed the limit (the closed forms: {', '.join(failures)})"


@dataclass(frozen=True, slots=True)
class Measurement:
    """A candidate's replicated simulations: means, confidence intervals and connection failures.

    ``*_ci_low`` / ``*_ci_high`` are NaN with a single replication. ``failure_limit`` is the limit
    behind the most frequent refusal or drop (``None`` when no client failed).
    """

    servers: int
    replications: int
    latency_p99_ms: float
    latency_p99_ms_ci_low: float
    latency_p99_ms_ci_high: float
    cpu_utilization_max: float
    cpu_utilization_max_ci_low: float
    cpu_utilization_max_ci_high: float
    clients_connected: float
    connections_refused: int
    connections_dropped: int
    clients_never_connected: int
    failure_limit: Constraint | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a candidate meets every requirement and, either way, which limit binds."""

    meets: bool
    binding_constraint: Constraint
    failed: tuple[Constraint, ...]


def judge(request: PlanRequest, closed: Estimate, measured: Measurement) -> Verdict:
    """Meets when no client failed, the simulated p99 and busiest CPU (means over replications) and
    the closed-form memory and backplane are within the request; the binding constraint of a failing
    candidate is the first requirement it fails (in :data:`CONSTRAINTS` order), of a meeting one the
    requirement closest to its limit.

    Example:

        >>> from simscale.planning import PlanRequest
        >>> from simscale.planning.search import Measurement, estimate, judge
        >>> from simscale.scenarios import preset
        >>> request = PlanRequest(clients=100, broadcast_rate_per_s=1.0, latency_p99_ms=10.0)
        >>> closed = estimate(preset("backplane", clients=100, broadcast_rate_per_s=1.0), 1)
        >>> slow = Measurement(1, 1, 12.0, math.nan, math.nan, 0.01, math.nan, math.nan, 100.0, 0, 0, 0, None)
        >>> judge(request, closed, slow)
        Verdict(meets=False, binding_constraint='latency', failed=('latency',))
    """
    failed: list[Constraint] = []
    if measured.connections_refused or measured.connections_dropped or measured.clients_never_connected:
        limits = [c for c in closed.failures(request) if c in ("ports", "connection_limit", "threads")]
        failed.append(measured.failure_limit or (limits[0] if limits else "ports"))
    closed_failures = closed.failures(request)
    if "memory" in closed_failures:
        failed.append("memory")
    if not math.isnan(measured.cpu_utilization_max) and measured.cpu_utilization_max > request.cpu_headroom:
        failed.append("cpu")
    if "backplane" in closed_failures:
        failed.append("backplane")
    if math.isnan(measured.latency_p99_ms) or measured.latency_p99_ms > request.latency_p99_ms:
        failed.append("latency")
    ordered = tuple(sorted(set(failed), key=CONSTRAINTS.index))
    if ordered:
        return Verdict(False, ordered[0], ordered)
    usage = closed.usage(request)
    usage["cpu"] = measured.cpu_utilization_max / request.cpu_headroom
    usage["latency"] = measured.latency_p99_ms / request.latency_p99_ms
    closest = max(usage, key=lambda name: (usage[name], -CONSTRAINTS.index(name)))
    return Verdict(True, closest, ())


def next_candidates(meets: dict[int, bool], start: int, width: int, max_servers: int) -> list[int]:
    """The sizes to simulate next, given the verdicts so far; empty when the search is over.

    The first round is ``width`` sizes from one below ``start`` (the closed-form bound). Then: if a
    size meets, step down until one below it fails (or 1 is reached), so a bound that was too
    cautious cannot hide a smaller answer; if none meets, step up until one does or ``max_servers``
    is reached. Each round proposes up to ``width`` sizes, simulated together.

    Example:

        >>> from simscale.planning.search import next_candidates
        >>> next_candidates({}, start=3, width=3, max_servers=10)
        [2, 3, 4]
        >>> next_candidates({2: False, 3: False, 4: False}, start=3, width=3, max_servers=10)
        [5, 6, 7]
        >>> next_candidates({2: False, 3: True, 4: True}, start=3, width=3, max_servers=10)
        []
    """
    if not meets:
        low = max(1, min(start - 1, max_servers - width + 1))
        return list(range(low, min(low + width, max_servers + 1)))
    meeting = [n for n, ok in meets.items() if ok]
    if meeting:
        smallest = min(meeting)
        if smallest == 1 or meets.get(smallest - 1) is False:
            return []
        return [n for n in range(max(1, smallest - width), smallest) if n not in meets]
    highest = max(meets)
    if highest >= max_servers:
        return []
    return list(range(highest + 1, min(highest + width, max_servers) + 1))


def answer_of(meets: dict[int, bool]) -> int | None:
    """The smallest size that meets (``None`` if none does)."""
    meeting = [n for n, ok in meets.items() if ok]
    return min(meeting) if meeting else None
