"""The figure of a capacity plan's search: closed forms as lines, simulated candidates as points.

It draws the two tables :func:`simscale.plan` produces and never simulates.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simscale.figures.style import COLOURS, house_layout

__all__ = ["plan_search_figure"]

_CANDIDATE_COLUMNS = {"servers", "meets", "binding_constraint", "latency_p99_ms", "cpu_utilization_max"}
_ESTIMATE_COLUMNS = {"servers", "cpu_utilization_estimate", "latency_floor_ms"}


def _missing(frame: pd.DataFrame, columns: set[str], what: str) -> None:
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"plan_search_figure needs {what} column(s) {', '.join(sorted(missing))}")


def _error(frame: pd.DataFrame, column: str, scale: float = 1.0) -> dict[str, object] | None:
    low, high = f"{column}_ci_low", f"{column}_ci_high"
    if low not in frame or frame[low].isna().all():
        return None
    return {
        "type": "data",
        "array": ((frame[high] - frame[column]) * scale).round(4).tolist(),
        "arrayminus": ((frame[column] - frame[low]) * scale).round(4).tolist(),
    }


def plan_search_figure(
    candidates: pd.DataFrame, estimates: pd.DataFrame, *, latency_p99_ms: float, cpu_headroom: float
) -> go.Figure:
    """p99 latency (top) and the busiest server's CPU (bottom) against servers: the closed forms the
    search started from as lines, each simulated candidate as a point (95 % interval bars when
    replicated), filled when it meets every requirement, with its binding constraint on hover.

    Example:

        >>> import pandas as pd
        >>> from simscale.figures.planning import plan_search_figure
        >>> candidates = pd.DataFrame({"servers": [1, 2], "meets": [False, True],
        ...     "binding_constraint": ["cpu", "latency"], "latency_p99_ms": [400.0, 90.0],
        ...     "cpu_utilization_max": [0.9, 0.45]})
        >>> estimates = pd.DataFrame({"servers": [1, 2, 3], "cpu_utilization_estimate": [0.85, 0.43, 0.28],
        ...     "latency_floor_ms": [30.0, 15.0, 10.0]})
        >>> figure = plan_search_figure(candidates, estimates, latency_p99_ms=250.0, cpu_headroom=0.7)
        >>> [trace.name for trace in figure.data]
        ['latency floor (closed form)', 'p99, simulated', 'CPU (closed form)', 'CPU, simulated']
    """
    _missing(candidates, _CANDIDATE_COLUMNS, "candidates")
    _missing(estimates, _ESTIMATE_COLUMNS, "estimates")
    candidates = candidates.sort_values("servers")
    estimates = estimates.sort_values("servers")
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    colour = COLOURS.get("redis", "#1f6fb2")
    symbols = ["circle" if meets else "circle-open" for meets in candidates["meets"]]
    hover = [
        f"{int(n)} servers: {'meets every requirement' if ok else 'fails'}; binds on {binding}"
        for n, ok, binding in zip(
            candidates["servers"], candidates["meets"], candidates["binding_constraint"], strict=True
        )
    ]
    servers = estimates["servers"].astype(int).tolist()
    figure.add_trace(
        go.Scatter(x=servers, y=estimates["latency_floor_ms"].round(3).tolist(), mode="lines",
                   name="latency floor (closed form)", line={"color": "#7d8590", "dash": "dot"}),
        row=1, col=1,
    )  # fmt: skip
    figure.add_trace(
        go.Scatter(x=candidates["servers"].astype(int).tolist(), y=candidates["latency_p99_ms"].round(3).tolist(),
                   mode="markers", name="p99, simulated", error_y=_error(candidates, "latency_p99_ms"),
                   marker={"size": 11, "color": colour, "symbol": symbols}, hovertext=hover, hoverinfo="text+y"),
        row=1, col=1,
    )  # fmt: skip
    figure.add_trace(
        go.Scatter(x=servers, y=(100 * estimates["cpu_utilization_estimate"]).round(3).tolist(), mode="lines",
                   name="CPU (closed form)", line={"color": "#e07b00", "dash": "dot"}),
        row=2, col=1,
    )  # fmt: skip
    figure.add_trace(
        go.Scatter(x=candidates["servers"].astype(int).tolist(),
                   y=(100 * candidates["cpu_utilization_max"]).round(3).tolist(), mode="markers",
                   name="CPU, simulated", error_y=_error(candidates, "cpu_utilization_max", 100.0),
                   marker={"size": 11, "color": "#e07b00", "symbol": symbols}, hovertext=hover, hoverinfo="text+y"),
        row=2, col=1,
    )  # fmt: skip
    figure.add_hline(y=latency_p99_ms, line_dash="dash", line_color="#c0392b", line_width=1.5, row=1, col=1,
                     annotation_text=f"p99 target {latency_p99_ms:g} ms", annotation_position="top right")  # fmt: skip
    figure.add_hline(y=100 * cpu_headroom, line_dash="dash", line_color="#c0392b", line_width=1.5, row=2, col=1,
                     annotation_text=f"CPU headroom {cpu_headroom:.0%}", annotation_position="top right")  # fmt: skip
    shown = (
        ["latency_p99_ms", "latency_p99_ms_ci_high"] if "latency_p99_ms_ci_high" in candidates else ["latency_p99_ms"]
    )
    top = max([latency_p99_ms, *[v for c in shown for v in candidates[c] if not math.isnan(v)]])
    figure.update_yaxes(title_text="p99 latency (ms)", range=[0, 1.15 * top], row=1, col=1)
    figure.update_yaxes(title_text="busiest server CPU (%)", rangemode="tozero", row=2, col=1)
    figure.update_xaxes(title_text="servers", tickvals=servers if len(servers) <= 20 else None, row=2, col=1)
    return house_layout(figure, title="simscale plan: the search (filled points meet every requirement)")
