"""The harness around real hub processes: it must never be what slows a measured hub down."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from simscale.validation.processes import HUB_CGROUP_ENV, HubProcess, pinned_here

# A stand-in for a hub that logs a lot: 1 MB on stderr (16 times a pipe's buffer), then it announces
# its URL and writes more while "serving". Nobody reading its pipes would block it in the first write.
CHATTY = (
    "import sys, time\n"
    "sys.stderr.write('warning: something\\n' * 50_000); sys.stderr.flush()\n"
    "print('listening on http://127.0.0.1:1/', flush=True)\n"
    "for n in range(50_000): print('served', n)\n"
    "sys.stdout.flush(); sys.stderr.write('done\\n'); sys.stderr.flush(); time.sleep(30)\n"
)


def test_a_process_that_logs_a_lot_is_never_blocked_by_its_pipes() -> None:
    started = time.monotonic()
    process = HubProcess(name="chatty", command=[sys.executable, "-c", CHATTY])
    try:
        assert process.base_url == "http://127.0.0.1:1/"
        deadline = time.monotonic() + 20

        def finished() -> bool:
            return "done" in process.stderr_tail and process.stdout_tail[-1] == "served 49999"

        while not finished() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.log_tail().endswith("done")  # it got past every write
        assert process.stdout_tail[-1] == "served 49999"
        assert len(process.stderr_tail) <= 200  # only a tail is kept
    finally:
        process.stop()
    assert process.process.poll() is not None
    assert time.monotonic() - started < 25


def test_a_process_that_never_listens_fails_with_its_last_words() -> None:
    with pytest.raises(RuntimeError, match="no such option"):
        HubProcess(name="broken", command=[sys.executable, "-c", "import sys; sys.exit('no such option')"])


def _threads_affinity(pid: int) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(int(tid))) for tid in os.listdir(f"/proc/{pid}/task")}


def test_a_pinned_hub_runs_every_thread_on_its_cores() -> None:
    core = frozenset({min(os.sched_getaffinity(0))})
    hub = HubProcess("--backplane", "memory", name="pinned", cores=core)
    try:
        assert _threads_affinity(hub.process.pid) == {core}
    finally:
        hub.stop()


def test_pinned_here_pins_this_process_for_the_block_and_restores_it() -> None:
    before = frozenset(os.sched_getaffinity(0))
    core = frozenset({max(before)})
    with pinned_here(core):
        assert _threads_affinity(os.getpid()) == {core}
    assert frozenset(os.sched_getaffinity(0)) == before
    with pinned_here(None):
        assert frozenset(os.sched_getaffinity(0)) == before


_CPU_CGROUPS = Path("/sys/fs/cgroup/cpu")


@pytest.mark.skipif(
    not (_CPU_CGROUPS / "cgroup.procs").exists() or not os.access(_CPU_CGROUPS, os.W_OK),
    reason="no writable cgroup v1 cpu hierarchy",
)
def test_a_hub_joins_the_cgroup_named_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cgroup = _CPU_CGROUPS / f"simscale-test-{os.getpid()}"
    try:
        cgroup.mkdir()
    except OSError as error:
        pytest.skip(f"cannot create a cgroup: {error}")
    try:
        monkeypatch.setenv(HUB_CGROUP_ENV, str(cgroup))
        hub = HubProcess("--backplane", "memory", name="in-cgroup")
        try:
            members = {int(line) for line in (cgroup / "cgroup.procs").read_text().split()}
            assert hub.process.pid in members
            assert os.getpid() not in members  # only the hub moved
        finally:
            hub.stop()
    finally:
        cgroup.rmdir()
