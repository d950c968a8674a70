"""Deployment diagrams: drawn from the model's topology, clients coloured by one broadcast's deliveries."""

from __future__ import annotations

import networkx as nx
import pandas as pd
import plotly.graph_objects as go
import pytest

from simscale.figures import (
    TRACE_CLIENTS_MISSED,
    TRACE_CLIENTS_REACHED,
    TRACE_SERVERS,
    choose_broadcast,
    reached_servers,
    topology_figure,
)
from simscale.report import diagram_figure, diagram_scenario
from simscale.scenarios import simulate

CLIENTS_PER_SERVER = 4


def _trace(figure: go.Figure, meta: str) -> go.Scatter:
    matches = [trace for trace in figure.data if trace.meta == meta]
    assert len(matches) == 1, f"expected one trace {meta!r}, found {len(matches)}"
    return matches[0]


def _clients(figure: go.Figure, meta: str) -> int:
    return int(sum(_trace(figure, meta).customdata or ()))


@pytest.mark.parametrize("servers", [2, 5])
@pytest.mark.parametrize("preset_name", ["no-backplane", "backplane"])
def test_diagram_counts_servers_and_reached_clients(servers: int, preset_name: str) -> None:
    result = simulate(diagram_scenario(preset_name, servers, CLIENTS_PER_SERVER))
    figure = diagram_figure(result, "test")

    assert len(_trace(figure, TRACE_SERVERS).x) == servers
    total = servers * CLIENTS_PER_SERVER
    reached = _clients(figure, TRACE_CLIENTS_REACHED)
    missed = _clients(figure, TRACE_CLIENTS_MISSED)
    assert reached + missed == total
    if preset_name == "backplane":
        assert reached == total
        assert any(trace.meta == "backplane" for trace in figure.data), "the backplane must be drawn"
    else:
        assert reached == CLIENTS_PER_SERVER  # only the sender's server's own clients
        assert not any(trace.meta == "backplane" for trace in figure.data)


def test_single_server_reaches_everyone() -> None:
    result = simulate(diagram_scenario("single-server", 1, 6))
    figure = diagram_figure(result, "one server")
    assert len(_trace(figure, TRACE_SERVERS).x) == 1
    assert _clients(figure, TRACE_CLIENTS_REACHED) == 6
    assert _clients(figure, TRACE_CLIENTS_MISSED) == 0


def _deliveries(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"broadcast_id": b, "server": s, "origin_server": 0, "delivered": d} for b, s, d in rows],
    )


def test_reached_servers_needs_delivered_above_zero() -> None:
    deliveries = _deliveries([(1, 0, 3), (1, 1, 0), (1, 2, 2), (2, 1, 5)])
    assert reached_servers(deliveries, 1) == {0, 2}
    assert reached_servers(deliveries, 2) == {1}
    assert reached_servers(deliveries, 3) == set()


def test_choose_broadcast_takes_the_first_from_the_origin_after_warmup() -> None:
    broadcasts = pd.DataFrame(
        {"broadcast_id": [0, 1, 2, 3], "origin_server": [0, 1, 0, 0], "sent_at_s": [0.5, 1.5, 2.5, 3.0]}
    )
    assert choose_broadcast(broadcasts, origin_server=0, after_s=1.0) == 2
    assert choose_broadcast(broadcasts, origin_server=1) == 1
    with pytest.raises(ValueError, match="no broadcast"):
        choose_broadcast(broadcasts, origin_server=4)


def test_aggregate_client_nodes_count_their_clients() -> None:
    graph = nx.Graph()
    graph.add_node("load-balancer", kind="load_balancer", label="load balancer")
    for index in range(2):
        graph.add_node(f"server-{index}", kind="server", server=index, label=f"server {index}")
        graph.add_node(f"clients-of-{index}", kind="client", client=-1, server=index, count=500 + index)
        graph.add_edge(f"clients-of-{index}", f"server-{index}", kind="session")
        graph.add_edge("load-balancer", f"server-{index}", kind="proxy")
    figure = topology_figure(graph, _deliveries([(7, 1, 501)]), 7, title="aggregate", origin_server=1)
    assert _clients(figure, TRACE_CLIENTS_REACHED) == 501
    assert _clients(figure, TRACE_CLIENTS_MISSED) == 500
