"""The group-send chart: how many servers a group's message reaches, and what the backplane carries.

With one Redis channel per group, only the servers holding a member subscribe to a group's channel, so a
small group's message costs a few servers instead of all of them; a broadcast always costs every server.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simscale.figures.style import COLOURS, house_layout

__all__ = ["OCCUPANCY_TRACE", "group_fanout_figure"]

OCCUPANCY_TRACE = "N·(1 − (1 − 1/N)^M)"
"""The closed form drawn under the model's points: M members spread uniformly over N servers."""

_COLUMNS = {"audience", "group_size", "servers", "servers_reached_per_send", "received_per_server_per_send"}


def group_fanout_figure(frame: pd.DataFrame) -> go.Figure:
    """Servers reached per send (left) and backplane messages received per server (right) against group size.

    Args:
        frame: one row per run, columns ``audience`` (``group`` or ``all``), ``group_size`` (members; for
            ``all`` the clients), ``servers``, ``servers_reached_per_send`` and ``received_per_server_per_send``
            (publishes each server took from the backplane, per send). The ``all`` row is drawn as a
            dashed line across both panels, for comparison.

    Example:

        >>> import pandas as pd
        >>> from simscale.figures.groups import group_fanout_figure
        >>> frame = pd.DataFrame({"audience": ["group", "group", "all"], "group_size": [2, 20, 200],
        ...                       "servers": [10] * 3, "servers_reached_per_send": [1.9, 8.8, 10.0],
        ...                       "received_per_server_per_send": [0.09, 0.78, 0.9]})
        >>> [trace.name for trace in group_fanout_figure(frame).data]  # doctest: +NORMALIZE_WHITESPACE
        ['group sends (model)', 'N·(1 − (1 − 1/N)^M)', 'broadcast (model)', 'group sends (model)',
         'broadcast (model)']
    """
    missing = _COLUMNS - set(frame.columns)
    if missing:
        raise ValueError(f"group_fanout_figure needs column(s) {', '.join(sorted(missing))}")
    groups = frame[frame["audience"] == "group"].sort_values("group_size")
    broadcast = frame[frame["audience"] == "all"]
    servers = int(frame["servers"].iloc[0])
    sizes = groups["group_size"].astype(int).tolist()
    figure = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=("servers that write a send to a client", "backplane messages received per server"),
    )
    group_style = {"mode": "lines+markers", "line": {"color": COLOURS["redis"], "width": 2.5}, "marker": {"size": 8}}
    figure.add_trace(
        go.Scatter(
            x=sizes, y=groups["servers_reached_per_send"].round(3).tolist(), name="group sends (model)", **group_style
        ),
        row=1,
        col=1,
    )
    # The closed form on a fine grid of member counts, under the model's points.
    grid = sorted({*range(1, max(sizes) + 1, max(1, max(sizes) // 200)), *sizes})
    figure.add_trace(
        go.Scatter(
            x=grid,
            y=[round(servers * (1 - (1 - 1 / servers) ** m), 4) for m in grid],
            mode="lines",
            name=OCCUPANCY_TRACE,
            meta=OCCUPANCY_TRACE,
            line={"color": COLOURS["one_over_n"], "dash": "dot", "width": 1.5},
        ),
        row=1,
        col=1,
    )
    broadcast_style = {"mode": "lines", "line": {"color": COLOURS["backplane"], "dash": "dash", "width": 2}}
    span = [min(sizes), max(sizes)]
    if not broadcast.empty:
        figure.add_trace(
            go.Scatter(
                x=span,
                y=[round(float(broadcast["servers_reached_per_send"].iloc[0]), 3)] * 2,
                name="broadcast (model)",
                **broadcast_style,
            ),
            row=1,
            col=1,
        )
    figure.add_trace(
        go.Scatter(
            x=sizes,
            y=groups["received_per_server_per_send"].round(4).tolist(),
            name="group sends (model)",
            showlegend=False,
            **group_style,
        ),
        row=1,
        col=2,
    )
    if not broadcast.empty:
        figure.add_trace(
            go.Scatter(
                x=span,
                y=[round(float(broadcast["received_per_server_per_send"].iloc[0]), 4)] * 2,
                name="broadcast (model)",
                showlegend=False,
                **broadcast_style,
            ),
            row=1,
            col=2,
        )
    axis = {"type": "log", "title": {"text": "members per group (M)"}, "tickvals": sizes}
    figure.update_xaxes(**axis, row=1, col=1)
    figure.update_xaxes(**axis, row=1, col=2)
    reached_title = f"servers reached per send (of N = {servers})"
    figure.update_yaxes(title={"text": reached_title}, rangemode="tozero", row=1, col=1)
    figure.update_yaxes(title={"text": "publishes received per server per send"}, rangemode="tozero", row=1, col=2)
    return house_layout(
        figure,
        title=f"Group sends over {servers} servers with Redis: only servers holding a member receive",
        width_px=1100,
        height_px=500,
        legend={"x": 0.01, "xanchor": "left", "y": -0.2, "orientation": "h"},
        margin={"l": 70, "r": 30, "t": 90, "b": 110, "pad": 2},
    )
