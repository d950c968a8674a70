"""Vectorised fan-outs agree with the per-server reference.

The delivered fraction must be exactly equal for every seed; p50 and p99 latency, which come from different
random draws in the two modes, must agree within sampling error: a Mann-Whitney U test over the
per-replication percentiles of 8 seeds per mode may not reject at alpha = 0.01. The same test must
reject a reference that is really different (0.5 ms more network latency), so it can fail.
"""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import mannwhitneyu

from simscale.scenarios import SimulationResult, preset, simulate

SEEDS = range(8)
ALPHA = 0.01

_SHORT: dict[str, Any] = {"duration_s": 8.0, "warmup_s": 2.0, "drain_s": 1.0}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "single-server": ("single-server", _SHORT),
    "no-backplane": ("no-backplane", _SHORT),
    "backplane": ("backplane", _SHORT),
    # Many servers, each about half busy with fan-outs: the cores' queueing is what is compared.
    "large": (
        "backplane",
        {**_SHORT, "servers": 30, "clients": 6_000, "broadcast_rate_per_s": 40.0, "send_cpu_per_recipient_s": 1e-4},
    ),
}


def _runs(name: str, mode: str, **changes: Any) -> list[SimulationResult]:
    base, overrides = CASES[name]
    return [simulate(preset(base, seed=seed, fan_out_mode=mode, **{**overrides, **changes})) for seed in SEEDS]


def _p_values(a: list[SimulationResult], b: list[SimulationResult]) -> dict[str, float]:
    return {
        key: float(
            mannwhitneyu(
                [getattr(run.summary, key) for run in a], [getattr(run.summary, key) for run in b], method="exact"
            ).pvalue
        )
        for key in ("latency_p50_ms", "latency_p99_ms")
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_vectorised_fan_outs_agree_with_the_per_server_reference(name: str) -> None:
    reference, vectorised = _runs(name, "per-server"), _runs(name, "vectorised")
    for ref, vec in zip(reference, vectorised, strict=True):
        # Exactly the same deliveries, and nothing refused or lost in either mode.
        # (The two modes draw different random numbers, so the broadcasts themselves differ by seed.)
        assert vec.summary.delivered_fraction == ref.summary.delivered_fraction
        assert vec.summary.delivered_fraction_all_clients == ref.summary.delivered_fraction_all_clients
        assert (vec.summary.connections_refused, vec.summary.connections_dropped) == (
            ref.summary.connections_refused,
            ref.summary.connections_dropped,
        )
        assert vec.backplane_lost_publishes == ref.backplane_lost_publishes
    p_values = _p_values(reference, vectorised)
    assert min(p_values.values()) > ALPHA, p_values
    if name == "large":
        # Events per broadcast no longer grow with the servers.
        assert vectorised[0].summary.events * 5 < reference[0].summary.events


def test_the_agreement_check_rejects_a_real_difference() -> None:
    latency_s = preset("single-server").network_latency_s
    slower = _runs("single-server", "per-server", network_latency_s=latency_s + 0.5e-3)
    p_values = _p_values(slower, _runs("single-server", "vectorised"))
    assert max(p_values.values()) < ALPHA, p_values


def test_vectorised_applies_only_where_servers_can_be_booked_together() -> None:
    assert preset("backplane").fan_out_per_server_reasons == ()
    sliced = preset("no-backplane", shared_host_cores=2, cpu_time_slice_s=1.5e-3, client_host="one-loop")
    assert sliced.fan_out_per_server_reasons == (
        "shared_host_cores > 0",
        "cpu_time_slice_s > 0",
        "client_host is one-loop",
    )
    # A fallback gives exactly the reference run.
    fallback, reference = (
        simulate(sliced.replace(duration_s=4.0, warmup_s=1.0, clients=300, fan_out_mode=mode))
        for mode in ("vectorised", "per-server")
    )
    unpinned = {"wall_s": 0, "parameters": {}}
    assert fallback.to_json_dict() | unpinned == reference.to_json_dict() | unpinned


def test_fan_out_mode_is_validated() -> None:
    with pytest.raises(ValueError, match=r"fan_out_mode.*'vectorised', 'per-server'"):
        preset("backplane", fan_out_mode="together")
