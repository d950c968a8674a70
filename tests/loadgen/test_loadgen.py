"""The load generator: configuration, schedule, and full runs against real hub servers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import resource
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest

from simscale.backplane.memory import MemoryBackplane, MemoryBus
from simscale.cli import main
from simscale.client.hub_client import HubConnectionError
from simscale.hub.server import HubServer
from simscale.loadgen import LoadConfig, LoadResult, run_load
from simscale.loadgen.runner import ConnectionFailure, describe_failure, poisson_offsets_s, raise_open_file_limit
from simscale.metrics.records import ConnectionEventKind

SUMMARY_KEYS = {
    "clients",
    "duration_s",
    "broadcasts",
    "delivered_fraction",
    "latency_p50_ms",
    "latency_p99_ms",
    "connections_refused",
    "connections_dropped",
    "wall_s",
    "loadgen_cpu_s",
    "simscale_version",
}


@asynccontextmanager
async def hub_cluster(servers: int) -> AsyncIterator[list[str]]:
    """``servers`` real hub servers on 127.0.0.1 sharing one private in-memory backplane."""
    bus = MemoryBus()
    hubs = [HubServer(backplane=MemoryBackplane(bus), server_name=f"s{i}") for i in range(servers)]
    urls = [f"{await hub.listen()}/chatHub" for hub in hubs]
    try:
        yield urls
    finally:
        for hub in hubs:
            await hub.close()


def free_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/chatHub"  # nothing listens there any more


# ---- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        ({"urls": ()}, "--url"),
        ({"urls": ("ftp://x",)}, "--url"),
        ({"clients": 0}, "--clients"),
        ({"clients": True}, "--clients"),
        ({"broadcast_rate_per_s": -1.0}, "--broadcast-rate"),
        ({"broadcast_rate_per_s": math.nan}, "--broadcast-rate"),
        ({"duration_s": 0.0}, "--duration"),
        ({"protocol": "xml"}, "--protocol"),
        ({"message_bytes": -1}, "--message-bytes"),
        ({"warmup_s": -0.1}, "--warmup"),
        ({"seed": -1}, "--seed"),
        ({"connect_concurrency": 0}, "--connect-concurrency"),
        ({"connect_timeout_s": 0.0}, "--connect-timeout"),
        ({"drain_s": 100.0}, "--drain"),
    ],
)
def test_bad_configuration_names_the_flag(change: dict[str, object], flag: str) -> None:
    arguments: dict[str, object] = {"urls": ("http://127.0.0.1:1/chatHub",), "clients": 1, **change}
    with pytest.raises(ValueError, match=flag):
        LoadConfig(**arguments)  # type: ignore[arg-type]


def test_poisson_schedule_is_seeded_and_has_the_right_rate() -> None:
    first = poisson_offsets_s(200.0, 10.0, np.random.default_rng(7))
    again = poisson_offsets_s(200.0, 10.0, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert abs(len(first) - 2000) < 5 * math.sqrt(2000)
    assert np.all(np.diff(first) > 0) and first[-1] < 10.0
    assert len(poisson_offsets_s(0.0, 10.0, np.random.default_rng(7))) == 0


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    raised = raise_open_file_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == raised
    assert soft == hard or hard == resource.RLIM_INFINITY


def test_cli_bad_flags_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for flags, name in [
        (["--clients", "many"], "--clients"),
        (["--clients", "2", "--duration", "-3"], "--duration"),
        (["--clients", "2", "--protocol", "xml"], "--protocol"),
        (["--clients", "2", "--send-target", "room"], "--send-target"),
        (["--clients", "2", "--send-target", "group", "--group-size", "3"], "--group-size"),
        (["--clients", "2", "--send-target", "group", "--groups", "0"], "--groups"),
        (["--clients", "4", "--send-target", "group", "--groups", "3", "--group-size", "2"], "--groups"),
        (["--clients", "2", "--send-target", "user", "--connections-per-user", "3"], "--connections-per-user"),
    ]:
        assert main(["loadgen", "--url", "http://127.0.0.1:1/chatHub", *flags]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and name in error


# ---- runs against real hubs ---------------------------------------------------------------------


def check_consistency(result: LoadResult) -> None:
    records, summary = result.records, result.summary
    assert summary.source == "hub"
    assert summary.broadcasts == len(records.broadcasts)
    assert summary.deliveries == sum(d.delivered for d in records.deliveries)
    assert math.isclose(records.latency.count, summary.deliveries or 0)
    for broadcast in records.broadcasts:
        assert broadcast.source == "hub"
        assert broadcast.connected_clients == sum(
            d.recipients for d in records.deliveries if d.broadcast_id == broadcast.broadcast_id
        )


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_single_server_run_delivers_everything(protocol: str) -> None:
    async with hub_cluster(1) as urls:
        config = LoadConfig(
            urls=tuple(urls),
            clients=20,
            broadcast_rate_per_s=40.0,
            duration_s=1.0,
            protocol=protocol,  # type: ignore[arg-type]
            message_bytes=300,
            seed=3,
        )
        phases: list[tuple[str, int]] = []
        result = await run_load(config, on_phase=lambda phase: phases.append((phase, len(phases))))
    summary = result.summary
    check_consistency(result)
    assert [phase for phase, _ in phases] == ["broadcast_start", "broadcast_end"]
    # The broadcast phase's own figures: counted in the loop's thread, between the two calls.
    assert 0 < result.broadcast_cpu_s <= result.loadgen_cpu_s
    assert 1.0 <= result.broadcast_wall_s <= summary.wall_s
    deliveries = summary.deliveries or 0
    assert 0 < result.loop_wakeups <= result.socket_reads <= deliveries + 2 * summary.broadcasts  # + pings, acks
    assert result.connected_clients == 20
    assert summary.broadcasts is not None and 15 <= summary.broadcasts <= 80
    assert summary.delivered_fraction == 1.0
    assert summary.deliveries == 20 * summary.broadcasts
    assert summary.latency_p50_ms is not None and 0 < summary.latency_p50_ms < 1000
    assert summary.latency_p99_ms is not None and summary.latency_p99_ms >= summary.latency_p50_ms
    assert summary.connections_refused == 0 and summary.connections_dropped == 0
    assert summary.wall_s is not None and summary.wall_s >= 1.0
    assert summary.cpu_utilization_max is None and summary.events is None
    assert result.loadgen_cpu_s > 0
    events = {(e.event, e.reason): e.clients for e in result.records.connections}
    assert events == {(ConnectionEventKind.CONNECTED, "ok"): 20, (ConnectionEventKind.CLOSED, "client_stop"): 20}
    assert all(d.latency_max_s >= d.latency_mean_s > 0 for d in result.records.deliveries)


async def test_two_servers_round_robin_and_warmup() -> None:
    async with hub_cluster(2) as urls:
        result = await run_load(
            LoadConfig(urls=tuple(urls), clients=9, broadcast_rate_per_s=30.0, duration_s=1.0, warmup_s=0.5, seed=1)
        )
    check_consistency(result)
    connected = {e.server: e.clients for e in result.records.connections if e.event == "connected"}
    assert connected == {0: 5, 1: 4}
    assert result.summary.delivered_fraction == 1.0
    # Warm-up broadcasts are sent but not recorded: every record starts after it.
    first_sent = min(b.sent_at_s for b in result.records.broadcasts)
    last_connected = max(e.time_s for e in result.records.connections if e.event == "connected")
    assert first_sent >= last_connected + 0.5 - 0.05
    per_server = {(d.server, d.recipients) for d in result.records.deliveries}
    assert per_server == {(0, 5), (1, 4)}
    assert {b.origin_server for b in result.records.broadcasts} == {0, 1}


async def test_refused_connections_are_recorded_with_a_reason() -> None:
    async with hub_cluster(1) as urls:
        result = await run_load(
            LoadConfig(urls=(urls[0], free_port_url()), clients=6, broadcast_rate_per_s=20.0, duration_s=0.5)
        )
    check_consistency(result)
    assert result.summary.connections_refused == 3
    refused = [e for e in result.records.connections if e.event == ConnectionEventKind.REFUSED]
    assert [(e.server, e.reason, e.clients) for e in refused] == [(1, "connection_refused", 3)]
    assert result.summary.delivered_fraction == 1.0
    (failure,) = result.connection_failures
    dead = failure.url.removeprefix("http://").removesuffix("/chatHub")
    assert failure == ConnectionFailure(
        1, f"http://{dead}/chatHub", "connection_refused", f"connection refused ({dead})", 3
    )


# ---- why a connection failed, as the command prints it ------------------------------------------


def test_cli_says_a_closed_port_refused_the_connection(capsys: pytest.CaptureFixture[str]) -> None:
    url = free_port_url()
    address = url.removeprefix("http://").removesuffix("/chatHub")
    argv = ["loadgen", "--url", url, "--clients", "2", "--duration", "0.2", "--drain", "0"]
    assert main(argv) == 1  # nobody connected
    text = capsys.readouterr().out
    assert f"2 connections failed: 2 connection refused ({address})" in text.splitlines()
    assert main([*argv, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert set(document) >= SUMMARY_KEYS and document["connections_refused"] == 2  # the old keys stay
    assert document["connection_failures"] == [
        {
            "server": 0,
            "url": url,
            "reason": "connection_refused",
            "detail": f"connection refused ({address})",
            "clients": 2,
        }
    ]


async def test_cli_names_the_http_status_of_a_wrong_hub_path(capsys: pytest.CaptureFixture[str]) -> None:
    async with hub_cluster(1) as urls:
        wrong = urls[0].replace("/chatHub", "/noSuchHub")
        argv = ["loadgen", "--url", urls[0], "--url", wrong, "--clients", "5", "--duration", "0.3", "--drain", "0.1"]
        assert await asyncio.to_thread(main, argv) == 0  # the right URL's clients connected
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("clients: 5 requested, 3 connected, 2 refused")
        assert lines[1] == "2 connections failed: 2 HTTP 404 from /noSuchHub/negotiate"
        assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
    assert document["connection_failures"] == [
        {"server": 1, "url": wrong, "reason": "http_404", "detail": "HTTP 404 from /noSuchHub/negotiate", "clients": 2}
    ]
    assert document["connected_clients"] == 3


def test_one_failure_is_one_connection() -> None:
    from simscale.loadgen.cli import failures_text

    one = ConnectionFailure(0, "http://h:1/chatHub", "handshake_timeout", "no open connection within 15 s", 1)
    assert failures_text([one]) == "1 connection failed: 1 no open connection within 15 s"


def test_a_refused_handshake_reports_the_servers_message() -> None:
    # What the lean client raises when the server's handshake response carries an error.
    refused = HubConnectionError("handshake refused: Requested protocol 'xml' is not available.", "handshake_refused")
    detail = describe_failure(refused, "http://127.0.0.1:5000/chatHub", 15.0)
    assert detail == "handshake error: Requested protocol 'xml' is not available."
    timed_out = HubConnectionError("handshake_timeout", "handshake_timeout")
    assert "2.5 s" in describe_failure(timed_out, "http://127.0.0.1:5000/chatHub", 2.5)


async def test_dropped_connections_are_recorded() -> None:
    bus = MemoryBus()
    hub = HubServer(backplane=MemoryBackplane(bus))
    url = f"{await hub.listen()}/chatHub"
    config = LoadConfig(urls=(url,), clients=5, broadcast_rate_per_s=10.0, duration_s=1.5, drain_s=0.2)
    run = asyncio.create_task(run_load(config))
    await asyncio.sleep(0.8)
    await hub.close()
    result = await asyncio.wait_for(run, 30)
    assert result.summary.connections_dropped == 5
    drops = [e for e in result.records.connections if e.event == ConnectionEventKind.DROPPED]
    assert len(drops) == 5 and all(e.reason for e in drops)
    assert result.connected_clients == 5


async def test_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    async with hub_cluster(1) as urls:
        argv = ["loadgen", "--url", urls[0], "--clients", "4", "--broadcast-rate", "20", "--duration", "0.5"]

        def run_cli() -> int:
            return main([*argv, "--json", "--protocol", "messagepack", "--seed", "2"])

        status = await asyncio.to_thread(run_cli)
        assert status == 0
        document = json.loads(capsys.readouterr().out)
        assert set(document) >= SUMMARY_KEYS
        assert document["clients"] == 4 and document["delivered_fraction"] == 1.0
        assert document["cpu_utilization_max"] is None and document["servers"] is None
        text_status = await asyncio.to_thread(lambda: main([*argv, "--message-bytes", "10"]))
        assert text_status == 0
        text = capsys.readouterr().out
        assert "delivered fraction 1.0000" in text
        assert "failed:" not in text and document["connection_failures"] == []  # everyone connected


async def test_no_broadcasts_gives_nulls_not_nans() -> None:
    async with hub_cluster(1) as urls:
        result = await run_load(LoadConfig(urls=tuple(urls), clients=2, broadcast_rate_per_s=0.0, duration_s=0.3))
    summary = result.summary
    assert (summary.broadcasts, summary.deliveries) == (0, 0)
    assert summary.delivered_fraction is None
    assert summary.latency_p50_ms is None and summary.latency_p99_ms is None
    document = result.to_json_dict()
    assert json.loads(json.dumps(document, allow_nan=False)) == document


async def test_traced_loop_passes_account_for_every_read() -> None:
    async with hub_cluster(1) as urls:
        config = LoadConfig(urls=tuple(urls), clients=10, broadcast_rate_per_s=20.0, duration_s=1.0, seed=2)
        traced = await run_load(dataclasses.replace(config, trace_loop_passes=True))
        plain = await run_load(config)
    assert plain.loop_passes == ()
    passes = traced.loop_passes
    starts = [started_s for started_s, _, _ in passes]
    assert starts == sorted(starts)
    assert all(started_s <= ended_s and reads >= 1 for started_s, ended_s, reads in passes)
    # The trace covers the whole run (connecting too); the broadcast phase's counters are part of it.
    assert len(passes) >= traced.loop_wakeups > 0
    assert sum(reads for _, _, reads in passes) >= traced.socket_reads
    # Every fan-out was read in passes that began after its send (same clock as the records).
    for broadcast in traced.records.broadcasts:
        assert any(started_s > broadcast.sent_at_s for started_s, _, _ in passes)
