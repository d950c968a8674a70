"""simulate's result as a terminal and a notebook show it, and sweep's checks of its factors."""

from __future__ import annotations

import pytest

from simscale.scenarios import SimulationResult, preset, simulate, sweep


@pytest.fixture(scope="module")
def result() -> SimulationResult:
    # Small but real: three servers on a backplane, so every record kind is there in numbers.
    return simulate(preset("backplane", clients=300, duration_s=5.0, warmup_s=1.0, seed=3))


def test_repr_is_short_and_names_the_scenario_and_its_figures(result: SimulationResult) -> None:
    text = repr(result)
    assert len(text) < 2_000
    assert text.startswith("SimulationResult(scenario='backplane', backplane='redis', servers=3, clients=300, ")
    assert "delivered_fraction=1.000" in text
    assert f"deliveries={len(result.records.deliveries):,}" in text
    assert f"topology: {result.topology.number_of_nodes():,} nodes" in text


def test_notebook_display_is_a_small_table(result: SimulationResult) -> None:
    html = result._repr_html_()
    assert html.startswith("<table") and len(html) < 20_000
    assert ">servers</th><td>3</td>" in html and ">backplane</th><td>redis</td>" in html


def test_summary_and_records_have_short_reprs_too(result: SimulationResult) -> None:
    assert len(repr(result.summary)) < 2_000
    assert len(repr(result.records)) < 2_000
    assert "<table" in result.summary._repr_html_() and len(result.summary._repr_html_()) < 20_000


BASE = preset("single-server", clients=10, duration_s=3.0, warmup_s=1.0, seed=1)


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        ({"servers": 3}, "sweep factor 'servers' must be a list of values, e.g. servers=[1, 2, 3]; got 3"),
        ({"duration_s": 2.5}, "sweep factor 'duration_s' must be a list of values"),
        ({"backplane": "redis"}, "sweep factor 'backplane' must be a list of values, e.g. backplane=['redis']"),
        ({"servers": []}, "sweep factor 'servers' has no values"),
        ({"servers": [1], "no_such_field": [1]}, "unknown sweep factor(s): no_such_field"),
        ({}, "sweep needs at least one factor"),
    ],
)
def test_sweep_names_a_bad_factor(factors: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as error:
        sweep(BASE, **factors)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_sweep_accepts_any_non_string_iterable() -> None:
    frame = sweep(BASE, servers=range(1, 3), backplane=("none",))
    assert frame[["servers", "backplane"]].to_dict("records") == [
        {"servers": 1, "backplane": "none"},
        {"servers": 2, "backplane": "none"},
    ]
