"""Web traffic beside SignalR: shared servers hurt the web requests, a separate tier does not."""

from __future__ import annotations

import pytest

from simscale import Scenario, preset, simulate


def test_shared_servers_at_least_double_the_web_p99_on_the_presets_defaults() -> None:
    shared = simulate(preset("web-traffic-shared")).summary
    separate = simulate(preset("web-traffic-separate")).summary
    assert shared.web_latency_p99_ms is not None and separate.web_latency_p99_ms is not None
    assert shared.web_latency_p99_ms >= 2 * separate.web_latency_p99_ms
    assert shared.web_requests_failed == separate.web_requests_failed == 0


def test_without_web_requests_there_are_no_web_figures() -> None:
    summary = simulate(Scenario(clients=20, duration_s=3.0, warmup_s=1.0, seed=1)).summary
    assert (summary.web_latency_p50_ms, summary.web_latency_p99_ms, summary.web_requests_failed) == (None, None, None)


def test_blocking_requests_that_outlast_the_timeout_fail() -> None:
    quick = Scenario(clients=20, duration_s=6.0, warmup_s=1.0, seed=1, web_request_rate_per_s=50.0)
    ok = simulate(quick).summary
    assert ok.web_requests_failed == 0
    assert ok.web_latency_p50_ms is not None and ok.web_latency_p50_ms >= 2.0  # its 2 ms of CPU at least
    # Two threads, requests that each hold one for 0.5 s at 50/s: the queue grows past the timeout.
    stuck = simulate(
        quick.replace(web_request_kind="blocking", web_request_wait_s=0.5, web_request_timeout_s=1.0, max_threads=2)
    ).summary
    assert stuck.web_requests_failed and stuck.web_requests_failed > 50


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"web_request_rate_per_s": -1.0}, "web_request_rate_per_s must be a number >= 0"),
        ({"web_request_kind": "sync"}, "web_request_kind must be one of 'async', 'blocking'"),
        ({"web_servers": -1}, "web_servers must be an integer >= 0"),
        ({"web_request_timeout_s": 0.0}, "web_request_timeout_s must be a number > 0"),
        ({"web_servers": 1}, "web_servers needs web_request_rate_per_s > 0"),
        ({"web_request_cpu_s": "fast"}, "web_request_cpu_s must be a number >= 0"),
        ({"web_request_wait_s": -1.0}, "web_request_wait_s must be a number >= 0"),
        ({"web_servers": 1.5}, "web_servers must be an integer >= 0"),
        ({"web_request_kind": 3}, "web_request_kind must be one of 'async', 'blocking'"),
    ],
)
def test_bad_web_values_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario(**changes)
