"""Azure SignalR Service in the model: billing as published, units, quota, pinning, and its JSON keys."""

from __future__ import annotations

import pytest

from simscale import Scenario, preset, simulate
from simscale.config.hosting import allowed_service_units, service_units_for
from simscale.model.service import billed_messages

_SERVICE = {"hosting": "azure-signalr", "duration_s": 6.0, "warmup_s": 1.0, "seed": 2}


def test_the_published_billing_example_counts_eight() -> None:
    # One app server, three clients; one client sends a 4 KB message the server broadcasts to all.
    assert billed_messages(4_096, outbound_messages=1 + 3) == 8
    result = simulate(Scenario(servers=1, clients=3, message_bytes=4_096, broadcast_offsets_s=(2.0,), **_SERVICE))
    assert result.summary.broadcasts == 1
    assert result.summary.deliveries == 3
    assert result.summary.service_billed_messages == 8


@pytest.mark.parametrize(("message_bytes", "chunks"), [(1, 1), (2_048, 1), (2_049, 2), (4_096, 2), (4_097, 3)])
def test_a_message_counts_once_per_started_2_kb(message_bytes: int, chunks: int) -> None:
    assert billed_messages(message_bytes) == chunks


def test_allowed_unit_counts_follow_the_tiers() -> None:
    assert allowed_service_units("standard") == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    assert allowed_service_units("premium_p2") == tuple(range(100, 1_001, 100))
    assert service_units_for(10_010, "standard") == 20
    assert service_units_for(200_000, "standard") == 100  # none holds it: the largest, then refusals


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hosting": "azure"}, "hosting must be one of 'self-hosted', 'azure-signalr'"),
        ({"service_units": 15}, "service_units must be 0"),
        ({"service_tier": "premium_p2", "service_units": 50}, "100, 200, …, 1000"),
        ({"hosting": "azure-signalr", "backplane": "redis"}, "backplane must be 'none'"),
        ({"server_connections_per_hub": 0}, "server_connections_per_hub must be an integer >= 1"),
        ({"service_units": "two"}, "service_units must be an integer >= 0"),
        ({"service_units": True}, "service_units must be an integer >= 0"),
        ({"hosting": None}, "hosting must be one of"),
    ],
)
def test_bad_hosting_values_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario(**changes)


def test_units_hold_clients_and_server_connections_and_refuse_beyond() -> None:
    # One unit: 1,000 slots, 2 servers × 5 server connections take 10, so 990 clients get on.
    summary = simulate(Scenario(servers=2, clients=1_200, service_units=1, **_SERVICE)).summary
    assert summary.service_units == 1
    assert summary.service_connections == 1_000
    assert summary.connections_refused and summary.connections_refused >= 210
    assert summary.clients_connected == 990
    # Units 0: the smallest allowed count that holds 1,200 + 10 connections.
    assert simulate(Scenario(servers=2, clients=1_200, **_SERVICE)).summary.service_units == 2


def test_dropping_a_server_connection_disconnects_exactly_its_pinned_clients() -> None:
    summary = simulate(Scenario(servers=2, clients=1_000, service_drop_server_connection_at_s=3.0, **_SERVICE)).summary
    # Server 0 holds 500 clients over 5 server connections: 100 ride connection 0.
    assert summary.connections_dropped == 100
    undisturbed = simulate(Scenario(servers=2, clients=1_000, **_SERVICE)).summary
    assert undisturbed.connections_dropped == 0


def test_every_client_gets_every_broadcast_and_the_bill_adds_up() -> None:
    scenario = preset("azure-signalr-service", clients=2_000, duration_s=11.0, warmup_s=1.0, seed=4)
    result = simulate(scenario)
    summary = result.summary
    assert summary.delivered_fraction == 1.0  # the service fans out to everyone: no backplane needed
    assert summary.service_units == 3  # 2,000 clients + 2 × 5 server connections
    assert summary.broadcasts
    assert summary.service_billed_messages == summary.broadcasts * (1 + 2_000)  # 2,048 B: one chunk each
    per_day = summary.service_billed_messages / 10.0 * 86_400
    assert summary.service_billed_messages_per_day == pytest.approx(per_day)
    extra = per_day - 3 * 1_000_000
    assert summary.service_cost_per_day_usd == pytest.approx(3 * 1.61 + extra / 1e6 * 1.0)
    cheaper = simulate(scenario.replace(service_unit_price_per_day_usd=0.0)).summary
    assert cheaper.service_cost_per_day_usd == pytest.approx(extra / 1e6)
    assert {
        "service_units",
        "service_connections",
        "service_billed_messages",
        "service_billed_messages_per_day",
        "service_cost_per_day_usd",
    } <= set(result.to_json_dict())


def test_a_saturated_unit_queues_and_more_units_drain_it() -> None:
    # 1,000 clients, 2 KB broadcasts at 4/s: 4,000 messages/s out, above one unit's 2,857 a second.
    base = Scenario(servers=1, clients=990, message_bytes=2_048, broadcast_rate_per_s=4.0, **_SERVICE)
    one = simulate(base.replace(service_units=1)).summary
    three = simulate(base.replace(service_units=3)).summary
    assert one.latency_p99_ms is not None and three.latency_p99_ms is not None
    assert one.latency_p99_ms > 1_000.0 > three.latency_p99_ms
