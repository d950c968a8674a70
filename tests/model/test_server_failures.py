"""Server loss (crash, partition, deploy) and the reconnect storm it can start."""

from __future__ import annotations

import pytest

from simscale import preset, simulate
from simscale.cli import main


def _small(kind: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        clients=300,
        duration_s=80.0,
        warmup_s=1.0,
        broadcast_rate_per_s=1.0,
        seed=2,
        server_failure_kind=kind,
        server_failure_at_s=5.0,
        server_failure_server=1,
        server_failure_duration_s=20.0,
    )
    return {**base, **fields}


def _connections(result: object, time_s: float) -> list[int]:
    frame = result.frames()["resources"]  # type: ignore[attr-defined]
    return frame[frame["time_s"] == time_s].sort_values("server")["connections"].tolist()


def test_a_crash_drops_its_clients_at_once_and_they_reconnect_to_the_survivors() -> None:
    result = simulate(preset("no-backplane", **_small("crash")))
    drops = [(e.time_s, e.server, e.clients) for e in result.records.connections if e.reason == "server_crash"]
    assert drops == [(5.0, 1, 100)]
    assert _connections(result, 10.0) == [150, 0, 150]
    # Back at 25 s it takes new connections, but nobody moves back by themselves.
    assert _connections(result, 30.0) == [150, 0, 150]


def test_a_partition_is_noticed_only_after_the_server_timeout() -> None:
    result = simulate(preset("no-backplane", **_small("partition", server_failure_duration_s=60.0)))
    times = [e.time_s for e in result.records.connections if e.event == "dropped"]
    assert sum(e.clients for e in result.records.connections if e.event == "dropped") == 100
    # Each client last heard a ping within 15 s before the partition, then waits its 30 s.
    assert min(times) >= 5.0 + 30.0 - 15.0 and max(times) <= 5.0 + 30.0 + 1.0
    assert _connections(result, 19.0)[1] == 100  # not noticed yet
    assert _connections(result, 40.0)[1] == 0


def test_a_partition_that_heals_before_the_timeout_drops_nobody() -> None:
    result = simulate(preset("no-backplane", **_small("partition", server_failure_duration_s=10.0)))
    assert result.summary.connections_dropped == 0


def test_a_deploy_restarts_every_server_in_turn_draining_each() -> None:
    result = simulate(preset("no-backplane", **_small("deploy", deploy_interval_s=20.0, server_failure_duration_s=5.0)))
    drains = [(e.time_s, e.server) for e in result.records.connections if e.reason == "server_drain"]
    assert sorted({(time_s, server) for time_s, server in drains}) == [(5.0, 1), (25.0, 2), (45.0, 0)]
    assert sum(_connections(result, 79.0)) == 300  # everyone back on


def test_no_server_up_refuses_with_its_reason() -> None:
    result = simulate(preset("single-server", **{**_small("crash"), "server_failure_server": 0}))
    reasons = {e.reason for e in result.records.connections if e.event == "refused"}
    assert reasons == {"no_server_up"}


def _failures(**fields: object) -> int:
    summary = simulate(preset("reconnect-storm", **fields)).summary
    assert summary.connections_refused is not None and summary.connections_dropped is not None
    return summary.connections_refused + summary.connections_dropped


def test_jitter_ends_the_reconnect_storm() -> None:
    lockstep, jittered = _failures(), _failures(reconnect_jitter=0.5)
    assert jittered < lockstep / 2


def test_the_storm_outlives_the_failed_server_without_jitter() -> None:
    result = simulate(preset("reconnect-storm"))
    back_s = result.scenario.server_failure_at_s + result.scenario.server_failure_duration_s
    late = [e for e in result.records.connections if e.event == "refused" and e.time_s > back_s + 30.0]
    assert sum(e.clients for e in late) > 500
    assert sum(_connections(result, 115.0)) < 0.8 * result.scenario.clients


@pytest.mark.parametrize("fields", [{"max_concurrent_handshakes": 150}, {"min_threads": 40}])
def test_an_admission_limit_or_more_minimum_threads_end_it_too(fields: dict[str, object]) -> None:
    result = simulate(preset("reconnect-storm", **fields))
    assert sum(_connections(result, 115.0)) == result.scenario.clients
    assert _failures(**fields) < _failures() / 2


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"server_failure_kind": "crash", "server_failure_at_s": 70.0}, "server_failure_at_s"),
        ({"server_failure_server": 3}, "server_failure_server"),
        ({"server_failure_kind": "meteor"}, "server_failure_kind"),
    ],
)
def test_bad_failure_fields_name_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        preset("no-backplane", **fields)


def test_cli_rejects_a_failure_outside_the_run_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "reconnect-storm", "--set", "server_failure_at_s=500"]) == 2
    err = capsys.readouterr().err.strip()
    assert "server_failure_at_s" in err and len(err.splitlines()) == 1
