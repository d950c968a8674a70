"""Smoke test of the hub benchmark harness (benchmarks/hub): tiny sizes, the floor and simscale's hub.

It runs the real harness end to end (separate server and load-generator processes on 127.0.0.1) and
checks that every figure the table needs came out, without installing any peer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_run_measures_floor_and_simscale_hub(tmp_path: Path) -> None:
    if not (REPO / "simscale" / "hub" / "server.py").exists():
        pytest.skip("simscale's hub server is not there yet")
    command = [
        sys.executable, "-m", "benchmarks.hub", "--quick", "--runs", "1", "--peers", "floor,simscale",
        "--no-redis", "--no-tls", "--no-install", "--no-profile", "--sustain-seconds", "1.5",
        "--output", "smoke", "--results-dir", str(tmp_path),
    ]  # fmt: skip
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=80, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]

    document = json.loads((tmp_path / "smoke.json").read_text())
    run = document["runs"][0]
    assert set(run) == {"floor", "simscale"}
    for peer in ("floor", "simscale"):
        figures = run[peer]
        assert not [key for key in figures if key.startswith("error:")], figures
        assert figures["connect_failed"] == 0
        assert figures["rss_per_idle_conn_kb"] > 0
        assert figures["burst_delivered_fraction"] == 1.0
        assert figures["burst_deliveries_per_s"] > 0
        assert figures["cpu_us_per_delivery"] > 0
        # Sustained connects: negotiate + WebSocket + handshake, back to back, none failed.
        assert figures["sustained_connect_failed"] == 0, figures.get("sustained_connect_failures")
        assert figures["sustained_connects"] > 0
        assert figures["sustained_connects_per_s"] == pytest.approx(figures["sustained_connects"] / 1.5, rel=0.5)
        for rate in (1_000, 5_000):
            assert figures[f"rate{rate}_delivered_fraction"] == 1.0
            assert figures[f"rate{rate}_p99_ms"] >= figures[f"rate{rate}_p50_ms"] > 0
    assert run["simscale"]["framing"] == "simscale.protocol"
    ratio = document["summary"]["simscale"]["cpu_us_per_delivery"]["ratio_vs_floor"]["median"]
    assert ratio > 0
    assert {goal["goal"] for goal in document["goals"]}  # every goal was evaluated
    table = (tmp_path / "smoke.md").read_text()
    assert "simscale hub" in table and "×" in table
    assert "sustained connects/s (100 in flight, 1.5 s)" in table
    assert document["meta"]["sizes"]["sustain_s"] == 1.5
