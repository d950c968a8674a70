"""Charts of simulation results: each takes a tidy DataFrame whose columns it names, and draws it.

The frames are built by :mod:`simscale.report` (or a notebook) from ``simulate``/``sweep`` results;
nothing here knows how the numbers were made, so a measured frame draws the same way.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simscale.figures.style import COLOURS, house_layout

__all__ = ["delivered_fraction_figure", "latency_distribution_figure", "scaling_criteria_figure"]

_BACKPLANE_LABEL = {"none": "without a backplane", "redis": "with a Redis backplane"}


def _require(frame: pd.DataFrame, columns: set[str], what: str) -> None:
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"{what} needs column(s) {', '.join(sorted(missing))}")


def delivered_fraction_figure(frame: pd.DataFrame) -> go.Figure:
    """Delivered fraction against the number of servers, one line per backplane kind.

    Args:
        frame: columns ``servers``, ``backplane`` ("none" or "redis") and ``delivered_fraction``
            (a ``sweep(..., servers=[...], backplane=[...])`` result has them).
    """
    _require(frame, {"servers", "backplane", "delivered_fraction"}, "delivered_fraction_figure")
    figure = go.Figure()
    servers = sorted({int(n) for n in frame["servers"]})
    figure.add_trace(
        go.Scatter(
            x=servers,
            y=[1.0 / n for n in servers],
            mode="lines",
            name="1 / servers",
            line={"color": COLOURS["reference"], "dash": "dot", "width": 1.5},
        )
    )
    for kind in ("redis", "none"):
        rows = frame[frame["backplane"] == kind].sort_values("servers")
        if rows.empty:
            continue
        figure.add_trace(
            go.Scatter(
                x=rows["servers"].astype(int).tolist(),
                y=rows["delivered_fraction"].astype(float).round(4).tolist(),
                mode="lines+markers",
                name=_BACKPLANE_LABEL.get(kind, kind),
                line={"color": COLOURS.get(kind, "#333333"), "width": 2.5},
                marker={"size": 8},
            )
        )
    return house_layout(
        figure,
        title="Who gets a broadcast: delivered fraction against the number of servers",
        xaxis={"title": {"text": "servers behind the load balancer"}, "tickvals": servers},
        yaxis={"title": {"text": "fraction of connected clients reached"}, "range": [0, 1.08], "tickformat": ".0%"},
        legend={"x": 0.98, "xanchor": "right", "y": 0.6},
    )


def latency_distribution_figure(frame: pd.DataFrame) -> go.Figure:
    """Broadcast latency distributions (send to receive), one cumulative curve per scenario.

    Args:
        frame: columns ``scenario``, ``quantile`` (0-1) and ``latency_ms`` — each scenario's
            latency quantile function, e.g. read from its ``LatencyHistogram``.
    """
    _require(frame, {"scenario", "quantile", "latency_ms"}, "latency_distribution_figure")
    figure = go.Figure()
    for position, scenario in enumerate(dict.fromkeys(frame["scenario"].tolist())):
        rows = frame[frame["scenario"] == scenario].sort_values("quantile")
        # Curves can coincide (one server vs. no backplane): vary the dash so each stays visible.
        dash = ("solid", "dash", "dot")[position % 3]
        figure.add_trace(
            go.Scatter(
                x=rows["latency_ms"].astype(float).round(4).tolist(),
                y=rows["quantile"].astype(float).round(4).tolist(),
                mode="lines",
                name=str(scenario),
                line={"color": COLOURS.get(f"scenario:{scenario}", "#333333"), "width": 2.5, "dash": dash},
            )
        )
    return house_layout(
        figure,
        title="Broadcast latency, send to receive: cumulative distribution per scenario",
        xaxis={"title": {"text": "latency (ms, log scale)"}, "type": "log"},
        yaxis={"title": {"text": "fraction of deliveries at or below"}, "range": [0, 1.02], "tickformat": ".0%"},
        legend={"x": 0.02, "y": 0.98},
    )


def scaling_criteria_figure(messages: pd.DataFrame, connections: pd.DataFrame) -> go.Figure:
    """The two ways a hub runs out, side by side.

    Args:
        messages: one server under rising message volume; columns ``deliveries_per_s``,
            ``cpu_utilization`` (0-1) and ``memory_mb``.
        connections: rising connection counts in the port-exhaustion and thread-starvation
            scenarios; columns ``scenario``, ``clients``, ``failed_connections`` (refused + dropped)
            and ``cpu_utilization`` (0-1).
    """
    _require(messages, {"deliveries_per_s", "cpu_utilization", "memory_mb"}, "scaling_criteria_figure (messages)")
    _require(
        connections,
        {"scenario", "clients", "failed_connections", "cpu_utilization"},
        "scaling_criteria_figure (connections)",
    )
    figure = make_subplots(
        rows=1,
        cols=2,
        specs=[[{"secondary_y": True}, {"secondary_y": True}]],
        subplot_titles=(
            "Message volume: CPU and memory climb together",
            "Connections: failures climb while the CPU idles",
        ),
        horizontal_spacing=0.2,
    )
    rows = messages.sort_values("deliveries_per_s")
    x = (rows["deliveries_per_s"].astype(float) / 1000).round(3).tolist()
    figure.add_trace(
        go.Scatter(
            x=x,
            y=(rows["cpu_utilization"].astype(float) * 100).round(2).tolist(),
            name="CPU (mean, %)",
            mode="lines+markers",
            line={"color": COLOURS["cpu"], "width": 2.5},
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=rows["memory_mb"].astype(float).round(2).tolist(),
            name="memory (mean, MB)",
            mode="lines+markers",
            line={"color": COLOURS["memory"], "width": 2.5, "dash": "dash"},
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    for scenario in dict.fromkeys(connections["scenario"].tolist()):
        part = connections[connections["scenario"] == scenario].sort_values("clients")
        colour = COLOURS.get(f"scenario:{scenario}", "#333333")
        figure.add_trace(
            go.Scatter(
                x=part["clients"].astype(int).tolist(),
                y=part["failed_connections"].astype(int).tolist(),
                name=f"{scenario}: refused + dropped",
                mode="lines+markers",
                line={"color": colour, "width": 2.5},
            ),
            row=1,
            col=2,
        )
        figure.add_trace(
            go.Scatter(
                x=part["clients"].astype(int).tolist(),
                y=(part["cpu_utilization"].astype(float) * 100).round(2).tolist(),
                name=f"{scenario}: CPU, run mean (%)",
                mode="lines",
                line={"color": colour, "width": 1.5, "dash": "dot"},
            ),
            row=1,
            col=2,
            secondary_y=True,
        )
    house_layout(
        figure,
        title="Two scaling criteria: message volume costs CPU and memory; connections run out of ports and threads",
        width_px=1100,
        height_px=500,
        legend={"orientation": "h", "x": 0.0, "y": -0.18, "yanchor": "top", "font": {"size": 11}},
    )
    figure.update_layout(margin={"l": 70, "r": 70, "t": 90, "b": 130})
    figure.update_annotations(font={"size": 13})
    figure.update_xaxes(title_text="deliveries per second (thousands)", row=1, col=1)
    figure.update_xaxes(title_text="clients trying to stay connected", row=1, col=2)
    # Overlaying axes would otherwise sync their ticks to the primary axis (odd, unreadable values).
    figure.update_yaxes(tickmode="auto", rangemode="tozero")
    figure.update_yaxes(title_text="CPU (%)", range=[0, 105], row=1, col=1, secondary_y=False)
    figure.update_yaxes(title_text="memory (MB)", row=1, col=1, secondary_y=True)
    figure.update_yaxes(title_text="connections refused + dropped", row=1, col=2, secondary_y=False)
    figure.update_yaxes(title_text="CPU (%)", range=[0, 105], row=1, col=2, secondary_y=True)
    return figure
