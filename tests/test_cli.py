"""The `simscale` command's model side: JSON contract, --describe, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simscale.scenarios import PRESETS

REQUIRED_KEYS = {
    "scenario", "servers", "clients", "duration_s", "broadcasts", "delivered_fraction", "latency_p50_ms",
    "latency_p99_ms", "connections_refused", "connections_dropped", "cpu_utilization_max", "wall_s", "events",
    "simscale_version", "seed", "parameters",
}  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simscale.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_presets_lists_one_line_each() -> None:
    result = run("presets")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)


def test_simulate_json_is_complete_and_deterministic_but_for_wall_time() -> None:
    args = ("simulate", "no-backplane", "--servers", "2", "--clients", "400", "--duration", "10", "--seed", "7")
    first, second = run(*args, "--json"), run(*args, "--json")
    assert first.returncode == 0, first.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert set(one) >= REQUIRED_KEYS
    assert one["servers"] == 2 and one["clients"] == 400 and one["duration_s"] == 10 and one["seed"] == 7
    assert 0 <= one["cpu_utilization_max"] <= 1
    one.pop("wall_s"), two.pop("wall_s")
    assert one == two
    other = json.loads(run(*args[:-1], "8", "--json").stdout)
    assert other["latency_p50_ms"] != one["latency_p50_ms"]


def test_simulate_set_flags_and_table_output() -> None:
    result = run(
        "simulate", "backplane", "--duration", "5", "--set", "backplane_routing=via-backplane",
        "--set", "reconnect_jitter=0.5", "--broadcast-rate", "5", "--message-bytes", "200",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "delivered" in result.stdout and "backplane" in result.stdout


def test_simulate_out_writes_records_and_summary(tmp_path: Path) -> None:
    result = run("simulate", "single-server", "--duration", "5", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    for name in ("broadcasts", "deliveries", "connections", "resources"):
        assert (tmp_path / f"{name}.csv").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())["scenario"] == "single-server"


def test_simulate_replications_report_confidence_intervals() -> None:
    result = run("simulate", "single-server", "--duration", "5", "--replications", "3", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["replications"] == 3
    assert any(row["metric"] == "latency_p99_ms" for row in payload["confidence_intervals"])


def test_describe_lists_every_field_with_unit_default_range_and_source() -> None:
    result = run("simulate", "thread-starvation", "--describe", "--json")
    assert result.returncode == 0
    rows = {row["field"]: row for row in json.loads(result.stdout)}
    assert rows["method_kind"]["value"] == "blocking"
    assert rows["keepalive_interval_s"]["unit"] == "s"
    assert "docs/SOURCES.md#keep-alive-and-timeouts" in rows["keepalive_interval_s"]["source"]
    text = run("simulate", "single-server", "--describe").stdout
    assert "time_wait_s [s] = 60.0" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("simulate", "nope"), "unknown preset"),
        (("simulate", "single-server", "--servers", "0"), "servers must be"),
        (("simulate", "single-server", "--clients", "-5"), "clients must be"),
        (("simulate", "single-server", "--broadcast-rate", "0"), "broadcast_rate_per_s must be"),
        (("simulate", "single-server", "--duration", "-1"), "duration_s must be"),
        (("simulate", "single-server", "--set", "bogus=1"), "unknown field"),
        (("simulate", "single-server", "--set", "servers=two"), "servers must be"),
        (("simulate", "single-server", "--set", "noequals"), "FIELD=VALUE"),
        (("simulate", "single-server", "--servers", "x"), "invalid int"),
        (("simulate", "single-server", "--replications", "0"), "replications"),
        (("simulate", "small-groups", "--set", "send_target=room"), "send_target must be one of 'all', 'group'"),
        (("simulate", "small-groups", "--set", "group_size=0"), "group_size must be an integer >= 1"),
        (
            ("simulate", "small-groups", "--set", "group_size=100000"),
            "group_size must be an integer >= 1 and <= clients",
        ),
        (("simulate", "small-groups", "--set", "groups=0"), "groups must be an integer >= 1"),
        (("simulate", "small-groups", "--set", "groups=100000"), "must not exceed clients × groups_per_client"),
        (
            ("simulate", "backplane", "--set", "send_target=user", "--set", "connections_per_user=100000"),
            "connections_per_user must be an integer >= 1 and <= clients",
        ),
        (("simulate", "single-server", "--set", "hosting=azure"), "hosting must be one of"),
        (("simulate", "single-server", "--set", "service_units=15"), "service_units must be 0"),
        (("simulate", "single-server", "--set", "web_request_cpu_s=fast"), "web_request_cpu_s must be a number"),
        (("simulate", "single-server", "--set", "web_servers=-1"), "web_servers must be an integer >= 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


REQUIRED_SECTIONS = (
    "clients", "load balancer", "servers", "thread pool", "ports", "network", "backplane", "client host", "run",
    "workload",
)  # fmt: skip


def test_describe_prints_each_field_once_under_its_sections_name() -> None:
    import dataclasses

    from simscale.scenarios import Scenario

    text = run("simulate", "backplane", "--describe").stdout
    rows = json.loads(run("simulate", "backplane", "--describe", "--json").stdout)
    section_of = {row["field"]: row["section"] for row in rows}
    under: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            assert line not in under, f"section {line!r} printed twice"
            current = line  # a section's name, exactly, on a line of its own
            under[current] = []
        elif line.startswith("  ") and not line.startswith("   "):
            assert current is not None, f"a field above every section: {line!r}"
            under[current].append(line.split()[0])
    assert set(REQUIRED_SECTIONS) <= set(under)
    printed = [field for fields in under.values() for field in fields]
    assert sorted(printed) == sorted(spec.name for spec in dataclasses.fields(Scenario))  # each exactly once
    for section, fields in under.items():
        assert fields, f"section {section!r} has no fields"
        assert all(section_of[field] == section for field in fields)


def test_refused_clients_are_shown_in_the_table_and_warned_about_with_json_too() -> None:
    args = ("simulate", "backplane", "--clients", "3000", "--duration", "5", "--set", "ephemeral_ports=500")
    table, as_json = run(*args), run(*args, "--json")
    assert table.returncode == 0 and as_json.returncode == 0, table.stderr + as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["clients_never_connected"] > 0 and document["connections_refused"] > 0
    assert document["delivered_fraction_all_clients"] < document["delivered_fraction"]
    for result in (table, as_json):
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
        assert warnings == [
            f"warning: {document['connections_refused']:,} connection attempts refused "
            f"({document['clients_never_connected']:,} clients never connected): each backend holds at most 500 "
            "connections through 1 proxy address (raise proxy_addresses)"
        ]
    (row,) = _table(table.stdout)
    assert row["never on"] == f"{document['clients_never_connected']:,}"
    assert row["refused"] == f"{document['connections_refused']:,}"
    assert row["connected"] == f"{document['clients_connected']:,.0f}"
    assert row["cpu mean"] == f"{document['cpu_utilization_max']:.1%}"


def _table(stdout: str) -> list[dict[str, str]]:
    """The printed table as rows of {column title: cell}, columns found from the dashes under the titles."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    spans, start = [], 0
    for dashes in lines[rule].split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    titles = [lines[rule - 1][a:b].strip() for a, b in spans]
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append({title: line[a:b].strip() for title, (a, b) in zip(titles, spans, strict=True)})
    return rows


def test_demo_table_and_its_words_agree() -> None:
    result = run("demo", "--no-figures")
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stderr  # the demo's defaults refuse and drop nothing
    table = _table(result.stdout)
    delivered = {row["scenario"]: float(row["delivered"]) for row in table}
    p50 = {row["scenario"]: float(row["p50 ms"]) for row in table}
    servers = int(next(row["servers"] for row in table if row["scenario"] == "no-backplane"))
    # "every client is reached", "only the sender's server's clients", "everyone again", "pays in latency"
    assert delivered["single-server"] == 1.0 and delivered["backplane"] == 1.0
    assert delivered["no-backplane"] == pytest.approx(1 / servers, abs=0.01)
    assert p50["backplane"] > p50["no-backplane"]
    assert f"delivered {delivered['no-backplane']:.3f} (1/{servers} = {1 / servers:.3f})" in result.stdout
