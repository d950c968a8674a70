"""Turn per-run figures into medians with spread, ratios against the floor, goals and Markdown.

Every ratio is taken within one run (peer ÷ floor measured minutes apart on the same machine) and
then summarised over runs, so a noisy shared machine shifts both sides of a ratio together.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.hub.catalog import FLOOR, SIMSCALE

Runs = list[dict[str, dict[str, Any]]]
"""One dict per run: peer key → that peer's flat figures."""


@dataclass(frozen=True)
class Spread:
    """Median and range of one figure over runs."""

    median: float
    low: float
    high: float
    count: int


def spread(values: Sequence[float]) -> Spread | None:
    """Median and min–max of the numeric values, or None when there are none."""
    clean = [float(value) for value in values if isinstance(value, int | float)]
    if not clean:
        return None
    return Spread(statistics.median(clean), min(clean), max(clean), len(clean))


def values_of(runs: Runs, peer: str, metric: str) -> list[float]:
    """The metric's value for ``peer`` in every run that has it."""
    found = []
    for run in runs:
        value = run.get(peer, {}).get(metric)
        if isinstance(value, int | float):
            found.append(float(value))
    return found


def ratios_of(runs: Runs, peer: str, metric: str, reference: str = FLOOR) -> list[float]:
    """Per-run ratios peer ÷ reference for the runs where both have a non-zero value."""
    found = []
    for run in runs:
        mine = run.get(peer, {}).get(metric)
        theirs = run.get(reference, {}).get(metric)
        if isinstance(mine, int | float) and isinstance(theirs, int | float) and theirs:
            found.append(float(mine) / float(theirs))
    return found


def summarise(runs: Runs, peers: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """peer → metric → {median, min, max, runs, ratio_vs_floor: {median, min, max}}."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for peer in peers:
        metrics = sorted({key for run in runs for key, value in run.get(peer, {}).items()
                          if isinstance(value, int | float) and not isinstance(value, bool)})  # fmt: skip
        summary[peer] = {}
        for metric in metrics:
            value = spread(values_of(runs, peer, metric))
            if value is None:
                continue
            entry: dict[str, Any] = {"median": value.median, "min": value.low, "max": value.high,
                                     "runs": value.count}  # fmt: skip
            ratio = spread(ratios_of(runs, peer, metric))
            if ratio is not None and peer != FLOOR:
                entry["ratio_vs_floor"] = {"median": ratio.median, "min": ratio.low, "max": ratio.high}
            summary[peer][metric] = entry
    return summary


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value / 1000:.0f}k"
    if magnitude >= 1000:
        return f"{value / 1000:.1f}k"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(runs: Runs, peer: str, metric: str, unit: str = "", ratio: bool = True) -> str:
    """``median unit (min–max) ×ratio`` for one table cell, or ``n/a``."""
    value = spread(values_of(runs, peer, metric))
    if value is None:
        return "n/a"
    text = f"{_number(value.median)}{unit}"
    if value.count > 1:
        text += f" ({_number(value.low)}–{_number(value.high)})"
    if ratio and peer != FLOOR:
        factor = spread(ratios_of(runs, peer, metric))
        if factor is not None:
            text += f" ×{factor.median:.2f}"
    return text


def _latency_cell(runs: Runs, peer: str, prefix: str, rate: int) -> str:
    key = f"{prefix}rate{rate}"
    p50, p99 = spread(values_of(runs, peer, f"{key}_p50_ms")), spread(values_of(runs, peer, f"{key}_p99_ms"))
    fraction = spread(values_of(runs, peer, f"{key}_delivered_fraction"))
    if p50 is None or p99 is None:
        return "n/a"
    text = f"{_number(p50.median)} / {_number(p99.median)} ms"
    if p99.count > 1:
        text += f" (p99 {_number(p99.low)}–{_number(p99.high)})"
    factor = spread(ratios_of(runs, peer, f"{key}_p99_ms"))
    if factor is not None and peer != FLOOR:
        text += f" ×{factor.median:.2f}"
    if fraction is not None:
        text += f", {fraction.median * 100:.0f} % delivered"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


@dataclass(frozen=True)
class Goal:
    """One goal for simscale's hub: a name, the check, and which profile explains a miss."""

    name: str
    check: Callable[[Runs], tuple[bool | None, str]]
    profile: str
    """``burst`` (CPU under load), ``idle`` (keep-alive cost) or ``memory``."""


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _goal_throughput(runs: Runs) -> tuple[bool | None, str]:
    vs_node = _median(ratios_of(runs, SIMSCALE, "burst_deliveries_per_s", "node-socketio"))
    vs_aio = _median(ratios_of(runs, SIMSCALE, "burst_deliveries_per_s", "aiosignalr"))
    if vs_node is None or vs_aio is None:
        return None, "missing Node socket.io or aiosignalr burst figures"
    verdict: bool | None = vs_node >= 1.0 and vs_aio >= 2.0
    detail = f"burst {vs_node:.2f}× Node socket.io (need ≥ 1), {vs_aio:.2f}× aiosignalr (need ≥ 2)"
    # Per server CPU-second the comparison does not depend on how much of a core each server got.
    cap_node = _median(ratios_of(runs, SIMSCALE, "deliveries_per_server_cpu_s", "node-socketio"))
    cap_aio = _median(ratios_of(runs, SIMSCALE, "deliveries_per_server_cpu_s", "aiosignalr"))
    busy = _median(values_of(runs, SIMSCALE, "burst_server_cpu"))
    if cap_node is not None and cap_aio is not None:
        detail += f"; per server CPU-second {cap_node:.2f}× Node, {cap_aio:.2f}× aiosignalr"
    if busy is not None:
        detail += f"; simscale's server used {busy:.2f} of a core during its burst"
    saturated = _median(values_of(runs, SIMSCALE, "burst_loadgen_cpu"))
    if not verdict and saturated is not None and saturated >= 0.9:
        # The load generator, not the hub, set simscale's burst figure: it is only a lower bound.
        capacity_ok = cap_node is not None and cap_aio is not None and cap_node >= 1.0 and cap_aio >= 2.0
        verdict = None
        detail = (
            f"inconclusive: the load generator used {saturated:.2f} of a core during simscale's bursts, so "
            f"simscale's figure is a lower bound ({'met' if capacity_ok else 'missed'} per server CPU-second); "
            + detail
        )
    return verdict, detail


def _goal_cpu(runs: Runs) -> tuple[bool | None, str]:
    ratio = _median(ratios_of(runs, SIMSCALE, "cpu_us_per_delivery"))
    if ratio is None:
        return None, "missing CPU-per-delivery figures"
    return ratio <= 1.3, f"{ratio:.2f}× the floor's CPU µs per delivery (need ≤ 1.3)"


def _goal_memory(runs: Runs) -> tuple[bool | None, str]:
    value = _median(values_of(runs, SIMSCALE, "rss_per_idle_conn_kb"))
    if value is None:
        return None, "missing RSS figures"
    return value <= 16.0, f"{value:.1f} KB per idle connection (need ≤ 16)"


def _goal_idle(runs: Runs) -> tuple[bool | None, str]:
    value = _median(values_of(runs, SIMSCALE, "idle_cpu_pct"))
    alive = _median(values_of(runs, SIMSCALE, "idle_clients_alive"))
    if value is None:
        return None, "missing idle CPU figures"
    return value < 2.0, f"{value:.2f} % of one core with {alive or 0:.0f} idle connections (need < 2 %)"


def _goal_latency(runs: Runs, rate: int) -> tuple[bool | None, str]:
    key = f"rate{rate}"
    ratio = _median(ratios_of(runs, SIMSCALE, f"{key}_p99_ms", "node-socketio"))
    mine = _median(values_of(runs, SIMSCALE, f"{key}_delivered_fraction"))
    theirs = _median(values_of(runs, "node-socketio", f"{key}_delivered_fraction"))
    if ratio is None or mine is None or theirs is None:
        return None, f"missing p99 figures at {rate}/s"
    verdict = ratio <= 1.0 and mine >= theirs - 0.01
    return verdict, (
        f"p99 {ratio:.2f}× Node socket.io's at {rate} deliveries/s offered (need ≤ 1), "
        f"delivered {mine * 100:.1f} % vs {theirs * 100:.1f} %"
    )


def _goal_redis_burst(runs: Runs) -> tuple[bool | None, str]:
    vs_floor = _median(ratios_of(runs, SIMSCALE, "redis_burst_deliveries_per_s"))
    vs_node = _median(ratios_of(runs, SIMSCALE, "redis_burst_deliveries_per_s", "node-socketio"))
    if vs_floor is None or vs_node is None:
        return None, "missing two-server Redis burst figures for the floor or Node socket.io"
    lost = min(values_of(runs, SIMSCALE, "redis_burst_delivered_fraction"), default=0.0)
    verdict = vs_floor >= 3.0 and vs_node >= 4.0 and lost == 1.0
    return verdict, (
        f"two servers + Redis burst {vs_floor:.2f}× the floor (need ≥ 3), {vs_node:.2f}× Node socket.io "
        f"(need ≥ 4), {lost * 100:.1f} % delivered (need 100 %)"
    )


def _goal_connect_rate(runs: Runs) -> tuple[bool | None, str]:
    plain = _median(ratios_of(runs, SIMSCALE, "connections_per_s"))
    sustained = _median(ratios_of(runs, SIMSCALE, "sustained_connects_per_s"))
    sustained_node = _median(ratios_of(runs, SIMSCALE, "sustained_connects_per_s", "node-socketio"))
    if plain is None or sustained is None or sustained_node is None:
        return None, "missing connection-rate figures for the floor or Node socket.io"
    failed = max(values_of(runs, SIMSCALE, "sustained_connect_failed"), default=0.0)
    verdict = plain >= 1.0 and sustained >= 1.0 and sustained_node >= 1.0 and failed == 0
    detail = (
        f"connections/s {plain:.2f}× the floor (need ≥ 1); sustained connects/s {sustained:.2f}× the floor "
        f"and {sustained_node:.2f}× Node socket.io (need ≥ 1 each), {failed:.0f} failed"
    )
    cpu = _median(ratios_of(runs, SIMSCALE, "cpu_us_per_sustained_connect"))
    cpu_node = _median(ratios_of(runs, SIMSCALE, "cpu_us_per_sustained_connect", "node-socketio"))
    if cpu is not None and cpu_node is not None:
        detail += f"; server CPU per sustained connect {cpu:.2f}× the floor's, {cpu_node:.2f}× Node's"
    return verdict, detail


def goals(top_rate: int) -> list[Goal]:
    """The goals simscale's hub is benchmarked against."""
    return [
        Goal("deliveries/s ≥ Node socket.io and ≥ 2× aiosignalr", _goal_throughput, "burst"),
        Goal("server CPU per delivery ≤ 1.3× the floor", _goal_cpu, "burst"),
        Goal("≤ 16 KB per idle connection", _goal_memory, "memory"),
        Goal("< 2 % of one core for 10,000 idle connections", _goal_idle, "idle"),
        Goal(f"p99 at {top_rate // 1000}k deliveries/s offered ≤ Node socket.io's",
             lambda runs: _goal_latency(runs, top_rate), "rate"),
        Goal("two servers + Redis burst ≥ 3× the floor and ≥ 4× Node socket.io", _goal_redis_burst, "redis"),
        Goal("connections/s and sustained connects/s ≥ the floor and ≥ Node socket.io", _goal_connect_rate,
             "connect"),
    ]  # fmt: skip


def evaluate_goals(runs: Runs, top_rate: int) -> list[dict[str, Any]]:
    """Pass/fail (None = could not tell) and the evidence line for each goal."""
    results = []
    for goal in goals(top_rate):
        passed, detail = goal.check(runs)
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[passed]
        if passed is None and detail.startswith("inconclusive"):
            verdict = "INCONCLUSIVE"
        results.append(
            {"goal": goal.name, "passed": passed, "verdict": verdict, "detail": detail, "profile": goal.profile}
        )
    return results


def markdown(runs: Runs, peers: Sequence[tuple[str, str]], rates: Sequence[int], meta: dict[str, Any]) -> str:
    """The whole Markdown report: main table, latency tables, Redis, TLS, load-generator CPU."""
    lines = [
        "# simscale hub benchmark",
        "",
        f"{meta['when']} · {meta['runs']} run(s) · {meta['mode']} sizes · {meta['machine']}",
        "",
        "Each cell: median over runs (min–max) and ×ratio = median of the per-run ratios against the",
        "floor measured in the same run. Lower is better for RSS, CPU and latency; higher for rates.",
        "Idle CPU is measured over one whole keep-alive period of each stack (floor 10 s, SignalR 15 s,",
        "socket.io 25 s), so every connection's keep-alive exchange is counted exactly once.",
        f"Burst deliveries/s is the fastest of {meta['sizes'].get('burst_repeats', 1)} burst(s) per run; "
        "CPU per delivery is over all of them.",
        "",
        "## Main figures",
        "",
    ]
    sizes = meta["sizes"]
    header = [
        "peer",
        f"RSS per idle conn @{sizes['idle_connections']}",
        f"idle CPU @{sizes['idle_connections']} (% of a core)",
        "server CPU µs per delivery",
        f"burst deliveries/s, {sizes['fanout_clients']} clients",
        "deliveries per server CPU-second",
        f"p50 / p99 at {rates[-1]} deliveries/s offered",
    ]
    rows = [
        [label, cell(runs, key, "rss_per_idle_conn_kb", " KB"), cell(runs, key, "idle_cpu_pct", " %", ratio=False),
         cell(runs, key, "cpu_us_per_delivery"), cell(runs, key, "burst_deliveries_per_s"),
         cell(runs, key, "deliveries_per_server_cpu_s"),
         _latency_cell(runs, key, "", rates[-1])]
        for key, label in peers
    ]  # fmt: skip
    lines += _table(header, rows)
    lines += ["", "## Latency by offered load (one server): p50 / p99, ×p99 vs floor, delivered", ""]
    lines += _table(
        ["peer", *[f"{rate} deliveries/s" for rate in rates]],
        [[label, *[_latency_cell(runs, key, "", rate) for rate in rates]] for key, label in peers],
    )
    lines += ["", "## Two servers sharing a real Redis (clients split, sender on server 1)", ""]
    lines += _table(
        ["peer", "burst deliveries/s", "CPU µs per delivery (both servers)",
         *[f"{rate} deliveries/s" for rate in rates]],
        [[label, cell(runs, key, "redis_burst_deliveries_per_s"), cell(runs, key, "redis_cpu_us_per_delivery"),
          *[_latency_cell(runs, key, "redis_", rate) for rate in rates]] for key, label in peers],
    )  # fmt: skip
    lines += ["", "## Connections and TLS", ""]
    lines += _table(
        ["peer", "connections/s (plain)",
         f"sustained connects/s ({sizes.get('sustain_in_flight', 100)} in flight, {sizes.get('sustain_s', 30):g} s)",
         "server CPU µs per sustained connect", "sustained connects failed",
         f"RSS per idle TLS conn @{sizes['tls_connections']}",
         "connections/s (TLS)", "server RSS @idle population"],
        [[label, cell(runs, key, "connections_per_s"), cell(runs, key, "sustained_connects_per_s"),
          cell(runs, key, "cpu_us_per_sustained_connect"), cell(runs, key, "sustained_connect_failed", ratio=False),
          cell(runs, key, "tls_rss_per_idle_conn_kb", " KB"),
          cell(runs, key, "tls_connections_per_s"), cell(runs, key, "server_rss_mb", " MB", ratio=False)]
         for key, label in peers],
    )  # fmt: skip
    lines += ["", "Sustained connects: each client negotiates over HTTP where its stack does (SignalR's",
              "`POST …/negotiate`, the floor's bare `POST /negotiate`; a WebSocket-only socket.io client has",
              "none), upgrades, completes the stack's handshake and is dropped at once."]
    lines += [
        "",
        "## Load generator's own CPU (fraction of one core) — ≥ 0.9 means it, not the server, was the limit",
        "",
    ]
    loadgen_metrics = ["connect_loadgen_cpu", "burst_loadgen_cpu", *[f"rate{rate}_loadgen_cpu" for rate in rates],
                       "redis_burst_loadgen_cpu", "tls_connect_loadgen_cpu", "sustain_loadgen_cpu",
                       "burst_server_cpu", "sustain_server_cpu", "burst_foreign_cpu"]  # fmt: skip
    lines += _table(
        [
            "peer",
            "connect",
            "burst",
            *[f"rate {rate}" for rate in rates],
            "redis burst",
            "TLS connect",
            "sustained connects",
            "server during burst",
            "server during sustained connects",
            "other processes during burst (cores)",
        ],
        [[label, *[cell(runs, key, metric, ratio=False) for metric in loadgen_metrics]] for key, label in peers],
    )
    saturated = saturation_notes(runs, peers, rates)
    if saturated:
        lines += ["", "Where the load generator saturated first:", ""]
        lines += [f"- {note}" for note in saturated]
    errors = [f"- {label} run {index + 1}: {name[6:]}: {text}"
              for index, run in enumerate(runs) for key, label in peers
              for name, text in run.get(key, {}).items() if name.startswith("error:")]  # fmt: skip
    if errors:
        lines += ["", "## Errors", "", *errors]
    return "\n".join(lines) + "\n"


def saturation_notes(runs: Runs, peers: Sequence[tuple[str, str]], rates: Sequence[int]) -> list[str]:
    """Phases where the load generator used ≥ 90 % of a core (its figure is then a lower bound)."""
    phases = [
        ("connect_loadgen_cpu", "connect rate"),
        ("burst_loadgen_cpu", "burst deliveries/s"),
        ("redis_burst_loadgen_cpu", "Redis burst"),
        ("tls_connect_loadgen_cpu", "TLS connect rate"),
        ("sustain_loadgen_cpu", "sustained connects"),
    ]
    phases += [(f"rate{rate}_loadgen_cpu", f"latency at {rate}/s") for rate in rates]  # fmt: skip
    notes = []
    for key, label in peers:
        hot = []
        for metric, what in phases:
            value = spread(values_of(runs, key, metric))
            if value is not None and value.median >= 0.9:
                hot.append(f"{what} ({value.median:.2f})")
        if hot:
            notes.append(f"{label}: " + ", ".join(hot))
    return notes
