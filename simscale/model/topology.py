"""The deployment as a graph (networkx): what the documentation diagrams are drawn from.

Nodes carry a ``kind`` (client, load_balancer, server, backplane) and, for clients, the ``server``
they were connected to at the end of the run (-1 when not connected). Beyond
``MAX_CLIENT_NODES`` clients, each server's clients become one aggregate node with a ``count``.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import numpy.typing as npt

__all__ = ["MAX_CLIENT_NODES", "build_topology"]

MAX_CLIENT_NODES = 400


def build_topology(
    *,
    name: str,
    servers: int,
    load_balancer: str,
    backplane: str,
    server_of: npt.NDArray[np.int32],
    service_units: int = 0,
    server_connections_per_hub: int = 0,
) -> nx.Graph:
    """The graph of clients → load balancer → servers (→ backplane) of scenario ``name``.

    ``server_of`` gives each client's server (-1: not connected). With ``service_units`` > 0 the
    clients connect to an Azure SignalR Service node instead, and each server holds
    ``server_connections_per_hub`` server connections to it (one ``server_connection`` edge, with
    that ``count``); a client's ``session`` edge then is its logical connection to its server.
    """
    if service_units:
        return _service_topology(name, servers, server_of, service_units, server_connections_per_hub)
    graph = nx.Graph(scenario=name, backplane=backplane)
    graph.add_node("load-balancer", kind="load_balancer", label=f"load balancer ({load_balancer})")
    # One pass over the clients, not one per server (10,000,000 clients × 800 servers add up).
    connections = np.bincount(server_of[server_of >= 0], minlength=servers).tolist()
    for index in range(servers):
        node = f"server-{index}"
        graph.add_node(
            node,
            kind="server",
            server=index,
            label=f"server {index}",
            connections=int(connections[index]),
        )
        graph.add_edge("load-balancer", node, kind="proxy")
    if backplane == "redis":
        graph.add_node("backplane", kind="backplane", label="Redis backplane")
        for index in range(servers):
            graph.add_edge(f"server-{index}", "backplane", kind="pubsub")
    if len(server_of) <= MAX_CLIENT_NODES:
        for client, server in enumerate(server_of.tolist()):
            node = f"client-{client}"
            graph.add_node(node, kind="client", client=client, server=int(server), count=1)
            graph.add_edge(node, "load-balancer", kind="connection")
            if server >= 0:
                graph.add_edge(node, f"server-{server}", kind="session")
    else:
        for index in range(-1, servers):
            count = int(np.count_nonzero(server_of == index))
            if count == 0:
                continue
            node = f"clients-of-{index}" if index >= 0 else "clients-disconnected"
            graph.add_node(node, kind="client", client=-1, server=index, count=count)
            graph.add_edge(node, "load-balancer", kind="connection")
            if index >= 0:
                graph.add_edge(node, f"server-{index}", kind="session")
    return graph


def _service_topology(
    name: str, servers: int, server_of: npt.NDArray[np.int32], units: int, server_connections: int
) -> nx.Graph:
    graph = nx.Graph(scenario=name, backplane="azure-signalr")
    label = f"Azure SignalR Service ({units} unit{'s' if units > 1 else ''})"
    graph.add_node("service", kind="service", units=units, label=label)
    for index in range(servers):
        node = f"server-{index}"
        connections = int(np.count_nonzero(server_of == index))
        graph.add_node(node, kind="server", server=index, label=f"server {index}", connections=connections)
        graph.add_edge(node, "service", kind="server_connection", count=server_connections)
    groups = (
        [(f"client-{c}", c, int(s), 1) for c, s in enumerate(server_of.tolist())]
        if len(server_of) <= MAX_CLIENT_NODES
        else [
            (f"clients-of-{i}" if i >= 0 else "clients-disconnected", -1, i, int(np.count_nonzero(server_of == i)))
            for i in range(-1, servers)
            if np.count_nonzero(server_of == i)
        ]
    )
    for node, client, server, count in groups:
        graph.add_node(node, kind="client", client=client, server=server, count=count)
        graph.add_edge(node, "service", kind="connection")
        if server >= 0:
            graph.add_edge(node, f"server-{server}", kind="session")
    return graph
