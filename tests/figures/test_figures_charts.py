"""Charts: the numbers they draw are the runs' numbers, and reference lines stay visible."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from simscale.figures import delivered_fraction_figure, latency_distribution_figure, scaling_criteria_figure
from simscale.figures.charts import REFERENCE_TRACE, STEP_TRACE
from simscale.report import connection_limits_frame, latency_steps_frame, message_volume_frame
from simscale.scenarios import preset, simulate


def _trace(figure: go.Figure, meta: str) -> go.Scatter:
    [trace] = [trace for trace in figure.data if trace.meta == meta]
    return trace


def _volume_scenario(rate: float) -> object:
    return preset(
        "single-server",
        clients=1_000,
        broadcast_rate_per_s=rate,
        message_bytes=16_384,
        duration_s=4.0,
        warmup_s=1.0,
        sample_interval_s=0.5,
    )


def test_scaling_criteria_cpu_is_the_busy_period_cpu_of_each_run() -> None:
    rates = (400.0, 1_400.0)
    figure = scaling_criteria_figure(
        message_volume_frame(rates),
        connection_limits_frame({"thread-starvation": (500, 1_000)}, replications=2),
    )
    drawn = list(_trace(figure, "cpu").y)
    for rate, value in zip(rates, drawn, strict=True):
        result = simulate(_volume_scenario(rate))  # type: ignore[arg-type]
        busy = result.summary.cpu_utilization_max
        assert busy is not None
        assert value == pytest.approx(busy * 100, abs=0.01)
        # The drain (after duration_s) is idle: averaging over it would draw less than the busy CPU.
        resources = result.frames()["resources"]
        whole_run = resources[(resources["server"] == 0) & (resources["time_s"] > 1.0)]["cpu_utilization"].mean()
        assert value > whole_run * 100 + 1


def test_connection_failures_are_replicated_with_a_band() -> None:
    frame = connection_limits_frame({"thread-starvation": (1_000,)}, replications=3)
    [row] = frame.to_dict("records")
    assert row["replications"] == 3
    assert row["failed_low"] <= row["failed_connections"] <= row["failed_high"]
    again = connection_limits_frame({"thread-starvation": (1_000,)}, replications=3)
    pd.testing.assert_frame_equal(frame, again)  # fixed seeds: the same numbers every time
    figure = scaling_criteria_figure(message_volume_frame((400.0,)), frame)
    band = _trace(figure, "thread-starvation:band")
    assert max(band.y) == pytest.approx(row["failed_high"]) and min(band.y) == pytest.approx(row["failed_low"])


def test_the_one_over_servers_reference_is_drawn_last_and_dashed() -> None:
    frame = pd.DataFrame(
        {
            "servers": [1, 2, 4, 1, 2, 4],
            "backplane": ["none"] * 3 + ["redis"] * 3,
            "delivered_fraction": [1.0, 0.5, 0.25, 1.0, 1.0, 1.0],
        }
    )
    figure = delivered_fraction_figure(frame)
    assert figure.data[-1].meta == REFERENCE_TRACE
    reference = figure.data[-1]
    assert reference.line.dash == "dash"
    assert reference.line.color not in {trace.line.color for trace in figure.data[:-1]}
    assert list(reference.y) == pytest.approx([1 / n for n in reference.x])
    assert any(annotation.text == REFERENCE_TRACE for annotation in figure.layout.annotations)


def test_latency_steps_are_marked_where_the_data_puts_them() -> None:
    result = simulate(preset("backplane", clients=600, duration_s=10.0, warmup_s=1.0))
    steps = latency_steps_frame(result)
    deliveries = result.frames()["deliveries"]
    local = deliveries[deliveries["server"] == deliveries["origin_server"]]
    assert steps["share"].iloc[0] == pytest.approx(local["delivered"].sum() / deliveries["delivered"].sum())
    assert steps["latency_ms"].iloc[0] < steps["latency_ms"].iloc[1], "the Redis round trip comes second"
    quantiles = pd.DataFrame(
        [
            {
                "scenario": "backplane",
                "quantile": q / 100,
                "latency_ms": result.records.latency.quantile_s(q / 100) * 1000,
            }
            for q in range(1, 100)
        ]
    )
    figure = latency_distribution_figure(quantiles, steps)
    markers = [trace for trace in figure.data if trace.meta == STEP_TRACE]
    assert [trace.x[0] for trace in markers] == pytest.approx(steps["latency_ms"].round(4).tolist())
    texts = [annotation.text for annotation in figure.layout.annotations]
    for share, latency in zip(steps["share"], steps["latency_ms"], strict=True):
        assert any(f"{share:.0%} of deliveries, mean {latency:.1f} ms" in text for text in texts)
    assert latency_steps_frame(simulate(preset("single-server", clients=50, duration_s=3.0, warmup_s=1.0))).empty
