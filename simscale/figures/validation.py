"""The model against the real hub: predicted and measured side by side, one panel per metric."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simscale.figures.style import house_layout

__all__ = ["validation_figure", "web_validation_figure"]

_PANELS = (
    ("latency_p50_ms", "p50 latency (ms)"),
    ("latency_p99_ms", "p99 latency (ms)"),
    ("deliveries_per_s", "deliveries per second"),
    ("cpu_utilization", "CPU utilisation per server"),
)
_SERIES_COLORS = {None: "#1f77b4", 0: "#2ca02c", 1: "#9467bd"}
"""One colour per series in every panel (the model dashed, the real hub as dots of the same colour): left
to plotly's colour cycle, each panel's traces took the next colours and stopped matching the legend."""
_MORE_COLORS = ("#d62728", "#8c564b", "#e377c2", "#17becf")


def validation_figure(comparisons: pd.DataFrame, *, scenario: str) -> go.Figure:
    """Predicted (line) vs measured (markers) against broadcast rate; saturation in the title."""
    required = {"metric", "load", "server", "predicted", "measured"}
    missing = required - set(comparisons.columns)
    if missing:
        raise ValueError(f"comparisons lack columns: {', '.join(sorted(missing))}")
    figure = make_subplots(rows=2, cols=2, subplot_titles=[title for _, title in _PANELS])
    for position, (metric, _) in enumerate(_PANELS):
        row, col = position // 2 + 1, position % 2 + 1
        rows = comparisons[comparisons.metric == metric].sort_values("load")
        groups: list[tuple[Any, pd.DataFrame]] = (
            [(None, rows)] if metric != "cpu_utilization" else list(rows.groupby("server"))
        )
        for server, group in groups:
            label = "" if server is None else f" server {int(server)}"
            key = None if server is None else int(server)
            color = _SERIES_COLORS.get(key) or _MORE_COLORS[(key or 0) % len(_MORE_COLORS)]
            figure.add_trace(
                go.Scatter(x=group.load, y=group.predicted, mode="lines+markers", name=f"model{label}",
                           legendgroup=f"model{label}", showlegend=position in (0, 3),
                           line={"dash": "dash", "color": color}, marker={"color": color}),
                row=row, col=col,
            )  # fmt: skip
            figure.add_trace(
                go.Scatter(x=group.load, y=group.measured, mode="markers", name=f"real hub{label}",
                           legendgroup=f"hub{label}", showlegend=position in (0, 3),
                           marker={"size": 10, "color": color}),
                row=row, col=col,
            )  # fmt: skip
        figure.update_xaxes(title_text="broadcasts per second", row=row, col=col)
    saturation = comparisons[comparisons.metric == "saturation_broadcast_rate"]
    note = ""
    if not saturation.empty:
        predicted, measured = saturation.predicted.iloc[0], saturation.measured.iloc[0]
        shown = [f"{value:.1f}/s" if value is not None and not math.isnan(value) else "not reached"
                 for value in (predicted, measured)]  # fmt: skip
        note = f" — saturation: model {shown[0]}, real hub {shown[1]}"
    return house_layout(figure, title=f"{scenario}: model vs real hub{note}", height_px=640)


_WEB_PANELS = (("web_latency_p50_ms", "web-request p50 latency (ms)"),
               ("web_latency_p99_ms", "web-request p99 latency (ms)"))  # fmt: skip
_WEB_LOADS = (("idle", "#2a9d4b"), ("broadcasting", "#c0392b"))


def web_validation_figure(comparisons: pd.DataFrame) -> go.Figure:
    """Web-request latency by layout, without and with the broadcast load: model (bars) vs real hub (dots).

    Args:
        comparisons: columns ``layout``, ``load`` (``idle`` or ``broadcasting``), ``metric``
            (``web_latency_p50_ms`` or ``web_latency_p99_ms``), ``predicted`` and ``measured``.

    Example:

        >>> import pandas as pd
        >>> from simscale.figures.validation import web_validation_figure
        >>> frame = pd.DataFrame({"layout": ["one process"] * 2, "load": ["idle", "broadcasting"],
        ...                       "metric": ["web_latency_p50_ms"] * 2, "predicted": [2.0, 3.0],
        ...                       "measured": [2.5, 9.0]})
        >>> [trace.name for trace in web_validation_figure(frame).data]
        ['model, idle', 'real hub, idle', 'model, broadcasting', 'real hub, broadcasting']
    """
    missing = {"layout", "load", "metric", "predicted", "measured"} - set(comparisons.columns)
    if missing:
        raise ValueError(f"comparisons lack columns: {', '.join(sorted(missing))}")
    layouts = list(dict.fromkeys(comparisons["layout"]))
    figure = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in _WEB_PANELS],
                           horizontal_spacing=0.1)  # fmt: skip
    for column, (metric, _) in enumerate(_WEB_PANELS, start=1):
        rows = comparisons[comparisons.metric == metric]
        for load, colour in _WEB_LOADS:
            chosen = rows[rows["load"] == load].set_index("layout").reindex(layouts)
            if chosen["metric"].isna().all():
                continue
            figure.add_trace(
                go.Bar(x=layouts, y=chosen["predicted"], name=f"model, {load}", legendgroup=f"model {load}",
                       showlegend=column == 1, offsetgroup=load, marker={"color": colour, "opacity": 0.45}),
                row=1, col=column,
            )  # fmt: skip
            figure.add_trace(
                go.Scatter(x=layouts, y=chosen["measured"], mode="markers", name=f"real hub, {load}",
                           legendgroup=f"hub {load}", showlegend=column == 1,
                           marker={"color": colour, "size": 13, "symbol": "diamond",
                                   "line": {"color": "#111111", "width": 1}}),
                row=1, col=column,
            )  # fmt: skip
        figure.update_yaxes(rangemode="tozero", row=1, col=column)
    figure.update_layout(barmode="group", scattermode="group")
    return house_layout(
        figure, title="web-traffic-shared: web requests beside a broadcast load, model vs real hub",
        legend={"orientation": "h", "y": -0.12, "x": 0.0}, height_px=520,
    )  # fmt: skip
