"""The closed forms against textbook values and their limiting cases."""

from __future__ import annotations

import math

import pytest

from simscale.metrics.queueing import (
    erlang_b,
    erlang_c,
    mmc_mean_wait_s,
    pollaczek_khinchine_wait_s,
    servers_for_blocking,
    servers_for_wait_probability,
)


def test_erlang_b_small_cases() -> None:
    assert erlang_b(0.0, 3) == 0.0
    assert erlang_b(1.0, 1) == pytest.approx(0.5)  # A / (1 + A)
    assert erlang_b(2.0, 2) == pytest.approx(0.4)  # (A²/2) / (1 + A + A²/2)
    # A classic traffic table value: 10 erlangs on 15 lines blocks about 3.6 %.
    assert erlang_b(10.0, 15) == pytest.approx(0.03649, abs=1e-4)


def test_erlang_b_is_stable_for_large_pools() -> None:
    # 28,232 ports: half loaded blocks nothing; 10 % overloaded blocks about 1 - 1/1.1.
    assert erlang_b(14_000.0, 28_232) < 1e-12
    assert erlang_b(31_055.0, 28_232) == pytest.approx(1 - 28_232 / 31_055, abs=0.01)


def test_erlang_c_small_cases() -> None:
    assert erlang_c(0.5, 1) == pytest.approx(0.5)  # M/M/1: P(wait) = ρ
    assert erlang_c(1.0, 2) == pytest.approx(1 / 3)
    assert erlang_c(2.0, 2) == 1.0
    assert erlang_c(10.0, 15) == pytest.approx(0.1013, abs=1e-3)


def test_mean_waits() -> None:
    # M/M/1 at ρ = 0.8: Wq = ρ/(μ - λ) = 0.8 / (1 - 0.8) × 1 s = 4 s.
    assert mmc_mean_wait_s(0.8, 1.0, 1) == pytest.approx(4.0)
    assert pollaczek_khinchine_wait_s(0.8, 1.0, service_scv=1.0) == pytest.approx(4.0)
    # M/D/1 waits half as long as M/M/1.
    assert pollaczek_khinchine_wait_s(0.8, 1.0) == pytest.approx(2.0)
    assert math.isinf(mmc_mean_wait_s(3.0, 1.0, 2))
    assert math.isinf(pollaczek_khinchine_wait_s(1.0, 1.0))


def test_sizing_helpers() -> None:
    assert servers_for_blocking(10.0, 0.05) == 15
    assert erlang_b(10.0, servers_for_blocking(10.0, 0.01)) <= 0.01
    chosen = servers_for_wait_probability(10.0, 0.2)
    assert erlang_c(10.0, chosen) <= 0.2 < erlang_c(10.0, chosen - 1)


@pytest.mark.parametrize(("load", "servers"), [(-1.0, 2), (1.0, 0), (math.nan, 1)])
def test_bad_input_names_the_problem(load: float, servers: int) -> None:
    with pytest.raises(ValueError):
        erlang_b(load, servers)
