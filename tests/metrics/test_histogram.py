"""The latency histogram reads percentiles back within its bin resolution."""

import numpy as np
import pytest

from simscale.metrics.histogram import LatencyHistogram


@pytest.mark.parametrize("q", [0.01, 0.5, 0.9, 0.99])
def test_quantile_matches_numpy_within_bin_resolution(q: float) -> None:
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(mean=-5.0, sigma=1.0, size=50_000)
    histogram = LatencyHistogram()
    histogram.add(latencies)
    exact = float(np.quantile(latencies, q))
    assert histogram.quantile_s(q) == pytest.approx(exact, rel=0.012)
    assert histogram.count == 50_000


def test_weights_stand_for_unsampled_recipients() -> None:
    weighted = LatencyHistogram()
    weighted.add([0.001, 0.002], weight=10)
    repeated = LatencyHistogram()
    repeated.add([0.001] * 10 + [0.002] * 10)
    assert weighted.count == repeated.count == 20
    assert weighted.quantile_s(0.25) == repeated.quantile_s(0.25)
    assert weighted.mean_s == pytest.approx(repeated.mean_s)


def test_merge_adds_counts_and_empty_is_nan() -> None:
    first, second = LatencyHistogram(), LatencyHistogram()
    assert np.isnan(first.quantile_s(0.5))
    first.add([0.01])
    second.add([0.03])
    first.merge(second)
    assert first.count == 2
    assert first.quantile_s(1.0) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="q must be"):
        first.quantile_s(1.5)
