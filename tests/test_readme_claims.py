"""The README's numbers that no other test asserts, each computed here the way the README says."""

from __future__ import annotations

import re
from pathlib import Path

from simscale import preset, simulate

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
_WORDS = {"twice": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "ten": 10}


def _sentence(starting: str) -> str:
    flat = " ".join(README.split())
    start = flat.index(starting)
    return flat[start : flat.index(". ", start) + 1]


def test_web_traffic_shared_has_about_the_stated_multiple_of_the_separate_p99() -> None:
    claim = _sentence("**Web traffic beside SignalR**")
    rate = re.search(r"the same ([\d,]+) web requests/s", claim)
    multiple = re.search(r"about (\w+) times the p99 latency", claim)
    assert rate and multiple, claim
    shared_scenario, separate_scenario = preset("web-traffic-shared"), preset("web-traffic-separate")
    assert shared_scenario.web_request_rate_per_s == separate_scenario.web_request_rate_per_s
    assert float(rate.group(1).replace(",", "")) == shared_scenario.web_request_rate_per_s
    shared = simulate(shared_scenario).summary
    separate = simulate(separate_scenario).summary
    assert shared.web_latency_p99_ms and separate.web_latency_p99_ms
    ratio = shared.web_latency_p99_ms / separate.web_latency_p99_ms
    stated = _WORDS[multiple.group(1)]
    # "About N times": nearer N than either neighbour (seeds 0-3 give 4.4-5.2 for "five").
    assert stated - 1 < ratio < stated + 1, f"README says about {stated}x, the presets give {ratio:.2f}x"
    # Neither layout lost a request: the p99s compare answered requests only.
    assert shared.web_requests_failed == separate.web_requests_failed == 0
