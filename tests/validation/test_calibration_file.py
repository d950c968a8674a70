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


def test_busy_costs_apply_only_while_work_is_queued() -> None:
    from simscale.scenarios.calibration import calibrated_costs

    calibration = sample(
        send_cpu_per_recipient_high_load_s=3e-6,
        loadgen_cpu_per_delivery_s=25e-6,
        loadgen_cpu_per_delivery_high_load_s=12e-6,
    )
    hub_only = calibrated_costs(calibration)
    assert hub_only["send_cpu_per_recipient_s"] == 8e-6 and hub_only["send_cpu_per_recipient_busy_s"] == 3e-6
    assert "loadgen_cpu_per_delivery_s" not in hub_only
    both = calibrated_costs(calibration, include_loadgen=True)
    assert both["loadgen_cpu_per_delivery_busy_s"] == 12e-6
    # Busy costs raise capacity but leave a quiet run alone.
    base = Scenario(server_profile="asyncio-hub", clients=1_000, duration_s=10.0, warmup_s=1.0, **both)
    quiet = {"broadcast_rate_per_s": 5.0}
    assert simulate(base.replace(**quiet)).summary.latency_p50_ms == pytest.approx(
        simulate(
            base.replace(**quiet, send_cpu_per_recipient_busy_s=0.0, loadgen_cpu_per_delivery_busy_s=0.0)
        ).summary.latency_p50_ms,
        rel=0.05,
    )
    loaded = {"broadcast_rate_per_s": 60.0}
    busy_p99 = simulate(base.replace(**loaded)).summary.latency_p99_ms
    flat_p99 = simulate(
        base.replace(**loaded, send_cpu_per_recipient_busy_s=0.0, loadgen_cpu_per_delivery_busy_s=0.0)
    ).summary.latency_p99_ms
    assert busy_p99 is not None and flat_p99 is not None and busy_p99 < flat_p99
