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
from simscale.figures.topology import PATH_ANNOTATION, TRACE_BALANCER, TRACE_ORIGIN_SERVER, TRACE_PATH
from simscale.report import diagram_figure, diagram_scenario
from simscale.scenarios import simulate

CLIENTS_PER_SERVER = 4


def _trace(figure: go.Figure, meta: str) -> go.Scatter:
    matches = [trace for trace in figure.data if trace.meta == meta]
    assert len(matches) == 1, f"expected one trace {meta!r}, found {len(matches)}"
    return matches[0]


def _clients(figure: go.Figure, meta: str) -> int:
    if not any(trace.meta == meta for trace in figure.data):
        return 0  # no such clients, no trace (and no legend entry)
    return int(sum(_trace(figure, meta).customdata or ()))


@pytest.mark.parametrize("servers", [2, 5])
@pytest.mark.parametrize("preset_name", ["no-backplane", "backplane"])
def test_diagram_counts_servers_and_reached_clients(servers: int, preset_name: str) -> None:
    result = simulate(diagram_scenario(preset_name, servers, CLIENTS_PER_SERVER))
    figure = diagram_figure(result, "test")

    assert len(_trace(figure, TRACE_SERVERS).x) + len(_trace(figure, TRACE_ORIGIN_SERVER).x) == servers
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
    assert len(_trace(figure, TRACE_ORIGIN_SERVER).x) == 1
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


# --- layout, path arrows and legend, read from the figure object -----------------------------------
def _diagram(preset_name: str, servers: int) -> tuple[go.Figure, nx.Graph]:
    result = simulate(diagram_scenario(preset_name, servers, CLIENTS_PER_SERVER))
    return diagram_figure(result, "test"), result.topology


def _node_at(graph: nx.Graph) -> dict[str, tuple[float, float]]:
    """Node name → where the diagram draws it (the layout the figure uses)."""
    from simscale.figures.topology import layout_topology

    return {str(node): position for node, position in layout_topology(graph).items()}


def _arrows(figure: go.Figure) -> list[tuple[int, str, str, go.layout.Annotation]]:
    arrows = []
    for annotation in figure.layout.annotations:
        if annotation.name and annotation.name.startswith(PATH_ANNOTATION + ":"):
            _, step, hop = annotation.name.split(":", 2)
            source, target = hop.split(">")
            arrows.append((int(step), source, target, annotation))
    return arrows


@pytest.mark.parametrize("preset_name", ["no-backplane", "backplane"])
def test_load_balancer_lies_between_the_clients_and_the_servers(preset_name: str) -> None:
    figure, _ = _diagram(preset_name, 3)
    balancer_y = set(_trace(figure, TRACE_BALANCER).y)
    client_y = set(_trace(figure, TRACE_CLIENTS_REACHED).y)
    server_y = set(_trace(figure, TRACE_SERVERS).y) | set(_trace(figure, TRACE_ORIGIN_SERVER).y)
    assert len(balancer_y) == 1
    assert min(client_y) > balancer_y.pop() > max(server_y)
    # The band spans every client's session: each client-server segment crosses it.
    balancer = _trace(figure, TRACE_BALANCER)
    xs = [x for trace in figure.data if trace.meta in (TRACE_CLIENTS_REACHED, TRACE_CLIENTS_MISSED) for x in trace.x]
    assert min(balancer.x) < min(xs) and max(balancer.x) > max(xs)


def _check_arrow_geometry(figure: go.Figure, graph: nx.Graph) -> None:
    at = _node_at(graph)
    for _, source, target, arrow in _arrows(figure):
        assert (arrow.ax, arrow.ay) == at[source], f"arrow {source}>{target} starts elsewhere"
        assert (arrow.x, arrow.y) == at[target], f"arrow {source}>{target} ends elsewhere"
        assert arrow.showarrow and arrow.arrowhead


def test_backplane_path_goes_sender_server_backplane_servers_clients() -> None:
    figure, graph = _diagram("backplane", 3)
    _check_arrow_geometry(figure, graph)
    arrows = _arrows(figure)
    steps = [step for step, *_ in arrows]
    assert steps == sorted(steps), "arrows are drawn in the order the broadcast travels"
    kind = {str(node): data["kind"] for node, data in graph.nodes(data=True)}
    server_of = {str(node): data.get("server") for node, data in graph.nodes(data=True)}
    origin = int(_trace(figure, TRACE_ORIGIN_SERVER).customdata[0])
    hops = {step: [(source, target) for s, source, target, _ in arrows if s == step] for step in range(4)}
    [(sender, origin_node)] = hops[0]
    assert kind[sender] == "client" and server_of[sender] == origin and server_of[origin_node] == origin
    assert hops[1] == [(origin_node, "backplane")] and kind["backplane"] == "backplane"
    others = {n for n, k in kind.items() if k == "server" and n != origin_node}
    assert {source for source, _ in hops[2]} == {"backplane"}
    assert {target for _, target in hops[2]} == others
    # Every reached client gets an arrow from its own server (the sender's arrow points both ways).
    reached = {target for _, target in hops[3]} | {sender}
    clients = {n for n, k in kind.items() if k == "client"}
    assert reached == clients
    assert all(server_of[source] == server_of[target] for source, target in hops[3])
    assert _arrows(figure)[0][3].arrowside == "end+start"


def test_without_a_backplane_the_path_stops_at_the_senders_server() -> None:
    figure, graph = _diagram("no-backplane", 3)
    _check_arrow_geometry(figure, graph)
    arrows = _arrows(figure)
    origin = int(_trace(figure, TRACE_ORIGIN_SERVER).customdata[0])
    server_of = {str(node): data.get("server") for node, data in graph.nodes(data=True)}
    assert {step for step, *_ in arrows} == {0, 3}
    assert all(server_of[source] == origin and server_of[target] == origin for _, source, target, _ in arrows)
    drawn = {target for *_, target, _ in arrows} | {source for _, source, _, _ in arrows}
    reached_count = _clients(figure, TRACE_CLIENTS_REACHED)
    assert len([n for n in drawn if n.startswith("client")]) == reached_count
    missed = _trace(figure, TRACE_CLIENTS_MISSED)
    reached = _trace(figure, TRACE_CLIENTS_REACHED)
    assert missed.marker.color != reached.marker.color and missed.marker.symbol != reached.marker.symbol
    assert f"{reached_count} of {servers_total(graph)} clients reached" in figure.layout.title.text


def servers_total(graph: nx.Graph) -> int:
    return sum(int(data.get("count", 1)) for _, data in graph.nodes(data=True) if data.get("kind") == "client")


@pytest.mark.parametrize("preset_name", ["single-server", "no-backplane", "backplane"])
def test_legend_entries_have_the_colours_of_what_they_stand_for(preset_name: str) -> None:
    servers = 1 if preset_name == "single-server" else 3
    figure, graph = _diagram(preset_name, servers)
    legend = [trace for trace in figure.data if trace.showlegend is not False]
    names = [trace.meta for trace in legend]
    assert len(names) == len(set(names)), "one legend entry per thing"
    # Server squares: one colour per legend entry, so the swatch is the colour of every marker it names.
    for trace in legend:
        if trace.mode and "markers" in trace.mode:
            colour = trace.marker.color
            assert isinstance(colour, str), f"{trace.meta}: one colour per legend entry, got {colour!r}"
    server_nodes = [n for n, k in graph.nodes(data="kind") if k == "server"]
    drawn = sum(len(_trace(figure, meta).x) for meta in (TRACE_SERVERS, TRACE_ORIGIN_SERVER) if meta in names)
    assert drawn == len(server_nodes)
    assert _trace(figure, TRACE_ORIGIN_SERVER).marker.color != (
        _trace(figure, TRACE_SERVERS).marker.color if TRACE_SERVERS in names else None
    )
    # The path's legend line has the arrows' colour; the balancer's the band's.
    path_colour = _trace(figure, TRACE_PATH).line.color
    assert {arrow.arrowcolor for *_, arrow in _arrows(figure)} == {path_colour}
    assert TRACE_BALANCER in names
    if preset_name == "backplane":
        assert "backplane" in names
    if preset_name == "no-backplane":
        assert TRACE_CLIENTS_MISSED in names
    else:
        assert TRACE_CLIENTS_MISSED not in names
