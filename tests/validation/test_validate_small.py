"""A small validation of the model against the real hub, run on every CI build.

A few hundred clients and a few seconds per rate: enough that a regression in either the model
or the hub (a lost delivery, a wrong fan-out, a broken calibration) shows up as a disagreement.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from simscale.scenarios.calibration import LOADGEN_FIELDS, Calibration, calibrated_fields, save_calibration
from simscale.validation import agreement, calibrate, validate

COLUMNS = [
    "metric", "load", "server", "predicted", "predicted_low", "predicted_high", "measured", "measured_low",
    "measured_high", "relative_error", "calibrated_input",
]  # fmt: skip


@pytest.fixture(scope="module")
def measured_calibration() -> Calibration:
    return calibrate(60)


@pytest.fixture(scope="module")
def calibration(measured_calibration: Calibration) -> Calibration:
    """The measured costs with narrow intervals (±5 %): a loaded CI machine's own would often be too wide
    to judge, and these tests are about the comparison (tests/validation/test_trust.py is about trust)."""
    narrow = {
        name: (0.95 * getattr(measured_calibration, name), 1.05 * getattr(measured_calibration, name))
        for name in measured_calibration.intervals
    }
    return dataclasses.replace(measured_calibration, intervals=narrow)


def test_calibration_measures_plausible_costs(measured_calibration: Calibration) -> None:
    calibration = measured_calibration
    # Three replicates, each cost their mean inside its 95 % interval.
    assert calibration.replicates == 3 and len(calibration.notes["replicates"]) == 3
    assert set(calibration.intervals) == set(calibrated_fields(include_loadgen=True))
    for name, (low, high) in calibration.intervals.items():
        assert low <= getattr(calibration, name) <= high, name
    assert 0 < calibration.send_cpu_per_recipient_s < 1e-3
    assert 0 < calibration.invocation_cpu_s < 0.05
    assert 1_000 < calibration.memory_per_connection_bytes < 1_000_000
    assert 0 < calibration.backplane_latency_s + calibration.backplane_publish_base_s < 0.01
    assert calibration.loadgen_cpu_per_delivery_s > 0  # a small calibration folds reads into it if it must
    assert calibration.loadgen_cpu_per_read_s >= 0 and calibration.loadgen_cpu_per_wakeup_s >= 0
    runs = calibration.notes["runs"]
    assert len(runs) == 8 and all(0 < run["wakeups"] <= run["reads"] for run in runs)
    assert calibration.connections == 60
    # The loop's stalls were counted in the quiet and moderate runs, and fitted (0: none seen).
    stalls = calibration.notes["stalls"]
    assert len(stalls) == 4 and all(0 <= count["stalled"] <= count["fan_outs"] for count in stalls)
    assert sum(count["fan_outs"] for count in stalls) > 50
    assert calibration.loadgen_stall_mean_s >= 0 and calibration.loadgen_stall_busy_scale > 0


@pytest.mark.parametrize(("name", "expected_fraction"), [("no-backplane", 0.5), ("backplane", 1.0)])
def test_small_validation_agrees_on_who_receives(calibration: Calibration, name: str, expected_fraction: float) -> None:
    result = validate(name, clients=200, rates_per_s=[4.0, 12.0], calibration=calibration, duration_s=2.0)
    frame = result.comparisons
    assert list(frame.columns) == COLUMNS
    # Each prediction inside the span of the draws, each median inside the two replicates' spread.
    predicted = frame.dropna(subset=["predicted"])
    assert ((predicted.predicted_low <= predicted.predicted) & (predicted.predicted <= predicted.predicted_high)).all()
    measured = frame.dropna(subset=["measured"])
    assert ((measured.measured_low <= measured.measured) & (measured.measured <= measured.measured_high)).all()
    assert len(result.measured) == 2 * 2  # two rates, two replicates each
    delivered = frame[frame.metric == "delivered_fraction"]
    assert len(delivered) == 2
    assert delivered.predicted.to_list() == pytest.approx([expected_fraction] * 2, abs=0.02)
    assert delivered.measured.to_list() == pytest.approx([expected_fraction] * 2, abs=0.02)
    assert agreement(result)["delivered_fraction"] is True
    cpu = frame[frame.metric == "cpu_utilization"]
    assert sorted(cpu.server.unique()) == [0, 1]
    assert (cpu.measured > 0).all() and (cpu.predicted > 0).all()
    memory = frame[frame.metric == "memory_per_connection_kb"]
    assert memory.calibrated_input.all()
    assert not frame[frame.metric != "memory_per_connection_kb"].calibrated_input.any()
    saturation = frame[frame.metric == "saturation_broadcast_rate"]
    assert len(saturation) == 1 and saturation.predicted.iloc[0] > 0
    # A broadcast's sender is drawn differently on the two sides: its per-server counts are not judged.
    assert frame[frame.metric == "backplane_messages_received_per_server"].empty
    payload = result.to_json_dict()
    assert payload["scenario"] == name
    assert set(payload["comparisons"][0]) == set(COLUMNS)
    # Too quiet to tell the machine's drift (the load generator's fixed overheads would dominate).
    assert payload["machine_speed_drift"] is None
    json.dumps(payload)  # JSON-ready: no NaN objects that json cannot write
    assert all(row["relative_error"] is None or math.isfinite(row["relative_error"]) for row in payload["comparisons"])


@pytest.mark.parametrize("name", ["small-groups", "big-groups"])
def test_group_validation_counts_the_backplane_messages_each_server_receives(
    calibration: Calibration, name: str
) -> None:
    result = validate(
        name, clients=120, rates_per_s=[6.0], calibration=calibration, duration_s=2.0, replicates=1, prediction_draws=2
    )
    frame = result.comparisons
    delivered = frame[frame.metric == "delivered_fraction"]
    assert delivered.predicted.to_list() == [1.0] and delivered.measured.to_list() == [1.0]
    received = frame[frame.metric == "backplane_messages_received_per_server"]
    assert sorted(received.server.unique()) == [0, 1]
    assert (received.measured > 0).all() and (received.predicted > 0).all()
    # Both sides pick the same group and sender for each send time: the counts agree (exactly, in practice).
    assert agreement(result)["backplane_messages_received_per_server"] is True
    # Each send is received by the other server when it holds a member: at most once per send.
    sends = 6.0 * (1.0 + 2.0)
    assert (received.predicted < 2 * sends).all() and (received.measured < 2 * sends).all()
    # The same report as the broadcast presets: p50 below saturation and the saturation rate, judged
    # at their tolerances, and the backplane counts judged too.
    p50 = frame[frame.metric == "latency_p50_ms"]
    assert p50.load.to_list() == [6.0] and (p50.predicted > 0).all() and (p50.measured > 0).all()
    assert len(frame[frame.metric == "saturation_broadcast_rate"]) == 1
    judged = result.to_json_dict()["verdict"]["metrics"]
    assert judged["latency_p50_ms"]["tolerance"] == 0.25 and judged["saturation_broadcast_rate"]["tolerance"] == 0.15
    assert judged["latency_p50_ms"]["verdict"] in ("agree", "disagree")
    assert judged["backplane_messages_received_per_server"] == {
        "verdict": "agree",
        "tolerance": 0.10,
        "unit": "messages",
    }


def test_validate_cli_json_and_out(calibration: Calibration, tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    # As if the machine had been twice as fast when it was calibrated: validate must say so. Two busy rates,
    # so that one of them stays below saturation on a loaded machine too.
    halved = {name: getattr(calibration, name) / 2 for name in LOADGEN_FIELDS if name.startswith("loadgen_cpu")}
    # Without intervals (one replicate's worth): the halved costs lie outside the measured ones, and a
    # loaded machine's wide intervals would make this run untrusted (tests/validation/test_trust.py).
    save_calibration(dataclasses.replace(calibration, **halved, intervals={}, replicates=1), path)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "simscale.cli", "validate", "single-server", "--clients", "150",
        "--broadcast-rates", "10,150,300", "--calibration", str(path), "--duration", "2", "--json", "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["scenario"] == "single-server"
    metrics = {row["metric"] for row in payload["comparisons"]}
    assert {"delivered_fraction", "deliveries_per_s", "cpu_utilization", "memory_per_connection_kb",
            "saturation_broadcast_rate"} <= metrics  # fmt: skip
    assert payload["machine_speed_drift"] > 0.5
    # The verdict: one word per judged metric, and one overall.
    assert payload["verdict"]["overall"] in {"agree", "disagree", "not measured"}
    assert payload["overall"] == payload["verdict"]["overall"] and payload["reason"] is None
    assert set(payload["verdict"]["metrics"]) == {"delivered_fraction", "latency_p50_ms", "memory_per_connection_kb",
                                                  "saturation_broadcast_rate"}  # fmt: skip
    assert "needed" in result.stderr and "more CPU for its work than at calibration" in result.stderr
    assert (out / "comparisons.csv").stat().st_size > 0
    assert any(out.glob("validation-single-server.*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "port-exhaustion"], "validate takes one of"),
        (["validate", "single-server", "--broadcast-rates", "0"], "positive"),
        (["validate", "no-backplane", "--servers", "1", "--calibration", "/nonexistent.json"], "does not exist"),
        (["calibrate", "--connections", "5000", "--out", "/tmp/x.json"], "connections must be"),
    ],
)
def test_bad_validation_input_exits_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simscale.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_calibrate_cli_writes_a_verified_file_and_prints_the_costs(tmp_path: Path) -> None:
    from simscale.scenarios.calibration import load_calibration

    path = tmp_path / "calibration.json"
    command = [
        sys.executable, "-m", "simscale.cli", "calibrate",
        "--connections", "20", "--replicates", "2", "--out", str(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    calibration = load_calibration(path)  # the hash checks out
    assert calibration.connections == 20 and calibration.replicates == 2
    for name in calibrated_fields(include_loadgen=True):
        assert name in result.stdout
    assert calibration.loadgen_cpu_per_delivery_s > 0
