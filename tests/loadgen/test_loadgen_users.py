"""The load generator's user and connection sends: the model's users and picks, identity from the bearer token,
SendToUser and SendToConnection over Redis."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from simscale.backplane.redis_backplane import RedisBackplane
from simscale.config.membership import connections_of_user
from simscale.hub import HubServer, TokenIsUserAuthenticator
from simscale.loadgen import LoadConfig, run_load
from simscale.loadgen.runner import poisson_offsets_s
from simscale.metrics.records import RunRecords
from simscale.scenarios import preset, simulate


def _per_send(records: RunRecords) -> dict[int, tuple[int, dict[int, int]]]:
    """Each send's connected recipients and their split over the servers that hold any."""
    split: dict[int, dict[int, int]] = defaultdict(dict)
    for delivery in records.deliveries:
        if delivery.recipients:  # the model writes no row for a server without recipients
            split[delivery.broadcast_id][delivery.server] = delivery.recipients
    return {b.broadcast_id: (b.connected_clients, split[b.broadcast_id]) for b in records.broadcasts}


async def test_a_users_connections_on_both_servers_all_receive_its_user_sends(redis_url: str) -> None:
    authenticator = TokenIsUserAuthenticator()
    hubs = [
        HubServer(backplane=RedisBackplane(redis_url, server_name=f"s{i}"), authenticator=authenticator)
        for i in range(2)
    ]
    urls = tuple([f"{await hub.listen()}/chatHub" for hub in hubs])
    # Four connections per user, round-robin over two servers: every user has two on each server.
    config = LoadConfig(
        urls=urls, clients=40, send_target="user", connections_per_user=4, broadcast_rate_per_s=40.0,
        duration_s=1.0, warmup_s=0.3, seed=5,
    )  # fmt: skip
    try:
        result = await run_load(config)
        received = [hub.counters.backplane_messages_received for hub in hubs]
    finally:
        for hub in hubs:
            await hub.close()
    records = result.records
    assert records.broadcasts and {b.audience for b in records.broadcasts} == {"user"}
    assert {d.audience for d in records.deliveries} == {"user"}
    assert result.summary.delivered_fraction == 1.0 and result.send_failures == 0
    assert result.summary.connections_refused == 0 and result.summary.connections_dropped == 0
    assert all(b.connected_clients == 4 for b in records.broadcasts)
    # Two connections of the user on each server, each delivered: every send reached both servers.
    assert all(d.recipients == 2 and d.delivered == 2 for d in records.deliveries)
    assert result.summary.servers_reached_per_send == 2.0
    # The other server got each send over Redis on the user's channel (warm-up sends included).
    assert sum(received) >= len(records.broadcasts)


async def test_connection_sends_reach_their_one_connection_on_either_server(redis_url: str) -> None:
    hubs = [HubServer(backplane=RedisBackplane(redis_url, server_name=f"s{i}")) for i in range(2)]
    urls = tuple([f"{await hub.listen()}/chatHub" for hub in hubs])
    config = LoadConfig(
        urls=urls, clients=20, send_target="connection", broadcast_rate_per_s=40.0, duration_s=1.0, warmup_s=0.3,
        seed=9,
    )  # fmt: skip
    try:
        result = await run_load(config)
        received = [hub.counters.backplane_messages_received for hub in hubs]
    finally:
        for hub in hubs:
            await hub.close()
    records = result.records
    assert records.broadcasts and {b.audience for b in records.broadcasts} == {"connection"}
    assert result.summary.delivered_fraction == 1.0 and result.send_failures == 0
    assert all(b.connected_clients == 1 for b in records.broadcasts)
    assert result.summary.servers_reached_per_send == 1.0
    # A connection on the sender's server is written directly; one on the other server goes over Redis.
    crossing = sum(1 for d in records.deliveries if d.recipients and d.server != d.origin_server)
    assert 0 < crossing < len(records.broadcasts) and sum(received) >= crossing


@pytest.mark.parametrize("target", ["user", "connection"])
async def test_targeted_sends_pick_the_models_audiences_for_the_same_seed(target: str, redis_url: str) -> None:
    authenticator = TokenIsUserAuthenticator()
    hubs = [
        HubServer(backplane=RedisBackplane(redis_url, server_name=f"s{i}"), authenticator=authenticator)
        for i in range(2)
    ]
    urls = tuple([f"{await hub.listen()}/chatHub" for hub in hubs])
    # Three connections per user over 31 clients: users 0-9 have three, user 10 has one, and they
    # straddle the two servers differently, so each send's split tells which user it went to.
    rate_per_s, warmup_s, duration_s, seed = 30.0, 0.5, 1.5, 11
    config = LoadConfig(
        urls=urls, clients=31, send_target=target, connections_per_user=3, broadcast_rate_per_s=rate_per_s,
        duration_s=duration_s, warmup_s=warmup_s, seed=seed,
    )  # fmt: skip
    try:
        result = await run_load(config)
    finally:
        for hub in hubs:
            await hub.close()
    measured = _per_send(result.records)
    offsets = poisson_offsets_s(rate_per_s, warmup_s + duration_s, np.random.default_rng(seed))
    scenario = preset(
        "backplane", servers=2, clients=31, send_target=target, connections_per_user=3, seed=seed,
        duration_s=warmup_s + duration_s, warmup_s=warmup_s, broadcast_rate_per_s=rate_per_s,
        broadcast_offsets_s=tuple(offsets.tolist()),
    )  # fmt: skip
    predicted = _per_send(simulate(scenario).records)
    assert len(measured) > 20
    assert measured == predicted
    if target == "user":
        sizes = {len(connections_of_user(user, 3, 31)) for user in range(config.users)}
        assert sizes == {1, 3} and {count for count, _ in measured.values()} <= sizes
    else:  # one connection, on either server: the split says which
        assert {count for count, _ in measured.values()} == {1}
        assert {server for _, split in measured.values() for server in split} == {0, 1}


@pytest.mark.parametrize(
    ("change", "flag"),
    [({"send_target": "user", "connections_per_user": 101}, "--connections-per-user"),
     ({"connections_per_user": 0}, "--connections-per-user"),
     ({"send_target": "user", "access_token": "t"}, "--access-token"),
     ({"send_target": "room"}, "--send-target")],
)  # fmt: skip
def test_bad_user_settings_name_the_flag(change: dict[str, object], flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        LoadConfig(urls=("http://127.0.0.1:1/chatHub",), clients=100, **change)  # type: ignore[arg-type]
