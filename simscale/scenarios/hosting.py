"""Azure SignalR Service against its published tables, and the same workload self-hosted and on it.

The published numbers are the broadcast rows of Azure's performance guide (2023 revision; WebSocket,
2,048-byte messages, default mode; capacity = the highest throughput with 99 % of messages under
1 s): docs/SOURCES.md#azure-signalr-service. The model's capacity is found the same way: the
highest broadcast rate on a grid whose p99 latency stays under 1 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from simscale.scenarios.presets import preset
from simscale.scenarios.run import simulate

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PUBLISHED_BROADCAST_OUT_PER_S",
    "PUBLISHED_ECHO_PER_S",
    "hosting_comparison_frame",
    "model_broadcast_capacity_per_s",
    "published_capacity_frame",
]

PUBLISHED_BROADCAST_OUT_PER_S: dict[int, int] = {
    1: 2_000, 2: 4_000, 10: 20_000, 50: 100_000, 100: 200_000, 200: 400_000, 500: 1_000_000, 1_000: 2_000_000
}  # fmt: skip
"""Broadcast: outbound messages/s by unit count (1,000 connections per unit, 2 broadcasts/s)."""
PUBLISHED_ECHO_PER_S: dict[int, int] = {
    1: 1_000, 2: 2_000, 10: 10_000, 50: 50_000, 100: 100_000, 200: 200_000, 500: 500_000, 1_000: 1_000_000
}  # fmt: skip
"""Echo: inbound = outbound messages/s by unit count."""

_RATES_PER_S = (0.5, 1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0)
"""Broadcast rates tried per unit count (each unit holds ~1,000 clients, so ×1,000 ≈ out msg/s per unit)."""
_CLIENT_MACHINES = 50
"""The published test drove its clients from up to 50 client VMs: 50 source addresses' worth of ports."""


def model_broadcast_capacity_per_s(units: int, *, seed: int = 0, duration_s: float = 30.0) -> float:
    """The model's highest outbound messages/s with p99 < 1 s on ``units`` units (2 KB broadcasts).

    Each unit holds 1,000 connections minus its share of the app servers' server connections, and
    the broadcasts go out on a regular schedule, like the published test (its senders send once a
    second); the rate rises on a fixed grid until p99 reaches 1 s.

    Example:

        >>> from simscale.scenarios.hosting import model_broadcast_capacity_per_s
        >>> 2_000 <= model_broadcast_capacity_per_s(1, duration_s=10.0) <= 2_857
        True
    """
    servers = 1 if units < 50 else 2
    clients = units * 1_000 - servers * 5
    best = 0.0
    for rate in _RATES_PER_S:
        scenario = preset(
            "azure-signalr-service", servers=servers, clients=clients, service_units=units, message_bytes=2_048,
            broadcast_offsets_s=tuple(k / rate for k in range(1, int(duration_s * rate))),
            duration_s=duration_s, warmup_s=2.0, client_addresses=_CLIENT_MACHINES, seed=seed,
        )  # fmt: skip
        summary = simulate(scenario).summary
        if summary.latency_p99_ms is None or summary.latency_p99_ms >= 1_000.0:
            break
        best = rate * clients
    return best


def published_capacity_frame(units: Sequence[int] = (1, 2, 10, 50, 100)) -> pd.DataFrame:
    """Columns ``units``, ``source`` (``published`` | ``model``), ``out_messages_per_s``.

    Example:

        >>> from simscale.scenarios.hosting import published_capacity_frame
        >>> frame = published_capacity_frame(units=(1,))
        >>> frame[frame["source"] == "published"]["out_messages_per_s"].tolist()
        [2000.0]
    """
    import pandas as pd

    rows = [{"units": u, "source": "published", "out_messages_per_s": PUBLISHED_BROADCAST_OUT_PER_S[u]} for u in units]
    rows += [{"units": u, "source": "model", "out_messages_per_s": model_broadcast_capacity_per_s(u)} for u in units]
    return pd.DataFrame(rows)


def hosting_comparison_frame(clients: int = 10_000, *, seed: int = 0) -> pd.DataFrame:
    """The same broadcast workload (2 KB, 1 broadcast/s) self-hosted with Redis and on the service.

    Self-hosted needs enough app servers to hold the clients (5,000 each here); on the service two
    app servers suffice (one would do; two for availability), each holding 5 server connections.
    Columns ``hosting``, ``metric``, ``value``.

    Example:

        >>> from simscale.scenarios.hosting import hosting_comparison_frame
        >>> frame = hosting_comparison_frame(clients=1_000)
        >>> sorted(set(frame["hosting"]))
        ['Azure SignalR Service', 'self-hosted + Redis']
    """
    import pandas as pd

    workload = {"clients": clients, "message_bytes": 2_048, "broadcast_rate_per_s": 1.0, "duration_s": 20.0,
                "warmup_s": 2.0, "seed": seed}  # fmt: skip
    self_servers = max(1, -(-clients // 5_000))
    self_hosted = simulate(preset("backplane", servers=self_servers, **workload))
    on_service = simulate(preset("azure-signalr-service", servers=2, **workload))
    rows = []
    for label, result in (("self-hosted + Redis", self_hosted), ("Azure SignalR Service", on_service)):
        s = result.summary
        service = s.service_units is not None
        servers = s.servers or 1
        measured_s = (s.duration_s or 0.0) - result.scenario.warmup_s
        rows += [
            {"hosting": label, "metric": "app servers", "value": servers},
            {"hosting": label, "metric": "sockets per app server",
             "value": result.scenario.server_connections_per_hub if service else clients / servers + 1},
            {"hosting": label, "metric": "p99 latency (ms)", "value": s.latency_p99_ms},
            {"hosting": label, "metric": "backplane or service messages/s",
             "value": (s.service_billed_messages or 0) / measured_s if service
             else (s.broadcasts or 0) * servers / measured_s},
            {"hosting": label, "metric": "service cost per day (USD)",
             "value": s.service_cost_per_day_usd if service else float("nan")},
        ]  # fmt: skip
    return pd.DataFrame(rows)
