"""Smoke test of benchmarks/loop_trace.py: it sorts real fan-outs by how the loop met them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_trace_classifies_isolated_fan_outs() -> None:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.loop_trace import trace
    finally:
        sys.path.remove(str(REPO))
    from simscale.validation.processes import HubProcess

    hub = HubProcess("--backplane", "memory", name="trace-smoke")
    try:
        kinds = trace(hub.url, clients=50, rate_per_s=10.0, duration_s=2.0, stall_s=0.001)
    finally:
        hub.stop()
    rows = [row for group in kinds.values() for row in group]
    assert set(kinds) == {"side by side", "lockstep"}
    assert len(rows) >= 5  # about 20 broadcasts at 10/s, nearly all isolated with 50 clients
    assert all(0 < latency_s < 0.5 and 0 <= span_s < latency_s * 2 + 0.01 for latency_s, span_s, _ in rows)
    # Every isolated fan-out after the first found the loop idle since the previous one's last read.
    assert all(idle_s > 0 for _, _, idle_s in rows if idle_s == idle_s)


def test_cli_help() -> None:
    finished = subprocess.run(
        [sys.executable, "benchmarks/loop_trace.py", "--help"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert finished.returncode == 0 and "--stall-ms" in finished.stdout
