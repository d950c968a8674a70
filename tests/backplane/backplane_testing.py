"""Helpers for the backplane tests: a recording handler and a bounded wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

WAIT_S = 5.0
"""Upper bound for anything the tests wait for; normal runs take milliseconds."""


class Inbox:
    """A handler that records ``(channel, payload)`` and lets a test wait for a count."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    async def __call__(self, channel: str, payload: bytes) -> None:
        self.messages.append((channel, payload))
        self._changed.set()

    def payloads(self, channel: str | None = None) -> list[bytes]:
        return [p for c, p in self.messages if channel is None or c == channel]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_count(self, count: int, timeout_s: float = WAIT_S) -> None:
        await self.wait_for(lambda: len(self.messages) >= count, timeout_s)

    async def wait_for_payload(self, payload: bytes, timeout_s: float = WAIT_S) -> None:
        await self.wait_for(lambda: payload in self.payloads(), timeout_s)


async def eventually(predicate: Callable[[], bool], timeout_s: float = WAIT_S, poll_s: float = 0.01) -> None:
    """Polls ``predicate`` until true; raises TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(poll_s)
