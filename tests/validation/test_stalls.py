"""Counting the load generator's stalls in traced passes, and fitting the model's stall to the counts."""

from __future__ import annotations

import math

import pytest

from simscale.validation.stalls import StallCount, count_stalls, fit_stalls


def _fan_out(sent_s: float, reads: list[tuple[float, int]]) -> list[tuple[float, float, int]]:
    """Passes of one fan-out: (offset after the send, reads), each pass 0.1 ms long."""
    return [(sent_s + offset_s, sent_s + offset_s + 1e-4, count) for offset_s, count in reads]


def test_isolated_fan_outs_are_counted_and_a_long_gap_between_passes_is_a_stall() -> None:
    passes = [
        *_fan_out(0.0, [(1e-3, 2), (1.2e-3, 98)]),  # side by side: passes 0.1 ms apart
        *_fan_out(0.1, [(1e-3, 3), (4e-3, 97)]),  # stalled: 2.9 ms between two passes
        *_fan_out(0.2, [(1e-3, 60)]),  # 60 of 100 read before the next send: not isolated
        *_fan_out(0.3, [(1e-3, 100), (3e-3, 1)]),  # a keep-alive ping read later: isolated, not stalled
    ]
    assert count_stalls([0.0, 0.1, 0.2, 0.3, 0.4], passes, clients=100, threshold_s=1e-3) == (3, 1)
    assert count_stalls([0.0, 0.1, 0.2, 0.3, 0.4], passes, clients=100, threshold_s=5e-3) == (3, 0)
    with pytest.raises(ValueError, match="threshold_s"):
        count_stalls([0.0], passes, clients=100, threshold_s=0.0)


def _counts(mean_s: float, busy_scale: float, threshold_s: float = 0.7e-3) -> list[StallCount]:
    """What runs would see, on average, if waits were exponential with the given law."""
    counts = []
    for busy in (0.05, 0.15, 0.3, 0.45):
        fraction = math.exp(-threshold_s / (mean_s * math.exp(-busy / busy_scale)))
        counts.append(StallCount(busy, 10_000, round(10_000 * fraction), threshold_s))
    return counts


def test_the_fit_recovers_the_law_the_counts_came_from() -> None:
    mean_s, busy_scale = fit_stalls(_counts(4e-3, 0.25))
    assert mean_s == pytest.approx(4e-3, rel=0.02)
    assert busy_scale == pytest.approx(0.25, rel=0.02)


def test_no_stall_seen_means_none_and_a_flat_law_means_no_dependence_on_load() -> None:
    assert fit_stalls([StallCount(0.1, 50, 0, 1e-3), StallCount(0.3, 80, 0, 1e-3)]) == (0.0, 1.0)
    assert fit_stalls([StallCount(0.1, 5, 3, 1e-3)]) == (0.0, 1.0)  # too few fan-outs to tell
    mean_s, busy_scale = fit_stalls([StallCount(0.1, 100, 50, 1e-3), StallCount(0.4, 100, 50, 1e-3)])
    assert mean_s == pytest.approx(1e-3 / math.log(2), rel=1e-6)
    assert busy_scale == 100.0
