"""Drawing: tidy DataFrames and networkx topologies in, plotly figures and image files out.

This package never simulates: it imports neither simpy nor the model nor the scenario runners.
:mod:`simscale.report` runs the scenarios and hands their frames and topologies to these functions,
the way a cartographer is handed a survey and only draws it.
"""

from __future__ import annotations

from simscale.figures.charts import (
    delivered_fraction_figure,
    latency_distribution_figure,
    scaling_criteria_figure,
)
from simscale.figures.export import (
    BROWSER_INSTALL_HINT,
    ExportReport,
    export_figures,
    find_browser,
    normalise_svg,
)
from simscale.figures.groups import OCCUPANCY_TRACE, group_fanout_figure
from simscale.figures.notebook import notebook_setup
from simscale.figures.service import hosting_comparison_figure, published_capacity_figure, service_topology_figure
from simscale.figures.style import FONT_FAMILY, house_layout
from simscale.figures.topology import (
    TRACE_CLIENTS_MISSED,
    TRACE_CLIENTS_REACHED,
    TRACE_SERVERS,
    choose_broadcast,
    reached_servers,
    topology_figure,
)

__all__ = [
    "BROWSER_INSTALL_HINT",
    "FONT_FAMILY",
    "OCCUPANCY_TRACE",
    "TRACE_CLIENTS_MISSED",
    "TRACE_CLIENTS_REACHED",
    "TRACE_SERVERS",
    "ExportReport",
    "choose_broadcast",
    "delivered_fraction_figure",
    "export_figures",
    "find_browser",
    "group_fanout_figure",
    "hosting_comparison_figure",
    "house_layout",
    "latency_distribution_figure",
    "normalise_svg",
    "notebook_setup",
    "published_capacity_figure",
    "reached_servers",
    "scaling_criteria_figure",
    "service_topology_figure",
    "topology_figure",
]
