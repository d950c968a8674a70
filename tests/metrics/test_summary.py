"""The summary's figures from records: which clients each one counts, and the busy-period CPU."""

from __future__ import annotations

import pytest

from simscale.metrics.records import BroadcastRecord, DeliveryRecord, ResourceSample, RunRecords, RunSummary
from simscale.metrics.summary import summarize


def _records(connected: list[int], delivered: list[int], cpu_by_time: dict[float, tuple[float, float]]) -> RunRecords:
    records = RunRecords()
    for broadcast_id, (online, got) in enumerate(zip(connected, delivered, strict=True)):
        records.broadcasts.append(BroadcastRecord("model", "t", broadcast_id, 0, 1.0 + broadcast_id, online))
        records.deliveries.append(DeliveryRecord("model", "t", broadcast_id, 0, 0, 1.0, online, got, 0.01, 0.02))
    for time_s, (first, second) in cpu_by_time.items():
        records.resources.append(ResourceSample("model", "t", time_s, 0, first, 10, 1e6))
        records.resources.append(ResourceSample("model", "t", time_s, 1, second, 10, 1e6))
    return records


def _summary(records: RunRecords, clients: int) -> RunSummary:
    return summarize(
        records, scenario="t", servers=2, clients=clients, duration_s=10.0, warmup_s=2.0, wall_s=None, events=None
    )


def test_delivered_fraction_counts_the_connected_and_all_clients_counts_everyone() -> None:
    records = _records(connected=[40, 60], delivered=[40, 60], cpu_by_time={})
    records.clients_ever_connected = 70
    summary = _summary(records, clients=200)
    assert summary.delivered_fraction == 1.0
    assert summary.clients_connected == 50.0
    assert summary.clients_never_connected == 130
    assert summary.delivered_fraction_all_clients == pytest.approx(100 / (2 * 200))


def test_never_connected_is_unknown_when_the_source_does_not_track_it() -> None:
    summary = _summary(_records([5], [5], {}), clients=10)
    assert summary.clients_never_connected is None


def test_cpu_mean_and_peak_exclude_the_warmup_and_the_drain() -> None:
    # Server 1 is busiest in the broadcast phase (2, 10]; the warm-up and the drain hold higher
    # and lower samples that must not count.
    cpu = {1.0: (0.99, 0.99), 4.0: (0.2, 0.9), 7.0: (0.3, 0.7), 10.0: (0.1, 0.8), 12.0: (0.0, 0.0), 14.0: (1.0, 0.0)}
    summary = _summary(_records([1], [1], cpu), clients=1)
    assert summary.cpu_utilization_max == pytest.approx((0.9 + 0.7 + 0.8) / 3)
    assert summary.cpu_utilization_peak == 0.9


def test_no_broadcasts_leaves_the_per_broadcast_figures_unknown() -> None:
    summary = _summary(RunRecords(), clients=10)
    assert summary.clients_connected is None
    assert summary.delivered_fraction_all_clients is None
    assert summary.cpu_utilization_peak is None


def test_clients_connected_counts_every_client_for_group_sends_too() -> None:
    # A group send records only its audience's connected members; the summary's figure is still every
    # client connected anywhere (here all 600 stay connected).
    from simscale import preset, simulate

    scenario = preset("small-groups", clients=600, groups=60, duration_s=6.0, warmup_s=2.0, seed=3)
    summary = simulate(scenario).summary
    assert summary.clients_connected == 600
    assert summary.delivered_fraction == 1.0
