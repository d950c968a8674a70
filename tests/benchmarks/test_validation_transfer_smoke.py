"""The transfer benchmark's pieces: a validate result becomes a table row, and the half-speed condition
is set up (a CPU quota, or busy processes where no cgroup can be made) and undone.

A full run calibrates and validates for minutes per scenario, so it is not run here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import psutil
import pytest

from benchmarks.validation_transfer import (
    HALF_CGROUP,
    PERIOD_US,
    TOLERANCES,
    Row,
    condition,
    format_row,
    main,
    row_from_result,
    write_csv,
)
from simscale.scenarios import Calibration
from simscale.validation.comparing import METRICS
from simscale.validation.host import HostSpeed, host_placement
from simscale.validation.processes import HUB_CGROUP_ENV
from simscale.validation.validate import ValidationResult


def _result() -> ValidationResult:
    calibration = Calibration(
        invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6, keepalive_cpu_s=2e-6,
        handshake_cpu_s=2e-4, memory_base_bytes=40e6, memory_per_connection_bytes=12e3,
        backplane_publish_base_s=1.5e-5, backplane_latency_s=2e-4, connections=300,
    )  # fmt: skip
    comparisons = pd.DataFrame({
        "metric": ["delivered_fraction", "latency_p50_ms", "latency_p50_ms", "memory_per_connection_kb",
                   "saturation_broadcast_rate"],
        "load": [5.0, 5.0, 10.0, None, None], "server": [None, None, None, 0, None],
        "predicted": [1.0, 2.0, 4.0, 12.0, 90.0], "measured": [1.0, 2.5, 3.0, 11.0, 100.0],
        "relative_error": [0.0, -0.2, 1 / 3, 1 / 11, -0.1], "calibrated_input": [False, False, False, True, False],
    })  # fmt: skip
    return ValidationResult(
        "single-server", comparisons, calibration, measured=[], predicted=[], rates_per_s=[5.0, 10.0], wall_s=1.0,
        host=HostSpeed(2, 3e-3, 0.6), placement=host_placement(frozenset({0, 1})),
    )  # fmt: skip


def test_a_result_becomes_a_row_with_its_worst_errors_and_verdict(tmp_path: Path) -> None:
    result = _result()
    document = result.to_json_dict()
    row = row_from_result("single-server", "full", 1, document, wall_s=12.0)
    frame = result.comparisons
    p50 = frame[frame.metric == "latency_p50_ms"].relative_error
    assert row.p50_worst_error == pytest.approx(p50[p50.abs().idxmax()])
    saturation = frame[frame.metric == "saturation_broadcast_rate"].iloc[0]
    assert (row.saturation_predicted, row.saturation_measured) == (saturation.predicted, saturation.measured)
    assert row.verdict == document["verdict"]["overall"]
    assert row.time_slice_ms == pytest.approx(document["host"]["time_slice_s"] * 1e3)
    line = format_row(row)
    assert row.verdict in line and "single-server" in line
    write_csv(tmp_path / "rows.csv", [row])
    assert pd.read_csv(tmp_path / "rows.csv").verdict.tolist() == [row.verdict]
    with pytest.raises(ValueError, match="condition"):
        Row(**{**row.__dict__, "condition": "quarter"})


def test_the_tolerances_are_validates_own() -> None:
    assert {metric.name: metric.tolerance for metric in METRICS if metric.tolerance is not None} == TOLERANCES


def test_half_speed_sets_a_quota_for_the_hub_cores_and_removes_it(tmp_path: Path) -> None:
    hub_cores = frozenset({0})
    with condition("half", hub_cores, cgroup_root=tmp_path) as setup:
        cgroup = tmp_path / HALF_CGROUP
        assert setup.env[HUB_CGROUP_ENV] == str(cgroup)
        quota_us = int((cgroup / "cpu.cfs_quota_us").read_text())
        assert quota_us / int((cgroup / "cpu.cfs_period_us").read_text()) == pytest.approx(len(hub_cores) / 2)
        assert int((cgroup / "cpu.cfs_period_us").read_text()) == PERIOD_US
        for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"):
            (cgroup / name).unlink()  # a real cgroup's files go with its directory
    assert not cgroup.exists()
    with condition("full", hub_cores, cgroup_root=tmp_path) as setup:
        assert HUB_CGROUP_ENV not in setup.env


def test_without_a_cgroup_busy_processes_take_the_hub_cores(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    core = max(os.sched_getaffinity(0))
    before = {child.pid for child in psutil.Process().children()}
    with condition("half", frozenset({core}), cgroup_root=blocked) as setup:
        assert HUB_CGROUP_ENV not in setup.env and "busy" in setup.method
        busy = [child for child in psutil.Process().children() if child.pid not in before]
        assert len(busy) == 1
        assert busy[0].cpu_affinity() == [core]
    assert not busy[0].is_running() or busy[0].status() == psutil.STATUS_ZOMBIE


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenarios", "big-groups"]) == 2
    assert main(["--runs", "0"]) == 2
    assert capsys.readouterr().err.count("error:") == 2
