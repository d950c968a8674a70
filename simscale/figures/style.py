"""The house look: one font family, fixed sizes and margins, a small colour vocabulary.

Fixed sizes and margins (never "autosize") are half of what makes a regenerated image
byte-identical; the other half is :func:`simscale.figures.export.normalise_svg`.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "COLOURS",
    "FIGURE_HEIGHT_PX",
    "FIGURE_WIDTH_PX",
    "FONT_FAMILY",
    "HOUSE_TEMPLATE",
    "house_layout",
    "house_template",
]

FONT_FAMILY = "DejaVu Sans"
"""The only font family the figures use (Debian package ``fonts-dejavu-core``, installed by the set-up)."""

FIGURE_WIDTH_PX = 900
FIGURE_HEIGHT_PX = 480

COLOURS: dict[str, str] = {
    "reached": "#2a9d4b",
    "missed": "#c9ced6",
    "missed_edge": "#7d8590",
    "server": "#1f3b73",
    "origin": "#e07b00",
    "balancer": "#5b6770",
    "balancer_band": "#dfe3e8",
    "path": "#7b2cbf",
    "backplane": "#c0392b",
    "edge": "#aab2bd",
    "none": "#c0392b",
    "redis": "#1f6fb2",
    "scenario:single-server": "#2a9d4b",
    "scenario:no-backplane": "#c0392b",
    "scenario:backplane": "#1f6fb2",
    "scenario:port-exhaustion": "#8e44ad",
    "scenario:thread-starvation": "#d35400",
    "cpu": "#1f3b73",
    "memory": "#2a9d4b",
    "reference": "#5b6770",
    "one_over_n": "#111111",
}
"""Colours by role (scenarios as ``scenario:NAME``), shared so a scenario looks the same everywhere."""


HOUSE_TEMPLATE = "simscale"
"""The name of the house template in ``plotly.io.templates`` (registered by :func:`house_template`'s callers)."""


def house_template() -> go.layout.Template:
    """plotly's ``simple_white`` (no grey plot area) with the house font and light grid lines.

    The documentation figures and (through :func:`simscale.figures.notebook_setup`) every notebook figure
    use it, so a chart drawn ad hoc in a notebook looks like the committed ones.
    """
    template = go.layout.Template(pio.templates["simple_white"])
    template.layout.font = {"family": FONT_FAMILY, "size": 13, "color": "#222222"}
    template.layout.hoverlabel = {"font": {"family": FONT_FAMILY}}
    template.layout.xaxis.showgrid = True
    template.layout.yaxis.showgrid = True
    template.layout.xaxis.gridcolor = "#eceff3"
    template.layout.yaxis.gridcolor = "#eceff3"
    # simple_white draws shapes with no line (width 0), which makes add_hline/add_vline invisible.
    template.layout.shapedefaults = {"line": {"width": 1.5, "color": "#444444"}}
    return template


def house_layout(
    figure: go.Figure,
    *,
    title: str,
    width_px: int = FIGURE_WIDTH_PX,
    height_px: int = FIGURE_HEIGHT_PX,
    **layout: Any,
) -> go.Figure:
    """Apply the house font, template, fixed size and margins to ``figure`` (returned for chaining).

    Example:

        >>> import plotly.graph_objects as go
        >>> from simscale.figures import FONT_FAMILY, house_layout
        >>> figure = house_layout(go.Figure(go.Bar(x=[1, 2], y=[3, 4])), title="Demo", width_px=600)
        >>> figure.layout.width, figure.layout.title.text, figure.layout.font.family == FONT_FAMILY
        (600, 'Demo', True)
    """
    settings: dict[str, Any] = dict(
        template="simple_white",  # the committed figures keep their look; notebooks use house_template()
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 17}},
        font={"family": FONT_FAMILY, "size": 13, "color": "#222222"},
        width=width_px,
        height=height_px,
        autosize=False,
        margin={"l": 70, "r": 30, "t": 70, "b": 60, "pad": 2},
        legend={"font": {"size": 12}},
        hoverlabel={"font": {"family": FONT_FAMILY}},
    )
    settings.update(layout)
    figure.update_layout(**settings)
    # Random trace uids end up in SVG class names: give every trace a stable one.
    for position, trace in enumerate(figure.data):
        trace.uid = f"trace{position}"
    return figure
