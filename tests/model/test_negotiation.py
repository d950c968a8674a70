"""Negotiate and transport as two requests through the balancer, held to the closed form."""

from __future__ import annotations

import math

import pytest

from simscale import preset, simulate
from simscale.cli import main


def _first_connects(**fields: object) -> float:
    scenario = preset(
        "sticky-sessions", clients=2_000, connect_ramp_s=4.0, duration_s=6.0, warmup_s=1.0, seed=5, **fields
    )
    fraction = simulate(scenario).summary.first_connect_failed_fraction
    assert fraction is not None
    return fraction


@pytest.mark.parametrize("servers", [2, 4])
def test_random_balancer_with_negotiation_fails_n_minus_one_over_n_of_first_connects(servers: int) -> None:
    fraction = _first_connects(servers=servers, load_balancer="random")
    expected = (servers - 1) / servers
    sigma = math.sqrt(expected * (1 - expected) / 2_000)
    assert abs(fraction - expected) < 4 * sigma


@pytest.mark.parametrize(
    "fields",
    [
        {"load_balancer": "sticky-ip"},
        {"load_balancer": "sticky-cookie"},
        {"load_balancer": "sticky-cookie", "transport": "long-polling"},
        {"load_balancer": "random", "skip_negotiation": True},
    ],
)
def test_sticky_balancers_and_skipped_negotiation_always_connect(fields: dict[str, object]) -> None:
    assert _first_connects(**fields) == 0.0


def test_the_404s_are_refused_connections_with_their_reason() -> None:
    result = simulate(preset("sticky-sessions", clients=300, duration_s=12.0, warmup_s=1.0, seed=1))
    reasons = {e.reason for e in result.records.connections if e.event == "refused"}
    assert reasons == {"negotiate_404"}
    refused = sum(e.clients for e in result.records.connections if e.reason == "negotiate_404")
    assert refused == result.summary.connections_refused > 0


def test_defaults_make_one_request_and_every_first_connect_succeeds() -> None:
    # Clients connected at time 0 go through the same admission, so they count as first connects that worked.
    result = simulate(preset("no-backplane", clients=60, duration_s=3.0, warmup_s=1.0, seed=1))
    assert result.summary.connections_refused == 0
    assert result.records.first_connects_attempted == 60
    assert result.summary.first_connect_failed_fraction == 0.0


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"transport": "carrier-pigeon"}, "transport"),
        ({"load_balancer": "sticky-session"}, "load_balancer"),
        ({"transport": "long-polling"}, "skip_negotiation"),
    ],
)
def test_bad_transport_fields_name_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        preset("no-backplane", **fields)


def test_cli_rejects_an_unknown_transport_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "sticky-sessions", "--set", "transport=smoke-signals"]) == 2
    err = capsys.readouterr().err.strip()
    assert "transport" in err and len(err.splitlines()) == 1


def test_the_warning_names_the_balancer_that_is_not_sticky() -> None:
    result = simulate(preset("sticky-sessions", clients=300, duration_s=12.0, warmup_s=1.0, seed=1))
    assert any("not sticky" in line and "'round-robin'" in line for line in result.warnings)
