"""``simscale.plan`` and ``simscale plan``: the answer a brute-force sweep gives, on any executor.

Every case is tiny (hundreds of clients, four simulated seconds) so the file runs in seconds.
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import simscale
from simscale.cli import main
from simscale.config.scenario import Scenario
from simscale.planning import NoDeploymentFits, Plan, PlanRequest
from simscale.planning.cli import ProgressBar
from simscale.planning.executors import open_executor, run_candidate
from simscale.planning.planner import _seeds, base_scenario, measure
from simscale.planning.search import estimate, judge


def small(**fields: Any) -> Scenario:
    return simscale.preset("backplane", duration_s=4.0, warmup_s=1.0, **fields)


# The three hand-built cases: each needs more than one server for a different reason.
PORTS = {"clients": 300, "broadcast_rate_per_s": 2.0, "base": small(ephemeral_ports=120)}
"""120 ports per proxy address toward a backend: 300 clients need 3 backends (2 × 120 < 300)."""
CPU = {"clients": 200, "broadcast_rate_per_s": 10.0, "latency_p99_ms": 5000.0,
       "base": small(send_cpu_per_recipient_s=0.85e-3)}  # fmt: skip
"""2,000 deliveries a second at 0.85 ms: 85 % of one 2-core server, 43 % of each of two."""
LATENCY = {"clients": 2_000, "broadcast_rate_per_s": 2.0, "latency_p99_ms": 25.0,
           "base": small(send_cpu_per_recipient_s=20e-6, network_jitter_s=0.0)}  # fmt: skip
"""A fan-out to 2,000 local clients takes 40 ms at 20 µs each; the CPU stays under 5 %."""


GROUPS = {"clients": 600, "broadcast_rate_per_s": 200.0, "send_target": "group", "group_size": 10,
          "latency_p99_ms": 5000.0, "base": small(send_cpu_per_recipient_s=0.85e-3)}  # fmt: skip
"""60 groups of 10: 2,000 deliveries a second at 0.85 ms, 85 % of one 2-core server (a broadcast to all
600 would need 60,000)."""
AZURE = {"clients": 1_000, "broadcast_rate_per_s": 2.0, "hosting": "azure-signalr", "replications": 1,
         "base": simscale.preset("azure-signalr-service", duration_s=4.0, warmup_s=1.0)}  # fmt: skip
"""1,000 clients on the service: 2 units hold them, but one unit's fan-out of 500 messages is too slow."""


def brute_force(case: dict[str, Any], max_servers: int) -> int | None:
    """Simulate every size from 1, with the planner's seeds and verdicts; the smallest that meets."""
    options = {k: v for k, v in case.items() if k != "base"}
    request = PlanRequest(**options)
    scenario = base_scenario(request, case["base"])
    for servers in range(1, max_servers + 1):
        runs = [
            run_candidate(scenario.replace(servers=servers, seed=s)) for s in _seeds(scenario, request.replications)
        ]
        if judge(request, estimate(scenario, servers), measure(servers, runs)).meets:
            return servers
    return None


@pytest.mark.parametrize("case", [PORTS, CPU, LATENCY, GROUPS], ids=["ports", "cpu", "latency", "groups"])
def test_the_answer_is_the_brute_force_sweeps(case: dict[str, Any]) -> None:
    answer = simscale.plan(**case)
    assert answer.servers == brute_force(case, answer.servers + 1)


@pytest.mark.parametrize(
    ("case", "servers", "binding"),
    [(PORTS, 3, "ports"), (CPU, 2, "cpu"), (LATENCY, 4, "latency"), (GROUPS, 2, "cpu")],
    ids=["ports", "cpu", "latency", "groups"],
)
def test_the_binding_constraint_is_named(case: dict[str, Any], servers: int, binding: str) -> None:
    answer = simscale.plan(**case)
    assert (answer.servers, answer.binding_constraint) == (servers, binding)
    rows = answer.candidates.set_index("servers")
    assert not rows.loc[servers - 1, "meets"] and rows.loc[servers - 1, "binding_constraint"] == binding
    assert rows.loc[servers, "meets"]


def test_the_limits_behind_each_failure_are_the_ones_measured() -> None:
    ports = simscale.plan(**PORTS).candidates.set_index("servers").loc[2]
    assert ports["connections_refused"] > 0 and ports["clients_never_connected"] > 0
    cpu = simscale.plan(**CPU).candidates.set_index("servers").loc[1]
    assert cpu["cpu_utilization_max"] > 0.7 and cpu["connections_refused"] == 0
    latency = simscale.plan(**LATENCY).candidates.set_index("servers")
    assert (latency["cpu_utilization_max"] < 0.1).all() and latency.loc[3, "latency_p99_ms"] > 25.0


def test_the_result_is_typed_and_draws_its_search() -> None:
    answer = simscale.plan(**CPU)
    assert isinstance(answer, Plan) and answer.proxy_addresses == 1 and answer.service_units is None
    assert answer.candidates["latency_p99_ms_ci_low"].notna().all()  # two replications: an interval
    assert (answer.candidates["latency_p99_ms_ci_low"] <= answer.candidates["latency_p99_ms"]).all()
    assert [trace.name for trace in answer.figure().data][1] == "p99, simulated"


def test_group_sends_cost_group_size_deliveries_not_clients() -> None:
    rows = simscale.plan(**GROUPS).candidates.set_index("servers")
    one, two = rows.loc[1], rows.loc[2]
    assert 0.7 < one["cpu_utilization_max"] < 1.0 and two["cpu_utilization_max"] < 0.7
    assert two["servers_reached_per_send"] == pytest.approx(2 * (1 - 0.5**10))
    assert (rows["clients_connected"] == 600).all()  # all the clients, not one group's members


def test_on_azure_signalr_the_answer_gives_units_app_servers_and_cost() -> None:
    answer = simscale.plan(**AZURE)
    assert answer.service_units is not None and answer.service_units > 2  # more than the connections need
    assert answer.servers >= 1 and answer.proxy_addresses is None
    assert answer.binding_constraint == "service_units"
    rows = answer.candidates
    assert (rows["cost_per_day_usd"] > 0).all() and rows["service_units"].notna().all()
    fewer_units = rows[rows["service_units"] < answer.service_units]
    assert len(fewer_units) and not fewer_units["meets"].any()
    assert set(fewer_units["binding_constraint"]) == {"service_units"}
    chosen = answer.to_json_dict()
    assert chosen["service_units"] == answer.service_units and chosen["cost_per_day_usd"] > 0


def test_the_service_quota_refusing_clients_binds_on_service_units() -> None:
    base = simscale.preset("azure-signalr-service", duration_s=4.0, warmup_s=1.0, service_units=1)
    with pytest.raises(NoDeploymentFits, match=r"^service_units: even 1 units hold 1,000 connections"):
        simscale.plan(clients=1_200, broadcast_rate_per_s=2.0, hosting="azure-signalr", replications=1, base=base)
    run = run_candidate(base_scenario(PlanRequest(clients=1_200, broadcast_rate_per_s=2.0,
                                                  hosting="azure-signalr"), base))  # fmt: skip
    assert run.summary.connections_refused and run.failure_limit == "service_units"


def test_a_local_process_pool_gives_the_serial_answer() -> None:
    serial = simscale.plan(**LATENCY)
    with ProcessPoolExecutor(2) as pool:
        parallel = simscale.plan(**LATENCY, executor=pool)
    assert parallel.servers == serial.servers
    assert parallel.candidates.equals(serial.candidates)


def test_a_dask_local_cluster_gives_the_local_answer() -> None:
    import distributed

    local = simscale.plan(**PORTS)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None, protocol="tcp", host="127.0.0.1"
        ) as cluster,
        open_executor(scheduler=cluster.scheduler_address) as executor,
    ):
        remote = simscale.plan(**PORTS, executor=executor)
    assert (remote.servers, remote.binding_constraint) == (local.servers, local.binding_constraint)
    assert remote.candidates.equals(local.candidates)


def test_without_a_backplane_the_plan_looks_no_further_than_one_server() -> None:
    answer = simscale.plan(clients=100, broadcast_rate_per_s=2.0, backplane="none", replications=1, base=small())
    assert answer.servers == 1 and answer.candidates["servers"].tolist() == [1]
    with pytest.raises(NoDeploymentFits, match=r"^ports: without a backplane one server"):
        simscale.plan(**{**PORTS, "backplane": "none"})


def plan_cli(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    code = main(["plan", "--workers", "1", "--duration", "4", "--replications", "1", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan_cli(capsys, "--clients", "200", "--broadcast-rate", "2", "--json")
    assert code == 0
    answer = json.loads(out)
    assert {"servers", "proxy_addresses", "service_units", "binding_constraint", "candidates"} <= set(answer)
    assert answer["servers"] == 1 and answer["service_units"] is None
    row = answer["candidates"][0]
    assert {"servers", "binding_constraint", "latency_p99_ms", "cpu_utilization_max", "clients_connected",
            "meets"} <= set(row)  # fmt: skip
    assert row["clients_connected"] == 200


def test_json_on_azure_signalr_reports_units_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--clients", "1000", "--broadcast-rate", "2", "--hosting", "azure-signalr", "--json"]
    code, out, _ = plan_cli(capsys, *flags)
    assert code == 0
    answer = json.loads(out)
    assert answer["service_units"] > 0 and answer["cost_per_day_usd"] > 0 and answer["backplane"] == "none"
    assert all(row["cost_per_day_usd"] > 0 and row["service_units"] > 0 for row in answer["candidates"])


def test_out_writes_the_table_and_the_figure(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = plan_cli(capsys, "--clients", "200", "--broadcast-rate", "2", "--out", str(tmp_path))
    assert code == 0 and "answer: 1 server(s)" in out and "binding constraint:" in out
    assert (tmp_path / "plan-candidates.csv").read_text().startswith("servers,meets,binding_constraint")
    assert (tmp_path / "plan-search.html").is_file() and (tmp_path / "plan.json").is_file()


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--clients", "2000000", "--backplane", "none"], "ports: without a backplane one server"),
        (["--clients", "100", "--broadcast-rate", "100000"], "backplane: Redis would be"),
        (["--clients", "100", "--latency-p99-ms", "0.1"], "latency: even 64 servers"),
    ],
)
def test_a_load_nothing_carries_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], flags: list[str], reason: str
) -> None:
    if "--broadcast-rate" not in flags:
        flags = [*flags, "--broadcast-rate", "1"]
    code, _, err = plan_cli(capsys, *flags)
    assert code == 1
    assert err.startswith(f"simscale plan: no deployment fits: {reason}") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--clients", "0", "--broadcast-rate", "1"], "--clients must be"),
        (["--clients", "-5", "--broadcast-rate", "1"], "--clients must be"),
        (["--clients", "10", "--broadcast-rate", "0"], "--broadcast-rate must be"),
        (["--clients", "10", "--broadcast-rate", "-2"], "--broadcast-rate must be"),
        (["--clients", "10", "--broadcast-rate", "1", "--cpu-headroom", "0"], "--cpu-headroom must be within (0, 1]"),
        (["--clients", "10", "--broadcast-rate", "1", "--cpu-headroom", "1.5"], "--cpu-headroom must be within (0, 1]"),
        (["--clients", "10", "--broadcast-rate", "1", "--hosting", "azure-signalr", "--send-target", "group",
          "--group-size", "5"],
         "--send-target group with --hosting azure-signalr: the service model fans out broadcasts only"),
        (["--clients", "10", "--broadcast-rate", "1", "--send-target", "group", "--group-size", "11"],
         "--group-size must be an integer >= 1 and <= 10"),
        (["--clients", "ten", "--broadcast-rate", "1"], "argument --clients: invalid int value"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], flags: list[str], problem: str) -> None:
    try:
        code, _, err = plan_cli(capsys, *flags)
    except SystemExit as exit_:  # argparse's own errors
        code, err = int(exit_.code or 0), capsys.readouterr().err
    assert code == 2
    assert problem in err and err.count("\n") == 1


def test_a_run_too_short_to_count_a_broadcast_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan_cli(capsys, "--clients", "10", "--broadcast-rate", "0.001")
    assert code == 2 and "no broadcast was counted" in err and err.count("\n") == 1


def test_an_unreachable_scheduler_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("simscale.planning.executors.SCHEDULER_TIMEOUT_S", 0.5)
    code = main(["plan", "--clients", "10", "--broadcast-rate", "1", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err and err.count("\n") == 1


def test_the_progress_bar_draws_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar(stream, width=4)
        bar(1, 2)
        bar.close()
    assert terminal.getvalue() == "\rplan: simulating [##--] 1/2 runs\n"
    assert pipe.getvalue() == ""
