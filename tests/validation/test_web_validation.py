"""``simscale validate web-traffic-shared``: the real /busy route measured, and the model's prediction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simscale.figures.validation import web_validation_figure
from simscale.validation.web import WebLoad, WebValidationResult, measure_web_latency, predict_web_latency


def test_the_real_busy_route_is_measured_on_a_hub_process() -> None:
    load = WebLoad(clients=10, web_request_rate_per_s=20.0, web_request_cpu_s=0.005, duration_s=2.0)
    measured = measure_web_latency(load, separate=False, broadcasts=False)
    # Each request spins 5 ms of CPU on the hub: neither percentile can be faster than that.
    assert 5.0 <= measured["web_latency_p50_ms"] <= measured["web_latency_p99_ms"]


def test_the_prediction_puts_broadcasts_in_the_shared_process_only() -> None:
    load = WebLoad(clients=5_000, broadcast_rate_per_s=20.0, duration_s=6.0)
    shared = predict_web_latency(load, separate=False, broadcasts=True)
    separate = predict_web_latency(load, separate=True, broadcasts=True)
    assert shared["web_latency_p99_ms"] >= 2 * separate["web_latency_p99_ms"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"clients": 0}, "clients must be > 0"), ({"web_request_cpu_s": -1.0}, "web_request_cpu_s must be from 0")],
)
def test_bad_loads_name_the_field(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebLoad(**changes)  # type: ignore[arg-type]


def _frame(p50_error: float) -> pd.DataFrame:
    rows = []
    for layout in ("one process", "separate processes"):
        for load in ("idle", "broadcasting"):
            for metric, measured in (("web_latency_p50_ms", 4.0), ("web_latency_p99_ms", 20.0)):
                predicted = measured * (1 + p50_error) if metric == "web_latency_p50_ms" else measured / 3
                rows.append({"layout": layout, "load": load, "metric": metric, "predicted": predicted,
                             "measured": measured, "relative_error": (predicted - measured) / measured})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("p50_error", "overall"), [(0.1, "agree"), (-0.4, "disagree")])
def test_the_verdict_judges_the_median_and_shows_the_tail(p50_error: float, overall: str) -> None:
    verdict = WebValidationResult(_frame(p50_error), wall_s=1.0).to_json_dict()["verdict"]
    assert verdict["overall"] == overall
    # The 99th percentile is shown in the rows but not judged (as latency_p99_ms is not).
    assert set(verdict["metrics"]) == {"web_latency_p50_ms"}
    assert verdict["metrics"]["web_latency_p50_ms"]["tolerance"] == 0.25


def test_the_figure_puts_model_and_hub_side_by_side_per_layout_and_load() -> None:
    figure = web_validation_figure(_frame(0.1))
    names = [trace.name for trace in figure.data]
    assert names[:4] == ["model, idle", "real hub, idle", "model, broadcasting", "real hub, broadcasting"]
    assert len(figure.data) == 8  # two panels
    assert list(figure.data[0].x) == ["one process", "separate processes"]


def test_validate_web_traffic_cli_json_verdict_and_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "simscale.cli", "validate", "web-traffic-shared", "--clients", "20",
        "--broadcast-rates", "10", "--duration", "1", "--json", "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["scenario"] == "web-traffic-shared"
    rows = payload["comparisons"]
    assert {(row["layout"], row["load"]) for row in rows} == {
        (layout, load) for layout in ("one process", "separate processes") for load in ("idle", "broadcasting")
    }
    assert {row["metric"] for row in rows} == {"web_latency_p50_ms", "web_latency_p99_ms"}
    assert all(row["measured"] >= 2.0 for row in rows)  # each request spins 2 ms of CPU on the hub
    assert payload["verdict"]["overall"] in {"agree", "disagree"}
    assert set(payload["verdict"]["metrics"]) == {"web_latency_p50_ms"}
    assert (out / "comparisons.csv").stat().st_size > 0
    assert any(out.glob("validation-web-traffic-shared.*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--servers", "2"], "--servers does not apply"),
        (["--broadcast-rates", "5,10"], "takes one broadcast rate"),
        (["--clients", "-3"], "clients must be > 0"),
    ],
)
def test_bad_web_validation_input_exits_2(args: list[str], message: str) -> None:
    command = [sys.executable, "-m", "simscale.cli", "validate", "web-traffic-shared", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
