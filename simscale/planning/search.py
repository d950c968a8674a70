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

Group sends (``send_target="group"``, ``G`` members drawn over ``n`` servers) deliver ``G`` copies,
not ``clients``, and reach about ``n·(1 − (1 − 1/n)^G)`` servers: only those pay the serialisation,
subscribe to the group's Redis channel and fan out, each to about ``G`` / (servers reached) members.

On Azure SignalR Service (``hosting="azure-signalr"``) the clients hold their connections on the
service, so ports and the per-server connection limit do not apply to the app servers; an app server
runs the hub method of the sends its clients make (one send back to the service each), and the
service's units carry the rest:

* **service_units**: ``clients + servers × server_connections_per_hub`` connections against
  ``units × service_connections_per_unit``, and each unit passes one message per broadcast in plus
  its share of the fan-out, ``rate × (1 + clients) / units × cost per message``, against the
  backplane ceiling (``backplane_utilization_max``); the fan-out of one unit also sets the latency
  floor. :func:`service_units_needed` picks the smallest allowed count that passes both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simscale.config.hosting import allowed_service_units, service_units_for
from simscale.config.scenario import Scenario
from simscale.metrics.queueing import mmc_mean_wait_s, pollaczek_khinchine_wait_s
from simscale.planning.request import CONSTRAINTS, Constraint, NoDeploymentFits, PlanRequest

__all__ = [
    "Estimate",
    "Measurement",
    "Verdict",
    "answer_of",
    "candidate_scenario",
    "estimate",
    "judge",
    "lower_bound",
    "next_candidates",
    "servers_reached_per_send",
    "service_units_needed",
]

_SMALLEST_COST_BYTES = 1_024
_BILLING_CHUNK_BYTES = 2_048
"""As in :mod:`simscale.model.service`: a message under 1 KB costs a unit as much as a 1 KB one."""


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
    servers_reached_per_send: float = 1.0
    """Servers holding at least one recipient of a send (all of them for a broadcast)."""
    service_units: int = 0
    """Azure SignalR Service units (0: self-hosted)."""
    service_connections_needed: int = 0
    """Client plus server connections the service must hold."""
    service_quota: int = 0
    """Connections the units hold."""
    service_utilization: float = 0.0
    """Busy fraction of each unit (messages in and fan-out)."""
    service_latency_floor_ms: float = 0.0
    """The p99 recipient's wait behind one unit's fan-out of one broadcast."""

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
        if self.service_units and (
            self.service_connections_needed > self.service_quota
            or self.service_utilization > request.backplane_utilization_max
        ):
            failed.append("service_units")
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
        if self.service_units:
            usage["service_units"] = max(
                self.service_connections_needed / self.service_quota,
                self.service_utilization / request.backplane_utilization_max,
            )
        return usage


def servers_reached_per_send(servers: int, recipients: int) -> float:
    """Expected servers holding at least one of ``recipients`` clients spread evenly over ``servers``.

    Example:

        >>> from simscale.planning.search import servers_reached_per_send
        >>> round(servers_reached_per_send(3, 10), 2), servers_reached_per_send(1, 10)
        (2.95, 1.0)
    """
    return servers * (1.0 - (1.0 - 1.0 / servers) ** recipients)


def _service_message_cost_s(s: Scenario) -> float:
    return max(s.message_bytes, _SMALLEST_COST_BYTES) / _BILLING_CHUNK_BYTES / s.service_messages_per_unit_per_s


def _units_of(s: Scenario, servers: int) -> int:
    connections = s.clients + servers * s.server_connections_per_hub
    return s.service_units or service_units_for(connections, s.service_tier, s.service_connections_per_unit)


def estimate(scenario: Scenario, servers: int) -> Estimate:
    """The closed forms for ``scenario`` (its load) spread over ``servers`` servers."""
    s = scenario
    if s.hosting == "azure-signalr":
        return _service_estimate(s, servers)
    per_server = math.ceil(s.clients / servers)
    grouped = s.send_target == "group"
    reached = servers_reached_per_send(servers, s.group_size) if grouped else float(servers)
    # A broadcast writes to every local client; a group send to the members on each server reached.
    recipients_per_server_reached = s.group_size / reached if grouped else float(per_server)
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
    if grouped and servers > 1 and s.backplane == "redis":
        local_rate = rate * reached / servers  # the share of sends that reach this server
    cpu_s_per_s = (
        local_rate * (recipients_per_server_reached * s.send_cpu_per_recipient_s + s.serialize_cpu_s)
        + rate / servers * s.invocation_cpu_s
        + calls_per_s * (s.invocation_cpu_s + s.method_cpu_s)
        + per_server / s.client_keepalive_interval_s * s.keepalive_cpu_s
    )
    cores = 1 if s.server_profile == "asyncio-hub" else s.cores_per_server
    # Redis: one PUBLISH per broadcast, each served in a + b·(subscribed servers).
    if s.backplane == "redis" and rate > 0:
        publish_s = s.backplane_publish_base_s + s.backplane_publish_per_subscriber_s * reached
        backplane_utilization = rate * publish_s
        backplane_wait_s = pollaczek_khinchine_wait_s(rate, publish_s) if publish_s > 0 else 0.0
    else:
        backplane_utilization, backplane_wait_s = 0.0, 0.0
    floor_s = 0.99 * recipients_per_server_reached * s.send_cpu_per_recipient_s + s.network_latency_s
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
        servers_reached_per_send=reached,
    )


def _service_estimate(s: Scenario, servers: int) -> Estimate:
    """The closed forms on Azure SignalR Service (see the module docstring)."""
    per_server = math.ceil(s.clients / servers)
    units = _units_of(s, servers)
    cost_s = _service_message_cost_s(s)
    rate = s.broadcast_rate_per_s if s.broadcasts_enabled else 0.0
    calls_per_s = per_server * s.invocation_rate_per_client_per_s
    hold_s = s.method_cpu_s + (s.method_wait_s if s.method_kind != "async" else 0.0)
    cpu_s_per_s = (
        rate / servers * (s.invocation_cpu_s + s.serialize_cpu_s + s.send_cpu_per_recipient_s)
        + calls_per_s * (s.invocation_cpu_s + s.method_cpu_s)
        + per_server / s.client_keepalive_interval_s * s.keepalive_cpu_s
    )
    cores = 1 if s.server_profile == "asyncio-hub" else s.cores_per_server
    fan_out_s = 0.99 * s.clients / units * cost_s
    floor_s = fan_out_s + cost_s + 3 * s.network_latency_s
    return Estimate(
        servers=servers,
        connections_per_server=per_server,
        ports_per_backend_needed=0.0,
        port_capacity_per_backend=max(1, s.clients),
        proxy_addresses_needed=0,
        max_connections_per_server=max(1, s.clients),
        thread_load_erlangs=calls_per_s * hold_s,
        thread_pool_wait_ms=(
            mmc_mean_wait_s(calls_per_s, hold_s, s.threads_min) * 1000.0 if calls_per_s > 0 and hold_s > 0 else 0.0
        ),
        max_threads=s.max_threads,
        cpu_utilization_estimate=cpu_s_per_s / cores,
        memory_per_server_bytes=s.memory_base_bytes + per_server * s.memory_per_connection_bytes,
        backplane_utilization=0.0,
        backplane_wait_ms=0.0,
        latency_floor_ms=floor_s * 1000.0,
        servers_reached_per_send=float(servers),
        service_units=units,
        service_connections_needed=s.clients + servers * s.server_connections_per_hub,
        service_quota=units * s.service_connections_per_unit,
        service_utilization=rate * (1 + s.clients) / units * cost_s,
        service_latency_floor_ms=fan_out_s * 1000.0,
    )


def service_units_needed(scenario: Scenario, request: PlanRequest, servers: int, at_least: int = 0) -> int | None:
    """The smallest allowed unit count (and at least ``at_least``) that holds the connections, keeps
    each unit at or under the backplane ceiling and the closed-form latency floor under the target
    (``None``: none does).

    A scenario that names its ``service_units`` keeps them.

    Example:

        >>> from simscale.planning import PlanRequest
        >>> from simscale.planning.search import service_units_needed
        >>> from simscale.scenarios import preset
        >>> request = PlanRequest(clients=5_000, broadcast_rate_per_s=1.0, hosting="azure-signalr")
        >>> service_units_needed(preset("azure-signalr-service"), request, 2)
        7
    """
    s = scenario
    if s.service_units:
        return s.service_units
    smallest = _units_of(s, servers)
    for units in allowed_service_units(s.service_tier):
        if units < max(smallest, at_least):
            continue
        closed = _service_estimate(s.replace(service_units=units), servers)
        if "service_units" not in closed.failures(request) and closed.latency_floor_ms <= request.latency_p99_ms:
            return units
    return None


def candidate_scenario(scenario: Scenario, request: PlanRequest, servers: int, at_least_units: int = 0) -> Scenario:
    """``scenario`` with ``servers`` app servers and, on the service, the units they need
    (:func:`service_units_needed`, at least ``at_least_units``; the largest allowed count when none
    is enough, so the simulation shows how far off it is)."""
    if scenario.hosting != "azure-signalr" or scenario.service_units:
        return scenario.replace(servers=servers)
    needed = service_units_needed(scenario, request, servers, at_least_units)
    units = needed or allowed_service_units(scenario.service_tier)[-1]
    return scenario.replace(servers=servers, service_units=units)


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
        failures = estimate(candidate_scenario(scenario, request, servers), servers).failures(request)
        if not failures:
            return servers
        if servers == 1:
            first_failures = failures
        if "backplane" in failures or "service_units" in failures:
            break  # more servers only load Redis (or the service's connections) more: nothing larger fits
    last = estimate(candidate_scenario(scenario, request, servers), servers)
    raise NoDeploymentFits(_infeasible_reason(scenario, request, last, first_failures, max_servers))


def _infeasible_reason(
    scenario: Scenario, request: PlanRequest, last: Estimate, first_failures: list[Constraint], max_servers: int
) -> str:
    failures = last.failures(request)
    if "service_units" in failures:
        return (
            f"service_units: even {last.service_units} units hold {last.service_quota:,} connections "
            f"({last.service_connections_needed:,} needed) and would be {last.service_utilization:.0%} busy "
            f"(at most {request.backplane_utilization_max:.0%})"
        )
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
    behind the most frequent refusal or drop (``None`` when no client failed). The two ``service_*``
    fields come from the runs' summaries on Azure SignalR Service.
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
    service_units: int | None = None
    """Azure SignalR Service units the runs had (``None``: self-hosted)."""
    service_cost_per_day_usd: float = math.nan
    """The service's bill per day (units and billed messages), the mean over replications; NaN: self-hosted."""


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
        limits = [c for c in closed.failures(request) if c in ("ports", "connection_limit", "threads", "service_units")]
        failed.append(measured.failure_limit or (limits[0] if limits else "ports"))
    closed_failures = closed.failures(request)
    if "memory" in closed_failures:
        failed.append("memory")
    if not math.isnan(measured.cpu_utilization_max) and measured.cpu_utilization_max > request.cpu_headroom:
        failed.append("cpu")
    if "backplane" in closed_failures:
        failed.append("backplane")
    if math.isnan(measured.latency_p99_ms) or measured.latency_p99_ms > request.latency_p99_ms:
        # On the service the units fan out, not the app servers: a late p99 with the app servers' CPU
        # within its headroom is the units' limit.
        service_bound = bool(closed.service_units) and "cpu" not in failed
        failed.append("service_units" if service_bound else "latency")
    if "service_units" in closed_failures:
        failed.append("service_units")
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
