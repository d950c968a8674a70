"""The load generator: many real SignalR clients, measured with the model's record vocabulary.

:class:`LoadConfig` says what to do, :func:`run_load` does it and returns a :class:`LoadResult`
whose records and summary line up with a simulation's (``source="hub"``), and whose
:class:`ConnectionFailure` entries say why connections failed. The ``simscale
loadgen`` command wraps it (:mod:`simscale.loadgen.cli`).
"""

from __future__ import annotations

from simscale.loadgen.config import LoadConfig
from simscale.loadgen.runner import ConnectionFailure, LoadResult, run_load

__all__ = ["ConnectionFailure", "LoadConfig", "LoadResult", "run_load"]
