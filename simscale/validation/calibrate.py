"""``simscale calibrate``: measure the real hub's costs on this machine (at most 1,000 connections).

Thin orchestration: :func:`~simscale.validation.measuring.measure_calibration` runs a hub process,
idle clients, eight broadcast runs and a redis-server and returns the raw readings;
:func:`~simscale.validation.fitting.fit_calibration` turns them into the costs (how each one is
derived is told there); this module repeats that ``replicates`` times, each replicate with a fresh
hub, combines them into means with 95 % intervals
(:func:`~simscale.validation.fitting.combine_replicates`) and stamps where and when.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform

from simscale._version import __version__
from simscale.scenarios.calibration import Calibration
from simscale.validation.fitting import combine_replicates, fit_calibration
from simscale.validation.host import Placement, probe_host
from simscale.validation.measuring import RUN_S, measure_calibration

__all__ = ["DEFAULT_REPLICATES", "calibrate", "calibrate_once"]

_MAX_CONNECTIONS = 1_000
DEFAULT_REPLICATES = 3
"""Calibration replicates by default: the fewest that give a Student-t interval with some power."""
_UNPINNED = Placement(hub_cores=None, loadgen_cores=None)


def _check(connections: int, replicates: int, run_s: float) -> None:
    if not isinstance(connections, int) or isinstance(connections, bool) or not 10 <= connections <= _MAX_CONNECTIONS:
        raise ValueError(f"connections must be an integer from 10 to {_MAX_CONNECTIONS}, got {connections!r}")
    if not isinstance(replicates, int) or isinstance(replicates, bool) or not 1 <= replicates <= 20:
        raise ValueError(f"replicates must be an integer from 1 to 20, got {replicates!r}")
    if not 0.5 <= run_s <= 30:
        raise ValueError(f"run_s must be from 0.5 to 30 s, got {run_s!r}")


def calibrate_once(
    connections: int = 300, *, message_bytes: int = 64, run_s: float = RUN_S, placement: Placement | None = None
) -> Calibration:
    """One calibration replicate: a fresh hub, its eight broadcast runs of ``run_s`` each, fitted; and
    the host's speed (:func:`~simscale.validation.host.probe_host`) measured with it, so that a
    validation models the host as it was when its costs were measured."""
    _check(connections, 1, run_s)
    placement = _UNPINNED if placement is None else placement
    measurements = measure_calibration(connections, message_bytes=message_bytes, run_s=run_s, placement=placement)
    speed = probe_host()
    return dataclasses.replace(
        fit_calibration(
            measurements,
            host=platform.node(),
            created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            simscale_version=__version__,
        ),
        host_time_slice_s=speed.time_slice_s,
        host_parallel_speed=speed.parallel_speed,
    )


def calibrate(
    connections: int = 300,
    *,
    message_bytes: int = 64,
    replicates: int = DEFAULT_REPLICATES,
    run_s: float = RUN_S,
    placement: Placement | None = None,
) -> Calibration:
    """Measure the real hub on this machine with ``connections`` clients (at most 1,000), ``replicates`` times.

    Each cost is the replicates' mean with its 95 % interval (:meth:`Calibration.interval`).
    ``placement``: the cores of the hub and of the load generator (``simscale validate`` passes the one
    :func:`~simscale.validation.host.host_placement` gives this host); by default nothing is pinned
    (pinned, small calibrations fitted the load generator's cost per message as 0: a load generator on a
    core of its own kept up too evenly to tell it from its other costs).

    A real calibration runs the hub under load, too long for an example (``simscale calibrate``
    from a shell); the arguments are checked before anything starts.

    Example:

        >>> from simscale.validation import calibrate
        >>> calibrate(5)
        Traceback (most recent call last):
        ...
        ValueError: connections must be an integer from 10 to 1000, got 5
        >>> calibrate(300, replicates=0)
        Traceback (most recent call last):
        ...
        ValueError: replicates must be an integer from 1 to 20, got 0
    """
    _check(connections, replicates, run_s)
    return combine_replicates(
        [
            calibrate_once(connections, message_bytes=message_bytes, run_s=run_s, placement=placement)
            for _ in range(replicates)
        ]
    )
