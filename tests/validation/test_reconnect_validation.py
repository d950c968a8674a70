"""``simscale validate reconnect-storm`` end to end on small settings: real hub processes, a real Redis,
one hub killed with SIGKILL under load, and the model's ``reconnect-storm`` beside it.

The calibration is a fixed set of plausible costs rather than a fresh measurement (a calibration takes
about a minute on its own): what a storm compares is set by the reconnect delays and the number of
clients that move, far more than by the costs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from simscale.cli import main
from simscale.loadgen.runner import poisson_offsets_s
from simscale.metrics.reconnects import RECOVERED_FRACTION
from simscale.scenarios import Calibration
from simscale.scenarios.calibration import save_calibration
from simscale.validation import comparing
from simscale.validation.reconnect import RECONNECT_METRICS, validate_reconnect_storm

pytestmark = pytest.mark.redis

COLUMNS = list(comparing.COLUMNS)  # the columns of every validation (a storm runs once: no spans)
CALIBRATION = Calibration(
    invocation_cpu_s=2e-5, serialize_cpu_s=5e-6, send_cpu_per_recipient_s=1.5e-5, keepalive_cpu_s=1e-5,
    handshake_cpu_s=1e-3, memory_base_bytes=60e6, memory_per_connection_bytes=20e3,
    backplane_publish_base_s=2e-5, backplane_latency_s=1e-4, connections=60,
)  # fmt: skip


def test_a_killed_hub_s_clients_come_back_on_the_delays_in_both_worlds() -> None:
    clients, delays = 60, (2.0, 2.0, 5.0)
    result = validate_reconnect_storm(
        servers=2, clients=clients, rate_per_s=4.0, calibration=CALIBRATION, duration_s=7.0, warmup_s=0.5,
        kill_at_s=2.0, reconnect_delays_s=delays, seed=1,
    )  # fmt: skip
    frame = result.comparisons
    assert list(frame.columns) == COLUMNS
    assert list(frame.metric) == [metric.name for metric in RECONNECT_METRICS]
    rows = frame.set_index("metric")
    # The killed hub held half the clients; every one of them dropped, on both sides.
    assert rows.loc["connections_dropped", "measured"] == rows.loc["connections_dropped", "predicted"] == clients / 2
    # Both sides send on the load generator's Poisson schedule (from the start of the broadcasts).
    offsets = poisson_offsets_s(4.0, 7.5, np.random.default_rng(1))
    for side, killed_at_s in (("predicted", 2.0), ("measured", result.killed_at_s)):
        recovery = rows.loc["recovery_s", side]
        # Nobody is back before the first delay; the handshakes after it take well under a second.
        assert delays[0] <= recovery < delays[0] + 1.0, (side, recovery)
        # Half the clients reconnect to the one survivor within a second of each other.
        assert rows.loc["peak_handshakes_per_s", side] >= RECOVERED_FRACTION * clients / 2 - 1
        # Every broadcast sent in the gap missed the dropped clients (give or take one sent at its edges).
        in_gap = int(((offsets >= killed_at_s) & (offsets <= killed_at_s + recovery)).sum())
        assert in_gap >= 3 and abs(rows.loc["broadcasts_lost", side] - in_gap) <= 1, (side, in_gap)
    payload = result.to_json_dict()
    assert set(payload) >= {"scenario", "comparisons", "rates_per_s", "wall_s", "machine_speed_drift", "verdict"}
    assert payload["scenario"] == "reconnect-storm" and payload["rates_per_s"] == [4.0]
    judged = payload["verdict"]["metrics"]
    assert set(judged) == {"recovery_s", "peak_handshakes_per_s", "broadcasts_lost", "delivered_fraction"}
    assert judged["recovery_s"]["verdict"] == "agree"
    assert math.isclose(payload["killed_at_s"], 2.0, abs_tol=0.2)
    json.dumps(payload)
    # The timeline shows the dip and the return on both sides.
    for source in ("model", "hub"):
        counts = [point["connected"] for point in result.timeline if point["source"] == source]
        assert min(counts) <= clients / 2 and max(counts) == clients


def test_the_command_prints_the_json_of_every_validation_and_writes_the_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_calibration(CALIBRATION, tmp_path / "in.json")
    flags = ["--servers", "2", "--clients", "40", "--duration", "8", "--broadcast-rates", "3"]
    flags += ["--reconnect-delays", "1,1,5", "--reconnect-jitter", "0.2", "--calibration", str(tmp_path / "in.json")]
    assert main(["validate", "reconnect-storm", *flags, "--json", "--out", str(tmp_path / "out")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["scenario"] == "reconnect-storm" and payload["rates_per_s"] == [3.0]
    measured = {row["metric"]: row["measured"] for row in payload["comparisons"]}
    # Jitter 0.2 on a 1 s delay: the clients are back between 0.8 and about 1.2 s (plus their handshakes).
    assert 0.8 <= measured["recovery_s"] < 2.0 and measured["connections_dropped"] == 20
    assert set(payload["verdict"]["metrics"]) >= {"recovery_s", "peak_handshakes_per_s", "broadcasts_lost"}
    timeline = (tmp_path / "out" / "timeline.csv").read_text().splitlines()
    assert timeline[0] == "source,time_s,connected" and len(timeline) > 3
    assert (tmp_path / "out" / "comparisons.csv").exists() and (tmp_path / "out" / "calibration.json").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--reconnect-delays", "0,-1"], "--reconnect-delays must be seconds >= 0"),
        (["--reconnect-delays", "a,b"], "--reconnect-delays takes seconds separated by commas"),
        (["--reconnect-jitter", "2"], "--reconnect-jitter must be a number >= 0 and <= 1"),
        (["--reconnect-jitter", "x"], "--reconnect-jitter must be a number"),
        (["--broadcast-rates", "1,2"], "reconnect-storm takes one positive rate"),
        (["--servers", "1"], "servers must be 2 to 4"),
        (["--duration", "0"], "--duration must be > 0"),
    ],
)
def test_bad_storm_flags_are_one_line_and_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "reconnect-storm", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
