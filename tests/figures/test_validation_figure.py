"""The model-against-hub figure: each series keeps one colour in every panel, as its legend entry says."""

from __future__ import annotations

import pandas as pd

from simscale.figures.validation import validation_figure


def _comparisons() -> pd.DataFrame:
    rows = []
    for load in (5.0, 30.0):
        for metric in ("latency_p50_ms", "latency_p99_ms", "deliveries_per_s"):
            rows.append({"metric": metric, "load": load, "server": pd.NA, "predicted": load, "measured": load * 1.5})
        for server in (0, 1):
            rows.append(
                {"metric": "cpu_utilization", "load": load, "server": server, "predicted": 0.01, "measured": 0.02}
            )
    rows.append({"metric": "saturation_broadcast_rate", "load": None, "server": pd.NA, "predicted": 900.0,
                 "measured": float("nan")})  # fmt: skip
    return pd.DataFrame(rows)


def test_every_series_has_one_colour_in_every_panel_and_model_and_hub_share_it() -> None:
    figure = validation_figure(_comparisons(), scenario="no-backplane")
    colours: dict[str, set[str]] = {}
    for trace in figure.data:
        series = trace.name.removeprefix("model").removeprefix("real hub").strip() or "all"
        colours.setdefault(series, set()).add(trace.marker.color)
    assert set(colours) == {"all", "server 0", "server 1"}
    assert all(len(found) == 1 for found in colours.values()), colours
    assert len({next(iter(found)) for found in colours.values()}) == 3, "the series have distinct colours"
    assert "real hub not reached" in figure.layout.title.text
