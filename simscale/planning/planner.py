"""``plan``: closed forms bound the range, then replicated simulations of the sizes near it decide.

The planner is the only part of :mod:`simscale.planning` that simulates; it hands every run to an
``Executor`` (``None``: a serial loop), in rounds of a few sizes × the replications each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from simscale.config.hosting import allowed_service_units
from simscale.config.scenario import Scenario
from simscale.planning.executors import CandidateRun, run_candidate
from simscale.planning.request import (
    BackplaneChoice,
    Constraint,
    Hosting,
    NoDeploymentFits,
    PlanRequest,
    SendTarget,
)
from simscale.planning.result import CANDIDATE_COLUMNS, Plan
from simscale.planning.search import (
    Estimate,
    Measurement,
    Verdict,
    answer_of,
    candidate_scenario,
    estimate,
    judge,
    lower_bound,
    service_units_needed,
)
from simscale.planning.search import next_candidates as _next_candidates

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["base_scenario", "plan"]

BASE_PRESET = "backplane"
"""The preset whose values fill in what a plan request does not say."""
AZURE_PRESET = "azure-signalr-service"
"""The same, with ``hosting="azure-signalr"``."""

ProgressCallback = Callable[[int, int], None]
"""Called with (runs done, runs planned so far) after each simulation."""


def base_scenario(request: PlanRequest, base: Scenario | None = None) -> Scenario:
    """The scenario every candidate is a copy of: ``base`` (default: the ``backplane`` preset, or
    ``azure-signalr-service`` with ``hosting="azure-signalr"``) with the request's load, message size,
    cores, hosting and backplane; group sends split the clients into ``clients // group_size``
    disjoint groups of ``group_size``.

    Example:

        >>> from simscale.planning import PlanRequest
        >>> from simscale.planning.planner import base_scenario
        >>> scenario = base_scenario(PlanRequest(clients=500, broadcast_rate_per_s=4.0, backplane="none"))
        >>> scenario.name, scenario.clients, scenario.backplane, scenario.servers
        ('plan', 500, 'none', 1)
        >>> grouped = base_scenario(PlanRequest(clients=600, broadcast_rate_per_s=4.0, send_target="group",
        ...                                     group_size=10))
        >>> grouped.send_target, grouped.groups, grouped.group_size
        ('group', 60, 10)
    """
    from simscale.scenarios import preset

    azure = request.hosting == "azure-signalr"
    scenario = base if base is not None else preset(AZURE_PRESET if azure else BASE_PRESET)
    changes: dict[str, object] = {
        "name": "plan",
        "clients": request.clients,
        "broadcast_rate_per_s": request.broadcast_rate_per_s,
        "backplane": "none" if azure else request.backplane,
        "hosting": request.hosting,
        "servers": 1,
    }
    if request.send_target == "group" and request.group_size is not None:
        changes.update(
            send_target="group",
            group_size=request.group_size,
            groups=request.clients // request.group_size,
            groups_per_client=1,
        )
    if request.message_bytes is not None:
        changes["message_bytes"] = request.message_bytes
    if request.cores_per_server is not None:
        changes["cores_per_server"] = request.cores_per_server
    return scenario.replace(**changes)


def _seeds(scenario: Scenario, replications: int) -> list[int]:
    if replications == 1:
        return [scenario.seed]
    from simscale.scenarios.run import replication_seeds

    return replication_seeds(scenario.seed, replications)


def _interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and a 95 % Student-t interval (NaN bounds for one value; NaN mean for none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, math.nan, math.nan
    from scipy import stats

    spread = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
    half = float(stats.t.ppf(0.975, len(finite) - 1)) * spread / math.sqrt(len(finite))
    return mean, mean - half, mean + half


def _number(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def measure(servers: int, runs: Sequence[CandidateRun]) -> Measurement:
    """Aggregate one candidate's replications (worst run for connection failures)."""
    latency = _interval([_number(run.summary.latency_p99_ms) for run in runs])
    cpu = _interval([_number(run.summary.cpu_utilization_max) for run in runs])
    connected = [_number(run.clients_connected) for run in runs]
    limits = [run.failure_limit for run in runs if run.failure_limit is not None]
    return Measurement(
        servers=servers,
        replications=len(runs),
        latency_p99_ms=latency[0],
        latency_p99_ms_ci_low=latency[1],
        latency_p99_ms_ci_high=latency[2],
        cpu_utilization_max=cpu[0],
        cpu_utilization_max_ci_low=cpu[1],
        cpu_utilization_max_ci_high=cpu[2],
        clients_connected=sum(connected) / len(connected),
        connections_refused=max(run.summary.connections_refused or 0 for run in runs),
        connections_dropped=max(run.summary.connections_dropped or 0 for run in runs),
        clients_never_connected=max(run.summary.clients_never_connected or 0 for run in runs),
        failure_limit=max(set(limits), key=limits.count) if limits else None,  # type: ignore[arg-type]
        service_units=max((run.summary.service_units or 0 for run in runs), default=0) or None,
        service_cost_per_day_usd=_interval([_number(run.summary.service_cost_per_day_usd) for run in runs])[0],
    )


def plan(
    clients: int,
    broadcast_rate_per_s: float,
    *,
    message_bytes: int | None = None,
    send_target: SendTarget = "all",
    group_size: int | None = None,
    latency_p99_ms: float = 250.0,
    cpu_headroom: float = 0.7,
    backplane_utilization_max: float = 0.7,
    hosting: Hosting = "self-hosted",
    backplane: BackplaneChoice = "redis",
    cores_per_server: int | None = None,
    memory_per_server_bytes: float | None = None,
    replications: int = 2,
    max_servers: int = 64,
    base: Scenario | None = None,
    price_per_server_per_day: float | None = None,
    executor: Executor | None = None,
    batch_sizes: int = 3,
    progress: ProgressCallback | None = None,
) -> Plan:
    """The smallest deployment that carries ``clients`` at ``broadcast_rate_per_s`` within the requirements.

    Every client connected (none refused or dropped), the p99 at or under ``latency_p99_ms``, the
    busiest server's CPU over the busy period at or under ``cpu_headroom``, the backplane at or under
    ``backplane_utilization_max``. Closed forms give the fewest servers that could do it; then
    ``batch_sizes`` sizes at a time, from one below that bound, are simulated ``replications`` times
    each on ``executor`` (any ``concurrent.futures.Executor``; ``None``: serially) until the smallest
    size that meets sits just above one that fails. What the arguments do not say comes from
    ``base`` (default: the ``backplane`` preset). ``backplane="none"`` plans one server at most.
    ``memory_per_server_bytes`` adds a memory limit (the model sets none); ``price_per_server_per_day``
    (USD) prices the app servers in the ``cost_per_day_usd`` column, which on Azure SignalR Service
    also holds the service's bill (units and messages, at the scenario's prices); with no price known
    it stays NaN. ``send_target="group"`` splits the clients into groups of ``group_size``, one group
    per send; ``hosting="azure-signalr"`` plans app servers behind the service and reports the
    ``service_units`` the chosen deployment needs (``backplane`` is then ignored).

    Raises:
        ValueError: a bad argument (the message names it).
        NotAvailableYet: group sends on Azure SignalR Service (a later version).
        NoDeploymentFits: no deployment within ``max_servers`` meets everything (``reason`` says why).

    Example:

        >>> import simscale
        >>> base = simscale.preset("backplane", duration_s=3.0, warmup_s=1.0)
        >>> simscale.plan(clients=100, broadcast_rate_per_s=2.0, replications=1, base=base).servers
        1
    """
    request = PlanRequest(
        clients=clients,
        broadcast_rate_per_s=broadcast_rate_per_s,
        message_bytes=message_bytes,
        send_target=send_target,
        group_size=group_size,
        latency_p99_ms=latency_p99_ms,
        cpu_headroom=cpu_headroom,
        backplane_utilization_max=backplane_utilization_max,
        hosting=hosting,
        backplane=backplane,
        cores_per_server=cores_per_server,
        memory_per_server_bytes=memory_per_server_bytes,
        replications=replications,
        max_servers=max_servers,
    )
    if base is not None and not isinstance(base, Scenario):
        raise ValueError(f"base must be a Scenario, got {type(base).__name__}")
    if price_per_server_per_day is not None and not (
        math.isfinite(price_per_server_per_day) and price_per_server_per_day >= 0
    ):
        raise ValueError(f"price_per_server_per_day must be a number >= 0, got {price_per_server_per_day!r}")
    if not isinstance(batch_sizes, int) or isinstance(batch_sizes, bool) or batch_sizes < 1:
        raise ValueError(f"batch_sizes must be an integer >= 1, got {batch_sizes!r}")
    request.check_supported()
    return _search(request, base_scenario(request, base), executor, batch_sizes, price_per_server_per_day, progress)


Round = tuple[dict[int, Estimate], dict[int, Measurement], dict[int, Verdict]]
"""One search over app-server counts: the closed forms, the measurements and the verdicts, by size."""


def _search(
    request: PlanRequest,
    scenario: Scenario,
    executor: Executor | None,
    width: int,
    price: float | None,
    progress: ProgressCallback | None,
) -> Plan:
    # Without a backplane a broadcast reaches only its sender's server's clients: one server at most
    # (on the service, the service joins the app servers).
    azure = request.hosting == "azure-signalr"
    limit = 1 if request.backplane == "none" and not azure else request.max_servers
    start = lower_bound(scenario, request, limit)
    counter = [0, 0]  # runs done, runs planned
    rounds: list[Round] = []
    at_least_units = 0
    while True:
        closed, measured, verdicts = _search_servers(
            request, scenario, executor, width, start, limit, at_least_units, counter, progress
        )
        rounds.append((closed, measured, verdicts))
        answer = answer_of({n: v.meets for n, v in verdicts.items()})
        if answer is not None or not azure or scenario.service_units:
            break
        if any(v.binding_constraint != "service_units" for v in verdicts.values()):
            break
        # The units, not the app servers, are short: the next allowed count, the search again.
        used = max(m.service_units or 0 for m in measured.values())
        larger = [u for u in allowed_service_units(scenario.service_tier) if u > used]
        if not larger or service_units_needed(scenario, request, start, larger[0]) is None:
            break
        at_least_units = larger[0]
    if answer is None:
        largest = max(verdicts)
        verdict = verdicts[largest]
        where = "one server (no backplane to share the load)" if limit == 1 else f"{largest} servers"
        if azure and verdict.binding_constraint == "service_units":
            where = f"{largest} app servers on {measured[largest].service_units} units"
        raise NoDeploymentFits(f"{verdict.binding_constraint}: even {where} fail{'s' if limit == 1 else ''} "
                               f"({', '.join(verdict.failed)})")  # fmt: skip
    binding: Constraint
    if answer - 1 in verdicts:
        binding = verdicts[answer - 1].binding_constraint
    elif len(rounds) > 1:
        binding = "service_units"  # fewer units failed: they, not the app servers, set the size
    else:
        binding = verdicts[answer].binding_constraint
    candidates = _candidates_frame(rounds, price)
    estimates = _estimates_frame(scenario, request, max(verdicts), at_least_units)
    return Plan(
        request=request,
        servers=answer,
        proxy_addresses=closed[answer].proxy_addresses_needed if scenario.proxy_hop and not azure else None,
        service_units=measured[answer].service_units if azure else None,
        binding_constraint=binding,
        candidates=candidates,
        estimates=estimates,
    )


def _search_servers(
    request: PlanRequest,
    scenario: Scenario,
    executor: Executor | None,
    width: int,
    start: int,
    limit: int,
    at_least_units: int,
    counter: list[int],
    progress: ProgressCallback | None,
) -> Round:
    """Simulate rounds of app-server counts until the smallest that meets sits above one that fails."""
    seeds = _seeds(scenario, request.replications)
    closed: dict[int, Estimate] = {}
    measured: dict[int, Measurement] = {}
    verdicts: dict[int, Verdict] = {}
    while sizes := _next_candidates({n: v.meets for n, v in verdicts.items()}, start, width, limit):
        candidates = {n: candidate_scenario(scenario, request, n, at_least_units) for n in sizes}
        scenarios = [candidates[n].replace(seed=seed) for n in sizes for seed in seeds]
        counter[1] += len(scenarios)
        results = executor.map(run_candidate, scenarios) if executor is not None else map(run_candidate, scenarios)
        by_size: dict[int, list[CandidateRun]] = {n: [] for n in sizes}
        for run in results:
            by_size[run.servers].append(run)
            counter[0] += 1
            if progress is not None:
                progress(counter[0], counter[1])
        for n, runs in by_size.items():
            if not any(run.summary.broadcasts for run in runs):
                raise ValueError(
                    f"no broadcast was counted in the {n}-server runs ({scenario.duration_s:g} s simulated, "
                    f"{scenario.warmup_s:g} s warm-up at {scenario.broadcast_rate_per_s:g} broadcasts/s): "
                    "simulate longer or raise the rate"
                )
            closed[n] = estimate(candidates[n], n)
            measured[n] = measure(n, runs)
            verdicts[n] = judge(request, closed[n], measured[n])
        if scenario.hosting == "azure-signalr" and all(
            verdicts[n].binding_constraint == "service_units" for n in sizes
        ):
            break  # more app servers do not give the service more units
    return closed, measured, verdicts


def _candidates_frame(rounds: Sequence[Round], price: float | None) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for closed, measured, verdicts in rounds:
        for n in sorted(verdicts):
            c, m, v = closed[n], measured[n], verdicts[n]
            row = {
                **dataclasses.asdict(m),
                "servers_reached_per_send": c.servers_reached_per_send,
                "service_utilization": c.service_utilization if c.service_units else math.nan,
                **{name: getattr(c, name) for name in ("connections_per_server", "proxy_addresses_needed",
                                                        "cpu_utilization_estimate", "memory_per_server_bytes",
                                                        "backplane_utilization", "latency_floor_ms")},
                "meets": v.meets,
                "binding_constraint": v.binding_constraint,
                "failed": ",".join(v.failed),
                "cost_per_day_usd": _cost_per_day_usd(n, m, price),
            }  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)[list(CANDIDATE_COLUMNS)]


def _cost_per_day_usd(servers: int, measured: Measurement, price: float | None) -> float:
    """The service's bill (when on the service) plus the app servers' (when a price is given); NaN: no price known."""
    parts = [part for part in (measured.service_cost_per_day_usd, None if price is None else servers * price)
             if part is not None and not math.isnan(part)]  # fmt: skip
    return sum(parts) if parts else math.nan


def _estimates_frame(scenario: Scenario, request: PlanRequest, largest: int, at_least_units: int) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        [
            dataclasses.asdict(estimate(candidate_scenario(scenario, request, n, at_least_units), n))
            for n in range(1, largest + 1)
        ]
    )
