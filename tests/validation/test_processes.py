"""The harness around real hub processes: it must never be what slows a measured hub down."""

from __future__ import annotations

import sys
import time

import pytest

from simscale.validation.processes import HubProcess

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
