"""CPU: cores as a SimPy resource, and a meter that turns busy time into utilisation samples.

Think of a host's cores as checkout lanes: a work item queues for a free lane, holds it for its CPU
time, and the meter notes how long each lane was busy within each sampling interval.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

__all__ = ["BusyMeter", "Cpu"]


class BusyMeter:
    """Busy core-seconds per fixed sampling bin (time is split exactly across bin edges)."""

    def __init__(self, horizon_s: float, interval_s: float) -> None:
        self.interval_s = interval_s
        self._bins = np.zeros(math.ceil(horizon_s / interval_s) + 2, dtype=np.float64)

    def add(self, start_s: float, duration_s: float) -> None:
        """Count ``duration_s`` of one core busy from ``start_s``."""
        if duration_s <= 0:
            return
        end_s = start_s + duration_s
        first = int(start_s / self.interval_s)
        last = int(end_s / self.interval_s)
        size = len(self._bins)
        if first == last:
            if first < size:
                self._bins[first] += duration_s
            return
        for index in range(first, min(last, size - 1) + 1):
            lo = max(start_s, index * self.interval_s)
            hi = min(end_s, (index + 1) * self.interval_s)
            if hi > lo:
                self._bins[index] += hi - lo

    def busy_s(self, bin_index: int) -> float:
        """Busy core-seconds in bin ``bin_index`` (0 beyond the horizon)."""
        return float(self._bins[bin_index]) if 0 <= bin_index < len(self._bins) else 0.0


class Cpu:
    """Cores shared by the work of one or more servers (several servers may share one host)."""

    def __init__(self, env: simpy.Environment, cores: int) -> None:
        self.env = env
        self.cores = cores
        self.lanes = simpy.Resource(env, capacity=cores)
