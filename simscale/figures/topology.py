"""Deployment diagrams drawn from the topology the model built, coloured by who got a broadcast.

The graph comes from :func:`simscale.model.topology.build_topology` (passed in, never built here):
nodes have a ``kind`` (client, load_balancer, server, backplane); clients carry the ``server`` they
are connected to and a ``count`` (1, or more for an aggregate node). A client is *reached* by a
broadcast when its server's delivery record for that broadcast has ``delivered > 0``.

Layout: :func:`networkx.multipartite_layout` puts each kind on its own row (clients, load
balancer, servers, backplane); each row is then stretched to the full width and clients are ordered
by server, so every server sits under its own clients.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from simscale.figures.style import COLOURS, FIGURE_HEIGHT_PX, FIGURE_WIDTH_PX, house_layout

__all__ = [
    "TRACE_CLIENTS_MISSED",
    "TRACE_CLIENTS_REACHED",
    "TRACE_SERVERS",
    "choose_broadcast",
    "layout_topology",
    "reached_servers",
    "topology_figure",
]

TRACE_SERVERS = "servers"
TRACE_CLIENTS_REACHED = "clients reached"
TRACE_CLIENTS_MISSED = "clients not reached"

_ROW_OF_KIND = {"client": 0, "load_balancer": 1, "server": 2, "backplane": 3}
_ROW_Y = {0: 1.0, 1: 0.55, 2: 0.0, 3: -0.6}


def choose_broadcast(broadcasts: pd.DataFrame, *, origin_server: int = 0, after_s: float = 0.0) -> int:
    """The first broadcast sent from ``origin_server`` at or after ``after_s`` (its ``broadcast_id``).

    Raises:
        ValueError: no such broadcast in the frame.
    """
    chosen = broadcasts[(broadcasts["origin_server"] == origin_server) & (broadcasts["sent_at_s"] >= after_s)]
    if chosen.empty:
        raise ValueError(f"no broadcast from server {origin_server} at or after {after_s} s")
    return int(chosen.sort_values("sent_at_s")["broadcast_id"].iloc[0])


def reached_servers(deliveries: pd.DataFrame, broadcast_id: int) -> set[int]:
    """Servers whose fan-out of ``broadcast_id`` delivered to at least one client."""
    rows = deliveries[(deliveries["broadcast_id"] == broadcast_id) & (deliveries["delivered"] > 0)]
    return {int(server) for server in rows["server"]}


def _client_sort_key(graph: nx.Graph, node: Any) -> tuple[int, int, str]:
    data = graph.nodes[node]
    server = int(data.get("server", -1))
    # Disconnected clients (server -1) go last, at the right-hand end of the row.
    return (server if server >= 0 else 1_000_000, int(data.get("client", -1)), str(node))


def layout_topology(graph: nx.Graph) -> dict[Any, tuple[float, float]]:
    """Node positions: one row per kind (networkx multipartite), each row spread across the width."""
    layers: dict[int, list[Any]] = {row: [] for row in _ROW_OF_KIND.values()}
    for node, kind in graph.nodes(data="kind"):
        layers[_ROW_OF_KIND[str(kind)]].append(node)
    layers[0].sort(key=lambda node: _client_sort_key(graph, node))
    layers[2].sort(key=lambda node: int(graph.nodes[node].get("server", 0)))
    ordered = {row: nodes for row, nodes in layers.items() if nodes}
    raw = nx.multipartite_layout(graph.subgraph([n for nodes in ordered.values() for n in nodes]), subset_key=ordered)
    positions: dict[Any, tuple[float, float]] = {}
    for row, nodes in ordered.items():
        # multipartite_layout spaces each row's nodes evenly; keep its order, stretch to [-1, 1].
        xs = np.array([raw[node][1] for node in nodes], dtype=float)
        order = np.argsort(xs, kind="stable")
        count = len(nodes)
        if row == 1:
            slots = [-1.12] * count  # the load balancer sits at the left of its row
        elif count == 1:
            slots = [0.0]
        else:
            margin = 1.0 / count
            slots = list(np.linspace(-1 + margin, 1 - margin, count))
        for slot, index in zip(slots, order, strict=True):
            positions[nodes[int(index)]] = (float(slot), _ROW_Y[row])
    return positions


def _segments(
    graph: nx.Graph, positions: dict[Any, tuple[float, float]], edges: Iterable[tuple[Any, Any]]
) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a, b in edges:
        xs += [positions[a][0], positions[b][0], None]
        ys += [positions[a][1], positions[b][1], None]
    return xs, ys


def topology_figure(
    graph: nx.Graph,
    deliveries: pd.DataFrame,
    broadcast_id: int,
    *,
    title: str,
    origin_server: int | None = None,
    width_px: int = FIGURE_WIDTH_PX,
    height_px: int = FIGURE_HEIGHT_PX,
) -> go.Figure:
    """Draw ``graph`` with its clients coloured by whether ``broadcast_id`` reached them.

    Args:
        graph: the scenario's topology (``SimulationResult.topology``).
        deliveries: that run's ``deliveries`` frame.
        broadcast_id: the broadcast to colour by (see :func:`choose_broadcast`).
        title: the figure title.
        origin_server: the sender's server, marked in orange (looked up in ``deliveries`` if None).
        width_px: figure width.
        height_px: figure height.

    Returns:
        A figure whose traces are named after what they show; :data:`TRACE_SERVERS`,
        :data:`TRACE_CLIENTS_REACHED` and :data:`TRACE_CLIENTS_MISSED` hold one point per node, and
        each client point's ``customdata`` is how many clients it stands for.
    """
    reached = reached_servers(deliveries, broadcast_id)
    if origin_server is None:
        rows = deliveries[deliveries["broadcast_id"] == broadcast_id]
        origin_server = int(rows["origin_server"].iloc[0]) if len(rows) else 0
    positions = layout_topology(graph)
    nodes_of: dict[str, list[Any]] = {kind: [] for kind in _ROW_OF_KIND}
    for node, kind in graph.nodes(data="kind"):
        nodes_of[str(kind)].append(node)

    edges_of: dict[str, list[tuple[Any, Any]]] = {"session": [], "proxy": [], "pubsub": []}
    for a, b, kind in graph.edges(data="kind"):
        if kind in edges_of:
            edges_of[str(kind)].append((a, b))
    for kind in edges_of:
        edges_of[kind].sort(key=lambda edge: (str(edge[0]), str(edge[1])))

    figure = go.Figure()
    styles = {
        "session": ("client sessions (WebSocket)", {"color": COLOURS["edge"], "width": 1}),
        "proxy": ("load balancer → servers", {"color": COLOURS["balancer"], "width": 1, "dash": "dot"}),
        "pubsub": ("Redis pub/sub", {"color": COLOURS["backplane"], "width": 3}),
    }
    for kind, (name, line) in styles.items():
        if not edges_of[kind]:
            continue
        xs, ys = _segments(graph, positions, edges_of[kind])
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line=line, hoverinfo="skip"))

    clients = sorted(nodes_of["client"], key=lambda node: _client_sort_key(graph, node))
    reached_nodes = [n for n in clients if int(graph.nodes[n].get("server", -1)) in reached]
    missed_nodes = [n for n in clients if n not in set(reached_nodes)]
    aggregate = any(int(graph.nodes[n].get("count", 1)) > 1 for n in clients)
    size = 26 if aggregate else (15 if len(clients) <= 24 else 9)
    for name, members, colour, outline in (
        (TRACE_CLIENTS_REACHED, reached_nodes, COLOURS["reached"], COLOURS["reached"]),
        (TRACE_CLIENTS_MISSED, missed_nodes, COLOURS["missed"], COLOURS["missed_edge"]),
    ):
        counts = [int(graph.nodes[n].get("count", 1)) for n in members]
        figure.add_trace(
            go.Scatter(
                x=[positions[n][0] for n in members],
                y=[positions[n][1] for n in members],
                mode="markers+text" if aggregate else "markers",
                name=f"{name} ({sum(counts)})",
                meta=name,
                customdata=counts,
                text=[f"{c:,}" for c in counts] if aggregate else None,
                textposition="top center",
                marker={"size": size, "color": colour, "line": {"color": outline, "width": 1.5}, "symbol": "circle"},
                hovertemplate="%{customdata} client(s)<extra>" + name + "</extra>",
            )
        )

    servers = sorted(nodes_of["server"], key=lambda node: int(graph.nodes[node]["server"]))
    labels = []
    roomy = len(servers) <= 4  # beyond four servers, long labels would run into the next server
    for node in servers:
        index = int(graph.nodes[node]["server"])
        label = f"server {index}" if roomy else f"S{index}"
        if index == origin_server and roomy:
            label += " (sender)"
        labels.append(label)
    figure.add_trace(
        go.Scatter(
            x=[positions[n][0] for n in servers],
            y=[positions[n][1] for n in servers],
            mode="markers+text",
            name=TRACE_SERVERS,
            meta=TRACE_SERVERS,
            text=labels,
            # Beside the square: sessions arrive from above and pub/sub links leave from below.
            textposition="middle right",
            marker={
                "size": 30,
                "symbol": "square",
                "color": [
                    COLOURS["origin"] if int(graph.nodes[n]["server"]) == origin_server else COLOURS["server"]
                    for n in servers
                ],
            },
            hovertemplate="%{text}<extra></extra>",
        )
    )
    for kind, name, symbol, colour in (
        ("load_balancer", "load balancer", "diamond", COLOURS["balancer"]),
        ("backplane", "Redis backplane", "hexagon", COLOURS["backplane"]),
    ):
        members = nodes_of[kind]
        if not members:
            continue
        figure.add_trace(
            go.Scatter(
                x=[positions[n][0] for n in members],
                y=[positions[n][1] for n in members],
                mode="markers+text",
                name=name,
                meta=kind,
                text=[str(graph.nodes[n].get("label", name)).replace(" (", "<br>(") for n in members],
                textposition="bottom center" if kind == "backplane" else "top center",
                marker={"size": 34 if kind == "backplane" else 24, "symbol": symbol, "color": colour},
                hoverinfo="text",
            )
        )

    total = sum(int(graph.nodes[n].get("count", 1)) for n in clients)
    got = sum(int(graph.nodes[n].get("count", 1)) for n in reached_nodes)
    house_layout(
        figure,
        title=f"{title}<br><sup>broadcast #{broadcast_id} sent from server {origin_server} (orange): "
        f"{got} of {total} clients reached</sup>",
        width_px=width_px,
        height_px=height_px,
        xaxis={"visible": False, "range": [-1.32, 1.08], "fixedrange": True},
        yaxis={"visible": False, "range": [-0.85, 1.2], "fixedrange": True},
        legend={"orientation": "h", "x": 0.0, "y": -0.02, "yanchor": "top", "font": {"size": 12}},
        showlegend=True,
    )
    figure.update_layout(margin={"l": 20, "r": 20, "t": 80, "b": 70})
    return figure
