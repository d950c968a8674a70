"""Install the compared stacks into the benchmark's own environments (never into the project venv).

- ``benchmarks/hub/.peers/``: a venv with python-socketio, aiohttp, redis, aiosignalr and py-spy.
- ``benchmarks/hub/node/node_modules``: socket.io 4, @socket.io/redis-adapter and redis, from the
  committed package.json / package-lock.json (``npm ci``).

Both steps are skipped when a stamp shows they already ran with the same requirements.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".peers"
NODE_DIR = HERE / "node"
PEER_REQUIREMENTS = ("python-socketio>=5.11", "aiohttp>=3.9", "redis>=5.0", "aiosignalr>=0.1", "py-spy>=0.3")


def peers_python() -> Path:
    """The peers venv's interpreter."""
    return PEERS_VENV / "bin" / "python"


def py_spy() -> Path:
    """The py-spy binary installed into the peers venv."""
    return PEERS_VENV / "bin" / "py-spy"


def _say(text: str) -> None:
    print(f"[bench setup] {text}", file=sys.stderr, flush=True)


def ensure_python_peers() -> None:
    """Create the peers venv and install the Python peers into it (idempotent)."""
    want = hashlib.sha256("\n".join(PEER_REQUIREMENTS).encode()).hexdigest()
    stamp = PEERS_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == want and peers_python().exists():
        return
    if not peers_python().exists():
        _say(f"creating {PEERS_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    _say("installing " + ", ".join(PEER_REQUIREMENTS))
    subprocess.run(
        [
            str(peers_python()),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *PEER_REQUIREMENTS,
        ],
        check=True,
    )
    stamp.write_text(want)


def ensure_node_peer() -> bool:
    """Install the Node peer's packages with npm; return False when Node/npm are missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _say("node/npm not found: the Node socket.io peer is skipped")
        return False
    if (NODE_DIR / "node_modules" / "socket.io").exists() and (
        NODE_DIR / "node_modules" / "@socket.io" / "redis-adapter"
    ).exists():
        return True
    _say("npm ci in benchmarks/hub/node")
    command = ["npm", "ci", "--no-audit", "--no-fund", "--silent"]
    if subprocess.run(command, cwd=NODE_DIR, check=False).returncode != 0:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)
    return True


def ensure_all() -> bool:
    """Install every peer; return whether the Node peer is available."""
    ensure_python_peers()
    return ensure_node_peer()


if __name__ == "__main__":
    ensure_all()
