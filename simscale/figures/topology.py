"""Deployment diagrams drawn from the topology the model built, coloured by who got a broadcast.

The graph comes from :func:`simscale.model.topology.build_topology` (passed in, never built here):
nodes have a ``kind`` (client, load_balancer, server, backplane); clients carry the ``server`` they
are connected to and a ``count`` (1, or more for an aggregate node). A client is *reached* by a
broadcast when its server's delivery record for that broadcast has ``delivered > 0``.

Layout: :func:`networkx.multipartite_layout` puts each kind on its own row, top to bottom: clients,
the load balancer, servers, the backplane; each row is then stretched to the full width and clients
are ordered by server, so every server sits under its own clients. The load balancer is drawn as a
band across its row, so every client's session visibly passes through it on the way to its server.

The chosen broadcast's path is drawn with arrows (plotly annotations, see :data:`PATH_ANNOTATION`):
a client of the sender's server sends it to that server (the records name the origin server, not the
client: the diagram takes the server's first client), the server writes to its own clients and, with
a backplane, publishes to it; the backplane hands it to every other server, which writes to its own
clients. Only servers whose delivery record says ``delivered > 0`` get arrows to their clients.
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
    "PATH_ANNOTATION",
    "TRACE_BALANCER",
    "TRACE_CLIENTS_MISSED",
    "TRACE_CLIENTS_REACHED",
    "TRACE_ORIGIN_SERVER",
    "TRACE_PATH",
    "TRACE_SERVERS",
    "broadcast_path",
    "choose_broadcast",
    "layout_topology",
    "reached_servers",
    "topology_figure",
]

TRACE_SERVERS = "servers"
"""Every server that is not the sender's (the ``meta`` of its trace); ``customdata`` holds server indexes."""
TRACE_ORIGIN_SERVER = "origin server"
"""The sender's server, drawn in its own colour with its own legend entry."""
TRACE_CLIENTS_REACHED = "clients reached"
TRACE_CLIENTS_MISSED = "clients not reached"
TRACE_BALANCER = "load_balancer"
TRACE_PATH = "broadcast path"
"""A legend-only trace for the path arrows (annotations do not appear in a legend)."""
PATH_ANNOTATION = "path"
"""Every path arrow is an annotation named ``"path:STEP:FROM>TO"`` (node names; see :func:`broadcast_path`)."""

_ROW_OF_KIND = {"client": 0, "load_balancer": 1, "server": 2, "backplane": 3}
_ROW_Y = {0: 1.0, 1: 0.55, 2: 0.0, 3: -0.6}


def choose_broadcast(broadcasts: pd.DataFrame, *, origin_server: int = 0, after_s: float = 0.0) -> int:
    """The first broadcast sent from ``origin_server`` at or after ``after_s`` (its ``broadcast_id``).

    Raises:
        ValueError: no such broadcast in the frame.

    Example:

        >>> from simscale import preset, simulate
        >>> result = simulate(preset("no-backplane", clients=12, duration_s=3.0, warmup_s=1.0, seed=1))
        >>> frames = result.frames()
        >>> from simscale.figures import choose_broadcast
        >>> broadcast_id = choose_broadcast(frames["broadcasts"], origin_server=1, after_s=1.0)
        >>> row = frames["broadcasts"].set_index("broadcast_id").loc[broadcast_id]
        >>> int(row["origin_server"]), bool(row["sent_at_s"] >= 1.0)
        (1, True)
    """
    chosen = broadcasts[(broadcasts["origin_server"] == origin_server) & (broadcasts["sent_at_s"] >= after_s)]
    if chosen.empty:
        raise ValueError(f"no broadcast from server {origin_server} at or after {after_s} s")
    return int(chosen.sort_values("sent_at_s")["broadcast_id"].iloc[0])


def reached_servers(deliveries: pd.DataFrame, broadcast_id: int) -> set[int]:
    """Servers whose fan-out of ``broadcast_id`` delivered to at least one client.

    Example (three servers and no backplane: a broadcast reaches only its sender's server):

        >>> from simscale import preset, simulate
        >>> result = simulate(preset("no-backplane", clients=12, duration_s=3.0, warmup_s=1.0, seed=1))
        >>> frames = result.frames()
        >>> from simscale.figures import choose_broadcast, reached_servers
        >>> reached_servers(frames["deliveries"], choose_broadcast(frames["broadcasts"], origin_server=1))
        {1}
    """
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
        if count == 1:
            slots = [0.0]
        else:
            margin = 1.0 / count
            slots = list(np.linspace(-1 + margin, 1 - margin, count))
        for slot, index in zip(slots, order, strict=True):
            positions[nodes[int(index)]] = (float(slot), _ROW_Y[row])
    return positions


def broadcast_path(graph: nx.Graph, reached: set[int], origin_server: int) -> list[tuple[int, Any, Any]]:
    """The broadcast's hops as ``(step, from_node, to_node)``, in the order they happen.

    Step 0: a client of the origin server → that server. Step 1: the origin server → the backplane
    (when there is one). Step 2: the backplane → every other reached server. Step 3: each reached
    server → each of its clients. Unreached servers and their clients get no hop.
    """
    server_node = {int(data["server"]): node for node, data in graph.nodes(data=True) if data.get("kind") == "server"}
    clients = sorted(
        (node for node, kind in graph.nodes(data="kind") if kind == "client"),
        key=lambda node: _client_sort_key(graph, node),
    )
    clients_of: dict[int, list[Any]] = {}
    for node in clients:
        clients_of.setdefault(int(graph.nodes[node].get("server", -1)), []).append(node)
    origin = server_node.get(origin_server)
    if origin is None:
        return []
    hops: list[tuple[int, Any, Any]] = []
    if clients_of.get(origin_server):
        hops.append((0, clients_of[origin_server][0], origin))
    backplanes = [node for node, kind in graph.nodes(data="kind") if kind == "backplane"]
    others = [index for index in sorted(reached) if index != origin_server and index in server_node]
    if backplanes and others:
        backplane = backplanes[0]
        hops.append((1, origin, backplane))
        hops += [(2, backplane, server_node[index]) for index in others]
    for index in ([origin_server] if origin_server in reached else []) + others:
        hops += [(3, server_node[index], client) for client in clients_of.get(index, [])]
    return hops


def _segments(
    positions: dict[Any, tuple[float, float]], edges: Iterable[tuple[Any, Any]]
) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a, b in edges:
        xs += [positions[a][0], positions[b][0], None]
        ys += [positions[a][1], positions[b][1], None]
    return xs, ys


_SERVER_SIZE = 30
_BACKPLANE_SIZE = 34


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
    """Draw ``graph`` with its clients coloured by whether ``broadcast_id`` reached them, and its path.

    Args:
        graph: the scenario's topology (``SimulationResult.topology``).
        deliveries: that run's ``deliveries`` frame.
        broadcast_id: the broadcast to colour by (see :func:`choose_broadcast`).
        title: the figure title.
        origin_server: the sender's server, marked in orange (looked up in ``deliveries`` if None).
        width_px: figure width.
        height_px: figure height.

    Returns:
        A figure whose traces are named after what they show (``meta``): :data:`TRACE_SERVERS`,
        :data:`TRACE_ORIGIN_SERVER`, :data:`TRACE_CLIENTS_REACHED` and :data:`TRACE_CLIENTS_MISSED` hold
        one point per node (each client point's ``customdata`` is how many clients it stands for),
        :data:`TRACE_BALANCER` is the load balancer's band, and the path arrows are annotations named
        :data:`PATH_ANNOTATION` (see :func:`broadcast_path`), in the order of their hops.

    Example:

        >>> from simscale import preset, simulate
        >>> result = simulate(preset("no-backplane", clients=12, duration_s=3.0, warmup_s=1.0, seed=1))
        >>> frames = result.frames()
        >>> from simscale.figures import choose_broadcast, topology_figure
        >>> broadcast_id = choose_broadcast(frames["broadcasts"], origin_server=1)
        >>> figure = topology_figure(result.topology, frames["deliveries"], broadcast_id, title="No backplane")
        >>> [trace.name for trace in figure.data if trace.name.startswith("clients")]
        ['clients reached (4)', 'clients not reached (8)']
    """
    reached = reached_servers(deliveries, broadcast_id)
    if origin_server is None:
        rows = deliveries[deliveries["broadcast_id"] == broadcast_id]
        origin_server = int(rows["origin_server"].iloc[0]) if len(rows) else 0
    positions = layout_topology(graph)
    nodes_of: dict[str, list[Any]] = {kind: [] for kind in _ROW_OF_KIND}
    for node, kind in graph.nodes(data="kind"):
        nodes_of[str(kind)].append(node)
    clients = sorted(nodes_of["client"], key=lambda node: _client_sort_key(graph, node))
    reached_nodes = [n for n in clients if int(graph.nodes[n].get("server", -1)) in reached]
    missed_nodes = [n for n in clients if n not in set(reached_nodes)]
    aggregate = any(int(graph.nodes[n].get("count", 1)) > 1 for n in clients)
    client_size = 26 if aggregate else (15 if len(clients) <= 24 else 9)
    size_of: dict[Any, int] = {n: client_size for n in clients}
    size_of.update({n: _SERVER_SIZE for n in nodes_of["server"]})
    size_of.update({n: _BACKPLANE_SIZE for n in nodes_of["backplane"]})

    figure = go.Figure()
    # The load balancer: a band across its row; every session crosses it on its way to a server.
    balancer_y = _ROW_Y[_ROW_OF_KIND["load_balancer"]]
    if nodes_of["load_balancer"]:
        label = str(graph.nodes[nodes_of["load_balancer"][0]].get("label", "load balancer"))
        figure.add_trace(
            go.Scatter(
                x=[-1.04, 1.04],
                y=[balancer_y, balancer_y],
                mode="lines",
                name="load balancer",
                meta=TRACE_BALANCER,
                line={"color": COLOURS["balancer_band"], "width": 14},
                hovertext=label,
                hoverinfo="text",
            )
        )
        figure.add_annotation(
            x=-1.06,
            y=balancer_y,
            text=label.replace(" (", "<br>("),
            showarrow=False,
            xanchor="right",
            font={"size": 12, "color": COLOURS["balancer"]},
        )

    # Quiet grey edges: every client session (client → load balancer → server) and pub/sub link.
    sessions = sorted(
        ((a, b) if graph.nodes[a].get("kind") == "client" else (b, a))
        for a, b, kind in graph.edges(data="kind")
        if kind == "session"
    )
    pubsub = sorted((a, b) for a, b, kind in graph.edges(data="kind") if kind == "pubsub")
    for name, edges, line in (
        ("client sessions (WebSocket, through the load balancer)", sessions, {"color": COLOURS["edge"], "width": 1}),
        ("Redis pub/sub", pubsub, {"color": COLOURS["edge"], "width": 2.5}),
    ):
        if not edges:
            continue
        xs, ys = _segments(positions, edges)
        figure.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", name=name, meta=name, line=line, hoverinfo="skip", showlegend=False)
        )

    for name, members, colour, outline in (
        (TRACE_CLIENTS_REACHED, reached_nodes, COLOURS["reached"], COLOURS["reached"]),
        (TRACE_CLIENTS_MISSED, missed_nodes, COLOURS["missed"], COLOURS["missed_edge"]),
    ):
        counts = [int(graph.nodes[n].get("count", 1)) for n in members]
        if name == TRACE_CLIENTS_MISSED and not members:
            continue
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
                marker={
                    "size": client_size,
                    "color": colour,
                    "line": {"color": outline, "width": 1.5},
                    "symbol": "circle" if name == TRACE_CLIENTS_REACHED else "circle-x",
                },
                hovertemplate="%{customdata} client(s)<extra>" + name + "</extra>",
            )
        )

    servers = sorted(nodes_of["server"], key=lambda node: int(graph.nodes[node]["server"]))
    roomy = len(servers) <= 4  # beyond four servers, long labels would run into the next server
    for meta, name, colour, members in (
        (TRACE_SERVERS, "server", COLOURS["server"], [n for n in servers if graph.nodes[n]["server"] != origin_server]),
        (
            TRACE_ORIGIN_SERVER,
            "sender's server",
            COLOURS["origin"],
            [n for n in servers if graph.nodes[n]["server"] == origin_server],
        ),
    ):
        if not members:
            continue
        indexes = [int(graph.nodes[n]["server"]) for n in members]
        labels = [
            (f"server {i}" if roomy else f"S{i}") + (" (sender)" if roomy and i == origin_server else "")
            for i in indexes
        ]
        figure.add_trace(
            go.Scatter(
                x=[positions[n][0] for n in members],
                y=[positions[n][1] for n in members],
                mode="markers+text",
                name=name,
                meta=meta,
                customdata=indexes,
                text=labels,
                # Beside the square: sessions arrive from above and pub/sub links leave from below.
                textposition="middle right",
                marker={"size": _SERVER_SIZE, "symbol": "square", "color": colour},
                hovertemplate="%{text}<extra></extra>",
            )
        )
    for node in nodes_of["backplane"]:
        name = str(graph.nodes[node].get("label", "Redis backplane"))
        figure.add_trace(
            go.Scatter(
                x=[positions[node][0]],
                y=[positions[node][1]],
                mode="markers+text",
                name=name,
                meta="backplane",
                text=[name],
                textposition="middle right",
                marker={"size": _BACKPLANE_SIZE, "symbol": "hexagon", "color": COLOURS["backplane"]},
                hoverinfo="text",
            )
        )

    hops = broadcast_path(graph, reached, origin_server)
    if hops:
        figure.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=TRACE_PATH,
                meta=TRACE_PATH,
                line={"color": COLOURS["path"], "width": 2.5},
                hoverinfo="skip",
            )
        )
    sender = hops[0][1] if hops and hops[0][0] == 0 else None
    for step, a, b in hops:
        if step == 3 and b == sender:
            continue  # the sender also receives its own broadcast: its step-0 arrow points both ways
        figure.add_annotation(
            name=f"{PATH_ANNOTATION}:{step}:{a}>{b}",
            hovertext=f"step {step}: {graph.nodes[a].get('label', a)} → {graph.nodes[b].get('label', b)}",
            x=positions[b][0],
            y=positions[b][1],
            ax=positions[a][0],
            ay=positions[a][1],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            text="",
            showarrow=True,
            arrowhead=2,
            arrowsize=1.1,
            arrowwidth=2,
            arrowcolor=COLOURS["path"],
            arrowside="end+start" if step == 0 and (origin_server in reached) else "end",
            standoff=size_of.get(b, 12) / 2 + 1,
            startstandoff=size_of.get(a, 12) / 2 + 1,
        )
    if sender is not None:
        figure.add_annotation(
            x=positions[sender][0],
            y=positions[sender][1],
            text="sender",
            showarrow=False,
            yshift=18,
            font={"size": 12, "color": COLOURS["path"]},
        )

    total = sum(int(graph.nodes[n].get("count", 1)) for n in clients)
    got = sum(int(graph.nodes[n].get("count", 1)) for n in reached_nodes)
    house_layout(
        figure,
        title=f"{title}<br><sup>broadcast #{broadcast_id}, sent by a client of server {origin_server} (orange); "
        f"arrows: its path; {got} of {total} clients reached</sup>",
        width_px=width_px,
        height_px=height_px,
        xaxis={"visible": False, "range": [-1.34, 1.16], "fixedrange": True},
        yaxis={"visible": False, "range": [-0.8 if nodes_of["backplane"] else -0.3, 1.18], "fixedrange": True},
        legend={"orientation": "h", "x": 0.0, "y": -0.02, "yanchor": "top", "font": {"size": 12}},
        showlegend=True,
    )
    figure.update_layout(margin={"l": 20, "r": 20, "t": 80, "b": 70})
    return figure
