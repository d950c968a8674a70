"""Replicated calibration: each cost the replicates' mean with a 95 % Student-t interval; old files load."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
from pathlib import Path

import pytest
from scipy import stats

from simscale.scenarios.calibration import Calibration, calibrated_fields, load_calibration, save_calibration
from simscale.validation.fitting import combine_replicates, t_interval

_OLD_FIELDS = (
    "invocation_cpu_s", "serialize_cpu_s", "send_cpu_per_recipient_s", "keepalive_cpu_s", "handshake_cpu_s",
    "memory_base_bytes", "memory_per_connection_bytes", "backplane_publish_base_s", "backplane_latency_s",
    "connections", "send_cpu_per_recipient_busy_s", "loadgen_cpu_per_delivery_s", "loadgen_cpu_per_read_s",
    "loadgen_cpu_per_wakeup_s", "loadgen_cpu_per_send_s", "loadgen_stall_mean_s", "loadgen_stall_busy_scale",
    "low_load_deliveries_per_s", "high_load_deliveries_per_s", "host", "created_at", "simscale_version", "notes",
)  # fmt: skip
"""The fields a calibration file had before replication (and host speed) existed."""


def replicate(scale: float) -> Calibration:
    return Calibration(
        invocation_cpu_s=150e-6 * scale, serialize_cpu_s=4e-6, send_cpu_per_recipient_s=8e-6 * scale,
        keepalive_cpu_s=5e-6, handshake_cpu_s=400e-6, memory_base_bytes=50e6, memory_per_connection_bytes=18_000.0,
        backplane_publish_base_s=12e-6, backplane_latency_s=10e-6, connections=300,
        loadgen_cpu_per_delivery_s=5e-6 * scale, low_load_deliveries_per_s=1000.0 * scale,
        notes={"runs": [{"wall_s": scale}]},
    )  # fmt: skip


def test_t_interval_is_the_student_t_interval_of_the_mean() -> None:
    values = [3.0, 5.0, 4.5, 4.0]
    mean, low, high = t_interval(values)
    half = stats.t.ppf(0.975, 3) * statistics.stdev(values) / len(values) ** 0.5
    assert mean == pytest.approx(statistics.fmean(values))
    assert (low, high) == pytest.approx((mean - half, mean + half))
    # Wider than the normal interval would be with so few replicates.
    assert half > 1.96 * statistics.stdev(values) / len(values) ** 0.5
    with pytest.raises(ValueError, match="values"):
        t_interval([1.0])


def test_combined_replicates_give_means_intervals_and_keep_each_replicate() -> None:
    scales = (0.9, 1.0, 1.3)
    combined = combine_replicates([replicate(scale) for scale in scales])
    assert combined.replicates == 3
    assert combined.send_cpu_per_recipient_s == pytest.approx(8e-6 * statistics.fmean(scales))
    low, high = combined.interval("send_cpu_per_recipient_s")
    assert low < combined.send_cpu_per_recipient_s < high
    _, expected_low, expected_high = t_interval([8e-6 * scale for scale in scales])
    assert (low, high) == pytest.approx((max(expected_low, 0.0), expected_high))
    # A cost every replicate measured alike has a zero-width interval; no interval goes below zero.
    assert combined.interval("serialize_cpu_s") == pytest.approx((4e-6, 4e-6))
    assert set(combined.intervals) == set(calibrated_fields(include_loadgen=True))
    assert all(pair[0] >= 0 for pair in combined.intervals.values())
    assert combined.low_load_deliveries_per_s == pytest.approx(1000 * statistics.fmean(scales))
    assert [entry["send_cpu_per_recipient_s"] for entry in combined.notes["replicates"]] == pytest.approx(
        [8e-6 * scale for scale in scales]
    )
    assert combine_replicates([replicate(1.0)]) == replicate(1.0)


def test_a_replicated_calibration_round_trips_through_its_file(tmp_path: Path) -> None:
    combined = dataclasses.replace(
        combine_replicates([replicate(scale) for scale in (0.9, 1.0, 1.2)]),
        host_time_slice_s=1.5e-3,
        host_parallel_speed=1.8,
    )
    save_calibration(combined, tmp_path / "replicated.json")
    loaded = load_calibration(tmp_path / "replicated.json")
    assert loaded == combined
    assert isinstance(loaded.intervals["send_cpu_per_recipient_s"], tuple)


def test_a_file_of_the_old_field_set_still_loads_without_intervals(tmp_path: Path) -> None:
    body = {name: value for name, value in dataclasses.asdict(replicate(1.0)).items() if name in _OLD_FIELDS}
    assert set(body) == set(_OLD_FIELDS)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path = tmp_path / "old.json"
    path.write_text(json.dumps({**body, "hash": digest}, indent=2, sort_keys=True) + "\n")
    loaded = load_calibration(path)
    assert loaded.replicates == 1 and loaded.intervals == {}
    assert loaded.host_time_slice_s is None and loaded.host_parallel_speed is None
    assert loaded.interval("send_cpu_per_recipient_s") == (8e-6, 8e-6)


@pytest.mark.parametrize(
    ("intervals", "message"),
    [({"connections": (1.0, 2.0)}, "not calibrated"), ({"serialize_cpu_s": (2.0, 1.0)}, "low <= high")],
)
def test_bad_intervals_are_refused_naming_the_field(intervals: dict[str, tuple[float, float]], message: str) -> None:
    with pytest.raises(ValueError, match=f"intervals.*{message}"):
        dataclasses.replace(replicate(1.0), intervals=intervals)


def test_bad_replicates_and_host_speed_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="replicates"):
        dataclasses.replace(replicate(1.0), replicates=0)
    with pytest.raises(ValueError, match="host_parallel_speed"):
        dataclasses.replace(replicate(1.0), host_parallel_speed=0.0)


def test_the_combined_host_speed_is_the_replicates_median_and_validate_models_it() -> None:
    from simscale.validation.validate import host_speed

    replicates = [
        dataclasses.replace(replicate(1.0), host_time_slice_s=slice_s, host_parallel_speed=speed)
        for slice_s, speed in ((1e-3, 0.7), (3e-3, 0.9), (2e-3, 0.8))
    ]
    combined = combine_replicates(replicates)
    assert (combined.host_time_slice_s, combined.host_parallel_speed) == (2e-3, 0.8)
    modelled = host_speed(combined)  # from the calibration, not probed again
    assert (modelled.time_slice_s, modelled.parallel_speed) == (2e-3, 0.8)
    # A file that never measured the host: the host is probed instead.
    probed = host_speed(replicate(1.0))
    assert probed.time_slice_s > 0 and 0 < probed.parallel_speed <= 1


def test_costs_drawn_from_an_interval_wider_than_the_field_allows_stay_within_its_limits() -> None:
    import numpy as np

    from simscale.config.scenario import Scenario
    from simscale.scenarios.calibration import calibrated_costs
    from simscale.validation.validate import _drawn

    # Replicated busy scales of 100, 100 and 30 (as a half-speed run fitted them): the interval reaches past 100.
    replicates = [dataclasses.replace(replicate(1.0), loadgen_stall_busy_scale=scale) for scale in (100.0, 100.0, 30.0)]
    combined = combine_replicates(replicates)
    _, high = combined.interval("loadgen_stall_busy_scale")
    assert high > 100.0
    rng = np.random.default_rng(0)
    for _ in range(50):
        drawn = _drawn(combined, rng)
        assert 0 < drawn.loadgen_stall_busy_scale <= 100.0
        Scenario(**calibrated_costs(drawn, include_loadgen=True))  # every drawn cost is a valid field value
