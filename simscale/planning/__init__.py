"""Capacity planning: how many servers a load needs, which limit binds, found on any executor.

* :mod:`~simscale.planning.request` — what is asked (:class:`PlanRequest`, validated) and the
  constraint names;
* :mod:`~simscale.planning.search` — pure: the closed forms, the verdict on a candidate, which sizes
  to simulate next;
* :mod:`~simscale.planning.executors` — where the simulations run (serial, processes, Dask);
* :mod:`~simscale.planning.planner` — :func:`plan`, which ties them together;
* :mod:`~simscale.planning.result` — :class:`Plan`, the answer and the table of the search.
"""

from __future__ import annotations

from simscale.planning.planner import plan
from simscale.planning.request import CONSTRAINTS, NoDeploymentFits, NotAvailableYet, PlanRequest
from simscale.planning.result import Plan

__all__ = ["CONSTRAINTS", "NoDeploymentFits", "NotAvailableYet", "Plan", "PlanRequest", "plan"]
