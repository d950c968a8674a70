"""Prediction next to measurement: one table of metrics, and the verdict read from it.

:data:`METRICS` is the one place that says what is compared, in what unit, how each side's value is
read, and within what relative error the model is said to agree. The comparison frame, ``agreement``
and the verdict of ``simscale validate --json`` are all derived from it. Pure: no processes, no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from simscale.metrics.records import RunSummary
from simscale.scenarios.calibration import Calibration
from simscale.validation.records import LoadRun

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "METRICS",
    "SATURATION_P99_MS",
    "Metric",
    "Side",
    "agreement",
    "calibrated_loadgen_cpu_s",
    "comparison_frame",
    "latency_limit_per_s",
    "machine_speed_drift",
    "relative_error",
    "saturation_from_points",
    "verdict",
]

SATURATION_P99_MS = 250.0
"""The broadcast rate where p99 latency passes this is the saturation rate."""

COLUMNS = ("metric", "load", "server", "predicted", "measured", "relative_error", "calibrated_input")

Verdict = Literal["agree", "disagree", "not measured"]


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the comparison (the model's or the hub's), in the shape every metric reads."""

    summaries: tuple[RunSummary, ...]
    """One per broadcast rate, in rate order."""
    cpu_utilization: tuple[Mapping[int, float | None], ...]
    """Per rate: each server's CPU (fraction of one core)."""
    memory_per_connection_kb: Mapping[int, float | None]
    """Per server."""
    saturation_broadcast_rate: float | None
    backplane_messages_received: tuple[Mapping[int, float | None], ...] = ()
    """Per rate: the messages each server took from the backplane and delivered (empty: not compared)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One compared figure: both sides are read with ``read(side, rate index, server)``."""

    name: str
    unit: str
    read: Callable[[Side, int, int], float | None]
    per_rate: bool = True
    per_server: bool = False
    tolerance: float | None = None
    """The largest relative error, on every row, at which the model agrees (``None``: shown, not judged)."""
    below_saturation_only: bool = False
    """Beyond saturation both sides mostly measure their queue and drain, so the rows are dropped."""
    calibrated_input: bool = False
    """The prediction is a calibrated cost itself, so agreement checks the measurement, not the model."""
    optional: bool = False
    """Rows only where a side has a value (a figure only some scenarios have, like backplane counts)."""


def _summary(field: str) -> Callable[[Side, int, int], float | None]:
    def read(side: Side, rate: int, server: int) -> float | None:
        value: float | None = getattr(side.summaries[rate], field)
        return value

    return read


METRICS: tuple[Metric, ...] = (
    Metric("delivered_fraction", "fraction", _summary("delivered_fraction"), tolerance=0.02),
    Metric("latency_p50_ms", "ms", _summary("latency_p50_ms"), tolerance=0.25, below_saturation_only=True),
    Metric("latency_p99_ms", "ms", _summary("latency_p99_ms"), below_saturation_only=True),
    Metric("deliveries_per_s", "deliveries/s", _summary("deliveries_per_s")),
    Metric(
        "cpu_utilization", "cores", lambda side, rate, server: side.cpu_utilization[rate].get(server), per_server=True
    ),
    Metric(
        "backplane_messages_received_per_server",
        "messages",
        lambda side, rate, server: (
            side.backplane_messages_received[rate].get(server) if side.backplane_messages_received else None
        ),
        per_server=True,
        tolerance=0.10,
        optional=True,
    ),
    Metric(
        "memory_per_connection_kb",
        "kB",
        lambda side, rate, server: side.memory_per_connection_kb.get(server),
        per_rate=False,
        per_server=True,
        tolerance=0.20,
        calibrated_input=True,
    ),
    Metric(
        "saturation_broadcast_rate",
        "broadcasts/s",
        lambda side, rate, server: side.saturation_broadcast_rate,
        per_rate=False,
        tolerance=0.15,
    ),
)


def saturation_from_points(rates: Sequence[float], p99_ms: Sequence[float | None]) -> float | None:
    """Where p99 crosses the threshold, interpolated in log space between the bracketing rates."""
    points = [(rate, p99) for rate, p99 in zip(rates, p99_ms, strict=True) if p99 is not None]
    for (low_rate, low_p99), (high_rate, high_p99) in itertools.pairwise(points):
        if low_p99 <= SATURATION_P99_MS < high_p99:
            weight = (math.log(SATURATION_P99_MS) - math.log(max(low_p99, 1e-9))) / (
                math.log(high_p99) - math.log(max(low_p99, 1e-9))
            )
            return low_rate + weight * (high_rate - low_rate)
    if points and points[0][1] > SATURATION_P99_MS:
        return points[0][0]  # saturated already at the lowest rate measured
    return None


def relative_error(predicted: float | None, measured: float | None) -> float | None:
    """``(predicted - measured) / |measured|``; ``None`` when either is missing or it is undefined."""
    if predicted is None or measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return None
    if measured == 0:
        return 0.0 if predicted == 0 else None
    return (predicted - measured) / abs(measured)


def latency_limit_per_s(predicted: Side, measured: Side) -> float:
    """Rates from here on are beyond saturation, the model's or the hub's (whichever comes first)."""
    sides = (predicted.saturation_broadcast_rate, measured.saturation_broadcast_rate)
    return min(math.inf if rate is None else rate for rate in sides)


def comparison_frame(
    rates_per_s: Sequence[float], servers: int, predicted: Side, measured: Side, metrics: Sequence[Metric] = METRICS
) -> pd.DataFrame:
    """One row per metric, rate and server (as each metric asks), with :data:`COLUMNS`."""
    import pandas as pd

    rows: list[dict[str, Any]] = []

    def add(metric: Metric, rate: int, load: float | None) -> None:
        for server in range(servers) if metric.per_server else (None,):
            at = -1 if server is None else server
            values = metric.read(predicted, rate, at), metric.read(measured, rate, at)
            if metric.optional and values == (None, None):
                continue
            rows.append(
                {"metric": metric.name, "load": load, "server": server, "predicted": values[0], "measured": values[1]}
            )

    for index, rate in enumerate(rates_per_s):
        for metric in metrics:
            if metric.per_rate:
                add(metric, index, rate)
    for metric in metrics:
        if not metric.per_rate:
            add(metric, -1, None)
    frame = pd.DataFrame(rows, columns=["metric", "load", "server", "predicted", "measured"])
    limit = latency_limit_per_s(predicted, measured)
    late = frame.metric.isin([metric.name for metric in metrics if metric.below_saturation_only])
    frame = frame[~late | (frame.load.astype(float) < limit)].reset_index(drop=True)
    frame["relative_error"] = [relative_error(p, m) for p, m in zip(frame.predicted, frame.measured, strict=True)]
    frame["calibrated_input"] = frame.metric.isin([metric.name for metric in metrics if metric.calibrated_input])
    frame["load"] = frame.load.astype("float64")
    frame["server"] = frame.server.astype("Int64")
    frame["predicted"] = frame.predicted.astype("float64")
    frame["measured"] = frame.measured.astype("float64")
    frame["relative_error"] = frame.relative_error.astype("float64")
    return frame


class _Compared(Protocol):
    @property
    def comparisons(self) -> pd.DataFrame: ...


def agreement(result: _Compared, metrics: Sequence[Metric] = METRICS) -> dict[str, bool | None]:
    """Each judged metric: every row within its tolerance (``None`` where no row has an error).

    Example (made-up numbers: the median latency is 33 % off, beyond its 25 % tolerance):

        >>> import pandas as pd
        >>> from simscale.scenarios import Calibration
        >>> from simscale.validation import ValidationResult, agreement
        >>> calibration = Calibration(invocation_cpu_s=5e-6, serialize_cpu_s=2e-6, send_cpu_per_recipient_s=1.5e-6,
        ...     keepalive_cpu_s=2e-6, handshake_cpu_s=2e-4, memory_base_bytes=40e6, memory_per_connection_bytes=12e3,
        ...     backplane_publish_base_s=1.5e-5, backplane_latency_s=2e-4, connections=300)
        >>> comparisons = pd.DataFrame({
        ...     "metric": ["delivered_fraction", "latency_p50_ms"], "load": [5.0, 5.0], "server": [None, None],
        ...     "predicted": [1.0, 2.0], "measured": [0.99, 3.0], "relative_error": [0.01, -0.33],
        ...     "calibrated_input": [False, False]})
        >>> result = ValidationResult("single-server", comparisons, calibration, measured=[], predicted=[],
        ...                           rates_per_s=[5.0], wall_s=12.0)
        >>> agreement(result)["delivered_fraction"], agreement(result)["latency_p50_ms"]
        (True, False)
    """
    frame = result.comparisons
    outcome: dict[str, bool | None] = {}
    for metric in metrics:
        rows = frame[frame.metric == metric.name]
        # An optional metric with no row does not apply to this scenario (the backplane counts of a
        # broadcast run): it is left out rather than shown as "not measured".
        if metric.tolerance is None or (metric.optional and rows.empty):
            continue
        errors = rows.relative_error.dropna()
        outcome[metric.name] = None if errors.empty else bool((errors.abs() <= metric.tolerance).all())
    return outcome


def verdict(result: _Compared, metrics: Sequence[Metric] = METRICS) -> dict[str, Any]:
    """``{"overall": …, "metrics": {name: {"verdict", "tolerance", "unit"}}}`` from :func:`agreement`.

    Overall: ``disagree`` if any judged metric disagrees, ``agree`` if the others all agree and at
    least one was measured, ``not measured`` if none was (a metric not measured does not veto).
    """
    words: dict[bool | None, Verdict] = {True: "agree", False: "disagree", None: "not measured"}
    outcome = agreement(result, metrics)
    units = {metric.name: (metric.tolerance, metric.unit) for metric in metrics}
    per_metric = {
        name: {"verdict": words[agrees], "tolerance": units[name][0], "unit": units[name][1]}
        for name, agrees in outcome.items()
    }
    values = set(outcome.values())
    overall: Verdict = "disagree" if False in values else "agree" if True in values else "not measured"
    return {"overall": overall, "metrics": per_metric}


def calibrated_loadgen_cpu_s(calibration: Calibration, run: LoadRun, sends: int) -> float:
    """The load generator's CPU for one run's work, at the calibration's costs.

    Reads and passes are counted over the whole broadcast phase; deliveries only after the warm-up,
    so they are scaled up by all ``sends`` over the counted ones.
    """
    counted = run.counted_broadcasts
    deliveries = (run.summary.deliveries or 0) * (sends / counted if counted else 0.0)
    return (
        sends * calibration.loadgen_cpu_per_send_s
        + run.loop_wakeups * calibration.loadgen_cpu_per_wakeup_s
        + run.socket_reads * calibration.loadgen_cpu_per_read_s
        + deliveries * calibration.loadgen_cpu_per_delivery_s
    )


def machine_speed_drift(
    work: Sequence[tuple[float, float, float]], limit_per_s: float, busy_enough_s: float
) -> float | None:
    """Median of the load generator's CPU over what the calibration says its work takes, minus 1.

    ``work`` holds ``(rate, CPU seconds spent, CPU seconds expected)``; only runs below saturation
    that kept the load generator busy enough (``spent >= busy_enough_s``, so that fixed overheads do
    not dominate) count. It is the CPU actually spent that must be large enough: judged by what the
    calibration expects, a calibration from a faster machine would expect too little and hide the very
    drift it is meant to reveal. ``None`` when no run counts.
    """
    ratios = [
        spent_s / expected_s
        for rate, spent_s, expected_s in work
        if rate < limit_per_s and spent_s >= busy_enough_s and expected_s > 0
    ]
    return float(np.median(ratios)) - 1.0 if ratios else None
