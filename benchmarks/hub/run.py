"""Hub benchmark harness: simscale's hub against Node socket.io, aiosignalr, python-socketio and the floor.

Run from the repository root with the project venv::

    .venv/bin/python -m benchmarks.hub            # full: 3 runs, ~15-20 min on 2 cores
    .venv/bin/python -m benchmarks.hub --quick    # smoke: tiny sizes, 1 run
    .venv/bin/python -m benchmarks.hub --peers floor,simscale --runs 1

It installs the peers into their own environments, then for each run measures every peer in turn
(the order rotates between runs), each server a separate process on 127.0.0.1 driven by one load
generator process. Results go to ``benchmarks/hub/results/`` as JSON and Markdown; when simscale's
hub misses a goal a py-spy profile of it is captured there as evidence.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks.hub import install
from benchmarks.hub.catalog import FLOOR, SIMSCALE, Peer, all_peers, simscale_hub_available
from benchmarks.hub.measure import Context, Sizes, make_tls_files, measure_peer
from benchmarks.hub.memory_probe import markdown_lines, probe_memory
from benchmarks.hub.processes import (
    BenchError,
    LoadGenProcess,
    RedisProcess,
    ServerProcess,
    raise_fd_limit,
    start_profiler,
    wait_profiler,
)
from benchmarks.hub.report import Runs, evaluate_goals, markdown, summarise

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hub", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (default runs: 1)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument("--peers", default="", help="comma-separated subset, e.g. floor,simscale")
    parser.add_argument("--no-redis", action="store_true", help="skip the two-servers-with-Redis scenario")
    parser.add_argument("--no-tls", action="store_true", help="skip the TLS scenario")
    parser.add_argument("--no-sustain", action="store_true", help="skip the sustained-connects scenario")
    parser.add_argument("--sustain-seconds", type=float, default=None,
                        help="seconds of sustained connects (default 30; 2 with --quick)")  # fmt: skip
    parser.add_argument("--no-install", action="store_true", help="do not install peers (use what is there)")
    parser.add_argument("--no-profile", action="store_true", help="never run py-spy")
    parser.add_argument("--protocol", choices=("json", "messagepack"), default="json",
                        help="SignalR hub protocol the load generator uses")  # fmt: skip
    parser.add_argument("--output", default="", help="results file stem (default: full or quick)")
    parser.add_argument("--results-dir", default=str(RESULTS), help="where JSON, Markdown and logs go")
    parser.add_argument("--rebuild", default="", metavar="JSON", help="only re-derive tables/goals of a results file")
    parser.add_argument("--profile-only", default="", metavar="JSON",
                        help="only (re)capture the profiles for the goals a results file missed")  # fmt: skip
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.sustain_seconds is not None and not args.sustain_seconds > 0:
        parser.error("--sustain-seconds must be > 0")
    return args


def choose_peers(args: argparse.Namespace) -> list[Peer]:
    """Install what is needed and return the peers to measure (the floor always first)."""
    wanted = {name.strip() for name in args.peers.split(",") if name.strip()}
    need_python_peers = not wanted or bool(wanted & {"aiosignalr", "python-socketio"})
    need_node = not wanted or "node-socketio" in wanted
    node_ok = True
    if not args.no_install:
        if need_python_peers or not args.no_profile:
            install.ensure_python_peers()
        if need_node:
            node_ok = install.ensure_node_peer()
    has_hub = simscale_hub_available()
    if not has_hub:
        print("[bench] simscale's hub (simscale/hub/server.py + `hub serve`) not found: measuring peers only",
              file=sys.stderr)  # fmt: skip
    peers = all_peers(include_node=node_ok, include_simscale=has_hub)
    if wanted:
        wanted.add(FLOOR)  # every ratio needs the floor of the same run
        peers = [peer for peer in peers if peer.key in wanted]
    return peers


IDLE_LEAVES = ("epoll_wait", "EpollSelector.select")
"""Leaf frames that mean "waiting in the event loop" (native profiles include them)."""
MARKERS = {"gc_collect_main": "CPython's cyclic GC", "_SelectorSocketTransport.write": "socket writes",
           "RequestHandler.data_received": "aiohttp's HTTP/WebSocket reader",
           "HubServer.sweep": "simscale's periodic sweep"}  # fmt: skip


def summarise_profile(raw_path: Path, top: int = 15) -> list[str]:
    """Top frames by own and inclusive share of the busy samples in py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    marked: collections.Counter[str] = collections.Counter()
    total = busy = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame and not frame.startswith("process ")]
        if not frames:
            continue
        total += count
        if frames[-1].startswith(IDLE_LEAVES):
            continue
        busy += count
        own[frames[-1]] += count
        names = {frame.split(" (")[0] for frame in frames}
        for frame in set(frames):
            inclusive[frame] += count
        for marker in MARKERS:
            if marker in names:
                marked[marker] += count
    if not busy:
        return ["(no busy samples)"]
    lines = [f"{total} samples, {busy} busy (not waiting in epoll); shares below are of the busy samples.", ""]
    lines += [f"- {MARKERS[marker]} (`{marker}`): {count / busy * 100:.0f} %" for marker, count in marked.most_common()]
    lines += ["", "| own % | frame |", "|---|---|"]
    lines += [f"| {count / busy * 100:.1f} | `{frame}` |" for frame, count in own.most_common(top)]
    # Skip the frames every sample shares (interpreter start-up, run_forever): they say nothing.
    telling = [(frame, count) for frame, count in inclusive.most_common() if count < 0.95 * busy][:top]
    lines += ["", "| inclusive % | frame |", "|---|---|"]
    lines += [f"| {count / busy * 100:.1f} | `{frame}` |" for frame, count in telling]
    return lines


def profile_simscale(peer: Peer, context: Context, kinds: set[str], out_dir: Path, stem: str) -> dict[str, Any]:
    """py-spy profiles of simscale's hub under the load behind each missed goal."""
    sizes = context.sizes
    py_spy = install.py_spy()
    evidence: dict[str, Any] = {}
    if not py_spy.exists():
        return {"error": "py-spy not installed (benchmarks/hub/.peers)"}
    spec = {"adapter": peer.adapter, "signalr_protocol": context.signalr_protocol, "tls_ca": None}
    if kinds & {"burst", "rate"}:
        server = ServerProcess(peer.key, peer.command(), context.log_dir / "server-simscale-profile-load.log")
        loadgen = LoadGenProcess({**spec, "urls": [server.url]}, context.log_dir / "loadgen-profile-load.log")
        try:
            loadgen.call(120, "connect", count=sizes.fanout_clients)
            out = out_dir / f"{stem}-profile-simscale-load.txt"
            duration = max(3, int(sizes.rate_duration_s * 2))
            profiler = start_profiler(py_spy, server.process.pid, out, duration)
            time.sleep(0.5)
            answer = loadgen.call(duration + 60, "rate", deliveries_per_s=sizes.rates_per_s[-1],
                                  duration_s=duration - 1, drain_s=sizes.drain_s)  # fmt: skip
            tail = wait_profiler(profiler, duration + 30)
            evidence["load"] = {
                "file": out.name,
                "condition": f"{sizes.fanout_clients} clients, {sizes.rates_per_s[-1]} deliveries/s offered",
                "p99_ms": answer.get("p99_ms"),
                "delivered_fraction": answer.get("delivered_fraction"),
                "summary": summarise_profile(out) if out.exists() else [f"py-spy failed: {tail}"],
            }
        finally:
            loadgen.stop()
            server.stop()
    if "connect" in kinds:
        server = ServerProcess(peer.key, peer.command(), context.log_dir / "server-simscale-profile-connect.log")
        loadgen = LoadGenProcess({**spec, "urls": [server.url]}, context.log_dir / "loadgen-profile-connect.log")
        try:
            out = out_dir / f"{stem}-profile-simscale-connect.txt"
            duration = max(3, int(min(sizes.sustain_s, 10.0)))
            profiler = start_profiler(py_spy, server.process.pid, out, duration)
            time.sleep(0.5)
            answer = loadgen.call(duration + 60, "sustain", seconds=duration - 1, in_flight=sizes.sustain_in_flight)
            tail = wait_profiler(profiler, duration + 30)
            evidence["connect"] = {
                "file": out.name,
                "condition": f"sustained connects, {sizes.sustain_in_flight} in flight",
                "connects_per_s": answer.get("connects_per_s"),
                "summary": summarise_profile(out) if out.exists() else [f"py-spy failed: {tail}"],
            }
        finally:
            loadgen.stop()
            server.stop()
    if "idle" in kinds:
        server = ServerProcess(peer.key, peer.command(), context.log_dir / "server-simscale-profile-idle.log")
        loadgen = LoadGenProcess({**spec, "urls": [server.url]}, context.log_dir / "loadgen-profile-idle.log")
        try:
            rss_before = server.rss_bytes()
            loadgen.call(300, "connect", count=sizes.idle_connections)
            loadgen.call(60, "sleep", seconds=sizes.settle_s)
            rss_after = server.rss_bytes()
            out = out_dir / f"{stem}-profile-simscale-idle.txt"
            duration = max(
                2, int(sizes.idle_window_s), int(peer.keepalive_s) if sizes.idle_window_spans_keepalive else 0
            )
            # Native frames: at idle the interesting costs are in C (aiohttp's reader, asyncio, the GC).
            profiler = start_profiler(py_spy, server.process.pid, out, duration, native=True)
            loadgen.call(duration + 60, "sleep", seconds=duration)
            tail = wait_profiler(profiler, duration + 30)
            evidence["idle"] = {
                "file": out.name,
                "condition": f"{sizes.idle_connections} idle connections",
                "rss_per_conn_kb_incl_startup": (rss_after - rss_before) / sizes.idle_connections / 1024,
                "summary": summarise_profile(out) if out.exists() else [f"py-spy failed: {tail}"],
            }
        finally:
            loadgen.stop()
            server.stop()
    return evidence


def probe_memories(peers: list[Peer], context: Context, out_dir: Path) -> dict[str, Any]:
    """tracemalloc allocation sites per idle connection, simscale's hub beside the floor."""
    connections = min(2_000, context.sizes.idle_connections)
    found: dict[str, Any] = {}
    for peer in peers:
        if peer.key in (FLOOR, SIMSCALE):
            found[peer.key] = probe_memory(peer, connections, out_dir / "logs", context.log_dir)
    return {
        "file": "(tables below)",
        "condition": f"{connections} idle connections, Python heap by allocation site (tracemalloc)",
        "summary": [line for result in found.values() for line in [*markdown_lines(result), ""]],
        "results": found,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    args = parse_args(argv)
    if args.rebuild:
        return rebuild(Path(args.rebuild))
    if args.profile_only:
        return profile_only(Path(args.profile_only))
    raise_fd_limit()
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.sustain_seconds is not None:
        sizes = replace(sizes, sustain_s=args.sustain_seconds)
    peers = choose_peers(args)
    stem = args.output or ("quick" if args.quick else "full")
    results = Path(args.results_dir)
    log_dir = results / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs: Runs = []
    goal_results: list[dict[str, Any]] = []
    evidence: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as scratch:
        tls_files = None if args.no_tls else make_tls_files(Path(scratch))
        needs_redis = not args.no_redis and any(peer.redis_option for peer in peers)
        redis = RedisProcess(log_dir / "redis.log") if needs_redis else None
        context = Context(sizes, log_dir, tls_files, redis, args.protocol, sustain=not args.no_sustain)
        try:
            for run_index in range(args.runs):
                shift = run_index % len(peers)
                order = peers[shift:] + peers[:shift]
                run: dict[str, dict[str, Any]] = {}
                for peer in order:
                    began = time.perf_counter()
                    print(f"[bench] run {run_index + 1}/{args.runs}: {peer.label} …", file=sys.stderr, flush=True)
                    run[peer.key] = measure_peer(peer, context, run_index)
                    print(f"[bench]   done in {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
                runs.append(run)
            top_rate = sizes.rates_per_s[-1]
            goal_results = evaluate_goals(runs, top_rate) if any(p.key == SIMSCALE for p in peers) else []
            missed = {goal["profile"] for goal in goal_results if goal["verdict"] in ("FAIL", "INCONCLUSIVE")}
            if missed and not args.no_profile:
                simscale = next(peer for peer in peers if peer.key == SIMSCALE)
                print(f"[bench] profiling simscale's hub with py-spy ({', '.join(sorted(missed))})", file=sys.stderr)
                try:
                    evidence = profile_simscale(simscale, context, missed, results, stem)
                except BenchError as error:
                    evidence = {"error": str(error)}
                if "memory" in missed:
                    try:
                        evidence["memory"] = probe_memories(peers, context, results)
                    except (BenchError, TimeoutError) as error:
                        evidence["memory-error"] = str(error)
        finally:
            if redis is not None:
                redis.stop()
    labels = [(peer.key, peer.label) for peer in peers]
    meta: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": args.runs,
        "mode": "quick" if args.quick else "full",
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        "sizes": asdict(sizes),
        "signalr_protocol": args.protocol,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    write_outputs(results, stem, runs, labels, meta, goal_results, evidence)
    return 0


def write_outputs(
    results: Path,
    stem: str,
    runs: Runs,
    labels: list[tuple[str, str]],
    meta: dict[str, Any],
    goal_results: list[dict[str, Any]],
    evidence: dict[str, Any],
) -> None:
    """Write ``{stem}.json`` and ``{stem}.md`` and print the table and the goals."""
    report = markdown(runs, labels, meta["sizes"]["rates_per_s"], meta)
    if goal_results:
        report += "\n## Goals for simscale's hub\n\n"
        for goal in goal_results:
            report += f"- **{goal['verdict']}** {goal['goal']}: {goal['detail']}\n"
    for kind, found in evidence.items():
        if isinstance(found, dict):
            what = "memory probe" if kind == "memory" else "py-spy profile"
            report += f"\n## {what} of simscale's hub: {kind} ({found['condition']})\n\n"
            if found["file"].endswith(".txt"):
                report += f"Raw collapsed stacks: `{found['file']}`.\n\n"
            report += "\n".join(found["summary"]) + "\n"
        else:
            report += f"\n## py-spy: {found}\n"
    document = {
        "meta": meta,
        "peers": dict(labels),
        "runs": runs,
        "summary": summarise(runs, [key for key, _ in labels]),
        "goals": goal_results,
        "profiles": evidence,
    }
    (results / f"{stem}.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    (results / f"{stem}.md").write_text(report)
    print(report)
    for goal in goal_results:
        print(f"{goal['verdict']:<12} {goal['goal']}: {goal['detail']}")
    print(f"[bench] wrote {results / stem}.json and .md ({meta['elapsed_s']:.0f} s of measuring)", file=sys.stderr)


def profile_only(path: Path) -> int:
    """Capture the profiles and memory probe for the goals a results JSON missed, and rewrite it."""
    document = json.loads(path.read_text())
    sizes = Sizes(**{**document["meta"]["sizes"], "rates_per_s": tuple(document["meta"]["sizes"]["rates_per_s"])})
    goal_results = evaluate_goals(document["runs"], sizes.rates_per_s[-1])
    missed = {goal["profile"] for goal in goal_results if goal["verdict"] in ("FAIL", "INCONCLUSIVE")}
    peers = [peer for peer in all_peers(False, simscale_hub_available()) if peer.key in (FLOOR, SIMSCALE)]
    simscale = next(peer for peer in peers if peer.key == SIMSCALE)
    log_dir = path.parent / "logs"
    log_dir.mkdir(exist_ok=True)
    raise_fd_limit()
    context = Context(sizes, log_dir, None, None, document["meta"].get("signalr_protocol", "json"))
    evidence = profile_simscale(simscale, context, missed, path.parent, path.stem)
    if "memory" in missed:
        evidence["memory"] = probe_memories(peers, context, path.parent)
    labels = list(document["peers"].items())
    write_outputs(path.parent, path.stem, document["runs"], labels, document["meta"], goal_results, evidence)
    return 0


def rebuild(path: Path) -> int:
    """Re-derive the tables and goals of a results JSON (after a change to the report code)."""
    document = json.loads(path.read_text())
    runs, meta = document["runs"], document["meta"]
    labels = list(document["peers"].items())
    top_rate = meta["sizes"]["rates_per_s"][-1]
    goal_results = evaluate_goals(runs, top_rate) if SIMSCALE in document["peers"] else []
    write_outputs(path.parent, path.stem, runs, labels, meta, goal_results, document.get("profiles", {}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
