"""Calibration files: hashed, verified on load, applied to the asyncio-hub profile only."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
from pathlib import Path

import pytest

from simscale.scenarios import Scenario, simulate
from simscale.scenarios.calibration import (
    CALIBRATED_FIELDS,
    LOADGEN_FIELDS,
    Calibration,
    apply_calibration,
    calibrated_costs,
    calibrated_fields,
    load_calibration,
    save_calibration,
)

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "06.00-Model-Versus-Real-Hub.ipynb"


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


def test_busy_hub_costs_apply_only_while_work_is_queued() -> None:
    from simscale.scenarios.calibration import calibrated_costs

    calibration = sample(send_cpu_per_recipient_busy_s=3e-6)
    hub_only = calibrated_costs(calibration)
    assert hub_only["send_cpu_per_recipient_s"] == 8e-6 and hub_only["send_cpu_per_recipient_busy_s"] == 3e-6
    assert "loadgen_cpu_per_delivery_s" not in hub_only
    base = Scenario(server_profile="asyncio-hub", clients=1_000, duration_s=10.0, warmup_s=1.0, **hub_only)
    quiet = {"broadcast_rate_per_s": 5.0}
    assert simulate(base.replace(**quiet)).summary.latency_p50_ms == pytest.approx(
        simulate(base.replace(**quiet, send_cpu_per_recipient_busy_s=0.0)).summary.latency_p50_ms, rel=0.05
    )
    loaded = {"broadcast_rate_per_s": 110.0}  # 8 µs x 1,000 recipients: 0.88 of a core without batching
    busy_p99 = simulate(base.replace(**loaded)).summary.latency_p99_ms
    flat_p99 = simulate(base.replace(**loaded, send_cpu_per_recipient_busy_s=0.0)).summary.latency_p99_ms
    assert busy_p99 is not None and flat_p99 is not None and busy_p99 < flat_p99


def test_socket_reads_are_shared_by_the_messages_waiting_in_them() -> None:
    """A load generator that falls behind reads several messages per socket read, so it catches up."""
    from simscale.scenarios.calibration import calibrated_costs

    split = calibrated_costs(
        sample(loadgen_cpu_per_delivery_s=4e-6, loadgen_cpu_per_read_s=10e-6, loadgen_cpu_per_send_s=20e-6),
        include_loadgen=True,
    )
    assert split["loadgen_cpu_per_read_s"] == 10e-6 and split["loadgen_cpu_per_delivery_s"] == 4e-6
    flat = {**split, "loadgen_cpu_per_delivery_s": 14e-6, "loadgen_cpu_per_read_s": 0.0}
    base = Scenario(server_profile="asyncio-hub", clients=1_000, duration_s=10.0, warmup_s=1.0, shared_host_cores=2)
    # Quiet: every message has a read of its own, and both descriptions cost the same.
    quiet = {"broadcast_rate_per_s": 5.0}
    split_p50 = simulate(base.replace(**quiet, **split)).summary.latency_p50_ms
    flat_p50 = simulate(base.replace(**quiet, **flat)).summary.latency_p50_ms
    assert split_p50 == pytest.approx(flat_p50, rel=0.05)
    # 80 broadcasts/s: 1.12 cores of reading at one read per message, which one loop cannot do;
    # sharing reads keeps up (4 µs per message is 0.32 of a core).
    loaded = {"broadcast_rate_per_s": 80.0}
    split_run = simulate(base.replace(**loaded, **split)).summary
    flat_run = simulate(base.replace(**loaded, **flat)).summary
    assert split_run.latency_p99_ms is not None and flat_run.latency_p99_ms is not None
    assert split_run.latency_p99_ms < 250 < flat_run.latency_p99_ms


def test_an_old_file_with_the_old_name_of_the_busy_cost_still_loads(tmp_path: Path) -> None:
    # Written as older simscale wrote it: the busy cost under its old key, hashed over that body.
    body = dataclasses.asdict(sample())
    del body["send_cpu_per_recipient_busy_s"]
    body["send_cpu_per_recipient_high_load_s"] = 3e-6
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path = tmp_path / "old.json"
    path.write_text(json.dumps({**body, "hash": digest}, indent=2, sort_keys=True) + "\n")
    loaded = load_calibration(path)
    assert loaded.send_cpu_per_recipient_busy_s == 3e-6
    assert loaded == sample(send_cpu_per_recipient_busy_s=3e-6)
    assert calibrated_costs(loaded)["send_cpu_per_recipient_busy_s"] == 3e-6
    # Saving it again writes the new name, and that file loads to the same calibration.
    save_calibration(loaded, tmp_path / "new.json")
    written = json.loads((tmp_path / "new.json").read_text())
    assert "send_cpu_per_recipient_busy_s" in written and "send_cpu_per_recipient_high_load_s" not in written
    assert load_calibration(tmp_path / "new.json") == loaded


def test_the_old_name_is_only_a_file_key_not_a_field() -> None:
    # One name everywhere: the old one survives only as a key that load_calibration renames.
    assert "send_cpu_per_recipient_high_load_s" not in {spec.name for spec in dataclasses.fields(Calibration)}
    with pytest.raises(TypeError):
        Calibration(**{**dataclasses.asdict(sample()), "send_cpu_per_recipient_high_load_s": 3e-6})


def test_every_calibrated_cost_has_the_name_of_the_scenario_field_it_replaces() -> None:
    scenario_fields = {spec.name for spec in dataclasses.fields(Scenario)}
    names = calibrated_fields(include_loadgen=True)
    assert set(names) <= scenario_fields
    assert "send_cpu_per_recipient_busy_s" in calibrated_fields()
    assert calibrated_fields() == CALIBRATED_FIELDS
    assert names == CALIBRATED_FIELDS + LOADGEN_FIELDS
    assert set(calibrated_costs(sample())) == set(CALIBRATED_FIELDS)


def test_load_generator_costs_come_with_the_one_loop_client_host() -> None:
    # Those costs describe our one-loop load generator; without the host that charges them they'd be ignored.
    costs = calibrated_costs(sample(), include_loadgen=True)
    assert set(costs) == {*calibrated_fields(include_loadgen=True), "client_host"}
    assert costs["client_host"] == "one-loop"
    assert "client_host" not in calibrated_costs(sample())
    assert Scenario(server_profile="asyncio-hub", **costs).client_host == "one-loop"  # type: ignore[arg-type]


def test_the_calibrated_names_are_defined_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from simscale.validation import cli

    # The package exports a function of the module's name, so the module is fetched by name.
    calibrating = importlib.import_module("simscale.validation.calibrate")

    # `simscale calibrate` prints the calibration's own list: the names it prints are that list, in order.
    monkeypatch.setattr(calibrating, "calibrate", lambda connections, replicates: sample())
    cli._calibrate(argparse.Namespace(connections=20, replicates=1, out=str(tmp_path / "calibration.json")))
    lines = capsys.readouterr().out.splitlines()[1:]
    printed = [line.split()[0] for line in lines]
    assert tuple(printed) == calibrated_fields(include_loadgen=True)
    # Each cost with its interval (one replicate: the value itself at both ends).
    assert lines[0].split()[1:] == ["0.00015", "[0.00015,", "0.00015]"]
    # The notebook never writes the list out as names (it reads the costs it explains as attributes).
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = "".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    assert "calibrate(" in source
    assert not [name for name in calibrated_fields(include_loadgen=True) if f'"{name}"' in source]
