"""Does ``simscale validate`` hold on this machine as it is, and with the hubs slowed to about half speed?

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/validation_transfer.py [--runs 3] [--scenarios single-server,…]
[--conditions full,half] [--out rows.csv] [--quick]``

Each run is one ``simscale validate SCENARIO --json`` in a fresh process, calibration included, so every
condition is predicted from a calibration taken under that same condition. The conditions:

* ``full``: the machine as it is;
* ``half``: the hub processes and redis-server (pinned to the hubs' cores, see
  :func:`simscale.validation.host.host_placement`) join a cgroup v1 CPU group with
  ``cpu.cfs_quota_us`` = half of ``cpu.cfs_period_us`` per hub core (``SIMSCALE_HUB_CGROUP``); where no
  cgroup can be made, one busy process pinned to each hub core takes about half of it instead.

Printed per run as it finishes (then all of them again): saturation predicted / measured and its error,
the worst p50 error below saturation, the memory error, the delivered fractions, and the verdict of
``validate`` (its tolerances, from :data:`simscale.validation.comparing.METRICS`: nothing hard-coded
here). ``--quick`` measures 2 s per rate and replicate instead of validate's default (calibration
still takes its minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from simscale.validation.comparing import METRICS
from simscale.validation.host import host_placement
from simscale.validation.processes import HUB_CGROUP_ENV, pin_process

SCENARIOS = ("single-server", "no-backplane", "backplane")
CONDITIONS = ("full", "half")
CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
HALF_CGROUP = "simscale-half"
PERIOD_US = 100_000
RUN_TIMEOUT_S = 900.0
"""One validate run (calibration included) is killed past this."""

TOLERANCES = {metric.name: metric.tolerance for metric in METRICS if metric.tolerance is not None}
"""The agreement each run must meet: validate's own tolerances."""


@dataclass(frozen=True)
class Row:
    """One validate run, as the table shows it (errors are relative: (predicted - measured) / measured)."""

    scenario: str
    condition: str
    run: int
    saturation_predicted: float | None
    saturation_measured: float | None
    saturation_error: float | None
    p50_worst_error: float | None
    memory_error: float | None
    delivered_predicted: str
    delivered_measured: str
    verdict: str
    time_slice_ms: float | None
    parallel_speed: float | None
    hub_share: float | None
    loadgen_share: float | None
    wall_s: float
    failure: str = ""

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")
        if self.run < 1:
            raise ValueError(f"run must be at least 1, got {self.run!r}")


def _worst(values: Sequence[float]) -> float | None:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return max(finite, key=abs) if finite else None


def row_from_result(scenario: str, condition: str, run: int, result: dict[str, Any], wall_s: float) -> Row:
    """The row of one ``validate --json`` result."""
    comparisons = result["comparisons"]

    def of(metric: str) -> list[dict[str, Any]]:
        return [row for row in comparisons if row["metric"] == metric]

    saturation = of("saturation_broadcast_rate")
    delivered = of("delivered_fraction")
    host = result.get("host") or {}

    def fractions(side: str) -> str:
        return "/".join("-" if row[side] is None else f"{row[side]:.3g}" for row in delivered)

    return Row(
        scenario=scenario,
        condition=condition,
        run=run,
        saturation_predicted=saturation[0]["predicted"] if saturation else None,
        saturation_measured=saturation[0]["measured"] if saturation else None,
        saturation_error=saturation[0]["relative_error"] if saturation else None,
        p50_worst_error=_worst([row["relative_error"] for row in of("latency_p50_ms")]),
        memory_error=_worst([row["relative_error"] for row in of("memory_per_connection_kb")]),
        delivered_predicted=fractions("predicted"),
        delivered_measured=fractions("measured"),
        verdict=str(result["verdict"]["overall"]),
        time_slice_ms=host["time_slice_s"] * 1e3 if "time_slice_s" in host else None,
        parallel_speed=host.get("parallel_speed"),
        hub_share=host.get("hub_share"),
        loadgen_share=host.get("loadgen_share"),
        wall_s=wall_s,
    )


def failed_row(scenario: str, condition: str, run: int, wall_s: float, failure: str) -> Row:
    """A run that gave no result (its last words kept short)."""
    empty = dict.fromkeys((
        "saturation_predicted", "saturation_measured", "saturation_error", "p50_worst_error", "memory_error",
        "time_slice_ms", "parallel_speed", "hub_share", "loadgen_share",
    ))  # fmt: skip
    return Row(scenario=scenario, condition=condition, run=run, delivered_predicted="", delivered_measured="",
               verdict="failed", wall_s=wall_s, failure=failure, **empty)  # type: ignore[arg-type]  # fmt: skip


_HEADER = (
    f"{'scenario':<14} {'cond':<5} {'run':>3} {'sat pred':>8} {'sat meas':>8} {'sat err':>8} {'p50 worst':>9} "
    f"{'mem err':>8} {'delivered pred | meas':<34} {'slice ms':>8} {'par':>5} {'share':>5} {'lg sh':>5} {'verdict':<8}"
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def format_row(row: Row) -> str:
    """One line of the table (a failed run shows why)."""
    delivered = f"{row.delivered_predicted} | {row.delivered_measured}"
    line = (
        f"{row.scenario:<14} {row.condition:<5} {row.run:>3} {_num(row.saturation_predicted):>8} "
        f"{_num(row.saturation_measured):>8} {_pct(row.saturation_error):>8} {_pct(row.p50_worst_error):>9} "
        f"{_pct(row.memory_error):>8} {delivered:<34} {_num(row.time_slice_ms, '.2f'):>8} "
        f"{_num(row.parallel_speed, '.2f'):>5} {_num(row.hub_share, '.2f'):>5} "
        f"{_num(row.loadgen_share, '.2f'):>5} {row.verdict:<8}"
    )
    return line + (f" ({row.failure})" if row.failure else "")


@dataclass(frozen=True)
class Condition:
    """How a condition was set up: the environment the validate run gets and what slows the hubs."""

    name: str
    env: dict[str, str]
    method: str


def _busy_processes(cores: frozenset[int]) -> list[subprocess.Popen[bytes]]:
    """One busy process pinned to each core (bounded: they are killed by the caller; a timer ends them anyway)."""
    code = f"import time\nend = time.monotonic() + {RUN_TIMEOUT_S * 4:g}\nwhile time.monotonic() < end: pass\n"
    processes = []
    for core in sorted(cores):
        process = subprocess.Popen([sys.executable, "-c", code])
        pin_process(process.pid, frozenset({core}))  # pinned from here, before it starts spinning
        processes.append(process)
    return processes


@contextlib.contextmanager
def condition(name: str, hub_cores: frozenset[int] | None, cgroup_root: Path = CGROUP_ROOT) -> Iterator[Condition]:
    """Set up condition ``name`` for the runs inside the ``with`` block, and undo it after them."""
    env = dict(os.environ)
    env.pop(HUB_CGROUP_ENV, None)
    if name == "full":
        yield Condition(name, env, "as it is")
        return
    if name != "half":
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {name!r}")
    cores = len(hub_cores) if hub_cores is not None else len(os.sched_getaffinity(0))
    cgroup = cgroup_root / HALF_CGROUP
    try:
        cgroup.mkdir(exist_ok=True)
        (cgroup / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
        (cgroup / "cpu.cfs_quota_us").write_text(f"{PERIOD_US * cores // 2}\n")
    except OSError as error:
        print(f"note: no CPU quota ({error}); a busy process on each hub core instead", file=sys.stderr)
        busy = _busy_processes(hub_cores if hub_cores is not None else frozenset(os.sched_getaffinity(0)))
        try:
            yield Condition(name, env, f"busy process on cores {sorted(hub_cores or ())}")
        finally:
            for process in busy:
                process.kill()
                process.wait()
        return
    try:
        quota = f"cfs quota {PERIOD_US * cores // 2} us per {PERIOD_US} us"
        yield Condition(name, {**env, HUB_CGROUP_ENV: str(cgroup)}, quota)
    finally:
        with contextlib.suppress(OSError):  # still busy (a process left behind): leave it for the next run
            cgroup.rmdir()


def validate_once(scenario: str, setup: Condition, run: int, *, quick: bool, save: Path | None = None) -> Row:
    """One ``simscale validate`` run under ``setup`` (its comparisons and calibration kept under ``save``)."""
    command = [sys.executable, "-m", "simscale.cli", "validate", scenario, "--json"]
    if quick:
        command += ["--duration", "2"]
    if save is not None:
        command += ["--out", str(save / f"{scenario}-{setup.name}-{run}")]
    started = time.monotonic()
    try:
        finished = subprocess.run(
            command, env=setup.env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return failed_row(scenario, setup.name, run, time.monotonic() - started, f"timed out after {RUN_TIMEOUT_S:g} s")
    wall_s = time.monotonic() - started
    lines = finished.stdout.strip().splitlines()
    if finished.returncode == 3 and lines:  # validate's "untrusted": its JSON says why
        reason = json.loads(lines[-1]).get("reason", "no reason given")
        return failed_row(scenario, setup.name, run, wall_s, f"untrusted: {str(reason)[:200]}")
    if finished.returncode != 0 or not lines:
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        return failed_row(scenario, setup.name, run, wall_s, f"exit {finished.returncode}: {last[:200]}")
    return row_from_result(scenario, setup.name, run, json.loads(lines[-1]), wall_s)


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    """All rows, one per run, with the Row fields as columns."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[field.name for field in fields(Row)])
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def _names(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in allowed]
    if not names or unknown:
        raise ValueError(f"{flag} takes some of {', '.join(allowed)}, got {text!r}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="validate runs per scenario and condition (default: 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all three)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated: full, half")
    parser.add_argument("--out", type=Path, help="write every row to this CSV file")
    parser.add_argument(
        "--quick", action="store_true", help="2 s per measured rate and replicate instead of validate's default"
    )
    parser.add_argument("--save", type=Path, help="keep each run's comparisons and calibration under this folder")
    args = parser.parse_args(argv)
    try:
        if args.runs < 1:
            raise ValueError(f"--runs must be at least 1, got {args.runs}")
        scenarios = _names(args.scenarios, SCENARIOS, "--scenarios")
        conditions = _names(args.conditions, CONDITIONS, "--conditions")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    placement = host_placement()
    tolerances = ", ".join(f"{name} {tolerance:.0%}" for name, tolerance in TOLERANCES.items())
    print(f"placement: hubs {placement.hub_cores}, load generator {placement.loadgen_cores}; tolerances: {tolerances}")
    rows: list[Row] = []
    print(_HEADER, flush=True)
    for name in conditions:
        with condition(name, placement.hub_cores) as setup:
            print(f"# condition {name}: {setup.method}", flush=True)
            for scenario in scenarios:
                for run in range(1, args.runs + 1):
                    row = validate_once(scenario, setup, run, quick=args.quick, save=args.save)
                    rows.append(row)
                    print(format_row(row), flush=True)
    print("\nall runs:")
    print(_HEADER)
    for row in rows:
        print(format_row(row))
    agreed = sum(row.verdict == "agree" for row in rows)
    failed = sum(row.verdict == "failed" for row in rows)
    print(f"{agreed} of {len(rows)} runs agree; {failed} failed to run")
    if args.out is not None:
        write_csv(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
