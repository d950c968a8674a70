"""The fits, on synthetic measurements made from known costs: no hub, no processes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simscale.validation.fitting import (
    fit_busy_send_cpu_per_recipient_s,
    fit_calibration,
    fit_hub_broadcast_costs,
    fit_idle_costs,
    fit_loadgen_costs,
    fit_publish_costs,
)
from simscale.validation.records import BroadcastRun, CalibrationMeasurements

IDLE_CPU_PER_S = 0.002
PER_BROADCAST_S = 200e-6
SEND_S = 10e-6
BUSY_SEND_S = 6e-6
LOADGEN = {"send": 300e-6, "wakeup": 20e-6, "read": 30e-6, "delivery": 5e-6}


def _run(
    clients: int, broadcasts: int, wakeups: int, reads: int, *, send_s: float = SEND_S, wall_s: float = 3.0
) -> BroadcastRun:
    """A run whose CPU is exactly what the known costs say."""
    deliveries = clients * broadcasts
    hub_cpu_s = wall_s * IDLE_CPU_PER_S + broadcasts * PER_BROADCAST_S + deliveries * send_s
    loadgen_cpu_s = (
        broadcasts * LOADGEN["send"] + wakeups * LOADGEN["wakeup"] + reads * LOADGEN["read"]
        + deliveries * LOADGEN["delivery"]
    )  # fmt: skip
    return BroadcastRun(wall_s, clients, broadcasts, deliveries, hub_cpu_s, loadgen_cpu_s, reads, wakeups, (), ())


QUIET = (_run(300, 60, 200, 17_000), _run(300, 120, 380, 34_000), _run(75, 120, 300, 8_800))
MODERATE = (_run(300, 300, 600, 60_000), _run(300, 480, 800, 80_000))
BUSY = tuple(_run(300, n, n // 20, n * 4, send_s=BUSY_SEND_S) for n in (600, 1_100, 1_800))


def _measurements(**changes: object) -> CalibrationMeasurements:
    values: dict[str, object] = dict(
        connections=300, base_rss_bytes=50e6, empty_idle_cpu_s=2 * IDLE_CPU_PER_S, empty_idle_s=2.0, hold_s=3.0,
        keepalive_interval_s=1.0, connect_close_cpu_s=300 * 400e-6, connected_rss_delta_bytes=300 * 18_000.0,
        held_idle_cpu_s=3.0 * IDLE_CPU_PER_S + 900 * 5e-6, quiet=QUIET, moderate=MODERATE, busy=BUSY,
        serialize_cpu_s=15e-6, publish_service_s=8e-6, publish_round_trip_s=48e-6,
    )  # fmt: skip
    values.update(changes)
    return CalibrationMeasurements(**values)  # type: ignore[arg-type]


def test_the_hub_fit_recovers_the_costs_the_runs_were_made_from() -> None:
    costs = fit_hub_broadcast_costs(QUIET, IDLE_CPU_PER_S)
    assert costs.per_broadcast_s == pytest.approx(PER_BROADCAST_S, rel=1e-6)
    assert costs.send_s == pytest.approx(SEND_S, rel=1e-6)
    busy = fit_busy_send_cpu_per_recipient_s(BUSY, costs.per_broadcast_s, IDLE_CPU_PER_S)
    assert busy == pytest.approx(BUSY_SEND_S, rel=1e-6)


def test_the_load_generator_fit_recovers_its_split_costs() -> None:
    costs = fit_loadgen_costs([*QUIET, *MODERATE, *BUSY])
    fitted = (costs.per_send_s, costs.per_wakeup_s, costs.per_read_s, costs.per_delivery_s)
    assert fitted == pytest.approx(tuple(LOADGEN.values()), rel=1e-4)


def test_runs_that_do_not_separate_reads_from_messages_fold_reads_into_messages() -> None:
    # One read per message in every run: reads and deliveries cannot be told apart.
    runs = [_run(100, n, n, 100 * n) for n in (50, 100, 200)]
    costs = fit_loadgen_costs(runs)
    assert costs.per_read_s == 0.0
    # The folded costs still account for every run's CPU.
    for run in runs:
        fitted_s = run.broadcasts * costs.per_send_s + run.wakeups * costs.per_wakeup_s
        assert fitted_s + run.deliveries * costs.per_delivery_s == pytest.approx(run.loadgen_cpu_s, rel=1e-3)


def test_idle_and_publish_costs() -> None:
    idle = fit_idle_costs(_measurements())
    assert idle.keepalive_cpu_s == pytest.approx(5e-6)
    assert idle.handshake_cpu_s == pytest.approx(400e-6)
    assert idle.memory_per_connection_bytes == pytest.approx(18_000.0)
    assert fit_publish_costs(8e-6, 48e-6) == pytest.approx((8e-6, 20e-6))
    assert fit_publish_costs(8e-6, 4e-6) == (8e-6, 0.0)  # a round trip faster than the service: no latency


def test_the_whole_calibration_from_synthetic_measurements() -> None:
    calibration = fit_calibration(_measurements(), host="test", created_at="now", simscale_version="0")
    assert calibration.send_cpu_per_recipient_s == pytest.approx(SEND_S, rel=1e-6)
    assert calibration.send_cpu_per_recipient_busy_s == pytest.approx(BUSY_SEND_S, rel=1e-6)
    assert calibration.serialize_cpu_s == 15e-6
    assert calibration.invocation_cpu_s == pytest.approx(PER_BROADCAST_S - 15e-6, rel=1e-6)
    assert calibration.loadgen_cpu_per_read_s == pytest.approx(LOADGEN["read"], rel=1e-4)
    assert calibration.backplane_latency_s == pytest.approx(20e-6)
    assert calibration.loadgen_stall_mean_s == 0.0  # no traces: no stall seen
    assert calibration.low_load_deliveries_per_s == pytest.approx((300 * 60 + 300 * 120) / 6.0)
    assert len(calibration.notes["runs"]) == 8 and len(calibration.notes["stalls"]) == 4
    # Identical measurements, identical costs.
    assert fit_calibration(_measurements(), host="test", created_at="now", simscale_version="0") == calibration


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"connections": 0}, "connections"),
        ({"hold_s": 0.0}, "hold_s"),
        ({"empty_idle_s": -1.0}, "empty_idle_s"),
        ({"keepalive_interval_s": 0.0}, "keepalive_interval_s"),
        ({"quiet": QUIET[:1]}, "quiet"),
        ({"busy": ()}, "busy"),
        ({"serialize_cpu_s": -1e-6}, "serialize_cpu_s"),
        ({"publish_round_trip_s": -1.0}, "publish_round_trip_s"),
        ({"moderate": (dataclasses.replace(MODERATE[0], wall_s=0.0),)}, "wall_s"),
        ({"busy": (dataclasses.replace(BUSY[0], loadgen_cpu_s=0.0),)}, "loadgen_cpu_s"),
    ],
)
def test_bad_measurements_are_refused_by_name(changes: dict[str, object], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        fit_calibration(_measurements(**changes), host="", created_at="", simscale_version="")


def test_noise_moves_the_hub_fit_a_little_not_a_lot() -> None:
    rng = np.random.default_rng(1)
    noisy = tuple(dataclasses.replace(run, hub_cpu_s=run.hub_cpu_s * (1 + rng.normal(0, 0.01))) for run in QUIET)
    assert fit_hub_broadcast_costs(noisy, IDLE_CPU_PER_S).send_s == pytest.approx(SEND_S, rel=0.1)
