"""Warnings name every connection failure with its binding limit; the summary's client figures agree."""

from __future__ import annotations

import pytest

from simscale.scenarios import Scenario, preset, simulate


def _short(name: str, **overrides: object) -> Scenario:
    return preset(name, duration_s=5.0, warmup_s=1.0, **overrides)


def test_a_run_without_failures_has_no_warnings() -> None:
    result = simulate(_short("backplane"))
    assert result.summary.connections_refused == 0 and result.summary.connections_dropped == 0
    assert result.warnings == []
    assert result.summary.clients_never_connected == 0


@pytest.mark.parametrize(
    ("scenario", "cause"),
    [
        (
            _short("backplane", clients=3_000, ephemeral_ports=500),
            "each backend holds at most 500 connections through 1 proxy address (raise proxy_addresses)",
        ),
        (
            _short("backplane", clients=4_500, ephemeral_ports=500, proxy_addresses=2),
            "each backend holds at most 1,000 connections through 2 proxy addresses (raise proxy_addresses)",
        ),
        (
            _short("single-server", clients=1_000, max_connections_per_server=600),
            "each server accepts at most 600 connections (raise max_connections_per_server or add servers)",
        ),
    ],
)
def test_refusals_give_one_warning_with_count_cause_and_remedy(scenario: Scenario, cause: str) -> None:
    result = simulate(scenario)
    summary = result.summary
    assert summary.connections_refused, "the scenario must refuse connections for this test to mean anything"
    refused_lines = [line for line in result.warnings if " refused" in line]
    assert len(refused_lines) == 1, result.warnings
    assert refused_lines[0].startswith(f"warning: {summary.connections_refused:,} connection attempts refused")
    assert refused_lines[0].endswith(cause)
    assert f"({summary.clients_never_connected:,} clients never connected)" in refused_lines[0]


def test_client_figures_agree_with_each_other_when_clients_are_refused() -> None:
    summary = simulate(_short("backplane", clients=3_000, ephemeral_ports=500)).summary
    assert summary.clients is not None and summary.clients_never_connected is not None
    assert summary.clients_connected is not None and summary.delivered_fraction is not None
    assert summary.clients_never_connected > 0
    assert summary.clients_connected <= summary.clients - summary.clients_never_connected
    # deliveries / (B × clients) = (deliveries / Σ connected) × (mean connected / clients)
    expected = summary.delivered_fraction * summary.clients_connected / summary.clients
    assert summary.delivered_fraction_all_clients == pytest.approx(expected, rel=1e-12)
    assert summary.delivered_fraction_all_clients < summary.delivered_fraction


def test_port_exhaustion_names_the_client_address_and_time_wait() -> None:
    result = simulate(preset("port-exhaustion"))
    (line,) = result.warnings
    assert f"{result.summary.connections_refused:,} connection attempts refused" in line
    assert "28,232 connections" in line and "time_wait_s=60 s" in line and line.endswith("(raise client_addresses)")


def test_thread_starvation_is_told_apart_from_a_busy_cpu() -> None:
    result = simulate(preset("thread-starvation"))
    summary = result.summary
    dropped = [line for line in result.warnings if " dropped" in line]
    assert len(dropped) == 1 and dropped[0].startswith(f"warning: {summary.connections_dropped:,} connections")
    assert "server_timeout_s=30 s" in dropped[0] and "thread pool was starved" in dropped[0]
    peak = max(s.cpu_utilization for s in result.records.resources if s.cpu_utilization >= 0)
    assert peak < 0.9 and f"CPU peaked at {peak:.0%}" in dropped[0]
