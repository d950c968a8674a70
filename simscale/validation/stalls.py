"""Stalls of the load generator's event loop: measured in calibration runs, fitted for the model.

On a quiet host the loop, woken from sleep by a hub's writes, often lands on the writing hub's core
and waits there — runnable, not running — until the hub has written the whole fan-out or the
scheduler moves it to the idle core. Seen from the loop: it reads the first sockets, then nothing for
a while, then everything in one pass. How long it waits shrinks as the loop gets busier (measured on
the 2-core VM, 300 clients: a wait longer than half the fan-out in 86 % of quiet fan-outs at 4 %
busy, 40 % at 42 % busy; 900 clients: 58 % at 11 % busy, 3 % at 60 %).

The model draws the wait from an exponential distribution whose mean falls as
``mean_s · exp(-busy / busy_scale)``; a run that saw ``stalled`` of ``fan_outs`` quiet fan-outs wait
longer than ``threshold_s`` says ``P(wait > threshold) = exp(-threshold / mean)`` at its busy fraction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["StallCount", "count_stalls", "fit_stalls", "isolated_fan_outs", "longest_wait_s"]

_MIN_FAN_OUTS = 10
_MAX_BUSY_SCALE = 100.0
"""A busy scale this large means: the wait does not depend on how busy the loop is."""
_MAX_MEAN_S = 1.0


@dataclass(frozen=True, slots=True)
class StallCount:
    """Quiet fan-outs of one run, and how many of them the loop stalled in."""

    busy: float
    """The loop's busy fraction over the run (CPU seconds per wall second)."""
    fan_outs: int
    stalled: int
    threshold_s: float
    """A fan-out counts as stalled when the loop waited longer than this between two reads of it."""


def isolated_fan_outs(
    sends_s: Sequence[float], passes: Sequence[tuple[float, float, int]], clients: int
) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
    """``(index of the send, its passes)`` for each fan-out read on its own, in send order.

    A fan-out is isolated when the passes between its send and the next send read one message per
    client (2 % more allowed for keep-alive pings). Its passes are those up to the one that completed
    it, as rows of ``(first read, end, reads)``.
    """
    if clients < 1:
        raise ValueError(f"clients must be positive, got {clients!r}")
    table = np.array(passes, dtype=np.float64).reshape(-1, 3)
    for index, (sent_s, next_sent_s) in enumerate(itertools.pairwise(sorted(sends_s))):
        mine = table[(table[:, 0] > sent_s) & (table[:, 0] < next_sent_s)]
        if len(mine) and clients <= mine[:, 2].sum() <= 1.02 * clients:
            # A ping read after the fan-out was complete is not part of it.
            yield index, mine[: int(np.searchsorted(np.cumsum(mine[:, 2]), clients)) + 1]


def longest_wait_s(fan_out_passes: npt.NDArray[np.float64]) -> float:
    """The longest time the loop spent away between two passes over one fan-out (0 for one pass)."""
    if len(fan_out_passes) < 2:
        return 0.0
    return float((fan_out_passes[1:, 0] - fan_out_passes[:-1, 1]).max())


def count_stalls(
    sends_s: Sequence[float], passes: Sequence[tuple[float, float, int]], clients: int, threshold_s: float
) -> tuple[int, int]:
    """``(isolated fan-outs, stalled ones)`` from a traced run's send times and loop passes: a fan-out
    stalled when the loop was away longer than ``threshold_s`` between two passes over it."""
    if threshold_s <= 0:
        raise ValueError(f"threshold_s must be positive, got {threshold_s!r}")
    waits_s = [longest_wait_s(mine) for _, mine in isolated_fan_outs(sends_s, passes, clients)]
    return len(waits_s), sum(wait_s > threshold_s for wait_s in waits_s)


def fit_stalls(counts: Sequence[StallCount]) -> tuple[float, float]:
    """``(mean_s, busy_scale)`` of the model's stall from runs at different busy fractions.

    ``mean_s`` 0 when no run saw a stall (or none had enough quiet fan-outs to tell); a busy scale of
    100 when the runs do not show the wait shrinking with load.
    """
    usable = [count for count in counts if count.fan_outs >= _MIN_FAN_OUTS]
    if not usable or not any(count.stalled for count in usable):
        return 0.0, 1.0
    busy, log_mean, weight = [], [], []
    for count in usable:
        # Keep the fraction off 0 and 1 by half a fan-out: one run's count is a sample, not the truth.
        fraction = min(max(count.stalled, 0.5), count.fan_outs - 0.5) / count.fan_outs
        busy.append(count.busy)
        log_mean.append(math.log(-count.threshold_s / math.log(fraction)))
        weight.append(float(count.fan_outs))
    x, y, w = np.array(busy), np.array(log_mean), np.array(weight)
    if len(usable) >= 2 and float(x.max() - x.min()) >= 0.05:
        slope, intercept = np.polyfit(x, y, 1, w=np.sqrt(w))
        if slope < -1.0 / _MAX_BUSY_SCALE:
            return min(math.exp(float(intercept)), _MAX_MEAN_S), -1.0 / float(slope)
    return min(math.exp(float(np.average(y, weights=w))), _MAX_MEAN_S), _MAX_BUSY_SCALE
