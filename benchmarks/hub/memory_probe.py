"""Where a server's memory per idle connection goes: tracemalloc snapshots around a connect phase.

``python -m benchmarks.hub.memory_probe serve DUMP_DIR TARGET [ARGS…]`` runs a server (a module such
as ``simscale.cli`` or a peer script path) under tracemalloc and dumps a snapshot to DUMP_DIR each time
it receives SIGUSR1. ``probe_memory()`` drives it: warm up, snapshot, connect N idle clients with the
benchmark's load generator, snapshot, and rank allocation sites by bytes added per connection.
tracemalloc sees the Python heap only (not kernel socket buffers or glibc fragmentation), which is why
the total is below the RSS delta.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.hub.catalog import Peer
from benchmarks.hub.processes import LoadGenProcess, ServerProcess


def serve(dump_dir: Path, target: str, arguments: list[str]) -> None:
    """Run ``target`` as ``__main__`` with tracemalloc on; SIGUSR1 dumps snapshot N to ``dump_dir``."""
    tracemalloc.start(1)
    taken = 0

    def dump(signum: int, frame: Any) -> None:
        nonlocal taken
        path = dump_dir / f"snapshot-{taken}.tracemalloc"
        tracemalloc.take_snapshot().dump(str(path))
        path.with_suffix(".done").touch()
        taken += 1

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = [target, *arguments]
    if target.endswith(".py"):
        sys.path.insert(0, str(Path(target).parent))
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)


def _snapshot(server: ServerProcess, dump_dir: Path, index: int) -> tracemalloc.Snapshot:
    os.kill(server.process.pid, signal.SIGUSR1)
    done = dump_dir / f"snapshot-{index}.done"
    deadline = time.monotonic() + 60
    while not done.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not dump its tracemalloc snapshot")
        time.sleep(0.05)
    return tracemalloc.Snapshot.load(str(dump_dir / f"snapshot-{index}.tracemalloc"))


def probe_target(peer: Peer) -> tuple[str, list[str]]:
    """The module or script (and its arguments) that starts ``peer`` without its interpreter."""
    argv = list(peer.argv[1:])
    if argv[:1] == ["-m"]:
        return argv[1], [*argv[2:], "--port", "0"]
    return argv[0], [*argv[1:], "--port", "0"]


def probe_memory(peer: Peer, connections: int, work_dir: Path, log_dir: Path, top: int = 12) -> dict[str, Any]:
    """Bytes of Python heap per idle connection, by allocation site, for one Python peer."""
    dump_dir = work_dir / f"tracemalloc-{peer.key}"
    dump_dir.mkdir(parents=True, exist_ok=True)
    target, arguments = probe_target(peer)
    argv = [peer.argv[0], "-m", "benchmarks.hub.memory_probe", "serve", str(dump_dir), target, *arguments]
    server = ServerProcess(f"{peer.key}-memory", argv, log_dir / f"server-{peer.key}-memory.log")
    spec = {"adapter": peer.adapter, "urls": [server.url], "signalr_protocol": "json", "tls_ca": None}
    loadgen = LoadGenProcess(spec, log_dir / f"loadgen-{peer.key}-memory.log")
    try:
        loadgen.call(60, "connect", count=16)
        loadgen.call(30, "sleep", seconds=1.0)
        before = _snapshot(server, dump_dir, 0)
        rss_before = server.rss_bytes()
        answer = loadgen.call(60 + connections / 100, "connect", count=connections)
        loadgen.call(30, "sleep", seconds=2.0)
        rss_after = server.rss_bytes()
        after = _snapshot(server, dump_dir, 1)
    finally:
        loadgen.stop()
        server.stop()
    opened = max(1, int(answer["opened"]))
    differences = sorted(after.compare_to(before, "lineno"), key=lambda stat: stat.size_diff, reverse=True)
    heap_added = sum(stat.size_diff for stat in differences)
    by_package: dict[str, float] = {}
    for stat in differences:
        package = _package(str(stat.traceback[0].filename))
        by_package[package] = by_package.get(package, 0.0) + stat.size_diff / opened

    def site(stat: tracemalloc.StatisticDiff) -> dict[str, Any]:
        frame = stat.traceback[0]
        return {
            "site": f"{_short(frame.filename)}:{frame.lineno}",
            "bytes_per_conn": stat.size_diff / opened,
            "blocks_per_conn": stat.count_diff / opened,
        }

    own = [stat for stat in differences if "/simscale/" in stat.traceback[0].filename]
    return {
        "peer": peer.key,
        "connections": opened,
        "rss_per_conn_kb": (rss_after - rss_before) / opened / 1024,
        "python_heap_per_conn_kb": heap_added / opened / 1024,
        "bytes_per_conn_by_package": dict(sorted(by_package.items(), key=lambda item: -item[1])[:6]),
        "sites": [site(stat) for stat in differences[:top]],
        "simscale_sites": [site(stat) for stat in own[:top]],
    }


def _package(filename: str) -> str:
    for marker, name in (("/aiohttp/", "aiohttp"), ("/asyncio/", "asyncio"), ("/simscale/", "simscale")):
        if marker in filename:
            return name
    return "other"


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.removeprefix(str(Path.cwd()) + "/")


def markdown_lines(result: dict[str, Any]) -> list[str]:
    """A small table of the top allocation sites per connection."""
    lines = [
        f"{result['peer']}: {result['connections']} idle connections, RSS +{result['rss_per_conn_kb']:.1f} KB and "
        f"Python heap +{result['python_heap_per_conn_kb']:.1f} KB per connection (tracemalloc, under its overhead)",
        "",
        "By package (bytes per connection): "
        + ", ".join(f"{name} {size:.0f}" for name, size in result["bytes_per_conn_by_package"].items()),
        "",
        "| bytes per conn | blocks per conn | allocation site |",
        "|---|---|---|",
    ]
    sites = result["sites"] + [site for site in result["simscale_sites"] if site not in result["sites"]]
    lines += [f"| {site['bytes_per_conn']:.0f} | {site['blocks_per_conn']:.1f} | `{site['site']}` |" for site in sites]
    return lines


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "serve":
        raise SystemExit("usage: python -m benchmarks.hub.memory_probe serve DUMP_DIR TARGET [ARGS…]")
    serve(Path(sys.argv[2]), sys.argv[3], sys.argv[4:])
