"""``simscale calibrate``: measure the real hub's costs on this machine (at most 1,000 connections).

Thin orchestration: :func:`~simscale.validation.measuring.measure_calibration` runs a hub process,
idle clients, eight broadcast runs and a redis-server and returns the raw readings;
:func:`~simscale.validation.fitting.fit_calibration` turns them into the costs (how each one is
derived is told there); this module stamps where and when.
"""

from __future__ import annotations

import datetime
import platform

from simscale._version import __version__
from simscale.scenarios.calibration import Calibration
from simscale.validation.fitting import fit_calibration
from simscale.validation.host import Placement
from simscale.validation.measuring import measure_calibration

__all__ = ["calibrate"]

_MAX_CONNECTIONS = 1_000


def calibrate(connections: int = 300, *, message_bytes: int = 64, placement: Placement | None = None) -> Calibration:
    """Measure the real hub on this machine with ``connections`` clients (at most 1,000).

    ``placement``: the cores of the hub and of the load generator (``simscale validate`` passes the one
    :func:`~simscale.validation.host.host_placement` gives this host); by default nothing is pinned, as
    before (pinned, small calibrations in this session's runs fitted the load generator's cost per
    message as 0: a load generator on a core of its own kept up too evenly to tell it from its other costs).

    A real calibration runs the hub under load, too long for an example (``simscale calibrate``
    from a shell); the arguments are checked before anything starts.

    Example:

        >>> from simscale.validation import calibrate
        >>> calibrate(5)
        Traceback (most recent call last):
        ...
        ValueError: connections must be an integer from 10 to 1000, got 5
    """
    if not isinstance(connections, int) or isinstance(connections, bool) or not 10 <= connections <= _MAX_CONNECTIONS:
        raise ValueError(f"connections must be an integer from 10 to {_MAX_CONNECTIONS}, got {connections!r}")
    placement = Placement(hub_cores=None, loadgen_cores=None) if placement is None else placement
    measurements = measure_calibration(connections, message_bytes=message_bytes, placement=placement)
    return fit_calibration(
        measurements,
        host=platform.node(),
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        simscale_version=__version__,
    )
