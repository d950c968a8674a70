"""The network between clients and servers: a fixed latency plus exponential jitter per message.

Draws come from the run's one random generator, so a run is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Network"]


class Network:
    """One-way delay of a message: ``latency_s`` plus an exponential jitter of mean ``jitter_s``."""

    def __init__(self, rng: np.random.Generator, *, latency_s: float, jitter_s: float) -> None:
        self.rng = rng
        self.latency_s = latency_s
        self.jitter_s = jitter_s

    def delay_s(self) -> float:
        """The delay of one message."""
        jitter = self.rng.exponential(self.jitter_s) if self.jitter_s else 0.0
        return float(self.latency_s + jitter)

    def delays_s(self, count: int) -> npt.NDArray[np.float64]:
        """The delays of ``count`` messages (one draw each)."""
        if self.jitter_s:
            return self.latency_s + self.rng.exponential(self.jitter_s, count)
        return np.full(count, self.latency_s)
