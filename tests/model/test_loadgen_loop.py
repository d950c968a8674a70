"""The modelled load generator: one event loop that reads in passes and sends when it gets to it."""

from __future__ import annotations

import pytest

from simscale.metrics.records import DeliveryRecord
from simscale.scenarios import Scenario, simulate

# A fast hub (1 µs per recipient) and a load generator whose reading dominates the latency.
LOOP = {
    "client_host": "one-loop",
    "server_profile": "asyncio-hub",
    "clients": 200,
    "shared_host_cores": 2,
    "send_cpu_per_recipient_s": 1e-6,
    "loadgen_cpu_per_delivery_s": 5e-6,
    "loadgen_cpu_per_read_s": 5e-6,
}


def p50_ms(scenario: Scenario) -> float:
    value = simulate(scenario).summary.latency_p50_ms
    assert value is not None
    return value


def test_every_pass_that_reads_pays_a_wake_up() -> None:
    quiet = Scenario(**LOOP, duration_s=10.0, warmup_s=1.0, broadcast_rate_per_s=2.0)  # type: ignore[arg-type]
    cheap = p50_ms(quiet)
    # An idle loop's first pass finds one socket ready (the hub has only begun writing); by the time
    # that pass is over every other message has arrived, and the second pass reads them all. The
    # median read waits for both passes' wake-ups.
    assert p50_ms(quiet.replace(loadgen_cpu_per_wakeup_s=1e-3)) == pytest.approx(cheap + 2.0, abs=0.3)


def _fan_outs(offsets_s: tuple[float, ...]) -> tuple[list[float], list[DeliveryRecord]]:
    scenario = Scenario(
        **LOOP,  # type: ignore[arg-type]
        loadgen_cpu_per_wakeup_s=0.0,
        duration_s=2.0,
        warmup_s=0.5,
        broadcast_offsets_s=offsets_s,
        loadgen_cpu_per_send_s=0.0,
    ).replace(loadgen_cpu_per_delivery_s=50e-6, loadgen_cpu_per_read_s=0.0)
    records = simulate(scenario).records
    sends = [record.sent_at_s for record in sorted(records.broadcasts, key=lambda r: r.broadcast_id)]
    return sends, sorted(records.deliveries, key=lambda record: record.broadcast_id)


def test_an_idle_loop_sends_on_time() -> None:
    sends, fan_outs = _fan_outs((1.0, 1.1))
    assert sends == pytest.approx([1.0, 1.1], abs=1e-9)
    assert [fan_out.delivered for fan_out in fan_outs] == [200, 200]


def test_a_busy_loop_sends_late_and_does_not_count_the_wait() -> None:
    # 200 messages at 50 µs each: the first fan-out keeps the loop busy for 10 ms.
    sends, fan_outs = _fan_outs((1.0, 1.002))
    first, second = fan_outs
    # The second broadcast's timer is noticed only by the pass after the one that was reading, and the
    # task runs in the pass after that: it goes out once (nearly all of) the first fan-out has been
    # read, and is stamped then.
    assert sends[1] - 1.002 > 0.008
    assert sends[1] > first.sent_at_s + 0.9 * first.latency_max_s
    # So it meets an idle loop, and its latency is that of the first, not the first's plus the wait.
    assert second.latency_mean_s == pytest.approx(first.latency_mean_s, rel=0.1)


def test_broadcasts_overdue_together_go_out_together() -> None:
    sends, _ = _fan_outs((1.0, 1.002, 1.004, 1.006))
    # All three fell due while the first fan-out was being read: one task run sends them back to back.
    assert sends[1] == pytest.approx(sends[2]) == pytest.approx(sends[3])


def _far_behind(duration_s: float, drain_s: float) -> Scenario:
    """200 messages at 0.5 ms each: 10 fan-outs/s at most, 40 offered: sends fall seconds behind."""
    return Scenario(
        **LOOP,  # type: ignore[arg-type]
        duration_s=duration_s,
        warmup_s=0.5,
        drain_s=drain_s,
        broadcast_rate_per_s=40.0,
    ).replace(loadgen_cpu_per_delivery_s=0.5e-3, loadgen_cpu_per_read_s=0.0)


def test_the_drain_runs_from_the_last_send_and_reads_every_late_broadcast() -> None:
    scenario = _far_behind(duration_s=3.0, drain_s=1.0)
    result = simulate(scenario)
    records = result.records
    last_send_s = max(record.sent_at_s for record in records.broadcasts)
    assert last_send_s > scenario.duration_s + scenario.drain_s  # the busy loop sent late
    last_read_s = max(record.sent_at_s + record.latency_max_s for record in records.deliveries)
    # The drain ran on after it (and, as the real loop does, finished the pass it was in).
    assert last_read_s > last_send_s
    # Every broadcast sent, however late, was read before the drain ended.
    assert {record.broadcast_id for record in records.deliveries} == {
        record.broadcast_id for record in records.broadcasts
    }
    assert result.summary.delivered_fraction == pytest.approx(1.0)


def test_a_drain_that_ends_mid_pass_counts_that_pass_and_the_next_one() -> None:
    # The deadline (1 ms after the last send) falls inside the long pass that began with that send;
    # the sockets it read before the last fan-outs reached them still hold those. The real loop's
    # broadcast task sees its deadline only in the pass after next, so the pass after the one in
    # progress reads every socket ready by then: everything sent is read.
    result = simulate(_far_behind(duration_s=2.0, drain_s=1e-3))
    assert result.summary.delivered_fraction == pytest.approx(1.0)
    # With no drain at all it stops right after its last send: that pass's reads are not counted.
    assert (simulate(_far_behind(duration_s=2.0, drain_s=0.0)).summary.delivered_fraction or 0) < 0.99


def test_without_a_drain_the_broadcasts_still_due_are_sent_and_counted() -> None:
    scenario = _far_behind(duration_s=2.0, drain_s=0.0)
    result = simulate(scenario)
    assert max(record.sent_at_s for record in result.records.broadcasts) > scenario.duration_s
    fraction = result.summary.delivered_fraction
    assert fraction is not None and 0 < fraction < 1  # the last fan-outs cut off by the missing drain


# The hub writes each fan-out for 4 ms (200 sockets at 20 µs); the loop reads faster than that.
WRITES_4_MS = Scenario(
    **{**LOOP, "send_cpu_per_recipient_s": 20e-6},  # type: ignore[arg-type]
    duration_s=10.0,
    warmup_s=1.0,
    broadcast_rate_per_s=5.0,
)


def test_a_stalled_loop_reads_a_quiet_fan_out_only_once_it_is_written() -> None:
    side_by_side = simulate(WRITES_4_MS).records.deliveries
    # A stall far longer than any fan-out: the woken loop waits on the hub's core until it is written.
    stalled = simulate(WRITES_4_MS.replace(loadgen_stall_mean_s=1.0)).records.deliveries
    assert min(record.latency_mean_s for record in side_by_side) < 4e-3  # read while being written
    assert min(record.latency_mean_s for record in stalled) > 4e-3  # every read after the last write
    assert all(record.delivered == record.recipients for record in stalled)


def test_stalls_shrink_as_the_loop_gets_busier() -> None:
    # Reading a fan-out now takes the loop 60 ms: it is busy about 30 % of the time at 5 fan-outs/s.
    busy = WRITES_4_MS.replace(loadgen_cpu_per_delivery_s=150e-6, loadgen_cpu_per_read_s=150e-6)
    plain = p50_ms(busy)
    assert p50_ms(busy.replace(loadgen_stall_mean_s=1.0, loadgen_stall_busy_scale=100.0)) > plain + 1.5
    # exp(-0.3 / 0.01): a loop that busy is moved off the hub's core at once.
    assert p50_ms(busy.replace(loadgen_stall_mean_s=1.0, loadgen_stall_busy_scale=0.01)) == pytest.approx(
        plain, abs=1.5
    )


def test_the_client_host_is_chosen_by_its_field_never_by_a_cost_above_zero() -> None:
    costly_but_free = Scenario(**{**LOOP, "client_host": "free"}, duration_s=4.0, warmup_s=1.0)  # type: ignore[arg-type]
    costless = costly_but_free.replace(loadgen_cpu_per_delivery_s=0.0, loadgen_cpu_per_read_s=0.0)
    one_loop = costly_but_free.replace(client_host="one-loop")
    free_summary, costless_summary = simulate(costly_but_free).summary, simulate(costless).summary
    assert free_summary.latency_p50_ms == costless_summary.latency_p50_ms
    assert free_summary.latency_p99_ms == costless_summary.latency_p99_ms
    assert p50_ms(one_loop) > p50_ms(costless)
