"""Helpers for the interop tests: the official JavaScript client as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).parent / "js"
DRIVER = JS_DIR / "drive.js"
EVENT_TIMEOUT_S = 20.0


def require_node() -> str:
    """The node binary; a missing client is an error (the tests must not silently pass)."""
    node = shutil.which("node")
    assert node is not None, "Node 20 is needed: apt-get install nodejs npm"
    assert (JS_DIR / "node_modules" / "@microsoft" / "signalr").is_dir(), (
        "the official client is not installed: (cd tests/interop/js && npm ci)"
    )
    return node


class JsClient:
    """One ``node drive.js`` process whose stdout is a stream of JSON events."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(
        cls,
        scenario: str,
        hub_url: str,
        protocol: str = "json",
        mode: str = "negotiate",
        token: str | None = None,
        env: dict[str, str] | None = None,
    ) -> JsClient:
        argv = [require_node(), str(DRIVER), scenario, hub_url, protocol, mode]
        if token is not None:
            argv.append(token)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **os.environ,
                "NODE_TLS_REJECT_UNAUTHORIZED": os.environ.get("NODE_TLS_REJECT_UNAUTHORIZED", "1"),
                **(env or {}),
            },
        )
        return cls(process)

    async def next_event(self, timeout_s: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            stderr = b""
            if self.process.stderr is not None:
                stderr = await self.process.stderr.read()
            raise AssertionError(f"node exited; events so far {self.events}; stderr: {stderr.decode()[-2000:]}")
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        assert event["event"] != "failed", f"the JS client failed: {event}; events so far {self.events}"
        return event

    async def wait_for(self, name: str, timeout_s: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.next_event(timeout_s)
                if event["event"] == name:
                    return event

    async def finish(self, timeout_s: float = EVENT_TIMEOUT_S) -> list[dict[str, Any]]:
        """Close stdin, read every remaining event and check the exit status."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        async with asyncio.timeout(timeout_s):
            while True:
                assert self.process.stdout is not None
                line = await self.process.stdout.readline()
                if not line:
                    break
                self.events.append(json.loads(line))
            code = await self.process.wait()
        assert code == 0, f"node exited with {code}: {self.events}"
        return self.events

    async def expect_failure(self, timeout_s: float = EVENT_TIMEOUT_S) -> str:
        """The message of the client's ``failed`` event (the process must fail)."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        event = json.loads(line)
        assert event["event"] == "failed", event
        assert await asyncio.wait_for(self.process.wait(), timeout_s) == 1
        return str(event["message"])

    async def stop(self) -> None:
        """Kill the process if it still runs and reap it."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
