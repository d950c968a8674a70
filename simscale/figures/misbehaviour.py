"""Charts of a balancer or a server that misbehaves: 404s from negotiation, and a reconnect storm.

Like :mod:`simscale.figures.charts`, each function takes a tidy DataFrame whose columns it names
and only draws it; :mod:`simscale.report` builds the frames from fixed-seed runs.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simscale.figures.style import house_layout

__all__ = ["connected_over_time_figure", "failed_connects_figure"]

_TRANSPORT_COLOURS = ("#2a9d4b", "#1f6fb2", "#e07b00", "#8e44ad", "#5b6770")
_SERVER_COLOURS = ("#1f3b73", "#c0392b", "#2a9d4b", "#e07b00", "#8e44ad", "#5b6770")


def _require(frame: pd.DataFrame, columns: set[str], what: str) -> None:
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"{what} needs column(s) {', '.join(sorted(missing))}")


def failed_connects_figure(frame: pd.DataFrame, *, servers: int | None = None) -> go.Figure:
    """Share of first connects that failed, by balancer policy (bars) and transport (one bar colour each).

    Args:
        frame: columns ``load_balancer``, ``transport`` (a label, e.g. "long-polling") and
            ``first_connect_failed_fraction`` (0-1).
        servers: when given, a dashed line marks (servers − 1) / servers, the closed form for a
            balancer that picks at random.

    Example:

        >>> import pandas as pd
        >>> from simscale.figures.misbehaviour import failed_connects_figure
        >>> frame = pd.DataFrame({"load_balancer": ["random", "sticky-ip"] * 2,
        ...                       "transport": ["websockets"] * 2 + ["long-polling"] * 2,
        ...                       "first_connect_failed_fraction": [0.66, 0.0, 0.67, 0.0]})
        >>> [trace.name for trace in failed_connects_figure(frame, servers=3).data]
        ['websockets', 'long-polling']
    """
    _require(frame, {"load_balancer", "transport", "first_connect_failed_fraction"}, "failed_connects_figure")
    figure = go.Figure()
    policies = list(dict.fromkeys(frame["load_balancer"].astype(str)))
    for position, transport in enumerate(dict.fromkeys(frame["transport"].astype(str))):
        rows = frame[frame["transport"].astype(str) == transport].set_index("load_balancer")
        values = [
            round(float(rows["first_connect_failed_fraction"].get(policy, float("nan"))), 4) for policy in policies
        ]
        figure.add_trace(
            go.Bar(
                x=policies,
                y=values,
                name=transport,
                marker={"color": _TRANSPORT_COLOURS[position % len(_TRANSPORT_COLOURS)]},
                text=[f"{value:.0%}" for value in values],
                textposition="outside",
            )
        )
    if servers is not None and servers > 1:
        figure.add_hline(
            y=(servers - 1) / servers,
            line={"dash": "dash", "color": "#444444", "width": 1.2},
            annotation_text=f"(N − 1)/N = {servers - 1}/{servers}",
            annotation_position="top right",
        )
    return house_layout(
        figure,
        title="First connects that fail with 404: negotiate and transport reach different servers",
        barmode="group",
        xaxis={"title": "load balancer policy"},
        yaxis={"title": "first connects that failed", "range": [0, 1.08], "tickformat": ".0%"},
        legend={"title": {"text": "transport"}, "orientation": "h", "y": -0.18},
        margin={"l": 70, "r": 30, "t": 70, "b": 110, "pad": 2},
        height_px=520,
    )


def connected_over_time_figure(
    frame: pd.DataFrame, *, down_from_s: float | None = None, down_until_s: float | None = None
) -> go.Figure:
    """Connected clients over time per server, one panel per variant (e.g. without and with jitter).

    Args:
        frame: columns ``variant`` (a panel label), ``time_s``, ``server`` and ``connections``.
        down_from_s, down_until_s: when both are given, that window is shaded (the failed server is down).

    Example:

        >>> import pandas as pd
        >>> from simscale.figures.misbehaviour import connected_over_time_figure
        >>> frame = pd.DataFrame({"variant": ["lockstep"] * 4, "time_s": [1.0, 1.0, 2.0, 2.0],
        ...                       "server": [0, 1, 0, 1], "connections": [10, 10, 0, 20]})
        >>> [trace.name for trace in connected_over_time_figure(frame, down_from_s=1.5, down_until_s=2.0).data]
        ['server 0', 'server 1']
    """
    _require(frame, {"variant", "time_s", "server", "connections"}, "connected_over_time_figure")
    variants = list(dict.fromkeys(frame["variant"].astype(str)))
    figure = make_subplots(
        rows=len(variants), cols=1, shared_xaxes=True, subplot_titles=variants, vertical_spacing=0.12
    )
    top = float(frame["connections"].max()) * 1.1 or 1.0
    for row, variant in enumerate(variants, start=1):
        part = frame[frame["variant"].astype(str) == variant]
        for server in sorted({int(s) for s in part["server"]}):
            rows = part[part["server"] == server].sort_values("time_s")
            figure.add_trace(
                go.Scatter(
                    x=rows["time_s"].astype(float).round(3).tolist(),
                    y=rows["connections"].astype(int).tolist(),
                    mode="lines",
                    name=f"server {server}",
                    legendgroup=f"server {server}",
                    showlegend=row == 1,
                    line={"color": _SERVER_COLOURS[server % len(_SERVER_COLOURS)], "width": 2},
                ),
                row=row,
                col=1,
            )
        if down_from_s is not None and down_until_s is not None:
            figure.add_vrect(
                x0=down_from_s, x1=down_until_s, fillcolor="#c9ced6", opacity=0.45, line_width=0, row=row, col=1
            )
        figure.update_yaxes(title_text="connected clients", range=[0, top], row=row, col=1)
    figure.update_xaxes(title_text="time (s); shaded: the failed server is down", row=len(variants), col=1)
    return house_layout(
        figure,
        title="A reconnect storm: connected clients per server, lockstep retries against jittered ones",
        height_px=320 * len(variants),
        legend={"orientation": "h", "y": -0.12},
    )
