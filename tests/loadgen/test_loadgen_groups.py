"""The load generator's group sends: the model's membership, JoinGroup, SendToGroup, exact counts."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from simscale.backplane.memory import MemoryBackplane, MemoryBus
from simscale.config.membership import draw_membership
from simscale.hub.server import HubServer
from simscale.loadgen import LoadConfig, run_load
from simscale.model.deployment import Deployment
from simscale.scenarios import Scenario


async def test_group_sends_reach_exactly_the_members_and_only_their_servers() -> None:
    bus = MemoryBus()
    hubs = [HubServer(backplane=MemoryBackplane(bus), server_name=f"s{i}") for i in range(3)]
    urls = tuple([f"{await hub.listen()}/chatHub" for hub in hubs])
    config = LoadConfig(
        urls=urls, clients=60, send_target="group", groups=12, group_size=5, broadcast_rate_per_s=40.0,
        duration_s=1.0, warmup_s=0.3, join_settle_s=0.3, seed=7,
    )  # fmt: skip
    try:
        result = await run_load(config)
        received = [hub.counters.backplane_messages_received for hub in hubs]
    finally:
        for hub in hubs:
            await hub.close()
    records = result.records
    assert records.broadcasts and {b.audience for b in records.broadcasts} == {"group"}
    assert result.summary.delivered_fraction == 1.0
    assert all(b.connected_clients == 5 for b in records.broadcasts)
    # Each send reaches the servers holding a member: the same membership the model draws for this seed.
    members = draw_membership(seed=7, clients=60, groups=12, group_size=5, groups_per_client=1, connections_per_user=1)
    holders = {frozenset((row % 3).tolist()) for row in members.members}
    reached: dict[int, set[int]] = defaultdict(set)
    for delivery in records.deliveries:
        if delivery.delivered:
            reached[delivery.broadcast_id].add(delivery.server)
    assert all(frozenset(servers) in holders for servers in reached.values())
    assert result.summary.servers_reached_per_send == pytest.approx(
        np.mean([len(reached[b.broadcast_id]) for b in records.broadcasts])
    )
    # Only servers holding a member received the group publishes (fewer than a broadcast's 2 per send).
    assert 0 < sum(received) < 2 * len(result.records.broadcasts) + 2 * 40


def test_the_load_generator_and_the_model_hold_the_same_groups() -> None:
    scenario = Scenario(clients=60, servers=3, send_target="group", groups=12, group_size=5, seed=7, duration_s=2.0,
                        warmup_s=1.0)  # fmt: skip
    deployment = Deployment(scenario, np.random.default_rng(scenario.seed))
    assert deployment.audiences is not None
    loadgen = draw_membership(seed=7, clients=60, groups=12, group_size=5, groups_per_client=1, connections_per_user=1)
    assert (deployment.audiences.group_members == loadgen.members).all()


@pytest.mark.parametrize(
    ("change", "flag"),
    [({"send_target": "room"}, "--send-target"), ({"group_size": 0}, "--group-size"), ({"groups": 0}, "--groups"),
     ({"send_target": "group", "groups": 30, "group_size": 10}, "--groups")],
)  # fmt: skip
def test_bad_group_settings_name_the_flag(change: dict[str, object], flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        LoadConfig(urls=("http://127.0.0.1:1/chatHub",), clients=100, **change)  # type: ignore[arg-type]
