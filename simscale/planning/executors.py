"""Where the candidates run: a serial loop, local processes, or a dask.distributed cluster.

The planner only needs ``Executor.map``; the cluster's own executor does all the scheduling
(``distributed.Client.get_executor()``), none of it is ours. Each run carries its seed in its
scenario, so every executor gives the same numbers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simscale.config.scenario import Scenario
    from simscale.metrics.records import RunSummary

__all__ = ["CandidateRun", "default_workers", "open_executor", "run_candidate"]

SCHEDULER_TIMEOUT_S = 5.0
"""How long to try reaching a Dask scheduler before saying it is unreachable."""


def default_workers() -> int:
    """Local worker processes when ``--workers`` is not given: the machine's cores."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class CandidateRun:
    """One simulation of one candidate: its summary and the limit behind its connection failures.

    ``clients_connected`` is the mean number of clients connected when the counted sends went out;
    for group sends (whose summary counts the connected members of each send's group) it is that
    fraction of the group times all the clients.
    """

    servers: int
    seed: int
    summary: RunSummary
    failure_limit: str | None
    clients_connected: float | None = None


def run_candidate(scenario: Scenario) -> CandidateRun:
    """Simulate ``scenario`` once (module-level, so any executor can pickle it)."""
    from simscale.scenarios import simulate
    from simscale.scenarios.diagnosis import failure_limit, failure_reasons, peak_cpu

    result = simulate(scenario)
    refused, dropped = failure_reasons(result)
    failures = refused + dropped
    limit = None
    if failures:
        peak = peak_cpu(result)
        for reason, _ in failures.most_common():
            limit = failure_limit(reason, peak)
            if limit is not None:
                break
    return CandidateRun(scenario.servers, scenario.seed, result.summary, limit, result.summary.clients_connected)


@contextlib.contextmanager
def open_executor(workers: int = 1, scheduler: str | None = None) -> Iterator[Executor | None]:
    """An executor for the plan's simulations, closed on exit.

    ``scheduler`` (``tcp://HOST:PORT``): a dask.distributed client's executor; ``workers`` 1: ``None``
    (the planner runs serially); more: a local process pool. An unreachable scheduler raises
    ``ValueError`` naming it.

    Example:

        >>> from simscale.planning.executors import open_executor
        >>> with open_executor(workers=1) as executor:
        ...     executor is None
        True
    """
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError as error:  # pragma: no cover - dask is in the dev extra
            raise ValueError(f"--scheduler needs dask.distributed: pip install 'dask[distributed]' ({error})") from None
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError, ValueError) as error:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        try:
            yield client.get_executor()  # type: ignore[no-untyped-call]
        finally:
            client.close()  # type: ignore[no-untyped-call]
        return
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if workers == 1:
        yield None
        return
    with ProcessPoolExecutor(workers) as pool:
        yield pool
