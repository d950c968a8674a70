"""Calibration files: hashed, verified on load, applied to the asyncio-hub profile only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simscale.scenarios import Scenario, simulate
from simscale.scenarios.calibration import Calibration, apply_calibration, load_calibration, save_calibration


def sample(**changes: float) -> Calibration:
    values = dict(
        invocation_cpu_s=150e-6, serialize_cpu_s=4e-6, send_cpu_per_recipient_s=8e-6, keepalive_cpu_s=5e-6,
        handshake_cpu_s=400e-6, memory_base_bytes=50e6, memory_per_connection_bytes=18_000.0,
        backplane_publish_base_s=12e-6, backplane_latency_s=10e-6, connections=300,
    )  # fmt: skip
    values.update(changes)
    return Calibration(**values)  # type: ignore[arg-type]


def test_round_trip_and_application(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    save_calibration(sample(), path)
    assert load_calibration(path) == sample()
    scenario = apply_calibration(Scenario(server_profile="asyncio-hub", calibration_file=str(path)))
    assert scenario.send_cpu_per_recipient_s == 8e-6
    assert scenario.memory_per_connection_bytes == 18_000.0
    assert scenario.loadgen_cpu_per_delivery_s == 0.0  # a calibration predicts a hub, not our load generator


def test_simulate_uses_the_calibrated_costs(tmp_path: Path) -> None:
    cheap, dear = tmp_path / "cheap.json", tmp_path / "dear.json"
    save_calibration(sample(send_cpu_per_recipient_s=1e-6), cheap)
    save_calibration(sample(send_cpu_per_recipient_s=20e-6), dear)
    base = Scenario(server_profile="asyncio-hub", clients=2_000, duration_s=10.0, warmup_s=1.0)
    cpu_cheap = simulate(base.replace(calibration_file=str(cheap))).summary.cpu_utilization_max
    cpu_dear = simulate(base.replace(calibration_file=str(dear))).summary.cpu_utilization_max
    assert cpu_cheap is not None and cpu_dear is not None
    assert cpu_dear > 5 * cpu_cheap


def test_edited_or_broken_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    save_calibration(sample(), path)
    data = json.loads(path.read_text())
    data["send_cpu_per_recipient_s"] = 1e-9
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not match its hash"):
        load_calibration(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_calibration(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="send_cpu_per_recipient_s"):
        sample(send_cpu_per_recipient_s=-1.0)


def test_per_delivery_cost_follows_the_load_between_the_two_measured_points() -> None:
    from simscale.scenarios.calibration import calibrated_costs, cost_at_load

    assert cost_at_load(20e-6, 10e-6, 1_000.0, 100_000.0, 500.0) == 20e-6  # below: the low-load cost
    assert cost_at_load(20e-6, 10e-6, 1_000.0, 100_000.0, 10_000.0) == pytest.approx(15e-6)  # log midpoint
    assert cost_at_load(20e-6, 10e-6, 1_000.0, 100_000.0, 1e6) == 10e-6  # above: the busy cost
    assert cost_at_load(20e-6, 0.0, 1_000.0, 100_000.0, 1e6) == 20e-6  # one load measured: constant
    calibration = sample(
        low_load_deliveries_per_s=1_000.0,
        high_load_deliveries_per_s=100_000.0,
        send_cpu_per_recipient_high_load_s=4e-6,
        loadgen_cpu_per_delivery_s=30e-6,
        loadgen_cpu_per_delivery_high_load_s=15e-6,
    )
    costs = calibrated_costs(calibration, hub_deliveries_per_s=10_000.0, loadgen_deliveries_per_s=100_000.0)
    assert costs["send_cpu_per_recipient_s"] == pytest.approx(6e-6)
    assert costs["loadgen_cpu_per_delivery_s"] == pytest.approx(15e-6)
    assert "loadgen_cpu_per_delivery_s" not in calibrated_costs(calibration, hub_deliveries_per_s=10.0)
