"""When a validation cannot be trusted: the decision functions on constructed inputs, and the CLI's exit 3."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simscale.metrics.records import RunSummary
from simscale.scenarios.calibration import Calibration, calibrated_fields, save_calibration
from simscale.validation.comparing import (
    COLUMNS,
    Side,
    drift_reason,
    median_side,
    verdict,
    width_reason,
    with_intervals,
)
from simscale.validation.fitting import replicate_speed


def calibration(
    cpu_per_delivery_s: tuple[float, ...] = (10e-6, 10.5e-6, 9.5e-6, 10.2e-6), **changes: object
) -> Calibration:
    runs = [
        {"clients": 300, "deliveries": 100_000, "hub_cpu_s": 0.6 * cost * 1e5, "loadgen_cpu_s": 0.4 * cost * 1e5}
        for cost in cpu_per_delivery_s
    ]
    values: dict[str, object] = dict(
        invocation_cpu_s=150e-6, serialize_cpu_s=4e-6, send_cpu_per_recipient_s=8e-6, keepalive_cpu_s=5e-6,
        handshake_cpu_s=400e-6, memory_base_bytes=50e6, memory_per_connection_bytes=18_000.0,
        backplane_publish_base_s=12e-6, backplane_latency_s=10e-6, connections=300, notes={"runs": runs},
    )  # fmt: skip
    values.update(changes)
    return Calibration(**values)  # type: ignore[arg-type]


def test_replicates_at_one_speed_are_trusted_and_a_drifted_one_is_not() -> None:
    steady = [replicate_speed(calibration()), replicate_speed(calibration((10.1e-6, 9.8e-6, 10.4e-6, 9.9e-6)))]
    assert all(speed is not None for speed in steady)
    assert drift_reason([speed for speed in steady if speed is not None]) is None
    # The machine slowed by half between the first replicate and the last (before and after the rates).
    slowed = replicate_speed(calibration(tuple(1.5 * cost for cost in (10e-6, 10.5e-6, 9.5e-6, 10.2e-6))))
    assert slowed is not None
    reason = drift_reason([*[speed for speed in steady if speed is not None], slowed])
    assert reason is not None and reason.startswith("the machine's speed drifted")
    assert "replicate 1" in reason and "replicate 3" in reason
    # Without runs in its notes a replicate has no speed to compare.
    assert replicate_speed(calibration(())) is None


def rows(
    low: float, high: float, *, metric: str = "saturation_broadcast_rate", load: float | None = None
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "metric": metric,
                "load": load,
                "server": None,
                "predicted": 100.0,
                "predicted_low": low,
                "predicted_high": high,
            }
        ]
    )


def test_a_prediction_interval_wider_than_its_tolerance_band_is_untrusted() -> None:
    # Saturation's tolerance is ±15 %: a band 30 wide around a prediction of 100.
    assert width_reason(rows(86.0, 114.0)) is None
    reason = width_reason(rows(80.0, 125.0))
    assert reason is not None and "saturation_broadcast_rate" in reason and "±15 %" in reason
    # The median latency (±25 %) is judged per rate; p99 (not judged) and memory (a calibrated input) are not.
    assert width_reason(rows(70.0, 130.0, metric="latency_p50_ms", load=20.0)) is not None
    assert width_reason(rows(10.0, 500.0, metric="latency_p99_ms", load=20.0)) is None
    assert width_reason(rows(10.0, 500.0, metric="memory_per_connection_kb")) is None
    assert width_reason(rows(math.nan, math.nan)) is None


def summary(**values: float) -> RunSummary:
    base = RunSummary("x", 1, 10, 5.0, 50, 1.0, 2.0, 9.0, 0, 0, 0.2, 6.0, None, deliveries_per_s=500.0)
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


def test_replicated_sides_give_the_median_and_every_row_its_span() -> None:
    from simscale.validation.comparing import comparison_frame

    rates = [10.0, 20.0]

    def side(p50: float, cpu: float, saturation: float | None) -> Side:
        return Side(
            summaries=(summary(latency_p50_ms=p50), summary(latency_p50_ms=2 * p50)),
            cpu_utilization=({0: cpu}, {0: 2 * cpu}),
            memory_per_connection_kb={0: 12.0},
            saturation_broadcast_rate=saturation,
        )

    measured = [side(2.0, 0.1, 40.0), side(3.0, 0.2, 50.0), side(7.0, 0.3, None)]
    middle = median_side(measured)
    assert [each.latency_p50_ms for each in middle.summaries] == [3.0, 6.0]
    assert middle.saturation_broadcast_rate == 45.0  # the replicates that saturated
    predicted = [side(2.5, 0.15, 44.0), side(2.0, 0.1, 41.0), side(3.5, 0.2, 48.0)]
    frame = with_intervals(comparison_frame(rates, 1, predicted[0], middle), rates, predicted, measured)
    assert list(frame.columns) == list(COLUMNS)
    p50 = frame[frame.metric == "latency_p50_ms"].set_index("load")
    assert p50.loc[20.0, ["measured", "measured_low", "measured_high"]].to_list() == [6.0, 4.0, 14.0]
    assert p50.loc[20.0, ["predicted", "predicted_low", "predicted_high"]].to_list() == [5.0, 4.0, 7.0]
    saturation = frame[frame.metric == "saturation_broadcast_rate"].iloc[0]
    assert (saturation.predicted_low, saturation.predicted_high) == (41.0, 48.0)
    assert (saturation.measured_low, saturation.measured_high) == (40.0, 50.0)
    assert (frame.predicted_low <= frame.predicted).all() and (frame.predicted <= frame.predicted_high).all()


def test_an_untrusted_result_says_so_whatever_the_metrics_say() -> None:
    frame = pd.DataFrame({"metric": ["delivered_fraction"], "relative_error": [0.0]})

    @dataclasses.dataclass
    class Result:
        comparisons: pd.DataFrame
        untrusted_reason: str | None

    assert verdict(Result(frame, None))["overall"] == "agree"
    judged = verdict(Result(frame, "the machine's speed drifted"))
    assert judged["overall"] == "untrusted" and judged["reason"] == "the machine's speed drifted"


def huge_intervals(path: Path) -> None:
    # Dear enough to saturate near 30 broadcasts/s, where the model is quick to run.
    base = calibration(loadgen_cpu_per_delivery_s=4e-6, invocation_cpu_s=0.03)
    intervals = {
        name: (0.05 * float(getattr(base, name)), 20 * float(getattr(base, name)))
        for name in calibrated_fields(include_loadgen=True)
    }
    save_calibration(dataclasses.replace(base, intervals=intervals, replicates=3), path)


@pytest.mark.parametrize("as_json", [False, True])
def test_validate_with_intervals_too_wide_to_judge_prints_one_untrusted_line_and_exits_3(
    tmp_path: Path, as_json: bool
) -> None:
    path = tmp_path / "wide.json"
    huge_intervals(path)
    command = [
        sys.executable, "-m", "simscale.cli", "validate", "single-server", "--clients", "60",
        "--broadcast-rates", "5", "--calibration", str(path), "--duration", "2", *(["--json"] if as_json else []),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    if as_json:
        payload = json.loads(lines[0])
        assert payload["overall"] == "untrusted" and payload["verdict"]["overall"] == "untrusted"
        assert "wider than its tolerance band" in payload["reason"]
    else:
        # Which judged prediction is the first too wide depends on the host the model is given (probed).
        assert lines[0].startswith("untrusted: the prediction interval of ")
        assert "wider than its tolerance band" in lines[0]


def test_a_library_caller_gets_the_comparison_of_a_calibration_too_wide_to_judge(tmp_path: Path) -> None:
    from simscale.scenarios.calibration import load_calibration
    from simscale.validation import validate

    path = tmp_path / "wide.json"
    huge_intervals(path)
    wide = load_calibration(path)
    result = validate("single-server", clients=60, rates_per_s=[5.0], calibration=wide, duration_s=1.0, replicates=1)
    assert result.untrusted_reason is not None and "wider than its tolerance band" in result.untrusted_reason
    assert result.to_json_dict()["overall"] == "untrusted"
    delivered = result.comparisons[result.comparisons.metric == "delivered_fraction"]
    assert delivered.measured.to_list() == [1.0]  # measured all the same
