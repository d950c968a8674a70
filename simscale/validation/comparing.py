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
    "drift_reason",
    "latency_limit_per_s",
    "machine_speed_drift",
    "median_side",
    "relative_error",
    "saturation_from_points",
    "verdict",
    "width_reason",
    "with_intervals",
]

SATURATION_P99_MS = 250.0
"""The broadcast rate where p99 latency passes this is the saturation rate."""

COLUMNS = (
    "metric", "load", "server", "predicted", "predicted_low", "predicted_high", "measured", "measured_low",
    "measured_high", "relative_error", "calibrated_input",
)  # fmt: skip
"""Columns of a validation's comparisons: ``predicted_low``/``predicted_high`` span the model's runs with
costs drawn from the calibration's intervals, ``measured_low``/``measured_high`` the replicated measurements;
``predicted`` (the costs' means) and ``measured`` (the replicates' median) are what the tolerances judge."""

Verdict = Literal["agree", "disagree", "not measured", "untrusted"]


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
    """One row per metric, rate and server (as each metric asks), with :data:`COLUMNS` (each ``_low`` and
    ``_high`` the value itself: one side each; :func:`with_intervals` spans several)."""
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
    # One side each: each span is the value itself (with_intervals widens it over replicates and draws).
    for prefix in ("predicted", "measured"):
        frame[f"{prefix}_low"] = frame[f"{prefix}_high"] = frame[prefix]
    return frame[list(COLUMNS)]


def _metric_read(name: str, metrics: Sequence[Metric]) -> Metric:
    return next(metric for metric in metrics if metric.name == name)


def _side_values(
    frame: pd.DataFrame, rates_per_s: Sequence[float], sides: Sequence[Side], metrics: Sequence[Metric]
) -> list[list[float]]:
    """Per row of ``frame``: the values every side gives it (missing ones left out)."""
    import pandas as pd

    values: list[list[float]] = []
    for metric_name, load, server in zip(frame.metric, frame.load, frame.server, strict=True):
        metric = _metric_read(metric_name, metrics)
        rate = -1 if not metric.per_rate else list(rates_per_s).index(float(load))
        at = -1 if pd.isna(server) else int(server)
        found = [metric.read(side, rate, at) for side in sides]
        values.append([float(value) for value in found if value is not None and math.isfinite(value)])
    return values


def with_intervals(
    frame: pd.DataFrame,
    rates_per_s: Sequence[float],
    predicted: Sequence[Side],
    measured: Sequence[Side],
    metrics: Sequence[Metric] = METRICS,
) -> pd.DataFrame:
    """``frame`` with :data:`COLUMNS`: each row's lowest and highest value over the model's runs
    (``predicted``: the means' run and the draws') and over the replicated measurements (``measured``);
    ``NaN`` where no side has a value. Pure: the sides are read the way the frame's own rows were."""
    frame = frame.copy()
    for prefix, sides in (("predicted", predicted), ("measured", measured)):
        spans = _side_values(frame, rates_per_s, sides, metrics)
        frame[f"{prefix}_low"] = [min(values) if values else math.nan for values in spans]
        frame[f"{prefix}_high"] = [max(values) if values else math.nan for values in spans]
        frame[f"{prefix}_low"] = frame[f"{prefix}_low"].astype("float64")
        frame[f"{prefix}_high"] = frame[f"{prefix}_high"].astype("float64")
    return frame[list(COLUMNS)]


def _median(values: Sequence[float | None]) -> float | None:
    present = [float(value) for value in values if value is not None and math.isfinite(value)]
    return float(np.median(present)) if present else None


def median_side(sides: Sequence[Side]) -> Side:
    """One side whose every figure is the median over ``sides`` (replicated measurements of the same
    rates); the saturation rate is the median of each replicate's own.

    Example (two replicates of one rate, made-up figures):

        >>> import dataclasses
        >>> from simscale.metrics.records import RunSummary
        >>> from simscale.validation.comparing import Side, median_side
        >>> base = RunSummary("x", 1, 10, 5.0, 50, 1.0, 2.0, 9.0, 0, 0, 0.2, 6.0, None)
        >>> sides = [Side((dataclasses.replace(base, latency_p50_ms=p50),), ({0: cpu},), {0: 12.0}, saturation)
        ...          for p50, cpu, saturation in ((2.0, 0.2, 100.0), (4.0, 0.4, None))]
        >>> middle = median_side(sides)
        >>> middle.summaries[0].latency_p50_ms, middle.cpu_utilization[0][0], middle.saturation_broadcast_rate
        (3.0, 0.30000000000000004, 100.0)
    """
    import dataclasses

    if not sides:
        raise ValueError("sides needs at least one side")
    first = sides[0]
    fields = ("delivered_fraction", "latency_p50_ms", "latency_p99_ms", "deliveries_per_s")
    medians: list[dict[str, Any]] = [
        {name: _median([getattr(side.summaries[rate], name) for side in sides]) for name in fields}
        for rate in range(len(first.summaries))
    ]
    summaries = tuple(
        dataclasses.replace(summary, **values) for summary, values in zip(first.summaries, medians, strict=True)
    )

    def per_server(maps: Sequence[Mapping[int, float | None]]) -> dict[int, float | None]:
        return {server: _median([each.get(server) for each in maps]) for server in maps[0]}

    return Side(
        summaries=summaries,
        cpu_utilization=tuple(
            per_server([side.cpu_utilization[rate] for side in sides]) for rate in range(len(summaries))
        ),
        memory_per_connection_kb=per_server([side.memory_per_connection_kb for side in sides]),
        saturation_broadcast_rate=_median([side.saturation_broadcast_rate for side in sides]),
        backplane_messages_received=tuple(
            per_server([side.backplane_messages_received[rate] for side in sides])
            for rate in range(len(first.backplane_messages_received))
        ),
    )


def width_reason(frame: pd.DataFrame, metrics: Sequence[Metric] = METRICS) -> str | None:
    """Why the prediction cannot be judged, or ``None``: a judged row whose prediction interval
    (``predicted_low`` to ``predicted_high``) is wider than the tolerance band (``2 × tolerance`` of
    the prediction), so the calibration's costs are too uncertain to predict within tolerance.

    Example:

        >>> import pandas as pd
        >>> from simscale.validation.comparing import width_reason
        >>> row = dict(metric="saturation_broadcast_rate", load=None, server=None, predicted=100.0)
        >>> width_reason(pd.DataFrame([{**row, "predicted_low": 90.0, "predicted_high": 110.0}])) is None
        True
        >>> width_reason(pd.DataFrame([{**row, "predicted_low": 60.0, "predicted_high": 140.0}]))
        'the prediction interval of saturation_broadcast_rate (60 to 140) is wider than its tolerance band (±15 %)'
    """
    for metric in metrics:
        if metric.tolerance is None or metric.calibrated_input:
            continue
        rows = frame[frame.metric == metric.name]
        for _, row in rows.iterrows():
            low, high, middle = row.predicted_low, row.predicted_high, row.predicted
            if any(value is None or not math.isfinite(value) for value in (low, high, middle)) or middle == 0:
                continue
            if high - low > 2 * metric.tolerance * abs(middle):
                where = "" if not metric.per_rate else f" at {row.load:g}/s"
                return (
                    f"the prediction interval of {metric.name}{where} ({low:.3g} to {high:.3g}) is wider than "
                    f"its tolerance band (±{metric.tolerance:.0%})"
                ).replace("%)", " %)")
    return None


def drift_reason(speeds: Sequence[tuple[float, float, float]]) -> str | None:
    """Why the machine's speed cannot be trusted, or ``None``: two calibration replicates taken during
    one validation (before, between and after its rates) whose speed intervals do not overlap.

    ``speeds`` holds each replicate's ``(mean, low, high)`` CPU per delivery (the hub's and the load
    generator's, with its 95 % interval over that replicate's runs), in the order they were taken.

    Example (the machine slowed by half between the first and the last replicate):

        >>> from simscale.validation.comparing import drift_reason
        >>> drift_reason([(10e-6, 9e-6, 11e-6), (10.5e-6, 9e-6, 12e-6)]) is None
        True
        >>> print(drift_reason([(10e-6, 9e-6, 11e-6), (15e-6, 14e-6, 16e-6)]))  # doctest: +ELLIPSIS
        the machine's speed drifted: calibration replicate 1 took 10 µs of CPU per delivery [9, 11], replicate 2 ...
    """
    for (first, one), (second, other) in itertools.combinations(enumerate(speeds, start=1), 2):
        if one[2] < other[1] or other[2] < one[1]:
            return (
                f"the machine's speed drifted: calibration replicate {first} took {one[0] * 1e6:.3g} µs of CPU per "
                f"delivery [{one[1] * 1e6:.3g}, {one[2] * 1e6:.3g}], replicate {second} {other[0] * 1e6:.3g} µs "
                f"[{other[1] * 1e6:.3g}, {other[2] * 1e6:.3g}]"
            )
    return None


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
    least one was measured, ``not measured`` if none was (a metric not measured does not veto);
    ``untrusted`` (with a ``reason``) whatever the metrics say when the result has an
    ``untrusted_reason``: the run cannot stand behind agreement or disagreement.
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
    reason = getattr(result, "untrusted_reason", None)
    if reason:
        return {"overall": "untrusted", "reason": reason, "metrics": per_metric}
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
