"""The model run's result as a terminal and a notebook show it."""

from __future__ import annotations

import numpy as np

from simscale.model import Deployment
from simscale.scenarios import preset


def test_model_run_repr_and_table_are_short() -> None:
    scenario = preset("backplane", clients=300, duration_s=4.0, warmup_s=1.0, seed=2)
    run = Deployment(scenario, np.random.default_rng(scenario.seed)).run()
    text = repr(run)
    assert len(text) < 2_000
    assert text.startswith(f"ModelRun(events={run.events:,}, ")
    assert f"deliveries={len(run.records.deliveries):,}" in text
    html = run._repr_html_()
    assert html.startswith("<table") and len(html) < 20_000 and ">events</th>" in html
