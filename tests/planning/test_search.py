"""The planner's pure half: closed forms, verdicts and the choice of sizes, numbers in and numbers out."""

from __future__ import annotations

import math

import pytest

from simscale.planning import CONSTRAINTS, NoDeploymentFits, PlanRequest
from simscale.planning.search import (
    Measurement,
    candidate_scenario,
    estimate,
    judge,
    lower_bound,
    next_candidates,
    service_units_needed,
)
from simscale.scenarios import preset


def _measured(servers: int = 1, *, p99: float = 10.0, cpu: float = 0.1, refused: int = 0, limit=None) -> Measurement:
    return Measurement(servers, 1, p99, math.nan, math.nan, cpu, math.nan, math.nan, 100.0, refused, 0, 0, limit)


def test_the_constraint_names_are_the_documented_ones() -> None:
    assert CONSTRAINTS == (
        "ports", "connection_limit", "threads", "cpu", "memory", "backplane", "latency", "service_units"
    )  # fmt: skip


def test_cpu_estimate_is_deliveries_times_cost_per_delivery() -> None:
    # 60,000 clients, 30 broadcasts/s, 3 servers of 2 cores: each server writes 30 × 20,000 messages a
    # second at 1.4 µs, 0.84 core-seconds per second, 42 % of 2 cores (plus small per-broadcast costs).
    scenario = preset("backplane", clients=60_000, broadcast_rate_per_s=30.0)
    closed = estimate(scenario, 3)
    assert closed.connections_per_server == 20_000
    assert closed.cpu_utilization_estimate == pytest.approx(0.42, abs=0.01)
    assert closed.backplane_utilization == pytest.approx(30 * (15e-6 + 3 * 0.5e-6))


def test_ports_bound_the_servers_from_below() -> None:
    # 60,000 connections, 28,232 ports per proxy address toward a backend: 3 servers, not 2.
    scenario = preset("backplane", clients=60_000, broadcast_rate_per_s=1.0)
    request = PlanRequest(clients=60_000, broadcast_rate_per_s=1.0)
    assert estimate(scenario, 2).failures(request) == ["ports"]
    assert lower_bound(scenario, request, 64) == 3
    assert estimate(scenario.replace(proxy_addresses=2), 2).failures(request) == []


def test_a_saturated_backplane_is_infeasible_at_any_size() -> None:
    scenario = preset("backplane", clients=100, broadcast_rate_per_s=100_000.0)
    request = PlanRequest(clients=100, broadcast_rate_per_s=100_000.0)
    with pytest.raises(NoDeploymentFits, match=r"^backplane: Redis would be \d+% busy"):
        lower_bound(scenario, request, 64)


def test_a_failing_candidate_binds_on_its_first_failure_in_constraint_order() -> None:
    request = PlanRequest(clients=100, broadcast_rate_per_s=1.0, latency_p99_ms=10.0, cpu_headroom=0.5)
    closed = estimate(preset("backplane", clients=100, broadcast_rate_per_s=1.0), 1)
    both = judge(request, closed, _measured(p99=20.0, cpu=0.9))
    assert (both.meets, both.binding_constraint, both.failed) == (False, "cpu", ("cpu", "latency"))
    refused = judge(request, closed, _measured(p99=20.0, refused=5, limit="ports"))
    assert refused.binding_constraint == "ports" and refused.failed == ("ports", "latency")
    fine = judge(request, closed, _measured(p99=9.0, cpu=0.1))
    assert fine.meets and fine.binding_constraint == "latency"  # 90 % of its target, the closest


@pytest.mark.parametrize(
    ("meets", "expected"),
    [
        ({}, [2, 3, 4]),
        ({2: False, 3: False, 4: False}, [5, 6, 7]),
        ({2: False, 3: True, 4: True}, []),
        ({2: True, 3: True, 4: True}, [1]),
        ({1: True}, []),
        ({8: False, 9: False, 10: False}, []),
    ],
)
def test_next_candidates_walks_to_the_smallest_size_above_a_failure(
    meets: dict[int, bool], expected: list[int]
) -> None:
    assert next_candidates(meets, start=3, width=3, max_servers=10) == expected


def test_a_group_send_reaches_fewer_servers_and_costs_its_members_only() -> None:
    # 6,000 clients in groups of 10 over 3 servers: each send reaches 3·(1 − (2/3)^10) ≈ 2.95 servers,
    # 10 deliveries in all, so 200 sends/s are 2,000 deliveries, not 1,200,000.
    grouped = preset("small-groups", clients=6_000, groups=600, send_cpu_per_recipient_s=1e-3)
    everyone = grouped.replace(send_target="all")
    closed, broadcast = estimate(grouped, 3), estimate(everyone, 3)
    assert closed.servers_reached_per_send == pytest.approx(3 * (1 - (2 / 3) ** 10))
    deliveries_cpu = 200 * 10 / 3 * grouped.send_cpu_per_recipient_s / grouped.cores_per_server
    assert closed.cpu_utilization_estimate == pytest.approx(deliveries_cpu, rel=0.05)
    assert broadcast.cpu_utilization_estimate > 100 * closed.cpu_utilization_estimate
    assert closed.backplane_utilization < broadcast.backplane_utilization
    assert closed.latency_floor_ms < broadcast.latency_floor_ms


def test_service_units_hold_the_connections_and_a_fast_enough_fan_out() -> None:
    scenario = preset("azure-signalr-service", clients=5_000, broadcast_rate_per_s=1.0)
    request = PlanRequest(clients=5_000, broadcast_rate_per_s=1.0, hosting="azure-signalr")
    loose = PlanRequest(clients=5_000, broadcast_rate_per_s=1.0, hosting="azure-signalr", latency_p99_ms=10_000.0)
    assert service_units_needed(scenario, loose, 2) == 6  # 5,010 connections, 1,000 a unit
    units = service_units_needed(scenario, request, 2)
    assert units is not None and units > 6  # one unit's fan-out of 834 would pass the 250 ms target
    closed = estimate(candidate_scenario(scenario, request, 2), 2)
    assert closed.service_units == units and closed.latency_floor_ms <= 250.0
    assert "service_units" not in closed.failures(request) and closed.ports_per_backend_needed == 0
    short = estimate(scenario.replace(service_units=5), 2)
    assert short.failures(loose) == ["service_units"]  # 5,000 connections a quota, 5,010 needed


def test_a_late_p99_on_the_service_binds_on_its_units() -> None:
    scenario = preset("azure-signalr-service", clients=1_000, broadcast_rate_per_s=2.0)
    request = PlanRequest(clients=1_000, broadcast_rate_per_s=2.0, hosting="azure-signalr")
    closed = estimate(scenario, 1)
    late = judge(request, closed, _measured(p99=800.0, cpu=0.01))
    assert (late.meets, late.binding_constraint) == (False, "service_units")
    refused = judge(request, closed, _measured(p99=100.0, refused=3, limit="service_units"))
    assert refused.failed == ("service_units",)
