"""Predictions and measurements share one schema: a simulate frame and a loadgen frame concatenate."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from simscale.loadgen import LoadConfig, run_load
from simscale.metrics.frames import SCHEMAS, to_frames
from simscale.scenarios import preset, simulate
from simscale.validation.processes import HubProcesses


@pytest.fixture(scope="module")
def measured_frames() -> dict[str, pd.DataFrame]:
    with HubProcesses(2, "memory") as hubs:
        result = asyncio.run(
            run_load(
                LoadConfig(
                    urls=hubs.urls, clients=40, broadcast_rate_per_s=10.0, duration_s=1.5, scenario="no-backplane"
                )
            )
        )
    return to_frames(result.records)


@pytest.mark.parametrize("kind", ["broadcasts", "deliveries", "connections"])
def test_simulated_and_measured_frames_concatenate_with_identical_columns_and_dtypes(
    kind: str, measured_frames: dict[str, pd.DataFrame]
) -> None:
    simulated = simulate(preset("no-backplane", servers=2, clients=40, duration_s=5.0, warmup_s=1.0)).frames()[kind]
    measured = measured_frames[kind]
    assert len(simulated) and len(measured)
    assert list(simulated.columns) == list(measured.columns) == list(SCHEMAS[kind])
    assert simulated.dtypes.to_dict() == measured.dtypes.to_dict()
    both = pd.concat([simulated, measured], ignore_index=True)
    assert both.dtypes.to_dict() == simulated.dtypes.to_dict()
    assert set(both.source) == {"model", "hub"}


def test_measured_no_backplane_deliveries_reach_only_the_origin_server(
    measured_frames: dict[str, pd.DataFrame],
) -> None:
    deliveries = measured_frames["deliveries"]
    delivered = deliveries[deliveries.delivered > 0]
    assert (delivered.server == delivered.origin_server).all()


def test_empty_frames_keep_their_schema() -> None:
    from simscale.metrics.records import RunRecords

    frames = to_frames(RunRecords())
    for kind, frame in frames.items():
        assert frame.empty
        assert list(frame.columns) == list(SCHEMAS[kind])
