"""The host probe and the placement: validated records, a real probe, and the overrides it gives the model."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from simscale.config.scenario import Scenario
from simscale.validation.host import (
    HostSpeed,
    Placement,
    host_placement,
    model_host_fields,
    probe_host,
    probe_hub_share,
    probe_loadgen_share,
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cores": 0}, "cores"),
        ({"time_slice_s": 0.0}, "time_slice_s"),
        ({"time_slice_s": -1e-3}, "time_slice_s"),
        ({"parallel_speed": 0.0}, "parallel_speed"),
        ({"parallel_speed": 1.01}, "parallel_speed"),
        ({"parallel_speed": float("nan")}, "parallel_speed"),
    ],
)
def test_host_speed_rejects_bad_values_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    values: dict[str, float] = {"cores": 2, "time_slice_s": 1e-3, "parallel_speed": 0.5} | kwargs
    with pytest.raises(ValueError, match=field):
        HostSpeed(**values)  # type: ignore[arg-type]


def test_placement_rejects_overlap_and_half_pinning() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Placement(hub_cores=frozenset({0, 1}), loadgen_cores=frozenset({1}))
    with pytest.raises(ValueError, match="both"):
        Placement(hub_cores=frozenset({0}), loadgen_cores=None)
    with pytest.raises(ValueError, match="hub_cores"):
        Placement(hub_cores=frozenset(), loadgen_cores=frozenset({1}))


@pytest.mark.parametrize(
    ("available", "hub", "loadgen"),
    [
        (frozenset({3}), None, None),
        (frozenset({0, 1}), frozenset({0}), frozenset({1})),
        (frozenset({2, 5}), frozenset({2}), frozenset({5})),
        (frozenset({0, 1, 2, 3}), frozenset({0, 1, 2}), frozenset({3})),
    ],
)
def test_placement_pins_the_load_generator_to_the_highest_core_from_two_cores(
    available: frozenset[int], hub: frozenset[int] | None, loadgen: frozenset[int] | None
) -> None:
    placement = host_placement(available)
    assert (placement.hub_cores, placement.loadgen_cores) == (hub, loadgen)
    assert placement.pinned == (len(available) >= 2)
    if placement.hub_cores is not None and placement.loadgen_cores is not None:
        assert placement.hub_cores | placement.loadgen_cores == available
    assert host_placement(available) == placement  # deterministic


def test_placement_defaults_to_this_process_affinity() -> None:
    cores = frozenset(os.sched_getaffinity(0))
    assert host_placement() == host_placement(cores)


def test_model_host_fields_are_scenario_fields_and_model_the_placement() -> None:
    speed = HostSpeed(cores=4, time_slice_s=2.5e-3, parallel_speed=0.7)
    names = {field.name for field in dataclasses.fields(Scenario)}
    pinned = model_host_fields(speed, host_placement(frozenset({0, 1, 2, 3})))
    shared = model_host_fields(speed, host_placement(frozenset({0})))
    assert set(pinned) <= names and set(shared) <= names
    assert pinned["shared_host_cores"] == 3 and pinned["loadgen_own_cores"] == 1
    assert shared["shared_host_cores"] == 4 and shared["loadgen_own_cores"] == 0
    for fields in (pinned, shared):
        assert fields["cpu_time_slice_s"] == speed.time_slice_s
        assert fields["cpu_parallel_speed"] == speed.parallel_speed
    # The overrides are valid Scenario values.
    Scenario(**pinned)  # type: ignore[arg-type]


def test_probe_host_measures_sane_values_within_its_budget() -> None:
    began = time.monotonic()
    speed = probe_host(budget_s=0.6)
    elapsed_s = time.monotonic() - began
    assert speed.cores == len(os.sched_getaffinity(0))
    # A scheduler slice is between 0.1 ms and the phase itself (0.4 x budget).
    assert 1e-4 <= speed.time_slice_s <= 0.4 * 0.6
    assert 0 < speed.parallel_speed <= 1
    assert elapsed_s < 0.6 + 10.0  # the budget plus the workers' start-up on a loaded machine


def test_probe_host_on_one_core_has_no_parallel_speed_to_lose() -> None:
    core = max(os.sched_getaffinity(0))
    speed = probe_host(budget_s=0.3, available=frozenset({core}))
    assert speed.cores == 1 and speed.parallel_speed == 1.0
    assert speed.time_slice_s > 0


def test_probe_host_rejects_a_bad_budget() -> None:
    with pytest.raises(ValueError, match="budget_s"):
        probe_host(budget_s=0.0)


def test_probe_hub_share_is_a_share_and_sees_a_cpu_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    placement = host_placement()
    share = probe_hub_share(placement, budget_s=0.3)
    assert 0 <= share <= 0.95
    with pytest.raises(ValueError, match="budget_s"):
        probe_hub_share(placement, budget_s=0.0)
    root = Path("/sys/fs/cgroup/cpu")
    if not (root / "cgroup.procs").exists() or not os.access(root, os.W_OK):
        pytest.skip("no writable cgroup v1 cpu hierarchy")
    cgroup = root / f"simscale-test-share-{os.getpid()}"
    try:
        cgroup.mkdir()
    except OSError as error:
        pytest.skip(f"cannot create a cgroup: {error}")
    try:
        (cgroup / "cpu.cfs_period_us").write_text("100000\n")
        (cgroup / "cpu.cfs_quota_us").write_text("40000\n")  # 40 % of one core
        monkeypatch.setenv("SIMSCALE_HUB_CGROUP", str(cgroup))
        # Other work only adds to what the quota takes: at least 60 % gone, less the probe's own noise.
        assert probe_hub_share(placement, budget_s=0.5) >= 0.5
    finally:
        cgroup.rmdir()


def test_probe_loadgen_share_is_zero_unpinned_and_a_share_pinned() -> None:
    assert probe_loadgen_share(Placement(hub_cores=None, loadgen_cores=None)) == 0.0
    placement = host_placement()
    if not placement.pinned:
        pytest.skip("one core: the load generator has no core of its own")
    assert 0 <= probe_loadgen_share(placement, budget_s=0.3) <= 0.95
