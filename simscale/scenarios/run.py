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
from simscale.metrics.records import RunRecords, RunSummary
from simscale.metrics.summary import summarize
from simscale.model.deployment import Deployment
from simscale.scenarios.calibration import apply_calibration

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReplicationResult", "SimulationResult", "replicate", "simulate", "sweep"]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """One simulated run: the resolved scenario, its summary, records and topology."""

    scenario: Scenario
    summary: RunSummary
    records: RunRecords
    topology: nx.Graph
    backplane_disconnects: int = 0
    backplane_lost_publishes: int = 0

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
    """Run ``scenario`` once with its own seed (``progress`` gets the fraction done, 0-1)."""
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
    """Per-replication summaries and, per numeric metric, mean ± a Student-t confidence interval."""

    runs: pd.DataFrame
    intervals: pd.DataFrame
    confidence: float


def replicate(
    scenario: Scenario, replications: int, *, executor: Executor | None = None, confidence: float = 0.95
) -> ReplicationResult:
    """Run ``scenario`` ``replications`` times with independent seeds derived from its seed."""
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

    ``executor`` may be any ``concurrent.futures.Executor`` — a process pool, or a Dask or Ray
    cluster's executor — results are identical to a serial run (each point carries its own seed).
    Returns one row per point: the factor values, then the summary.
    """
    from simscale.metrics.frames import summaries_frame

    if not factors:
        raise ValueError("sweep needs at least one factor, e.g. servers=[1, 2, 4]")
    names = list(factors)
    grids = []
    for name in names:
        values = list(factors[name])
        if not values:
            raise ValueError(f"sweep factor {name} has no values")
        grids.append(values)
    points = [dict(zip(names, combination, strict=True)) for combination in itertools.product(*grids)]
    scenarios = []
    for point in points:
        try:
            scenarios.append(scenario.replace(**point))
        except TypeError:
            unknown = [name for name in point if name not in {f.name for f in dataclasses.fields(Scenario)}]
            raise ValueError(f"unknown sweep factor(s): {', '.join(unknown)}") from None
    return summaries_frame(list(_map(executor, scenarios)), points)
