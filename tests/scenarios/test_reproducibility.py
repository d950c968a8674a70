"""Same seed → same results; different seeds differ; executors give the serial results."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pytest

from simscale.scenarios import preset, replicate, simulate, sweep


def without_wall(payload: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in payload.items() if key != "wall_s"}


def test_same_seed_same_results_different_seed_differs() -> None:
    scenario = preset("backplane", duration_s=20.0, warmup_s=2.0, seed=42)
    first, second = simulate(scenario), simulate(scenario)
    assert without_wall(first.to_json_dict()) == without_wall(second.to_json_dict())
    pd.testing.assert_frame_equal(first.frames()["deliveries"], second.frames()["deliveries"])
    other = simulate(scenario.replace(seed=43))
    assert other.summary.latency_p50_ms != first.summary.latency_p50_ms
    assert other.summary.broadcasts != first.summary.broadcasts


def serial_and(executor_frame: pd.DataFrame, serial: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(executor_frame.drop(columns="wall_s"), serial.drop(columns="wall_s"))


FACTORS = {"servers": [1, 2, 3], "broadcast_rate_per_s": [5.0, 20.0]}


@pytest.fixture(scope="module")
def serial_sweep() -> pd.DataFrame:
    return sweep(preset("no-backplane", duration_s=15.0, warmup_s=1.0), **FACTORS)


def test_sweep_grid_and_columns(serial_sweep: pd.DataFrame) -> None:
    assert len(serial_sweep) == 6
    assert {"servers", "broadcast_rate_per_s", "delivered_fraction", "latency_p99_ms"} <= set(serial_sweep.columns)
    one_server = serial_sweep[serial_sweep.servers == 1]
    assert (one_server.delivered_fraction == 1.0).all()


def test_sweep_on_a_process_pool_matches_serial(serial_sweep: pd.DataFrame) -> None:
    with ProcessPoolExecutor(max_workers=2) as executor:
        parallel = sweep(preset("no-backplane", duration_s=15.0, warmup_s=1.0), executor=executor, **FACTORS)
    serial_and(parallel, serial_sweep)


def test_sweep_on_a_dask_local_cluster_matches_serial(serial_sweep: pd.DataFrame) -> None:
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        parallel = sweep(
            preset("no-backplane", duration_s=15.0, warmup_s=1.0), executor=client.get_executor(), **FACTORS
        )
    serial_and(parallel, serial_sweep)


def test_replicate_gives_confidence_intervals_around_the_mean() -> None:
    result = replicate(preset("single-server", duration_s=10.0, warmup_s=1.0), 4)
    assert len(result.runs) == 4
    assert result.runs.seed.nunique() == 4
    p50 = result.intervals.set_index("metric").loc["latency_p50_ms"]
    assert p50.ci_low < p50["mean"] < p50.ci_high
    assert p50["mean"] == pytest.approx(result.runs.latency_p50_ms.mean())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: replicate(preset("single-server"), 1), "replications"),
        (lambda: sweep(preset("single-server")), "at least one factor"),
        (lambda: sweep(preset("single-server"), servers=[]), "servers"),
        (lambda: sweep(preset("single-server"), servers=[0]), "servers"),
        (lambda: sweep(preset("single-server"), bogus=[1]), "bogus"),
    ],
)
def test_bad_runner_arguments_raise_value_error(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
