"""A fan-out: one server writing one broadcast to every client it holds, and when each gets it.

A fan-out is ONE work item on its server costing ``overhead + recipients × send`` of CPU — never one
event per recipient. The k-th socket written (k = 1..n) gets its message at
``writes_start + k·send + network delay``; those times are computed in numpy for a sample of at
most ``latency_samples_per_fanout`` write positions (the delivery count stays exact), and a sample
stands for ``recipients / samples`` clients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simscale.model.network import Network
from simscale.model.server import SimServer

__all__ = ["FanOut", "FanOutTiming"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FanOut:
    """One server's write of one broadcast to its own clients."""

    server: SimServer
    broadcast_id: int
    origin_index: int
    sent_at_s: float
    counted: bool
    """Sent after the warm-up: its deliveries are recorded."""
    recipients: int
    overhead_s: float
    """CPU before the first write (reading a copy from the backplane)."""
    send_s: float
    """CPU per socket written."""

    def written_by_s(self, positions: FloatArray) -> FloatArray:
        """CPU the fan-out has done when it has written the sockets at ``positions`` (1-based)."""
        return self.overhead_s + positions * self.send_s


class FanOutTiming:
    """Which write positions are sampled, and when the message written at each reaches its client."""

    def __init__(self, rng: np.random.Generator, network: Network, samples_per_fanout: int) -> None:
        self.rng = rng
        self.network = network
        self.samples_per_fanout = samples_per_fanout

    def sample_positions(self, recipients: int, samples: int | None = None) -> FloatArray:
        """Write positions (1-based) of the recipients whose latency is computed (``samples``: at most that
        many instead of ``samples_per_fanout``)."""
        sample = min(recipients, self.samples_per_fanout if samples is None else samples)
        if sample == recipients:
            return np.arange(1, recipients + 1, dtype=np.float64)
        return np.sort(self.rng.integers(1, recipients + 1, sample)).astype(np.float64)

    def arrivals_s(self, writes_start_s: float, positions: FloatArray, send_s: float) -> FloatArray:
        """When the messages written at ``positions`` (1-based) from ``writes_start_s`` reach their recipients."""
        delays_s = self.network.delays_s(len(positions))
        return writes_start_s + positions * send_s + delays_s

    def samples_per_server(self, servers: int) -> int:
        """Vectorised fan-outs: one send's sample budget spread over the ``servers`` that write it (at least
        one each), so a send costs about ``samples_per_fanout`` latencies however many servers it reaches."""
        return max(1, self.samples_per_fanout // max(1, servers))

    def arrivals_many_s(
        self, writes_start_s: FloatArray, recipients: npt.NDArray[np.int64], send_s: float, samples: int
    ) -> FloatArray:
        """Fan-outs on several servers at once, each with more than ``samples`` recipients: row ``i`` holds
        the arrivals of a sorted sample of write positions of the fan-out writing from ``writes_start_s[i]``."""
        shape = (len(recipients), samples)
        if samples == 1:
            positions = self.rng.integers(1, recipients[:, None] + 1, shape).astype(np.float64)
        else:
            positions = np.sort(self.rng.integers(1, recipients[:, None] + 1, shape), axis=1).astype(np.float64)
        delays_s = self.network.delays_s(shape[0] * shape[1]).reshape(shape)
        arrivals: FloatArray = writes_start_s[:, None] + positions * send_s + delays_s
        return arrivals
