"""A fixed-bin log-scale latency histogram: constant memory however many deliveries are counted.

Both the model (millions of deliveries per simulated second) and the load generator keep
per-delivery latencies here instead of one object per delivery. Bins are log-spaced from 1 µs to
1,000 s, 200 per decade, so a percentile read back is within 0.6 % of the exact one.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["LatencyHistogram"]

_MIN_S = 1e-6
_DECADES = 9
_BINS_PER_DECADE = 200
_N_BINS = _DECADES * _BINS_PER_DECADE


class LatencyHistogram:
    """Counts latencies (seconds) in log-spaced bins; weights allow sampled fan-outs.

    Example (the last latency stands for four recipients that were not sampled one by one):

        >>> from simscale.metrics import LatencyHistogram
        >>> histogram = LatencyHistogram()
        >>> histogram.add([0.001, 0.002, 0.003, 0.004])
        >>> histogram.add([0.010], weight=4)
        >>> histogram.count, round(histogram.mean_s, 5)
        (8.0, 0.00625)
        >>> round(histogram.quantile_s(0.5) * 1e3, 1)  # ms, read from bins 1.2 % wide
        4.0
    """

    __slots__ = ("_counts", "_max_s", "_min_s", "_pending", "_pending_size", "_sum_s")

    _FLUSH_AT = 1 << 16
    """Small adds are buffered and binned together: one log10/bincount per ~65k latencies."""

    def __init__(self) -> None:
        # Bin 0 collects everything below 1 µs, the last bin everything above 1,000 s.
        self._counts = np.zeros(_N_BINS + 2, dtype=np.float64)
        self._sum_s = 0.0
        self._min_s = math.inf
        self._max_s = -math.inf
        self._pending: list[tuple[npt.NDArray[np.float64], float]] = []
        self._pending_size = 0

    @staticmethod
    def _bin_of(latency_s: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        clipped = np.maximum(latency_s, _MIN_S * 0.5)
        index = np.floor(np.log10(clipped / _MIN_S) * _BINS_PER_DECADE).astype(np.intp) + 1
        clipped_index: npt.NDArray[np.intp] = np.clip(index, 0, _N_BINS + 1)
        return clipped_index

    def add(self, latency_s: npt.ArrayLike, weight: float = 1.0) -> None:
        """Count each latency in ``latency_s`` ``weight`` times (weight > 1 stands for unsampled peers)."""
        values = np.asarray(latency_s, dtype=np.float64).ravel()
        if values.size == 0:
            return
        self._pending.append((values, weight))
        self._pending_size += values.size
        if self._pending_size >= self._FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        values = np.concatenate([chunk for chunk, _ in self._pending])
        weights = np.repeat(
            np.array([weight for _, weight in self._pending]), [chunk.size for chunk, _ in self._pending]
        )
        self._pending.clear()
        self._pending_size = 0
        self._counts += np.bincount(self._bin_of(values), weights=weights, minlength=_N_BINS + 2)
        self._sum_s += float(np.dot(values, weights))
        self._min_s = min(self._min_s, float(values.min()))
        self._max_s = max(self._max_s, float(values.max()))

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts to this one."""
        self._flush()
        other._flush()
        self._counts += other._counts
        self._sum_s += other._sum_s
        self._min_s = min(self._min_s, other._min_s)
        self._max_s = max(self._max_s, other._max_s)

    @property
    def count(self) -> float:
        """How many latencies were counted (a float because sampled fan-outs carry weights)."""
        self._flush()
        return float(self._counts.sum())

    @property
    def mean_s(self) -> float:
        """Mean latency, or NaN when empty."""
        self._flush()
        total = self.count
        return self._sum_s / total if total else math.nan

    def quantile_s(self, q: float) -> float:
        """The ``q`` quantile (0-1), read from the bins with log interpolation; NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be within 0-1, got {q!r}")
        total = self.count  # flushes
        if total == 0:
            return math.nan
        cumulative = np.cumsum(self._counts)
        target = q * total
        index = int(np.searchsorted(cumulative, target, side="left"))
        index = min(index, _N_BINS + 1)
        below = cumulative[index - 1] if index > 0 else 0.0
        in_bin = self._counts[index]
        fraction = (target - below) / in_bin if in_bin > 0 else 0.0
        lower_s = _MIN_S * 10 ** ((index - 1) / _BINS_PER_DECADE)
        upper_s = _MIN_S * 10 ** (index / _BINS_PER_DECADE)
        value = lower_s * (upper_s / lower_s) ** min(max(fraction, 0.0), 1.0)
        # The exact extremes are known: never report beyond them.
        return float(min(max(value, self._min_s), self._max_s))

    def to_counts(self) -> npt.NDArray[np.float64]:
        """A copy of the raw bin counts (for serialisation and tests)."""
        self._flush()
        return self._counts.copy()
