"""``GET /busy?cpu_ms=N``: an ordinary web route beside the hubs that costs N ms of CPU."""

from __future__ import annotations

import time

import aiohttp
from hub_testing import running_server


async def test_busy_spends_the_cpu_it_is_asked_for(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        started = time.perf_counter()
        async with session.get(f"{server.url}/busy", params={"cpu_ms": "30"}) as response:
            assert response.status == 200
            body = await response.json()
        assert body["cpu_ms"] == 30.0
        assert body["busy_s"] >= 0.030
        assert time.perf_counter() - started >= 0.030


async def test_busy_refuses_what_it_does_not_allow(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        for value in ("", "many", "-1", "10001"):
            async with session.get(f"{server.url}/busy", params={"cpu_ms": value}) as response:
                assert response.status == 400
                assert "cpu_ms must be a number from 0 to 10000" in await response.text()
