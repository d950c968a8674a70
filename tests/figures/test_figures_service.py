"""The Azure SignalR Service figures draw what the model built, and refuse what they cannot draw."""

from __future__ import annotations

import pandas as pd
import pytest

from simscale import preset, simulate
from simscale.figures.service import hosting_comparison_figure, published_capacity_figure, service_topology_figure


def test_the_service_diagram_shows_each_servers_server_connections_and_the_four_hops() -> None:
    result = simulate(preset("azure-signalr-service", servers=3, clients=9, duration_s=3.0, warmup_s=1.0, seed=1))
    graph = result.topology
    assert [graph.edges[f"server-{i}", "service"]["count"] for i in range(3)] == [5, 5, 5]
    assert all(graph.has_edge(f"client-{c}", "service") for c in range(9))
    figure = service_topology_figure(graph, title="t", origin_server=1)
    connections = next(trace for trace in figure.data if trace.meta == "server connections")
    assert len(connections.x) == 3 * 5 * 3  # three points (start, end, gap) per server connection
    assert len([a for a in figure.layout.annotations if a.name == "path"]) == 3
    assert len([a for a in figure.layout.annotations if a.name == "fan-out"]) == 9


def test_a_self_hosted_topology_is_refused() -> None:
    result = simulate(preset("single-server", clients=4, duration_s=3.0, warmup_s=1.0, seed=1))
    with pytest.raises(ValueError, match="needs a topology with a service node"):
        service_topology_figure(result.topology, title="t")


def test_frames_without_their_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="needs column"):
        published_capacity_figure(pd.DataFrame({"units": [1]}))
    with pytest.raises(ValueError, match="needs column"):
        hosting_comparison_figure(pd.DataFrame({"hosting": ["x"]}))


def test_the_capacity_figure_has_one_panel_per_workload_and_one_legend_entry_per_source() -> None:
    workloads = ["echo", "broadcast", "small groups", "big groups"]
    frame = pd.DataFrame([
        {"workload": w, "units": u, "source": s, "out_messages_per_s": 1_000.0 * u * (1 + i)}
        for i, w in enumerate(workloads) for u in (1, 2) for s in ("published", "model")
    ])  # fmt: skip
    figure = published_capacity_figure(frame)
    assert [annotation.text for annotation in figure.layout.annotations] == workloads
    assert len(figure.data) == 8
    assert [trace.name for trace in figure.data if trace.showlegend] == [
        "published (Azure performance guide)", "model (p99 < 1 s)"
    ]
    assert figure.data[2].xaxis == "x2" and list(figure.data[2].y) == [2_000.0, 4_000.0]


def test_the_published_rows_carry_their_public_source() -> None:
    from simscale.scenarios.hosting import PERFORMANCE_GUIDE_URL, published_capacity_frame

    frame = published_capacity_frame(units=(1,), workloads=("big groups",))
    published = frame[frame["source"] == "published"]
    assert published["source_url"].tolist() == [PERFORMANCE_GUIDE_URL]
    assert PERFORMANCE_GUIDE_URL.startswith("https://learn.microsoft.com/")
    with pytest.raises(ValueError, match="workloads must be among"):
        published_capacity_frame(units=(1,), workloads=("fan-in",))  # type: ignore[arg-type]
