"""The one table of metrics: frames, agreement and the verdict, on synthetic sides."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from simscale.metrics.records import RunSummary
from simscale.scenarios.calibration import Calibration
from simscale.validation.comparing import (
    COLUMNS,
    METRICS,
    Metric,
    Side,
    agreement,
    calibrated_loadgen_cpu_s,
    comparison_frame,
    machine_speed_drift,
    saturation_from_points,
    verdict,
)
from simscale.validation.records import LoadRun


def _summary(fraction: float, p50_ms: float, p99_ms: float, deliveries: int = 900) -> RunSummary:
    return RunSummary(
        scenario="t", servers=1, clients=100, duration_s=1.0, broadcasts=10, delivered_fraction=fraction,
        latency_p50_ms=p50_ms, latency_p99_ms=p99_ms, connections_refused=0, connections_dropped=0,
        cpu_utilization_max=None, wall_s=1.0, events=None, deliveries=deliveries, deliveries_per_s=100.0, source="hub",
    )  # fmt: skip


def _side(p50_ms: float, *, memory_kb: float = 18.0, saturation: float | None = 100.0) -> Side:
    return Side(
        summaries=(_summary(1.0, p50_ms, 20.0), _summary(1.0, p50_ms, 400.0)),
        cpu_utilization=({0: 0.1, 1: 0.2}, {0: 0.5, 1: 0.6}),
        memory_per_connection_kb={0: memory_kb, 1: memory_kb},
        saturation_broadcast_rate=saturation,
    )


def test_the_frame_has_one_row_per_metric_rate_and_server_and_drops_latency_beyond_saturation() -> None:
    frame = comparison_frame([10.0, 200.0], 2, _side(5.0), _side(5.0, saturation=120.0))
    assert list(frame.columns) == list(COLUMNS)
    assert frame[frame.metric == "latency_p50_ms"].load.to_list() == [10.0]  # 200/s is beyond 100/s
    assert len(frame[frame.metric == "cpu_utilization"]) == 4
    assert frame[frame.metric == "memory_per_connection_kb"].server.to_list() == [0, 1]
    assert frame[frame.metric == "memory_per_connection_kb"].calibrated_input.all()
    saturation = frame[frame.metric == "saturation_broadcast_rate"]
    assert saturation.relative_error.iloc[0] == pytest.approx(100 / 120 - 1)
    # An optional figure (the backplane counts) has rows only when a side has it.
    assert {metric.name for metric in METRICS if not metric.optional} == set(frame.metric)


def test_backplane_counts_have_one_row_per_rate_and_server_when_measured() -> None:
    counts = ({0: 100.0, 1: 90.0}, {0: 1_000.0, 1: 950.0})
    predicted = dataclasses.replace(_side(5.0), backplane_messages_received=counts)
    measured = dataclasses.replace(_side(5.0), backplane_messages_received=({0: 104.0, 1: 88.0}, {0: 990.0, 1: 1e3}))
    frame = comparison_frame([10.0, 20.0], 2, predicted, measured)
    rows = frame[frame.metric == "backplane_messages_received_per_server"]
    assert rows.server.to_list() == [0, 1, 0, 1]
    assert rows.relative_error.iloc[0] == pytest.approx(100 / 104 - 1)
    assert agreement(SimpleNamespace(comparisons=frame))["backplane_messages_received_per_server"] is True  # type: ignore[arg-type]


def test_agreement_and_verdict_come_from_the_tolerances_of_the_table() -> None:
    judged = {metric.name for metric in METRICS if metric.tolerance is not None and not metric.optional}
    optional = {metric.name for metric in METRICS if metric.tolerance is not None and metric.optional}
    close = SimpleNamespace(comparisons=comparison_frame([10.0], 1, _side(5.0), _side(4.5, saturation=95.0)))
    # Optional metrics with no row (this table has no backplane counts) do not apply, so are left out.
    assert optional and agreement(close) == dict.fromkeys(judged, True)  # type: ignore[arg-type]
    assert verdict(close)["overall"] == "agree"  # type: ignore[arg-type]
    # p50 off by 50 %: that metric disagrees, and so does the whole.
    far = SimpleNamespace(comparisons=comparison_frame([10.0], 1, _side(7.5), _side(5.0, saturation=95.0)))
    result = verdict(far)  # type: ignore[arg-type]
    assert result["metrics"]["latency_p50_ms"] == {"verdict": "disagree", "tolerance": 0.25, "unit": "ms"}
    assert result["overall"] == "disagree"
    # A hub that never saturated: that metric is not measured, and does not veto the rest.
    unsaturated = SimpleNamespace(comparisons=comparison_frame([10.0], 1, _side(5.0), _side(5.0, saturation=None)))
    result = verdict(unsaturated)  # type: ignore[arg-type]
    assert result["metrics"]["saturation_broadcast_rate"]["verdict"] == "not measured"
    assert result["overall"] == "agree"


def test_a_table_of_ones_own_is_judged_the_same_way() -> None:
    def p50(side: Side, rate: int, server: int) -> float | None:
        return side.summaries[rate].latency_p50_ms

    only = (Metric("latency_p50_ms", "ms", p50, tolerance=0.1),)
    frame = comparison_frame([10.0], 1, _side(5.0), _side(6.0), only)
    assert frame.metric.to_list() == ["latency_p50_ms"]
    assert verdict(SimpleNamespace(comparisons=frame), only) == {  # type: ignore[arg-type]
        "overall": "disagree", "metrics": {"latency_p50_ms": {"verdict": "disagree", "tolerance": 0.1, "unit": "ms"}}
    }  # fmt: skip
    empty = SimpleNamespace(comparisons=frame.iloc[0:0])
    assert verdict(empty, only)["overall"] == "not measured"  # type: ignore[arg-type]


def test_saturation_is_interpolated_where_p99_crosses_the_threshold() -> None:
    assert saturation_from_points([10.0, 20.0], [50.0, 50.0]) is None
    assert saturation_from_points([10.0, 20.0], [300.0, 400.0]) == 10.0
    crossing = saturation_from_points([10.0, 20.0], [125.0, 500.0])
    assert crossing is not None and 10 < crossing < 20
    assert math.log(250 / 125) / math.log(500 / 125) == pytest.approx((crossing - 10) / 10)


def test_the_load_generators_work_is_priced_at_the_calibrations_costs() -> None:
    costs = Calibration(
        invocation_cpu_s=1e-4, serialize_cpu_s=1e-6, send_cpu_per_recipient_s=1e-6, keepalive_cpu_s=0.0,
        handshake_cpu_s=0.0, memory_base_bytes=0.0, memory_per_connection_bytes=0.0, backplane_publish_base_s=0.0,
        backplane_latency_s=0.0, connections=10, loadgen_cpu_per_send_s=1e-3, loadgen_cpu_per_wakeup_s=1e-4,
        loadgen_cpu_per_read_s=1e-5, loadgen_cpu_per_delivery_s=1e-6,
    )  # fmt: skip
    # 10 broadcasts counted after the warm-up, 20 sent in all: the 900 counted deliveries stand for 1,800.
    run = LoadRun(10.0, _summary(1.0, 5.0, 9.0, deliveries=900), 0.5, 30, 1_500, 10, (None,))
    expected_s = 20 * 1e-3 + 30 * 1e-4 + 1_500 * 1e-5 + 1_800 * 1e-6
    assert calibrated_loadgen_cpu_s(costs, run, sends=20) == pytest.approx(expected_s)
    # The drift: only runs below saturation that kept the load generator busy enough count.
    work = [(10.0, 1.1, 1.0), (20.0, 1.3, 1.0), (30.0, 0.1, 0.01), (500.0, 5.0, 1.0)]
    assert machine_speed_drift(work, limit_per_s=100.0, busy_enough_s=0.5) == pytest.approx(0.2)
    assert machine_speed_drift(work[2:], limit_per_s=100.0, busy_enough_s=0.5) is None
    # Busy by what it spent, not by what the calibration expected: a calibration from a machine twice as
    # fast expects too little, and that run must still count (it is the drift to report).
    assert machine_speed_drift([(10.0, 0.8, 0.4)], limit_per_s=100.0, busy_enough_s=0.5) == pytest.approx(1.0)
