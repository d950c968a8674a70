"""What a plan answers: the deployment, the binding constraint, and the table of the search."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simscale.planning.request import Constraint, PlanRequest

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["CANDIDATE_COLUMNS", "Plan"]

CANDIDATE_COLUMNS = (
    "servers",
    "meets",
    "binding_constraint",
    "failed",
    "latency_p99_ms",
    "latency_p99_ms_ci_low",
    "latency_p99_ms_ci_high",
    "cpu_utilization_max",
    "cpu_utilization_max_ci_low",
    "cpu_utilization_max_ci_high",
    "clients_connected",
    "connections_refused",
    "connections_dropped",
    "clients_never_connected",
    "replications",
    "connections_per_server",
    "proxy_addresses_needed",
    "cpu_utilization_estimate",
    "memory_per_server_bytes",
    "backplane_utilization",
    "latency_floor_ms",
    "servers_reached_per_send",
    "service_units",
    "service_utilization",
    "service_cost_per_day_usd",
    "cost_per_day_usd",
)
"""The columns of :attr:`Plan.candidates`, one row per simulated size. Latency in ms; CPU and
backplane utilisation as fractions 0-1 (CPU: the busiest server's mean over the busy period, the
mean over replications with a 95 % Student-t interval); connection counts are the worst replication;
``clients_connected`` is the mean over replications; ``failed`` lists every requirement missed
(comma-separated); the closed-form columns come from :func:`simscale.planning.search.estimate`;
``servers_reached_per_send`` is the closed form (all servers for a broadcast, fewer for a small group);
``service_units`` (from the runs' summaries), ``service_utilization`` (closed form) and
``service_cost_per_day_usd`` are NaN when self-hosted; ``cost_per_day_usd`` is the service's bill plus
the app servers' at the given price, NaN when neither is known."""


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(frozen=True, slots=True, repr=False)
class Plan:
    """The smallest deployment that meets every requirement, and how the search found it.

    ``servers`` app servers (with ``proxy_addresses`` source addresses per backend on the proxy);
    ``service_units``: the Azure SignalR Service units of the chosen deployment, ``None`` for
    self-hosting. ``binding_constraint`` is the limit that stops a
    smaller deployment: what one server fewer fails on (at one server, the requirement closest to
    its limit). ``candidates`` has one row per simulated size (:data:`CANDIDATE_COLUMNS`),
    ``estimates`` the closed forms of every size up to the largest tried.

    Example:

        >>> import simscale
        >>> answer = simscale.plan(clients=100, broadcast_rate_per_s=2.0, replications=1,
        ...                        base=simscale.preset("backplane", duration_s=3.0, warmup_s=1.0))
        >>> answer.servers, answer.binding_constraint, answer.candidates["servers"].tolist()
        (1, 'latency', [1, 2, 3])
    """

    request: PlanRequest
    servers: int
    proxy_addresses: int | None
    service_units: int | None
    binding_constraint: Constraint
    candidates: pd.DataFrame
    estimates: pd.DataFrame

    def __repr__(self) -> str:
        return (
            f"Plan(servers={self.servers}, proxy_addresses={self.proxy_addresses}, service_units={self.service_units}, "
            f"binding_constraint={self.binding_constraint!r}, candidates={len(self.candidates)} sizes simulated)"
        )

    def chosen(self) -> pd.Series:
        """The candidates row of the answer (on the service, the one with the answer's units)."""
        rows = self.candidates[(self.candidates["servers"] == self.servers) & self.candidates["meets"].astype(bool)]
        return rows.iloc[-1]

    def figure(self) -> go.Figure:
        """The search drawn: closed forms as lines, simulated candidates as points, the targets."""
        from simscale.figures.planning import plan_search_figure

        return plan_search_figure(
            self.candidates,
            self.estimates,
            latency_p99_ms=self.request.latency_p99_ms,
            cpu_headroom=self.request.cpu_headroom,
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The answer and every candidate, JSON-ready (NaN becomes ``None``)."""
        rows = [
            {key: _json_value(value) for key, value in row.items()} for row in self.candidates.to_dict(orient="records")
        ]
        for row in rows:
            row["failed"] = [name for name in str(row["failed"] or "").split(",") if name]
        chosen = self.chosen()
        return {
            "servers": self.servers,
            "proxy_addresses": self.proxy_addresses,
            "service_units": self.service_units,
            "binding_constraint": self.binding_constraint,
            "hosting": self.request.hosting,
            "backplane": "none" if self.request.hosting == "azure-signalr" else self.request.backplane,
            "cost_per_day_usd": _json_value(chosen["cost_per_day_usd"]),
            "requirements": {
                "clients": self.request.clients,
                "broadcast_rate_per_s": self.request.broadcast_rate_per_s,
                "send_target": self.request.send_target,
                "group_size": self.request.group_size,
                "latency_p99_ms": self.request.latency_p99_ms,
                "cpu_headroom": self.request.cpu_headroom,
                "backplane_utilization_max": self.request.backplane_utilization_max,
                "replications": self.request.replications,
            },
            "candidates": rows,
        }

    def write(self, out_dir: Path) -> list[Path]:
        """Write ``plan-candidates.csv``, ``plan-estimates.csv``, ``plan.json`` and the figure
        (``plan-search.html``) into ``out_dir``; returns the paths."""
        from simscale.figures.export import export_figures

        out_dir.mkdir(parents=True, exist_ok=True)
        written = [out_dir / "plan-candidates.csv", out_dir / "plan-estimates.csv", out_dir / "plan.json"]
        self.candidates.to_csv(written[0], index=False)
        self.estimates.to_csv(written[1], index=False)
        written[2].write_text(json.dumps(self.to_json_dict(), indent=2) + "\n", encoding="utf-8")
        report = export_figures({"plan-search": self.figure()}, out_dir, browser=False)
        return [*written, *report.written]
