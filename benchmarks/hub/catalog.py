"""The compared servers: how to start each one, and which wire protocol the load generator speaks to it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.hub.install import NODE_DIR, peers_python
from benchmarks.hub.processes import REPO

PEERS_DIR = Path(__file__).resolve().parent / "peers"
FLOOR = "floor"
SIMSCALE = "simscale"


@dataclass(frozen=True)
class Peer:
    """One server under test."""

    key: str
    """Short name used in results (``floor``, ``node-socketio``, …)."""
    label: str
    """Row label in the tables."""
    adapter: str
    """Load-generator adapter: ``floor``, ``socketio`` or ``signalr``."""
    argv: tuple[str, ...]
    """Command that starts it; the harness appends the port, Redis and TLS options."""
    redis_option: str | None
    """Option that points it at a shared Redis, or None when the stack has no Redis backplane."""
    tls_options: tuple[str, str] | None
    """Options taking the certificate and key files, or None when it cannot serve TLS."""
    is_python: bool
    """Whether py-spy can profile it."""
    keepalive_s: float
    """Its default keep-alive period (0: none). The idle-CPU window spans one whole period, so every
    connection's keep-alive exchange is counted exactly once whatever its phase."""

    def command(self, redis_url: str | None = None, tls: tuple[Path, Path] | None = None) -> list[str]:
        """The full command line for one server instance on a free port."""
        argv = [*self.argv, "--port", "0"]
        if redis_url is not None:
            assert self.redis_option is not None
            argv += [self.redis_option, redis_url]
        if tls is not None:
            assert self.tls_options is not None
            argv += [self.tls_options[0], str(tls[0]), self.tls_options[1], str(tls[1])]
        return argv


def simscale_hub_available() -> bool:
    """Whether simscale's hub server and its ``hub serve`` command exist yet."""
    if not (REPO / "simscale" / "hub" / "server.py").exists():
        return False
    probe = subprocess.run(
        [sys.executable, "-m", "simscale.cli", "hub", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0 and "--port" in probe.stdout


def simscale_serve_help() -> str:
    """``simscale hub serve --help`` text (to discover optional flags such as TLS)."""
    probe = subprocess.run(
        [sys.executable, "-m", "simscale.cli", "hub", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return probe.stdout


def simscale_peer() -> Peer:
    """simscale's own hub, started through its CLI in the project venv."""
    help_text = simscale_serve_help()
    tls: tuple[str, str] | None = None
    if "--tls-cert" in help_text and "--tls-key" in help_text:
        tls = ("--tls-cert", "--tls-key")
    elif "--certfile" in help_text and "--keyfile" in help_text:
        tls = ("--certfile", "--keyfile")
    return Peer(
        key=SIMSCALE,
        label="simscale hub",
        adapter="signalr",
        argv=(sys.executable, "-m", "simscale.cli", "hub", "serve"),
        redis_option="--backplane" if "--backplane" in help_text else None,
        tls_options=tls,
        is_python=True,
        keepalive_s=15.0,
    )


def all_peers(include_node: bool, include_simscale: bool) -> list[Peer]:
    """The floor first, then the compared stacks that are installed."""
    python = sys.executable
    peers_py = str(peers_python())
    tls = ("--tls-cert", "--tls-key")
    peers = [
        Peer(FLOOR, "bare aiohttp WS loop (floor)", "floor",
             (python, str(PEERS_DIR / "floor_server.py")), "--redis", tls, True, 0.0),
    ]  # fmt: skip
    if include_node and shutil.which("node"):
        peers.append(
            Peer("node-socketio", "Node socket.io 4 + redis-adapter", "socketio",
                 ("node", str(NODE_DIR / "server.js")), "--redis", tls, False, 25.0)
        )  # fmt: skip
    peers += [
        Peer("aiosignalr", "aiosignalr (PyPI)", "signalr",
             (peers_py, str(PEERS_DIR / "aiosignalr_server.py")), None, tls, True, 15.0),
        Peer("python-socketio", "python-socketio + Redis manager", "socketio",
             (peers_py, str(PEERS_DIR / "socketio_server.py")), "--redis", tls, True, 25.0),
    ]  # fmt: skip
    if include_simscale:
        peers.append(simscale_peer())
    return peers
