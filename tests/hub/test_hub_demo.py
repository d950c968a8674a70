"""``simscale hub demo`` in a real browser: headless Chromium driven by Playwright.

The demo runs as the user runs it (``simscale hub demo --port 0`` in a subprocess). The page's two panes
are the official SignalR browser client, each on its own hub server; the test sends from one pane and
reads the other with the backplane on, off (Redis stopped) and on again. It keeps a screenshot in its
temporary directory; ``SIMSCALE_DEMO_SCREENSHOT=figures/hub-demo.png`` also writes it there (how the
README's picture is made).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from simscale.cli import main
from simscale.hub import demo as demo_module
from simscale.hub.demo import CLIENT_SCRIPT, ServerStats, missing_client_message, parse_prometheus

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 60.0
TIMEOUT_MS = 20_000
"""Playwright's bound on each wait (switching the backplane on waits for the hubs' reconnect backoff)."""
QUIET_S = 1.5
"""How long a pane must stay without a message that should not arrive."""


@dataclass
class RunningDemo:
    url: str
    process: subprocess.Popen[str]
    errors: list[str]
    """What the demo wrote on stderr."""


@contextlib.contextmanager
def running_demo(*, expected_returncode: int = 0) -> Iterator[RunningDemo]:
    """``simscale hub demo --port 0`` in a subprocess, until its ``demo at URL`` line; stopped on exit."""
    assert CLIENT_SCRIPT.is_file(), missing_client_message()
    process = subprocess.Popen(
        [sys.executable, "-m", "simscale.cli", "hub", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []
    children: list[psutil.Process] = []
    readers = [
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True),
        threading.Thread(target=lambda: [errors.append(line) for line in process.stderr or ()], daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        url = ""
        while not url:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and process.poll() is None, f"the demo did not start: {''.join(errors)[-2000:]}"
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line.startswith("demo at "):
                url = line.removeprefix("demo at ").strip()
        children = psutil.Process(process.pid).children(recursive=True)
        yield RunningDemo(url, process, errors)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        for reader in readers:
            reader.join(5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == expected_returncode, f"the demo's exit: {''.join(errors)[-2000:]}"
    # Its hubs and its redis-server went with it.
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    with running_demo() as demo:
        yield demo.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).is_file(), "needs Debian's chromium: apt-get install chromium"
    with playwright_api.sync_playwright() as playwright:
        # The system browser: Playwright must never download one.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _send(page: object, pane: str, text: str) -> None:
    page.fill(f"#input-{pane}", text)  # type: ignore[attr-defined]
    page.click(f"#send-{pane}")  # type: ignore[attr-defined]


def _switch_backplane(page: object, on: bool) -> None:
    from playwright.sync_api import expect

    toggle = page.locator("#backplane-toggle")  # type: ignore[attr-defined]
    expect(toggle).to_be_enabled(timeout=TIMEOUT_MS)
    toggle.set_checked(on)
    # The page re-enables the switch once the demo server reports both hubs' new backplane state.
    expect(toggle).to_be_enabled(timeout=TIMEOUT_MS)
    if on:
        expect(toggle).to_be_checked()
    else:
        expect(toggle).not_to_be_checked()


@pytest.mark.redis
@pytest.mark.node
@pytest.mark.slow
def test_a_message_crosses_servers_only_while_the_backplane_is_on(
    demo_url: str, browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 760})  # type: ignore[attr-defined]
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.goto(demo_url)
    for pane in "ab":
        expect(page.locator(f"#status-{pane}")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.locator("#backplane-toggle")).to_be_checked()
    expect(page.locator("#counters-a [data-counter=connections]")).to_have_text("1", timeout=TIMEOUT_MS)

    _send(page, "a", "hello from A, backplane on")
    expect(page.locator("#messages-a")).to_contain_text("hello from A, backplane on", timeout=TIMEOUT_MS)
    expect(page.locator("#messages-b")).to_contain_text("pane A: hello from A, backplane on", timeout=TIMEOUT_MS)

    _switch_backplane(page, on=False)
    _send(page, "b", "B alone, backplane off")
    expect(page.locator("#messages-b")).to_contain_text("B alone, backplane off", timeout=TIMEOUT_MS)
    _send(page, "a", "A alone, backplane off")
    expect(page.locator("#messages-a")).to_contain_text("A alone, backplane off", timeout=TIMEOUT_MS)
    # The failed publishes are counted as losses (the counters refresh every second).
    for pane in "ab":
        expect(page.locator(f"#counters-{pane} [data-counter='backplane losses']")).not_to_have_text(
            "0", timeout=TIMEOUT_MS
        )
    time.sleep(QUIET_S)
    assert "B alone" not in page.inner_text("#messages-a")
    assert "A alone" not in page.inner_text("#messages-b")

    _switch_backplane(page, on=True)
    _send(page, "b", "hello from B, backplane on again")
    expect(page.locator("#messages-a")).to_contain_text("pane B: hello from B, backplane on again", timeout=TIMEOUT_MS)
    expect(page.locator("#messages-b")).to_contain_text("hello from B, backplane on again", timeout=TIMEOUT_MS)
    # What was said while Redis was down never arrives later: pub/sub buffers nothing.
    assert "B alone" not in page.inner_text("#messages-a")
    for pane in "ab":
        expect(page.locator(f"#status-{pane}")).to_have_text("connected")
    assert not console_errors, console_errors

    time.sleep(1.2)  # one more counter refresh for the picture
    shot = tmp_path / "hub-demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("SIMSCALE_DEMO_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
    page.close()


@pytest.mark.redis
@pytest.mark.node
@pytest.mark.slow
def test_a_page_without_its_client_says_so(demo_url: str, browser: object) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()  # type: ignore[attr-defined]
    page.route("**/signalr.js", lambda route: route.abort())
    page.goto(demo_url)
    for pane in "ab":
        status = page.locator(f"#status-{pane}")
        expect(status).to_contain_text("disconnected", timeout=TIMEOUT_MS)
        expect(status).to_contain_text("did not load")
    page.close()


@pytest.mark.redis
@pytest.mark.node
@pytest.mark.slow
def test_a_page_that_loses_its_server_says_so(browser: object) -> None:
    from playwright.sync_api import expect

    with running_demo(expected_returncode=1) as demo:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(demo.url)
        for pane in "ab":
            expect(page.locator(f"#status-{pane}")).to_have_text("connected", timeout=TIMEOUT_MS)
        (hub_a,) = [
            child
            for child in psutil.Process(demo.process.pid).children()
            if "server-a" in child.cmdline() and "serve" in child.cmdline()
        ]
        hub_a.kill()  # a crash: the browser's WebSocket to server A breaks
        expect(page.locator("#status-a")).to_have_text(re.compile("reconnecting|disconnected"), timeout=TIMEOUT_MS)
        demo.process.wait(30)  # the demo cannot go on without one of its hubs
        page.close()
    assert "hub server-a exited" in "".join(demo.errors)


@pytest.mark.redis
@pytest.mark.slow
def test_the_switch_refuses_a_bad_request(demo_url: str) -> None:
    request = urllib.request.Request(f"{demo_url}api/backplane", data=b'{"on": "yes"}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    refused.value.close()
    with urllib.request.urlopen(f"{demo_url}api/state", timeout=10) as response:
        state = json.load(response)
    assert state["backplane_on"] and state["redis_running"]
    assert [server["pane"] for server in state["servers"]] == ["a", "b"]


def test_the_demo_says_what_to_run_without_its_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_module, "CLIENT_SCRIPT", tmp_path / "signalr.min.js")
    assert main(["hub", "demo", "--port", "0"]) == 2
    assert "npm ci" in capsys.readouterr().err


def test_rates_are_averaged_over_a_window_of_polls() -> None:
    stats = ServerStats(pane="a", name="server-a", url="http://127.0.0.1:1/chatHub")
    health = {"connections": 3, "backplane": {"state": "connected", "publishes": 7, "losses": 2}}
    for now_s, invocations in [(0.0, 0), (0.5, 0), (1.0, 3), (1.5, 3)]:
        metrics = parse_prometheus(
            "# HELP simscale_hub_invocations_total x\n"
            f"simscale_hub_invocations_total {invocations}\nsimscale_hub_deliveries_total {2 * invocations}\n"
        )
        stats.update(health, metrics, now_s)
    assert stats.messages_per_s == pytest.approx(3 / 1.5)
    assert stats.deliveries_per_s == pytest.approx(6 / 1.5)
    assert stats.public() == {
        "pane": "a", "name": "server-a", "url": "http://127.0.0.1:1/chatHub", "reachable": True,
        "connections": 3, "messages_per_s": pytest.approx(2.0), "deliveries_per_s": pytest.approx(4.0),
        "publishes": 7, "losses": 2, "backplane_state": "connected",
    }  # fmt: skip
    for now_s in (4.0, 4.5, 5.0):  # quiet for longer than the window: the rate falls back to zero
        stats.update(health, parse_prometheus("simscale_hub_invocations_total 3\n"), now_s)
    assert stats.messages_per_s == 0.0
