"""Group, user and connection sends against their closed forms and exact counts.

* M members spread uniformly over N servers reach N·(1 − (1 − 1/N)^M) servers on average;
* a group send is delivered to exactly its connected members;
* without a backplane a group send reaches only the members on the sender's server;
* a user send reaches every connection of that user, on every server.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from simscale.config.membership import draw_membership
from simscale.model.backplane import SimBackplane
from simscale.model.deployment import Deployment
from simscale.scenarios import Scenario, preset, simulate


def _run(**fields: Any) -> Deployment:
    base = {"duration_s": 6.0, "warmup_s": 1.0, "drain_s": 1.0, "seed": 5, "broadcast_rate_per_s": 100.0}
    scenario = Scenario(**{**base, **fields})
    deployment = Deployment(scenario, np.random.default_rng(scenario.seed))
    deployment.records = deployment.run().records  # type: ignore[attr-defined]
    return deployment


def _delivered_by_send(deployment: Deployment) -> dict[int, dict[int, int]]:
    by_send: dict[int, dict[int, int]] = defaultdict(dict)
    for record in deployment.records.deliveries:  # type: ignore[attr-defined]
        if record.delivered:
            by_send[record.broadcast_id][record.server] = record.delivered
    return by_send


@pytest.mark.parametrize("members", [2, 5, 20])
def test_servers_reached_per_group_send_match_the_occupancy_closed_form(members: int) -> None:
    servers = 5
    scenario = Scenario(
        servers=servers, clients=5_000, backplane="redis", send_target="group", groups=5_000 // members,
        group_size=members, broadcast_rate_per_s=300.0, duration_s=8.0, warmup_s=1.0, drain_s=1.0, seed=11,
    )  # fmt: skip
    summary = simulate(scenario).summary
    expected = servers * (1 - (1 - 1 / servers) ** members)
    assert summary.broadcasts is not None and summary.broadcasts > 1_500
    assert summary.servers_reached_per_send == pytest.approx(expected, rel=0.02)
    assert summary.delivered_fraction == 1.0


@pytest.mark.parametrize("routing", ["direct-local", "via-backplane"])
def test_a_group_send_is_delivered_to_exactly_its_connected_members(routing: str) -> None:
    deployment = _run(
        servers=3, clients=600, backplane="redis", backplane_routing=routing, send_target="group", groups=60,
        group_size=10, connection_lifetime_s=3.0,
    )  # fmt: skip
    records = deployment.records  # type: ignore[attr-defined]
    delivered = _delivered_by_send(deployment)
    assert records.broadcasts and all(record.audience == "group" for record in records.broadcasts)
    assert all(record.audience == "group" for record in records.deliveries)
    exact = sum(sum(delivered[r.broadcast_id].values()) == r.connected_clients for r in records.broadcasts)
    # Churn moves members between the send and a server's fan-out for a few sends only.
    assert exact >= 0.95 * len(records.broadcasts)
    assert all(record.connected_clients <= 10 for record in records.broadcasts)


def test_without_churn_every_group_send_reaches_all_its_members_and_only_them() -> None:
    deployment = _run(servers=3, clients=600, backplane="redis", send_target="group", groups=60, group_size=10)
    records = deployment.records  # type: ignore[attr-defined]
    delivered = _delivered_by_send(deployment)
    server_of = deployment.population.server_of
    assert deployment.audiences is not None
    for record in records.broadcasts:
        members = deployment.audiences._audience[record.broadcast_id]
        assert record.connected_clients == 10
        expected = np.bincount(server_of[members], minlength=3)
        assert delivered[record.broadcast_id] == {s: int(n) for s, n in enumerate(expected) if n}


def test_without_a_backplane_a_group_send_reaches_only_the_senders_servers_members() -> None:
    deployment = _run(servers=3, clients=600, send_target="group", groups=60, group_size=10)
    records = deployment.records  # type: ignore[attr-defined]
    server_of = deployment.population.server_of
    assert deployment.audiences is not None
    delivered = _delivered_by_send(deployment)
    for record in records.broadcasts:
        members = deployment.audiences._audience[record.broadcast_id]
        local = int(np.count_nonzero(server_of[members] == record.origin_server))
        assert local >= 1  # the sender is a member
        assert delivered[record.broadcast_id] == {record.origin_server: local}
    summary = simulate(deployment.scenario).summary
    assert summary.servers_reached_per_send == 1.0
    assert summary.backplane_messages_received == 0
    assert summary.delivered_fraction is not None and summary.delivered_fraction < 0.5


def test_a_user_send_reaches_every_connection_of_the_user_on_every_server() -> None:
    deployment = _run(servers=3, clients=600, backplane="redis", send_target="user", connections_per_user=4)
    records = deployment.records  # type: ignore[attr-defined]
    server_of = deployment.population.server_of
    assert deployment.audiences is not None
    delivered = _delivered_by_send(deployment)
    for record in records.broadcasts:
        connections = deployment.audiences._audience[record.broadcast_id]
        assert len(connections) == 4 and record.connected_clients == 4 and record.audience == "user"
        expected = np.bincount(server_of[connections], minlength=3)
        assert delivered[record.broadcast_id] == {s: int(n) for s, n in enumerate(expected) if n}


def test_a_connection_send_reaches_that_one_connection_and_a_local_one_is_never_published() -> None:
    deployment = _run(servers=3, clients=300, backplane="redis", send_target="connection")
    records = deployment.records  # type: ignore[attr-defined]
    delivered = _delivered_by_send(deployment)
    local = 0
    for record in records.broadcasts:
        assert record.connected_clients == 1
        assert sum(delivered[record.broadcast_id].values()) == 1
        local += list(delivered[record.broadcast_id]) == [record.origin_server]
    assert deployment.backplane is not None and deployment.audiences is not None
    # Every remote target costs one publish, received by one server; a local target costs none.
    assert 0 < local < len(records.broadcasts)
    assert sum(deployment.backplane.received) == deployment.backplane.publishes
    assert deployment.backplane.publishes < deployment.audiences.sends


def test_only_servers_with_a_member_receive_a_group_publish() -> None:
    # Ten servers, groups of two: a publish reaches at most two servers, not ten.
    deployment = _run(servers=10, clients=1_000, backplane="redis", send_target="group", groups=500, group_size=2)
    assert deployment.backplane is not None and deployment.audiences is not None
    received = sum(deployment.backplane.received)
    publishes = deployment.backplane.publishes
    # direct-local: only the other member's server receives, when it is on another server (p = 0.9).
    assert received / publishes == pytest.approx(0.9, abs=0.05)
    via = _run(
        servers=10, clients=1_000, backplane="redis", backplane_routing="via-backplane", send_target="group",
        groups=500, group_size=2,
    )  # fmt: skip
    assert via.backplane is not None
    # via-backplane: the sender's own server receives too: 1.9 servers per publish.
    assert sum(via.backplane.received) / via.backplane.publishes == pytest.approx(1.9, abs=0.05)


def test_a_servers_first_member_of_a_group_subscribes_its_channel() -> None:
    deployment = _run(servers=3, clients=300, backplane="redis", send_target="group", groups=30, group_size=10)
    assert deployment.audiences is not None and deployment.backplane is not None
    pairs = int(np.count_nonzero(deployment.audiences.groups.local > 0))  # type: ignore[union-attr]
    assert deployment.audiences.subscribe_commands == pairs
    assert deployment.backplane.subscribes == pairs


def test_redis_service_time_counts_the_channels_subscribers() -> None:
    import simpy

    backplane = SimBackplane(
        simpy.Environment(), 10, publish_base_s=10e-6, publish_per_subscriber_s=1e-6, latency_s=0.0,
        output_buffer_limit_bytes=1e6, resubscribe_s=1.0,
    )  # fmt: skip
    assert backplane.service_time_s() == pytest.approx(20e-6)
    assert backplane.service_time_s([2, 7]) == pytest.approx(12e-6)


def test_membership_is_drawn_reproducibly_from_the_seed_and_respects_the_limits() -> None:
    sizes = {"clients": 500, "groups": 120, "group_size": 10, "groups_per_client": 3, "connections_per_user": 2}
    first = draw_membership(seed=4, **sizes)
    assert (draw_membership(seed=4, **sizes).members == first.members).all()
    assert not (draw_membership(seed=5, **sizes).members == first.members).all()
    assert first.members.shape == (120, 10)
    assert all(len(set(row.tolist())) == 10 for row in first.members)
    assert np.bincount(first.members.ravel(), minlength=500).max() <= 3
    assert first.users == 250 and first.user_of[:4].tolist() == [0, 0, 1, 1]


def test_broadcasts_stay_broadcasts() -> None:
    records = simulate(preset("backplane", clients=60, duration_s=3.0, warmup_s=1.0, seed=2)).records
    assert {record.audience for record in records.broadcasts} == {"all"}
    assert {record.audience for record in records.deliveries} == {"all"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"send_target": "room"}, "send_target must be one of 'all', 'group', 'user', 'connection'"),
        ({"send_target": "group", "group_size": 0}, "group_size must be an integer >= 1"),
        ({"send_target": "group", "group_size": 101}, r"group_size must be an integer >= 1 and <= clients \(100\)"),
        ({"send_target": "group", "groups": 0}, "groups must be an integer >= 1"),
        ({"send_target": "group", "groups": 11, "group_size": 10}, r"groups × group_size \(110\) must not exceed"),
        ({"send_target": "user", "connections_per_user": 101}, "connections_per_user must be an integer"),
    ],
)
def test_bad_audiences_are_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario(clients=100, **fields)
    # The same sizes are fine while nobody sends to groups.
    if fields.get("send_target") == "group" and fields.get("group_size", 1) > 100:
        Scenario(clients=100, group_size=101)
