"""Azure SignalR Service figures: its topology with a broadcast's path, the published capacity
table beside the model's, and the same workload self-hosted and on the service.

Like every module of this package it only draws: the frames come from
:mod:`simscale.scenarios.hosting` (or a notebook), the graph from ``SimulationResult.topology``.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simscale.figures.style import COLOURS, house_layout

__all__ = ["hosting_comparison_figure", "published_capacity_figure", "service_topology_figure"]

_Y = {"client": 1.0, "service": 0.35, "server": -0.45}
_PATH_STEPS = (
    "1 a client sends to the service",
    "2 the service passes it to the sender's app server over its server connection",
    "3 the app server sends the broadcast once, back to the service",
    "4 the service fans it out to every client",
)


def _spread(count: int) -> list[float]:
    if count == 1:
        return [0.0]
    margin = 1.0 / count
    return [-1 + margin + k * (2 - 2 * margin) / (count - 1) for k in range(count)]


def service_topology_figure(graph: nx.Graph, *, title: str, origin_server: int = 0) -> go.Figure:
    """Clients → Azure SignalR Service ⇄ app servers over their server connections, with a broadcast's path.

    Args:
        graph: a run's topology with ``hosting='azure-signalr'`` (it has a ``service`` node).
        title: the figure title.
        origin_server: the sender's app server (orange).

    Example:

        >>> from simscale import preset, simulate
        >>> from simscale.figures.service import service_topology_figure
        >>> result = simulate(preset("azure-signalr-service", clients=8, duration_s=3.0, warmup_s=1.0, seed=1))
        >>> figure = service_topology_figure(result.topology, title="On the service")
        >>> [trace.meta for trace in figure.data]
        ['server connections', 'client connections', 'clients', 'service', 'app servers']
        >>> len([a for a in figure.layout.annotations if a.name == "path"])
        3
    """
    kinds = dict(graph.nodes(data="kind"))
    if "service" not in kinds:
        raise ValueError("service_topology_figure needs a topology with a service node (hosting='azure-signalr')")
    clients = sorted((n for n, k in kinds.items() if k == "client"), key=lambda n: (graph.nodes[n]["server"], str(n)))
    servers = sorted((n for n, k in kinds.items() if k == "server"), key=lambda n: graph.nodes[n]["server"])
    at: dict[Any, tuple[float, float]] = {
        n: (x, _Y["client"]) for n, x in zip(clients, _spread(len(clients)), strict=True)
    }
    at.update({n: (x * 0.7, _Y["server"]) for n, x in zip(servers, _spread(len(servers)), strict=True)})
    service = graph.nodes["service"]
    figure = go.Figure()
    # Each server's k server connections: k thin lines fanned out into the service's band.
    xs: list[float | None] = []
    ys: list[float | None] = []
    for server in servers:
        count = int(graph.edges[server, "service"].get("count", 1))
        x0 = at[server][0]
        for k in range(count):
            xs += [x0, x0 + (k - (count - 1) / 2) * 0.05, None]
            ys += [_Y["server"], _Y["service"] - 0.08, None]
    figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", meta="server connections", name="server connections",
                                line={"color": COLOURS["server"], "width": 1.2}, hoverinfo="skip"))  # fmt: skip
    xs, ys = [], []
    for client in clients:
        xs += [at[client][0], at[client][0] * 0.9, None]
        ys += [_Y["client"], _Y["service"] + 0.08, None]
    figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", meta="client connections", name="client connections",
                                line={"color": COLOURS["edge"], "width": 1}, hoverinfo="skip"))  # fmt: skip
    counts = [int(graph.nodes[n].get("count", 1)) for n in clients]
    figure.add_trace(
        go.Scatter(
            x=[at[n][0] for n in clients], y=[at[n][1] for n in clients], mode="markers", meta="clients",
            name=f"clients reached ({sum(counts):,})", customdata=counts,
            marker={"size": 15, "color": COLOURS["reached"], "line": {"color": COLOURS["reached"], "width": 1.5}},
            hovertemplate="%{customdata} client(s)<extra></extra>",
        )
    )  # fmt: skip
    figure.add_trace(
        go.Scatter(
            x=[-0.95, 0.95], y=[_Y["service"], _Y["service"]], mode="lines", meta="service",
            name=str(service["label"]), line={"color": COLOURS["redis"], "width": 34}, hoverinfo="name",
        )
    )  # fmt: skip
    figure.add_annotation(x=0.0, y=_Y["service"], text=f"<b>{service['label']}</b>", showarrow=False,
                          font={"color": "white", "size": 13})  # fmt: skip
    colours = [COLOURS["origin"] if graph.nodes[n]["server"] == origin_server else COLOURS["server"] for n in servers]
    labels = [
        f"app server {graph.nodes[n]['server']}<br>{graph.edges[n, 'service'].get('count', 1)} server connections"
        for n in servers
    ]
    figure.add_trace(
        go.Scatter(
            x=[at[n][0] for n in servers], y=[at[n][1] for n in servers], mode="markers+text", meta="app servers",
            name="app servers (sender's in orange)", marker={"size": 30, "symbol": "square", "color": colours},
            text=labels,
            textposition="bottom center", hoverinfo="text",
        )
    )  # fmt: skip
    origin = next((n for n in servers if graph.nodes[n]["server"] == origin_server), servers[0])
    sender = next((n for n in clients if graph.nodes[n]["server"] == origin_server), clients[0])
    ox, sx = at[origin][0], at[sender][0]
    hops = [
        ((sx + 0.04, _Y["client"] - 0.04), (sx * 0.9 + 0.04, _Y["service"] + 0.1)),
        ((ox - 0.06, _Y["service"] - 0.1), (ox - 0.03, _Y["server"] + 0.08)),
        ((ox + 0.06, _Y["server"] + 0.08), (ox + 0.09, _Y["service"] - 0.1)),
    ]
    for step, ((x0, y0), (x1, y1)) in enumerate(hops, start=1):
        figure.add_annotation(
            name="path", x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="",
            showarrow=True, arrowhead=3, arrowsize=1.3, arrowwidth=2.5, arrowcolor=COLOURS["path"],
        )  # fmt: skip
        figure.add_annotation(x=(x0 + x1) / 2 - 0.035, y=(y0 + y1) / 2, text=f"<b>{step}</b>", showarrow=False,
                              font={"color": COLOURS["path"], "size": 14})  # fmt: skip
    # Step 4: the service writes to every client (one arrow each, drawn from the band).
    for client in clients:
        x = at[client][0]
        figure.add_annotation(
            name="fan-out", x=x, y=_Y["client"] - 0.05, ax=x * 0.9, ay=_Y["service"] + 0.1, xref="x", yref="y",
            axref="x", ayref="y", text="", showarrow=True, arrowhead=3, arrowwidth=2, arrowcolor=COLOURS["path"],
        )  # fmt: skip
    x4 = at[clients[-1]][0]
    figure.add_annotation(x=x4 * 0.95 + 0.04, y=(_Y["client"] + _Y["service"]) / 2, text="<b>4</b>",
                          showarrow=False, font={"color": COLOURS["path"], "size": 14})  # fmt: skip
    figure.add_annotation(x=-1.08, y=-0.92, xanchor="left", showarrow=False, align="left", font={"size": 11},
                          text="broadcast path: " + "; ".join(_PATH_STEPS[:2]) + ";<br>"
                          + "; ".join(_PATH_STEPS[2:]))  # fmt: skip
    house_layout(figure, title=title, showlegend=True,
                 legend={"orientation": "h", "y": -0.02, "x": 0.0, "font": {"size": 11}})  # fmt: skip
    figure.update_xaxes(visible=False, range=[-1.1, 1.1])
    figure.update_yaxes(visible=False, range=[-1.05, 1.15])
    return figure


_CAPACITY_SERIES = (
    ("published", "published (Azure performance guide)", COLOURS["reference"], "dash"),
    ("model", "model (p99 < 1 s)", COLOURS["redis"], "solid"),
)


def published_capacity_figure(frame: pd.DataFrame) -> go.Figure:
    """Outbound messages per second with p99 under 1 s, by unit count: published table and model.

    Args:
        frame: columns ``units``, ``source`` (``published`` or ``model``) and ``out_messages_per_s``;
            with a ``workload`` column, one panel per workload (in the order they first appear).

    Example:

        >>> import pandas as pd
        >>> from simscale.figures.service import published_capacity_figure
        >>> frame = pd.DataFrame({"units": [1, 10, 1, 10], "source": ["published"] * 2 + ["model"] * 2,
        ...                       "out_messages_per_s": [2_000, 20_000, 1_800, 18_000]})
        >>> [trace.name for trace in published_capacity_figure(frame).data]
        ['published (Azure performance guide)', 'model (p99 < 1 s)']
    """
    missing = {"units", "source", "out_messages_per_s"} - set(frame.columns)
    if missing:
        raise ValueError(f"published_capacity_figure needs column(s) {', '.join(sorted(missing))}")
    if "workload" not in frame.columns:
        figure = go.Figure()
        for source, name, colour, dash in _CAPACITY_SERIES:
            rows = frame[frame["source"] == source].sort_values("units")
            figure.add_trace(
                go.Scatter(x=rows["units"], y=rows["out_messages_per_s"], mode="lines+markers", name=name,
                           line={"color": colour, "dash": dash, "width": 2.5}, marker={"size": 9})
            )  # fmt: skip
        house_layout(figure, title="Broadcast capacity of Azure SignalR Service: 2 KB messages, p99 under 1 s",
                     legend={"x": 0.02, "y": 0.98})  # fmt: skip
        figure.update_xaxes(title="units", type="log")
        figure.update_yaxes(title="outbound messages per second", type="log")
        return figure
    workloads = list(dict.fromkeys(frame["workload"]))
    columns = 2 if len(workloads) > 1 else 1
    rows_count = -(-len(workloads) // columns)
    figure = make_subplots(rows=rows_count, cols=columns, subplot_titles=workloads,
                           horizontal_spacing=0.1, vertical_spacing=0.16)  # fmt: skip
    for position, workload in enumerate(workloads):
        row, col = position // columns + 1, position % columns + 1
        for source, name, colour, dash in _CAPACITY_SERIES:
            rows = frame[(frame["workload"] == workload) & (frame["source"] == source)].sort_values("units")
            figure.add_trace(
                go.Scatter(x=rows["units"], y=rows["out_messages_per_s"], mode="lines+markers", name=name,
                           legendgroup=source, showlegend=position == 0,
                           line={"color": colour, "dash": dash, "width": 2.5}, marker={"size": 9}),
                row=row, col=col,
            )  # fmt: skip
        units = sorted(set(frame.loc[frame["workload"] == workload, "units"]))
        figure.update_xaxes(title_text="units", type="log", tickvals=units, row=row, col=col)
        figure.update_yaxes(title_text="out messages/s", type="log", dtick=1, row=row, col=col)  # decades only
    house_layout(figure, title="Azure SignalR Service capacity: 2 KB messages, p99 under 1 s (published vs model)",
                 legend={"orientation": "h", "y": -0.1, "x": 0.0}, height_px=300 * rows_count + 140)  # fmt: skip
    for annotation in figure.layout.annotations:
        annotation.font = {"size": 13}
    return figure


def hosting_comparison_figure(frame: pd.DataFrame) -> go.Figure:
    """The same workload self-hosted with Redis and on the service, one panel per metric.

    Args:
        frame: columns ``hosting`` (a label), ``metric`` (a panel title) and ``value``; panels in the
            order the metrics first appear.

    Example:

        >>> import pandas as pd
        >>> from simscale.figures.service import hosting_comparison_figure
        >>> frame = pd.DataFrame({"hosting": ["self", "service"], "metric": ["app servers"] * 2, "value": [3, 2]})
        >>> len(hosting_comparison_figure(frame).data)
        2
    """
    missing = {"hosting", "metric", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"hosting_comparison_figure needs column(s) {', '.join(sorted(missing))}")
    metrics = list(dict.fromkeys(frame["metric"]))
    hostings = list(dict.fromkeys(frame["hosting"]))
    colours = [COLOURS["backplane"], COLOURS["redis"], COLOURS["reached"]]
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, horizontal_spacing=0.07)
    for column, metric in enumerate(metrics, start=1):
        for index, hosting in enumerate(hostings):
            rows = frame[(frame["metric"] == metric) & (frame["hosting"] == hosting)]
            value = float(rows["value"].iloc[0]) if len(rows) else float("nan")
            figure.add_trace(
                go.Bar(x=[index], y=[value], name=hosting, legendgroup=hosting, showlegend=column == 1,
                       marker={"color": colours[index % len(colours)]},
                       text=[f"{value:,.0f}" if value == value else "n/a"], textposition="outside"),
                row=1, col=column,
            )  # fmt: skip
        figure.update_xaxes(showticklabels=False, row=1, col=column)
        figure.update_yaxes(rangemode="tozero", row=1, col=column)
    house_layout(figure, title="The same broadcast workload, self-hosted with Redis and on Azure SignalR Service",
                 legend={"orientation": "h", "y": -0.08, "x": 0.0}, height_px=480, width_px=1000)  # fmt: skip
    for annotation in figure.layout.annotations:
        annotation.font = {"size": 12}
    return figure
