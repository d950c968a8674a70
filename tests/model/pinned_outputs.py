"""What the model printed before it was split into components, pinned so no refactor can drift it.

Every case runs with ``fan_out_mode="per-server"`` (the reference path; vectorised fan-outs are checked
against it statistically in tests/model/test_fan_out_modes.py).

``CASES`` are every preset on its defaults plus variants that switch on each mechanism the presets leave
off (the one-loop client host, time-shared cores, a backplane outage, churn, silent clients, other
balancers, via-backplane routing, a connect ramp). For each case the pinned file holds every key of
``simulate --json`` (except the run's wall time, event count and version) and sums over the records.

Regenerate (only when a change is *meant* to move the model's numbers)::

    .venv/bin/python tests/model/pinned_outputs.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simscale.scenarios import preset, preset_names, simulate

PINNED_PATH = Path(__file__).with_name("pinned_outputs.json")

_ONE_LOOP = {
    "client_host": "one-loop",
    "loadgen_cpu_per_delivery_s": 4e-6,
    "loadgen_cpu_per_read_s": 6e-6,
    "loadgen_cpu_per_wakeup_s": 20e-6,
    "loadgen_cpu_per_send_s": 30e-6,
    "loadgen_stall_mean_s": 0.4e-3,
    "loadgen_stall_busy_scale": 0.2,
    "server_profile": "asyncio-hub",
    "shared_host_cores": 2,
    "cpu_time_slice_s": 1.5e-3,
    "drain_s": 1.0,
}

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: (name, {}) for name in preset_names()},
    "backplane-one-loop": ("backplane", {**_ONE_LOOP, "clients": 600, "duration_s": 6.0, "warmup_s": 1.0,
                                         "broadcast_rate_per_s": 60.0}),
    "single-server-one-loop": ("single-server", {**_ONE_LOOP, "clients": 300, "duration_s": 6.0, "warmup_s": 1.0,
                                                 "broadcast_rate_per_s": 150.0}),
    "no-backplane-time-sliced": ("no-backplane", {"cpu_time_slice_s": 1.5e-3, "shared_host_cores": 2,
                                                  "server_profile": "asyncio-hub", "duration_s": 20.0}),
    "backplane-outage-via": ("backplane", {"backplane_outage_at_s": 10.0, "backplane_outage_s": 5.0,
                                           "backplane_routing": "via-backplane", "duration_s": 30.0}),
    "churn-least-connections": ("no-backplane", {"load_balancer": "least-connections", "connection_lifetime_s": 8.0,
                                                 "reconnect_jitter": 0.3, "duration_s": 30.0}),
    "silent-sticky-ramp": ("backplane", {"load_balancer": "sticky-ip", "client_addresses": 40,
                                         "silent_clients_fraction": 0.1, "silent_at_s": 5.0,
                                         "connect_ramp_s": 3.0, "duration_s": 50.0}),
    "sync-over-async": ("thread-starvation", {"method_kind": "sync-over-async", "duration_s": 40.0}),
    "async-methods-replay": ("single-server", {"method_kind": "async", "invocation_rate_per_client_per_s": 0.5,
                                               "broadcast_offsets_s": tuple(0.5 + 0.25 * k for k in range(100)),
                                               "duration_s": 30.0}),
}

_UNPINNED = {"wall_s", "events", "simscale_version", "parameters"}


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value


def outputs(name: str) -> dict[str, Any]:
    """The pinned quantities of case ``name``, computed by the current model."""
    base, overrides = CASES[name]
    # The reference mode: every preset gives exactly what it gave before vectorised fan-outs existed.
    result = simulate(preset(base, seed=3, fan_out_mode="per-server", **overrides))
    summary = {key: _clean(value) for key, value in result.to_json_dict().items() if key not in _UNPINNED}
    records = result.records
    return {
        "summary": summary,
        "records": {
            "broadcasts": len(records.broadcasts),
            "broadcast_sent_s_sum": sum(r.sent_at_s for r in records.broadcasts),
            "deliveries": len(records.deliveries),
            "delivered_sum": sum(r.delivered for r in records.deliveries),
            "delivery_mean_latency_s_sum": sum(r.latency_mean_s for r in records.deliveries),
            "delivery_max_latency_s_sum": sum(r.latency_max_s for r in records.deliveries),
            "connection_events": [[e.event.value, e.reason, e.server, e.clients] for e in records.connections][:50],
            "connection_event_clients": sum(e.clients for e in records.connections),
            "connection_event_time_sum": sum(e.time_s for e in records.connections),
            "resource_samples": len(records.resources),
            "cpu_sum": sum(r.cpu_utilization for r in records.resources if not math.isnan(r.cpu_utilization)),
            "memory_sum": sum(r.memory_bytes for r in records.resources if not math.isnan(r.memory_bytes)),
            "threads_sum": sum(r.threads for r in records.resources if not math.isnan(r.threads)),
        },
    }


if __name__ == "__main__":
    pinned = {name: outputs(name) for name in CASES}
    PINNED_PATH.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINNED_PATH} ({len(pinned)} cases)")
