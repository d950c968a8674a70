"""`ModelRun`: what one run of the model produced, as the deployment returns it."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from simscale.metrics.display import html_table, repr_value
from simscale.metrics.records import RunRecords
from simscale.model.service import ServiceStats
from simscale.model.web import WebStats

__all__ = ["ModelRun"]


@dataclass(frozen=True, slots=True, repr=False)
class ModelRun:
    """What one run of the model produced (its ``repr`` counts the records instead of printing them).

    Example:

        >>> import numpy as np
        >>> from simscale import preset
        >>> from simscale.model import Deployment
        >>> scenario = preset("single-server", clients=20, duration_s=5.0, warmup_s=1.0, seed=1)
        >>> run = Deployment(scenario, np.random.default_rng(scenario.seed)).run()
        >>> run  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        ModelRun(events=526, wall_s=..., backplane_disconnects=0, backplane_lost_publishes=0,
                 records: broadcasts=77, ...)
    """

    records: RunRecords
    events: int
    wall_s: float
    topology: nx.Graph
    backplane_disconnects: int
    backplane_lost_publishes: int = 0
    service: ServiceStats | None = None
    """Azure SignalR Service's units, connections and bill (``hosting='azure-signalr'`` only)."""
    web: WebStats | None = None
    """Web-request latency and failures (when ``web_request_rate_per_s`` > 0)."""

    def _rows(self) -> list[tuple[str, object]]:
        return [
            ("events", self.events),
            ("wall_s", self.wall_s),
            ("backplane_disconnects", self.backplane_disconnects),
            ("backplane_lost_publishes", self.backplane_lost_publishes),
        ]

    def __repr__(self) -> str:
        figures = ", ".join(f"{name}={repr_value(value)}" for name, value in self._rows())
        return (
            f"ModelRun({figures}, records: {self.records.describe()}, "
            f"topology: {self.topology.number_of_nodes():,} nodes)"
        )

    def _repr_html_(self) -> str:
        """What Jupyter displays: the run's counts in a small table."""
        return html_table(
            "ModelRun",
            [*self._rows(), ("records", self.records.describe()), ("topology nodes", self.topology.number_of_nodes())],
        )
