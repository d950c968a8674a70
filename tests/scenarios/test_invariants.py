"""Scenario invariants: who receives a broadcast, and how connections are lost."""

from __future__ import annotations

import numpy as np
import pytest

import simscale
from simscale.scenarios import preset, simulate


def short(name: str, **overrides: object) -> simscale.Scenario:
    return preset(name, **{"duration_s": 30.0, "warmup_s": 2.0, **overrides})


@pytest.mark.parametrize("name", ["single-server", "backplane"])
def test_single_server_and_backplane_deliver_everything(name: str) -> None:
    summary = simulate(short(name)).summary
    assert summary.broadcasts and summary.broadcasts > 300
    assert summary.delivered_fraction == 1.0


@pytest.mark.parametrize("routing", ["direct-local", "via-backplane"])
def test_backplane_routing_modes_both_reach_everyone_but_cost_differently(routing: str) -> None:
    result = simulate(short("backplane", backplane_routing=routing))
    assert result.summary.delivered_fraction == 1.0
    deliveries = result.frames()["deliveries"]
    # Every broadcast is fanned out once by every server, whatever the routing.
    assert (deliveries.groupby("broadcast_id")["server"].nunique() == 3).all()


def test_via_backplane_local_clients_pay_the_round_trip() -> None:
    direct = simulate(short("backplane", backplane_routing="direct-local")).frames()["deliveries"]
    via = simulate(short("backplane", backplane_routing="via-backplane")).frames()["deliveries"]
    local_direct = direct[direct.server == direct.origin_server].latency_mean_s.mean()
    local_via = via[via.server == via.origin_server].latency_mean_s.mean()
    assert local_via > local_direct + 0.0003  # at least the two backplane hops of 0.2 ms


def test_direct_local_publishes_only_after_the_senders_own_fan_out() -> None:
    # 10 ms to write the sender's own clients (500 at 20 µs), as simscale's hub does before it publishes.
    slow_writes = {"clients": 1_500, "send_cpu_per_recipient_s": 20e-6, "send_cpu_per_recipient_busy_s": 20e-6}
    deliveries = simulate(short("backplane", broadcast_rate_per_s=5.0, **slow_writes)).frames()["deliveries"]
    local = deliveries[deliveries.server == deliveries.origin_server]
    remote = deliveries[deliveries.server != deliveries.origin_server]
    # A remote server starts writing once the whole local fan-out (10 ms) is written and Redis passed it on.
    assert remote.latency_mean_s.median() > local.latency_mean_s.median() + 0.010


@pytest.mark.parametrize("servers", [2, 3, 5])
def test_no_backplane_even_spread_reaches_one_over_n(servers: int) -> None:
    summary = simulate(short("no-backplane", servers=servers, clients=600 * servers)).summary
    assert summary.delivered_fraction == pytest.approx(1 / servers, rel=0.06)


def test_no_backplane_sticky_ip_behind_three_nats_matches_sum_of_squared_shares() -> None:
    result = simulate(
        preset(
            "no-backplane",
            servers=3,
            clients=900,
            load_balancer="sticky-ip",
            client_addresses=3,
            broadcast_rate_per_s=100.0,
            duration_s=60.0,
            warmup_s=1.0,
        )
    )
    shares = np.array([result.topology.nodes[f"server-{i}"]["connections"] for i in range(3)]) / 900
    expected = float((shares**2).sum())
    assert abs(expected - 1 / 3) > 0.05, "the three NAT addresses should spread unevenly"
    assert result.summary.delivered_fraction == pytest.approx(expected, rel=0.01)
    assert result.summary.delivered_fraction != pytest.approx(1 / 3, rel=0.05)


def test_thread_starvation_drops_clients_by_server_timeout_while_cpu_is_low() -> None:
    result = simulate(preset("thread-starvation"))
    summary = result.summary
    assert summary.connections_dropped and summary.connections_dropped > 100
    assert summary.cpu_utilization_max is not None and summary.cpu_utilization_max < 0.5
    connections = result.frames()["connections"]
    drops = connections[connections.event == "dropped"]
    assert set(drops.reason) == {"server_timeout"}


def test_thread_pool_grows_about_one_thread_per_half_second_while_starved() -> None:
    resources = simulate(preset("thread-starvation")).frames()["resources"]
    starved = resources[(resources.threadpool_queue > 0) & (resources.time_s <= 25)]
    slope_per_s = np.polyfit(starved.time_s, starved.threads, 1)[0]
    assert slope_per_s == pytest.approx(2.0, rel=0.2)


@pytest.mark.parametrize("fix", [{"method_kind": "async"}, {"min_threads": 600}])
def test_thread_starvation_fixed_by_async_methods_or_more_min_threads(fix: dict[str, object]) -> None:
    summary = simulate(preset("thread-starvation", **fix)).summary
    assert summary.connections_dropped == 0
    assert summary.connections_refused == 0


def test_port_exhaustion_refuses_connections_while_cpu_is_low() -> None:
    result = simulate(preset("port-exhaustion"))
    summary = result.summary
    assert summary.connections_refused and summary.connections_refused > 100
    assert summary.cpu_utilization_max is not None and summary.cpu_utilization_max < 0.5
    connections = result.frames()["connections"]
    refused = connections[connections.event == "refused"]
    assert set(refused.reason) == {"ports_exhausted"}
    resources = result.frames()["resources"]
    client_side = resources[resources.server == -1]
    assert client_side.ports_in_use.add(client_side.ports_time_wait).max() == 28_232


def test_more_nat_addresses_move_the_exhaustion_to_the_proxy_hop() -> None:
    """Four NAT addresses fix the clients' side, but the proxy's one address to the backend runs out too."""
    result = simulate(preset("port-exhaustion", client_addresses=4))
    connections = result.frames()["connections"]
    refused = connections[connections.event == "refused"]
    assert set(refused.reason) == {"proxy_ports_exhausted"}
    fixed = simulate(preset("port-exhaustion", client_addresses=4, proxy_addresses=4)).summary
    assert fixed.connections_refused == 0


def test_idle_cpu_and_memory_rise_linearly_with_connections() -> None:
    clients = np.array([1_000, 2_000, 4_000, 8_000])
    cpu, memory = [], []
    for count in clients:
        result = simulate(
            preset("single-server", clients=int(count), broadcasts_enabled=False, duration_s=45.0, warmup_s=15.0)
        )
        resources = result.frames()["resources"]
        window = resources[resources.time_s > 15]
        cpu.append(window.cpu_utilization.mean())
        memory.append(window.memory_bytes.mean())
    for values in (np.array(cpu), np.array(memory)):
        slope, intercept = np.polyfit(clients, values, 1)
        predicted = slope * clients + intercept
        assert slope > 0
        assert np.abs(predicted - values).max() <= 0.02 * values.max()
    assert cpu[-1] == pytest.approx(8 * cpu[0], rel=0.1)  # no broadcasts: pings alone, proportional


def test_reconnect_storm_without_reconnect_gives_up_at_once() -> None:
    summary = simulate(preset("thread-starvation", reconnect=False)).summary
    assert summary.clients_gave_up == summary.connections_dropped


def test_an_explicit_broadcast_schedule_is_replayed_exactly() -> None:
    offsets = (0.5, 1.0, 2.5, 2.6, 2.7, 8.0)
    result = simulate(preset("single-server", clients=50, duration_s=10.0, warmup_s=1.0, broadcast_offsets_s=offsets))
    sent = result.frames()["broadcasts"].sent_at_s.to_list()
    assert sent == pytest.approx([1.0, 2.5, 2.6, 2.7, 8.0])  # 0.5 falls in the warm-up
    with pytest.raises(ValueError, match="broadcast_offsets_s"):
        preset("single-server", broadcast_offsets_s=(2.0, 1.0))


def test_silent_clients_are_held_until_the_client_timeout_then_dropped() -> None:
    result = simulate(
        preset(
            "single-server", clients=1_000, duration_s=60.0, warmup_s=1.0, silent_clients_fraction=0.2, silent_at_s=10.0
        )
    )
    connections = result.frames()["connections"]
    drops = connections[connections.event == "dropped"]
    assert set(drops.reason) == {"client_timeout"}
    assert drops.clients.sum() == 200
    # Last heard 0-15 s before going silent at 10 s, dropped 30 s after that: between 25 s and 40 s.
    assert drops.time_s.min() >= 25.0 and drops.time_s.max() <= 41.0
    resources = result.frames()["resources"]
    held = resources[(resources.time_s > 11) & (resources.time_s < 24)]
    assert (held.connections == 1_000).all()  # the server keeps paying for them meanwhile
    assert resources[resources.time_s > 42].connections.eq(800).all()


def test_a_subscriber_past_the_output_buffer_limit_is_cut_off_and_misses_broadcasts() -> None:
    slow = dict(
        servers=3, clients=30_000, server_profile="asyncio-hub", send_cpu_per_recipient_s=10e-6,
        broadcast_rate_per_s=50.0, message_bytes=100_000, duration_s=20.0, warmup_s=1.0,
    )  # fmt: skip
    result = simulate(preset("backplane", **slow))
    assert result.backplane_disconnects >= 1
    deliveries = result.frames()["deliveries"]
    servers_reached = deliveries.groupby("broadcast_id").server.nunique()
    assert (servers_reached < 3).any()
    generous = simulate(preset("backplane", **slow, backplane_output_buffer_limit_bytes=1e12))
    assert generous.backplane_disconnects == 0


def test_events_grow_with_servers_not_clients() -> None:
    """Per-server fan-outs cost events per server, never per client; vectorised ones not even per server."""
    per_server = {"fan_out_mode": "per-server", "duration_s": 20.0, "warmup_s": 1.0}
    small = simulate(preset("backplane", clients=1_000, **per_server)).summary
    large = simulate(preset("backplane", clients=300_000, **per_server)).summary
    assert small.events and large.events
    assert large.events < 1.5 * small.events
    more_servers = simulate(preset("backplane", servers=12, clients=1_000, **per_server)).summary
    assert more_servers.events and more_servers.events > 2 * small.events
    vectorised = {**per_server, "fan_out_mode": "vectorised"}
    few = simulate(preset("backplane", clients=1_000, **vectorised)).summary
    many = simulate(preset("backplane", servers=12, clients=1_000, **vectorised)).summary
    assert few.events and few.events < small.events
    assert many.events < 1.5 * few.events


@pytest.mark.parametrize(("routing", "still_reached"), [("direct-local", 1 / 3), ("via-backplane", 0.0)])
def test_a_backplane_outage_loses_what_was_sent_meanwhile(routing: str, still_reached: float) -> None:
    """Redis pub/sub buffers nothing: during the outage only the sender's own server (direct-local) delivers."""
    result = simulate(
        short("backplane", backplane_routing=routing, backplane_outage_at_s=10.0, backplane_outage_s=10.0)
    )
    assert result.backplane_lost_publishes > 100
    broadcasts = result.frames()["broadcasts"]
    deliveries = result.frames()["deliveries"]
    during = broadcasts[(broadcasts.sent_at_s > 10.1) & (broadcasts.sent_at_s < 19.9)].broadcast_id
    delivered = deliveries[deliveries.broadcast_id.isin(during)].delivered.sum()
    expected = broadcasts[broadcasts.broadcast_id.isin(during)].connected_clients.sum()
    assert delivered / expected == pytest.approx(still_reached, abs=0.03)
    after = broadcasts[broadcasts.sent_at_s > 21].broadcast_id
    reached_after = deliveries[deliveries.broadcast_id.isin(after)].groupby("broadcast_id").server.nunique()
    assert (reached_after == 3).all()
