"""Smoke test of benchmarks/plan_speed.py: two local workers and a serial loop try the same candidates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_parallel_and_serial_plans_agree() -> None:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.plan_speed import timed_plan
    finally:
        sys.path.remove(str(REPO))
    parallel_s, parallel = timed_plan(duration_s=2.0, replications=1, workers=2)
    serial_s, serial = timed_plan(duration_s=2.0, replications=1, workers=1)
    assert parallel_s > 0 and serial_s > 0
    assert parallel.candidates.equals(serial.candidates)
    assert serial.servers == 4 and serial.binding_constraint == "ports"  # 100,000 / 3 > 28,232 ports per backend
