"""``simscale validate web-traffic-shared``: web-request latency on the real hub, beside the model's.

The real side: ordinary ``GET /busy?cpu_ms=N`` requests (:mod:`simscale.hub.web_routes`) at Poisson
times, with and without a broadcast load from the load generator, in two layouts: **one process**
(the requests go to the hub process that also serves the broadcasts) and **separate processes**
(a second hub process serves only the web requests). The prediction: the ``web-traffic-shared`` /
``web-traffic-separate`` presets on the ``asyncio-hub`` profile at the same sizes, every process
sharing this host's cores. Comparison metrics: ``web_latency_p50_ms`` and ``web_latency_p99_ms``,
judged like the broadcast presets' latencies (:data:`WEB_COMPARED`): the median within 25 %, the
99th percentile shown but not judged (on a shared host the tail is other processes' scheduling as
much as the hub's). With a calibration the prediction takes its costs, the load generator's too (it
shares the cores with the hubs, as it does for real).

Not modelled: the process that sends the web requests also runs on this host's cores.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simscale.loadgen.runner import poisson_offsets_s
from simscale.metrics.records import RunSummary
from simscale.scenarios import preset, simulate
from simscale.scenarios.calibration import Calibration, calibrated_costs
from simscale.validation.comparing import Metric, Side, verdict
from simscale.validation.host import HostSpeed, Placement, model_host_fields, probe_host
from simscale.validation.processes import HubProcess, run_blocking

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "WEB_COMPARED",
    "WEB_METRICS",
    "WebLoad",
    "WebValidationResult",
    "measure_web_latency",
    "predict_web_latency",
    "validate_web_traffic",
]

WEB_METRICS = ("web_latency_p50_ms", "web_latency_p99_ms")


def _read_summary(field: str) -> Any:
    def read(side: Side, rate: int, server: int) -> float | None:
        summary: RunSummary = side.summaries[rate]
        value: float | None = getattr(summary, field)
        return value

    return read


WEB_COMPARED: tuple[Metric, ...] = (
    Metric("web_latency_p50_ms", "ms", _read_summary("web_latency_p50_ms"), tolerance=0.25),
    Metric("web_latency_p99_ms", "ms", _read_summary("web_latency_p99_ms")),
)
"""What the verdict judges, in the form of :data:`simscale.validation.comparing.METRICS` (same
tolerance as ``latency_p50_ms``; the 99th percentile shown, not judged, as ``latency_p99_ms`` is)."""
_LOOPBACK_LATENCY_S = 30e-6


@dataclass(frozen=True, slots=True)
class WebLoad:
    """One measured point: the sizes of the broadcast load and of the web requests.

    Example:

        >>> from simscale.validation.web import WebLoad
        >>> WebLoad(clients=200, broadcast_rate_per_s=20.0).web_request_cpu_s
        0.002
    """

    clients: int = 200
    broadcast_rate_per_s: float = 20.0
    web_request_rate_per_s: float = 50.0
    web_request_cpu_s: float = 0.002
    duration_s: float = 8.0

    def __post_init__(self) -> None:
        for name in ("clients", "broadcast_rate_per_s", "web_request_rate_per_s", "duration_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.web_request_cpu_s <= 10:
            raise ValueError(f"web_request_cpu_s must be from 0 to 10, got {self.web_request_cpu_s}")


def _warmup_s(load: WebLoad) -> float:
    return min(1.0, load.duration_s / 4)


async def _requests(base_url: str, load: WebLoad, seed: int) -> list[float]:
    import aiohttp

    offsets = poisson_offsets_s(load.web_request_rate_per_s, load.duration_s, np.random.default_rng(seed))
    latencies: list[float] = []
    params = {"cpu_ms": f"{load.web_request_cpu_s * 1000:.3f}"}
    async with aiohttp.ClientSession() as session:

        async def one(at_s: float, started: float) -> None:
            await asyncio.sleep(max(0.0, started + at_s - time.perf_counter()))
            sent = time.perf_counter()
            async with session.get(f"{base_url}/busy", params=params) as response:
                await response.read()
            if at_s >= _warmup_s(load):  # as in the model: requests in the warm-up are not counted
                latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        await asyncio.gather(*(one(float(at), started) for at in offsets))
    return latencies


def measure_web_latency(load: WebLoad, *, separate: bool, broadcasts: bool, seed: int = 0) -> dict[str, float]:
    """Web-request p50/p99 (ms) on real hub processes; ``separate``: a second process serves them."""
    from simscale.loadgen import LoadConfig, run_load

    hub = HubProcess(name="server-0")
    web = HubProcess(name="web-0") if separate else hub
    try:
        thread = None
        if broadcasts:
            config = LoadConfig(
                urls=(hub.url,), clients=load.clients, broadcast_rate_per_s=load.broadcast_rate_per_s,
                duration_s=load.duration_s + 2.0, warmup_s=0.0, drain_s=1.0, scenario="web-traffic",
            )  # fmt: skip
            thread = threading.Thread(target=lambda: run_blocking(run_load(config)), daemon=True)
            thread.start()
            time.sleep(1.5)  # the clients connect before the requests start
        latencies = run_blocking(_requests(web.base_url, load, seed))
        if thread is not None:
            thread.join(timeout=load.duration_s + 30.0)
    finally:
        hub.stop()
        if web is not hub:
            web.stop()
    values = np.asarray(latencies) * 1000.0
    return {metric: float(np.quantile(values, q)) for metric, q in zip(WEB_METRICS, (0.5, 0.99), strict=True)}


def predict_web_latency(
    load: WebLoad,
    *,
    separate: bool,
    broadcasts: bool,
    seed: int = 0,
    calibration: Calibration | None = None,
    host: HostSpeed | None = None,
) -> dict[str, float]:
    """The model's p50/p99 (ms) for the same layout: the ``asyncio-hub`` profile on this host's cores.

    With ``calibration``, its costs (the hub's and the load generator's) replace the defaults. ``host``:
    the host as measured (:func:`~simscale.validation.host.probe_host` when None). The web measurement
    pins nothing, so every process shares all the cores.

    Example:

        >>> from simscale.validation.web import WebLoad, predict_web_latency
        >>> idle = predict_web_latency(WebLoad(duration_s=4.0), separate=True, broadcasts=False)
        >>> 2.0 <= idle["web_latency_p50_ms"] < idle["web_latency_p99_ms"]
        True
    """
    host = probe_host() if host is None else host
    fields = model_host_fields(host, Placement(hub_cores=None, loadgen_cores=None))
    scenario = preset(
        "web-traffic-separate" if separate else "web-traffic-shared",
        clients=load.clients, broadcast_rate_per_s=load.broadcast_rate_per_s, broadcasts_enabled=broadcasts,
        web_request_rate_per_s=load.web_request_rate_per_s, web_request_cpu_s=load.web_request_cpu_s,
        duration_s=load.duration_s, warmup_s=_warmup_s(load), server_profile="asyncio-hub",
        **fields,  # type: ignore[arg-type]
        network_latency_s=_LOOPBACK_LATENCY_S, network_jitter_s=_LOOPBACK_LATENCY_S, seed=seed,
        **(calibrated_costs(calibration, include_loadgen=True) if calibration else {}),
    )  # fmt: skip
    summary = simulate(scenario).summary
    return {metric: float(getattr(summary, metric) or float("nan")) for metric in WEB_METRICS}


@dataclass(frozen=True, slots=True)
class WebValidationResult:
    """The web-traffic comparison table and its verdict (the form of the other presets' results).

    Example (made-up numbers; :func:`validate_web_traffic` measures real ones):

        >>> import pandas as pd
        >>> from simscale.validation.web import WebValidationResult
        >>> comparisons = pd.DataFrame({
        ...     "layout": ["one process"] * 2, "load": ["idle"] * 2,
        ...     "metric": ["web_latency_p50_ms", "web_latency_p99_ms"],
        ...     "predicted": [2.2, 4.0], "measured": [2.0, 9.0], "relative_error": [0.1, -0.56]})
        >>> result = WebValidationResult(comparisons, wall_s=30.0)
        >>> result.to_json_dict()["verdict"]["overall"], list(result.to_json_dict()["verdict"]["metrics"])
        ('agree', ['web_latency_p50_ms'])
    """

    comparisons: pd.DataFrame
    """Columns: layout, load, metric, predicted, measured, relative_error."""
    wall_s: float
    scenario: str = "web-traffic-shared"

    def to_json_dict(self) -> dict[str, Any]:
        """``{"scenario": …, "comparisons": [{layout, load, metric, predicted, measured, relative_error}, …],
        "wall_s": …, "verdict": {"overall": …, "metrics": {…}}}``."""
        rows = self.comparisons.astype(object).where(self.comparisons.notna(), None).to_dict(orient="records")
        return {
            "scenario": self.scenario,
            "comparisons": rows,
            "wall_s": self.wall_s,
            "verdict": verdict(self, WEB_COMPARED),
        }


def validate_web_traffic(
    load: WebLoad | None = None, *, seed: int = 0, calibration: Calibration | None = None
) -> WebValidationResult:
    """Measured beside predicted, for {one process, separate processes} × {idle, broadcasting}.

    Comparison columns ``layout``, ``load``, ``metric``, ``predicted``, ``measured``, ``relative_error``.
    """
    import pandas as pd

    started = time.perf_counter()
    load = load or WebLoad()
    host = probe_host()  # once, for every prediction
    rows: list[dict[str, Any]] = []
    for separate in (False, True):
        for broadcasts in (False, True):
            measured = measure_web_latency(load, separate=separate, broadcasts=broadcasts, seed=seed)
            predicted = predict_web_latency(
                load, separate=separate, broadcasts=broadcasts, seed=seed, calibration=calibration, host=host
            )
            for metric in WEB_METRICS:
                rows.append({
                    "layout": "separate processes" if separate else "one process",
                    "load": "broadcasting" if broadcasts else "idle",
                    "metric": metric, "predicted": predicted[metric], "measured": measured[metric],
                    "relative_error": (predicted[metric] - measured[metric]) / measured[metric],
                })  # fmt: skip
    return WebValidationResult(pd.DataFrame(rows), wall_s=time.perf_counter() - started)
