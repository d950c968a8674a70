"""``simscale validate web-traffic-shared``: the real /busy route measured, and the model's prediction."""

from __future__ import annotations

import pytest

from simscale.validation.web import WebLoad, measure_web_latency, predict_web_latency


def test_the_real_busy_route_is_measured_on_a_hub_process() -> None:
    load = WebLoad(clients=10, web_request_rate_per_s=20.0, web_request_cpu_s=0.005, duration_s=2.0)
    measured = measure_web_latency(load, separate=False, broadcasts=False)
    # Each request spins 5 ms of CPU on the hub: neither percentile can be faster than that.
    assert 5.0 <= measured["web_latency_p50_ms"] <= measured["web_latency_p99_ms"]


def test_the_prediction_puts_broadcasts_in_the_shared_process_only() -> None:
    load = WebLoad(clients=5_000, broadcast_rate_per_s=20.0, duration_s=6.0)
    shared = predict_web_latency(load, separate=False, broadcasts=True)
    separate = predict_web_latency(load, separate=True, broadcasts=True)
    assert shared["web_latency_p99_ms"] >= 2 * separate["web_latency_p99_ms"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"clients": 0}, "clients must be > 0"), ({"web_request_cpu_s": -1.0}, "web_request_cpu_s must be from 0")],
)
def test_bad_loads_name_the_field(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebLoad(**changes)  # type: ignore[arg-type]
