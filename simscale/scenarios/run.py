"""Running scenarios: one run, replications with confidence intervals, and sweeps on any executor.

Every run builds its own ``numpy.random.Generator`` from the scenario's seed, so runs are
reproducible and independent: a sweep can go to a ``ProcessPoolExecutor`` or a Dask/Ray cluster's
executor and give the same numbers as a serial loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from simscale._version import __version__
from simscale.config.scenario import Scenario
from simscale.metrics.display import html_table, repr_value
from simscale.metrics.records import RunRecords, RunSummary
from simscale.metrics.summary import summarize
from simscale.model.deployment import Deployment
from simscale.scenarios.calibration import apply_calibration

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReplicationResult", "SimulationResult", "replicate", "simulate", "sweep"]


_HEADLINE = (
    "servers",
    "clients",
    "duration_s",
    "delivered_fraction",
    "latency_p50_ms",
    "latency_p99_ms",
    "connections_refused",
    "connections_dropped",
    "cpu_utilization_max",
)
"""The summary figures a result's ``repr`` and notebook table show (the rest: ``result.summary``)."""


@dataclass(frozen=True, slots=True, repr=False)
class SimulationResult:
    """One simulated run: the resolved scenario, its summary, records and topology.

    Its ``repr`` is the headline figures and record counts (the records themselves can run to
    millions of characters); in a notebook it displays as a small table.

    Example:

        >>> from simscale import preset, simulate
        >>> result = simulate(preset("single-server", clients=20, duration_s=5.0, warmup_s=1.0, seed=1))
        >>> result  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        SimulationResult(scenario='single-server', backplane='none', servers=1, clients=20, duration_s=5.000,
                         delivered_fraction=1.000, ..., records: broadcasts=77, deliveries=77, ...)
        >>> bool(result.frames()["deliveries"]["delivered"].sum() == result.summary.deliveries)
        True
    """

    scenario: Scenario
    summary: RunSummary
    records: RunRecords
    topology: nx.Graph
    backplane_disconnects: int = 0
    backplane_lost_publishes: int = 0

    def _rows(self) -> list[tuple[str, object]]:
        return [
            ("backplane", self.scenario.backplane),
            *((name, getattr(self.summary, name)) for name in _HEADLINE),
            ("backplane_disconnects", self.backplane_disconnects),
            ("backplane_lost_publishes", self.backplane_lost_publishes),
        ]

    def __repr__(self) -> str:
        figures = ", ".join(f"{name}={repr_value(value)}" for name, value in self._rows())
        return (
            f"SimulationResult(scenario={self.summary.scenario!r}, {figures}, records: {self.records.describe()}, "
            f"topology: {self.topology.number_of_nodes():,} nodes)"
        )

    def _repr_html_(self) -> str:
        """What Jupyter displays: the headline figures and record counts in a small table."""
        return html_table(
            f"SimulationResult: {self.summary.scenario}",
            [*self._rows(), ("records", self.records.describe()), ("topology nodes", self.topology.number_of_nodes())],
        )

    @property
    def warnings(self) -> list[str]:
        """One ``warning: …`` line per kind of connection failure (refused, dropped), with its cause."""
        from simscale.scenarios.diagnosis import connection_warnings

        return connection_warnings(self)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The records as tidy DataFrames (see :mod:`simscale.metrics.frames`)."""
        from simscale.metrics.frames import to_frames

        return to_frames(self.records)

    def to_json_dict(self) -> dict[str, Any]:
        """The summary keys, plus version, seed and every resolved parameter."""
        return {
            **dataclasses.asdict(self.summary),
            "backplane_disconnects": self.backplane_disconnects,
            "backplane_lost_publishes": self.backplane_lost_publishes,
            "simscale_version": __version__,
            "seed": self.scenario.seed,
            "parameters": self.scenario.to_dict(),
        }


def simulate(scenario: Scenario, *, progress: Callable[[float], None] | None = None) -> SimulationResult:
    """Run ``scenario`` once with its own seed (``progress`` gets the fraction done, 0-1).

    Example:

        >>> from simscale import preset, simulate
        >>> result = simulate(preset("no-backplane", clients=30, duration_s=4.0, warmup_s=1.0, seed=1))
        >>> round(result.summary.delivered_fraction, 2)  # three servers, no backplane: about 1/3
        0.33
        >>> simulate(result.scenario).summary.deliveries == result.summary.deliveries  # same seed, same run
        True
    """
    if not isinstance(scenario, Scenario):
        raise ValueError(f"scenario must be a Scenario, got {type(scenario).__name__}")
    resolved = apply_calibration(scenario)
    model = Deployment(resolved, np.random.default_rng(resolved.seed))
    run = model.run(progress)
    summary = summarize(
        run.records,
        scenario=resolved.name,
        servers=resolved.servers,
        clients=resolved.clients,
        duration_s=resolved.duration_s,
        warmup_s=resolved.warmup_s,
        wall_s=run.wall_s,
        events=run.events,
        memory_base_bytes=resolved.memory_base_bytes,
    )
    # The hosting and web-traffic figures come from their components, not from the records.
    for stats in (run.service, run.web):
        if stats is not None:
            summary = dataclasses.replace(summary, **dataclasses.asdict(stats))
    return SimulationResult(
        resolved, summary, run.records, run.topology, run.backplane_disconnects, run.backplane_lost_publishes
    )


def _summary_of(scenario: Scenario) -> RunSummary:
    """Module-level so executors can pickle it."""
    return simulate(scenario).summary


def _map(executor: Executor | None, scenarios: Sequence[Scenario]) -> Iterator[RunSummary]:
    if executor is None:
        return (_summary_of(scenario) for scenario in scenarios)
    return iter(executor.map(_summary_of, scenarios))


def replication_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent seeds derived from ``seed`` (numpy's SeedSequence spawning)."""
    children = np.random.SeedSequence(seed).spawn(count)
    return [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for child in children]


@dataclass(frozen=True, slots=True)
class ReplicationResult:
    """Per-replication summaries and, per numeric metric, mean ± a Student-t confidence interval.

    ``runs`` has one row per replication (its seed, then the summary); ``intervals`` one row per
    metric: ``metric``, ``mean``, ``ci_low``, ``ci_high`` and ``n``.

    Example:

        >>> from simscale import preset, replicate
        >>> result = replicate(preset("single-server", clients=20, duration_s=5.0, warmup_s=1.0, seed=1), 2)
        >>> list(result.intervals.columns)
        ['metric', 'mean', 'ci_low', 'ci_high', 'n']
        >>> bool((result.intervals["ci_low"] <= result.intervals["ci_high"]).all())
        True
    """

    runs: pd.DataFrame
    intervals: pd.DataFrame
    confidence: float


def replicate(
    scenario: Scenario, replications: int, *, executor: Executor | None = None, confidence: float = 0.95
) -> ReplicationResult:
    """Run ``scenario`` ``replications`` times with independent seeds derived from its seed.

    Example:

        >>> from simscale import preset, replicate
        >>> scenario = preset("single-server", clients=20, duration_s=5.0, warmup_s=1.0, seed=1)
        >>> result = replicate(scenario, 3)
        >>> len(result.runs), result.confidence
        (3, 0.95)
        >>> row = result.intervals.set_index("metric").loc["delivered_fraction"]
        >>> float(row["mean"]), int(row["n"])
        (1.0, 3)
    """
    from scipy import stats

    from simscale.metrics.frames import summaries_frame

    if not isinstance(replications, int) or isinstance(replications, bool) or replications < 2:
        raise ValueError(f"replications must be an integer >= 2, got {replications!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1), got {confidence!r}")
    seeds = replication_seeds(scenario.seed, replications)
    scenarios = [scenario.replace(seed=seed) for seed in seeds]
    runs = summaries_frame(list(_map(executor, scenarios)), [{"seed": seed} for seed in seeds])
    rows = []
    t_value = float(stats.t.ppf(0.5 + confidence / 2, replications - 1))
    for metric in _numeric_metrics(runs):
        values = runs[metric].astype("float64").dropna()
        if len(values) < 2:
            continue
        mean = float(values.mean())
        half = t_value * float(values.std(ddof=1)) / math.sqrt(len(values))
        rows.append({"metric": metric, "mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": len(values)})
    import pandas as pd

    return ReplicationResult(runs, pd.DataFrame(rows), confidence)


_NOT_METRICS = {"seed", "servers", "clients", "duration_s", "wall_s", "scenario", "source"}


def _numeric_metrics(frame: pd.DataFrame) -> Iterable[str]:
    for column in frame.columns:
        if column in _NOT_METRICS:
            continue
        if frame[column].dropna().map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all():
            yield column


def sweep(scenario: Scenario, *, executor: Executor | None = None, **factors: Iterable[Any]) -> pd.DataFrame:
    """Run the full grid of ``factors`` (field name → values) around ``scenario``.

    Each factor is a list (any non-string iterable) of values; a single value, an empty list or a
    name that is not a Scenario field raises ``ValueError`` naming the factor. ``executor`` may be
    any ``concurrent.futures.Executor`` — a process pool, or a Dask or Ray cluster's executor —
    results are identical to a serial run (each point carries its own seed). Returns one row per
    point: the factor values, then the summary.

    Example:

        >>> from simscale import preset, sweep
        >>> base = preset("no-backplane", clients=30, duration_s=4.0, warmup_s=1.0, seed=1)
        >>> frame = sweep(base, servers=[1, 3])
        >>> frame[["servers", "delivered_fraction"]].round(2)
           servers  delivered_fraction
        0        1                1.00
        1        3                0.33
        >>> sweep(base, servers=3)
        Traceback (most recent call last):
        ...
        ValueError: sweep factor 'servers' must be a list of values, e.g. servers=[1, 2, 3]; got 3
    """
    from simscale.metrics.frames import summaries_frame

    if not factors:
        raise ValueError("sweep needs at least one factor, e.g. servers=[1, 2, 4]")
    names = list(factors)
    known = {spec.name for spec in dataclasses.fields(Scenario)}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown sweep factor(s): {', '.join(unknown)}")
    grids = []
    for name in names:
        grids.append(_factor_values(name, factors[name]))
    points = [dict(zip(names, combination, strict=True)) for combination in itertools.product(*grids)]
    scenarios = [scenario.replace(**point) for point in points]
    return summaries_frame(list(_map(executor, scenarios)), points)


def _factor_values(name: str, values: Any) -> list[Any]:
    """``values`` as a list; a scalar would otherwise fail deep inside itertools, without the name.

    A string is iterable but means one value (``backplane="redis"`` is not the grid r, e, d, i, s).
    """
    example = f"e.g. {name}=[{values!r}]" if isinstance(values, str) else f"e.g. {name}=[1, 2, 3]"
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"sweep factor {name!r} must be a list of values, {example}; got {values!r}")
    listed = list(values)
    if not listed:
        raise ValueError(f"sweep factor {name!r} has no values; give at least one, {example}")
    return listed
