"""Smoke test of benchmarks/model_scale.py's fan-out-mode rows at a small size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_the_fan_out_mode_rows_run_and_agree() -> None:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.model_scale import fan_out_mode_rows, scale_run
    finally:
        sys.path.remove(str(REPO))
    reference = scale_run(3_000, 12, "per-server", 4.0)
    vectorised = scale_run(3_000, 12, "vectorised", 4.0)
    assert reference["delivered_fraction"] == vectorised["delivered_fraction"] == 1.0
    assert (reference["refused"], reference["lost"], vectorised["refused"], vectorised["lost"]) == (0, 0, 0, 0)
    assert vectorised["events"] * 3 < reference["events"]  # no longer an event per server per broadcast
    assert vectorised["peak_rss_mb"] > 0
    rows = fan_out_mode_rows(clients=3_000, servers=12, huge_clients=6_000, huge_servers=24, duration_s=4.0, runs=1)
    names = " | ".join(name for name, _ in rows)
    assert "per-server fan-outs, 3,000 clients × 12 servers" in names
    assert "speed-up" in names
    assert "vectorised fan-outs, 6,000 clients × 24 servers" in names
    outcomes = [value for name, value in rows if name == "  "]
    assert len(outcomes) == 3
    assert all("refused 0, dropped 0, lost 0" in value for value in outcomes)
