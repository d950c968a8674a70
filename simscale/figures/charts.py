"""Charts of simulation results: each takes a tidy DataFrame whose columns it names, and draws it.

The frames are built by :mod:`simscale.report` (or a notebook) from ``simulate``/``sweep`` results;
nothing here knows how the numbers were made, so a measured frame draws the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simscale.figures.style import COLOURS, house_layout

__all__ = [
    "REFERENCE_TRACE",
    "STEP_TRACE",
    "delivered_fraction_figure",
    "latency_distribution_figure",
    "scaling_criteria_figure",
]

STEP_TRACE = "latency step"
"""The ``meta`` of each step marker in :func:`latency_distribution_figure`."""

REFERENCE_TRACE = "1 / servers"
"""The reference line of :func:`delivered_fraction_figure` (its ``name`` and ``meta``; drawn last)."""

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

    Example:

        >>> import pandas as pd
        >>> from simscale.figures import delivered_fraction_figure
        >>> frame = pd.DataFrame({"servers": [1, 2, 3] * 2, "backplane": ["none"] * 3 + ["redis"] * 3,
        ...                       "delivered_fraction": [1.0, 0.5, 0.33, 1.0, 1.0, 1.0]})
        >>> [trace.name for trace in delivered_fraction_figure(frame).data]
        ['with a Redis backplane', 'without a backplane', '1 / servers']
    """
    _require(frame, {"servers", "backplane", "delivered_fraction"}, "delivered_fraction_figure")
    figure = go.Figure()
    servers = sorted({int(n) for n in frame["servers"]})
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
    # The reference goes last, so it is drawn on top of the no-backplane curve it coincides with.
    figure.add_trace(
        go.Scatter(
            x=servers,
            y=[round(1.0 / n, 4) for n in servers],
            mode="lines",
            name=REFERENCE_TRACE,
            meta=REFERENCE_TRACE,
            line={"color": COLOURS["one_over_n"], "dash": "dash", "width": 2},
        )
    )
    figure.add_annotation(
        x=servers[-1],
        y=1.0 / servers[-1],
        text="1 / servers",
        showarrow=True,
        arrowhead=0,
        ax=0,
        ay=-34,
        font={"size": 12, "color": COLOURS["one_over_n"]},
    )
    return house_layout(
        figure,
        title="Who gets a broadcast: delivered fraction against the number of servers",
        xaxis={"title": {"text": "servers behind the load balancer"}, "tickvals": servers},
        yaxis={"title": {"text": "fraction of connected clients reached"}, "range": [0, 1.08], "tickformat": ".0%"},
        legend={"x": 0.98, "xanchor": "right", "y": 0.6},
    )


def latency_distribution_figure(frame: pd.DataFrame, steps: pd.DataFrame | None = None) -> go.Figure:
    """Broadcast latency distributions (send to receive), one cumulative curve per scenario.

    Args:
        frame: columns ``scenario``, ``quantile`` (0-1) and ``latency_ms`` — each scenario's
            latency quantile function, e.g. read from its ``LatencyHistogram``.
        steps: optional, columns ``scenario``, ``step`` (a label), ``latency_ms`` and ``share`` (0-1
            of that scenario's deliveries): each step is marked on its scenario's curve, where the
            curve reaches ``latency_ms``, and labelled with its share and latency.

    Example:

        >>> import pandas as pd
        >>> from simscale.figures import latency_distribution_figure
        >>> frame = pd.DataFrame({"scenario": ["backplane"] * 3, "quantile": [0.1, 0.5, 0.99],
        ...                       "latency_ms": [1.0, 2.0, 5.0]})
        >>> [trace.name for trace in latency_distribution_figure(frame).data]
        ['backplane']
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
    if steps is not None and not steps.empty:
        _require(steps, {"scenario", "step", "latency_ms", "share"}, "latency_distribution_figure (steps)")
        for position, (scenario, step, latency_ms, share) in enumerate(
            zip(
                steps["scenario"].astype(str),
                steps["step"].astype(str),
                steps["latency_ms"].astype(float),
                steps["share"].astype(float),
                strict=True,
            )
        ):
            curve = frame[frame["scenario"] == scenario].sort_values("latency_ms")
            # Where the scenario's own curve is at this latency (its empirical CDF, interpolated).
            at = float(np.interp(latency_ms, curve["latency_ms"].astype(float), curve["quantile"].astype(float)))
            colour = COLOURS.get(f"scenario:{scenario}", "#333333")
            figure.add_trace(
                go.Scatter(
                    x=[round(latency_ms, 4)],
                    y=[round(at, 4)],
                    mode="markers",
                    name=step,
                    meta=STEP_TRACE,
                    showlegend=False,
                    marker={"size": 11, "symbol": "diamond", "color": colour, "line": {"color": "white", "width": 1}},
                    hovertemplate="%{x:.2f} ms<extra>" + step + "</extra>",
                )
            )
            figure.add_annotation(
                x=math.log10(latency_ms),
                y=at,
                text=f"<b>step {position + 1}</b>: {step.replace(', ', ',<br>')}<br>"
                f"{share:.0%} of deliveries, mean {latency_ms:.1f} ms",
                showarrow=True,
                arrowhead=0,
                arrowcolor=colour,
                # Both labels sit in the empty corner under the slower curve, one above the other.
                ax=70 if position == 0 else 10,
                ay=45 if position == 0 else 115,
                xanchor="left",
                align="left",
                font={"size": 12, "color": colour},
                bgcolor="rgba(255,255,255,0.85)",
            )
    return house_layout(
        figure,
        title="Broadcast latency, send to receive: cumulative distribution per scenario",
        xaxis={"title": {"text": "latency (ms, log scale)"}, "type": "log", "range": _log_range(frame["latency_ms"])},
        yaxis={"title": {"text": "fraction of deliveries at or below"}, "range": [0, 1.02], "tickformat": ".0%"},
        legend={"x": 0.02, "y": 0.98},
    )


def scaling_criteria_figure(messages: pd.DataFrame, connections: pd.DataFrame) -> go.Figure:
    """The two ways a hub runs out, side by side.

    Args:
        messages: one server under rising message volume; columns ``deliveries_per_s``,
            ``cpu_utilization`` (0-1) and ``memory_mb``, both over the busy period (after warm-up,
            until the broadcasts stop; the drain afterwards is idle and would dilute them).
        connections: rising connection counts in the port-exhaustion and thread-starvation
            scenarios; columns ``scenario``, ``clients``, ``failed_connections`` (refused + dropped)
            and ``cpu_utilization`` (0-1, busy period). With replications, ``failed_connections`` and
            ``cpu_utilization`` are means and optional ``failed_low``/``failed_high`` (drawn as a
            band) and ``replications`` (the number of seeds) say how far the seeds spread.

    Example (made-up numbers; notebook 07 computes real ones):

        >>> import pandas as pd
        >>> from simscale.figures import scaling_criteria_figure
        >>> messages = pd.DataFrame({"deliveries_per_s": [1e3, 1e4, 1e5], "cpu_utilization": [0.01, 0.1, 0.9],
        ...                          "memory_mb": [60.0, 61.0, 62.0]})
        >>> connections = pd.DataFrame({"scenario": ["port-exhaustion"] * 2 + ["thread-starvation"] * 2,
        ...                             "clients": [1000, 3000] * 2, "failed_connections": [0, 500, 0, 300],
        ...                             "cpu_utilization": [0.01, 0.02, 0.01, 0.02]})
        >>> len(scaling_criteria_figure(messages, connections).data)  # two traces a panel, three panels
        6
    """
    _require(messages, {"deliveries_per_s", "cpu_utilization", "memory_mb"}, "scaling_criteria_figure (messages)")
    _require(
        connections,
        {"scenario", "clients", "failed_connections", "cpu_utilization"},
        "scaling_criteria_figure (connections)",
    )
    banded = {"failed_low", "failed_high"} <= set(connections.columns)
    seeds = int(connections["replications"].max()) if "replications" in connections.columns else 1
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
            name="CPU while broadcasting (%)",
            meta="cpu",
            mode="lines+markers",
            line={"color": COLOURS["cpu"], "width": 2.5},
            hovertemplate="%{y:.1f} % CPU: the server's mean from warm-up until the broadcasts stop<extra></extra>",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=rows["memory_mb"].astype(float).round(2).tolist(),
            name="memory while broadcasting (MB)",
            meta="memory",
            mode="lines+markers",
            line={"color": COLOURS["memory"], "width": 2.5, "dash": "dash"},
            hovertemplate="%{y:.0f} MB: the server's mean from warm-up until the broadcasts stop<extra></extra>",
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    spread = f" (mean of {seeds} seeds, band min–max)" if banded and seeds > 1 else ""
    for scenario in dict.fromkeys(connections["scenario"].tolist()):
        part = connections[connections["scenario"] == scenario].sort_values("clients")
        colour = COLOURS.get(f"scenario:{scenario}", "#333333")
        clients = part["clients"].astype(int).tolist()
        if banded:
            figure.add_trace(
                go.Scatter(
                    x=clients + clients[::-1],
                    y=part["failed_high"].round(1).tolist() + part["failed_low"].round(1).tolist()[::-1],
                    fill="toself",
                    fillcolor=_translucent(colour, 0.2),
                    line={"width": 0},
                    mode="lines",
                    name=f"{scenario}: min–max over seeds",
                    meta=f"{scenario}:band",
                    legendgroup=scenario,
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=2,
            )
        figure.add_trace(
            go.Scatter(
                x=clients,
                y=part["failed_connections"].astype(float).round(1).tolist(),
                name=f"{scenario}: refused + dropped",
                meta=f"{scenario}:failed",
                legendgroup=scenario,
                mode="lines+markers",
                line={"color": colour, "width": 2.5},
            ),
            row=1,
            col=2,
        )
        figure.add_trace(
            go.Scatter(
                x=clients,
                y=(part["cpu_utilization"].astype(float) * 100).round(2).tolist(),
                name=f"{scenario}: CPU after warm-up (%)",
                meta=f"{scenario}:cpu",
                legendgroup=scenario,
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
        height_px=520,
        legend={
            "orientation": "h",
            "x": 0.0,
            "y": -0.17,
            "yanchor": "top",
            "font": {"size": 11},
            "entrywidth": 320,
            "entrywidthmode": "pixels",
        },
    )
    figure.update_layout(margin={"l": 70, "r": 70, "t": 90, "b": 140})
    figure.update_annotations(font={"size": 13})
    figure.update_xaxes(title_text="deliveries per second (thousands)", row=1, col=1)
    figure.update_xaxes(title_text="clients trying to stay connected", row=1, col=2)
    # Overlaying axes would otherwise sync their ticks to the primary axis (odd, unreadable values).
    figure.update_yaxes(tickmode="auto", rangemode="tozero")
    figure.update_yaxes(
        title_text="CPU while broadcasting (%)<br><sup>mean, warm-up until the broadcasts stop</sup>",
        range=[0, 105],
        row=1,
        col=1,
        secondary_y=False,
    )
    figure.update_yaxes(title_text="memory while broadcasting (MB)", row=1, col=1, secondary_y=True)
    figure.update_yaxes(
        title_text=f"connections refused + dropped<br><sup>{spread.strip(' ()')}</sup>"
        if spread
        else "connections refused + dropped",
        row=1,
        col=2,
        secondary_y=False,
    )
    figure.update_yaxes(
        title_text="CPU (%)<br><sup>busiest server, after warm-up</sup>", range=[0, 105], row=1, col=2, secondary_y=True
    )
    return figure


def _log_range(values: pd.Series) -> list[float]:
    """A log axis's range (in log10 units) just around ``values`` (positive ones), so labels cannot widen it."""
    positive = values.astype(float)[values.astype(float) > 0]
    return [round(math.log10(float(positive.min()) * 0.97), 4), round(math.log10(float(positive.max()) * 1.05), 4)]


def _translucent(colour: str, alpha: float) -> str:
    """``#rrggbb`` → ``rgba(r,g,b,alpha)``."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"
