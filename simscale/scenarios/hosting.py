"""Azure SignalR Service against its published tables, and the same workload self-hosted and on it.

The published numbers are the echo, broadcast, small-group and big-group rows of Azure's performance
guide (2023 revision; WebSocket, 2,048-byte messages, one message per connection per second, default
mode; capacity = the highest throughput with 99 % of messages under 1 s):
<https://learn.microsoft.com/azure/azure-signalr/signalr-concept-performance>, and
docs/SOURCES.md#azure-signalr-service. The model's capacity is found the same way: regular sends at
rates on a fixed grid, the highest whose p99 latency stays under 1 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from simscale.scenarios.presets import preset
from simscale.scenarios.run import SimulationResult, simulate

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CAPACITY_WORKLOADS",
    "PERFORMANCE_GUIDE_URL",
    "PUBLISHED_BIG_GROUPS_OUT_PER_S",
    "PUBLISHED_BROADCAST_OUT_PER_S",
    "PUBLISHED_ECHO_PER_S",
    "PUBLISHED_SMALL_GROUPS_OUT_PER_S",
    "hosting_comparison_frame",
    "model_broadcast_capacity_per_s",
    "model_capacity_per_s",
    "published_capacity_frame",
]

PERFORMANCE_GUIDE_URL = "https://learn.microsoft.com/azure/azure-signalr/signalr-concept-performance"
"""The public page every published value below comes from (its 2023 revision)."""

PUBLISHED_BROADCAST_OUT_PER_S: dict[int, int] = {
    1: 2_000, 2: 4_000, 10: 20_000, 50: 100_000, 100: 200_000, 200: 400_000, 500: 1_000_000, 1_000: 2_000_000
}  # fmt: skip
"""Broadcast: outbound messages/s by unit count (1,000 connections per unit, 2 broadcasts/s)."""
PUBLISHED_ECHO_PER_S: dict[int, int] = {
    1: 1_000, 2: 2_000, 10: 10_000, 50: 50_000, 100: 100_000, 200: 200_000, 500: 500_000, 1_000: 1_000_000
}  # fmt: skip
"""Echo: inbound = outbound messages/s by unit count."""
PUBLISHED_SMALL_GROUPS_OUT_PER_S: dict[int, int] = {
    1: 2_000, 2: 4_000, 10: 20_000, 50: 100_000, 100: 100_000, 200: 200_000, 500: 500_000, 1_000: 1_000_000
}  # fmt: skip
"""Small groups (10 members, 100 groups per unit): outbound messages/s; in is a tenth. Unit100 stays at
Unit50's 100,000: "Unit100 can't improve further by design" (the service's routing cost)."""
PUBLISHED_BIG_GROUPS_OUT_PER_S: dict[int, int] = {
    1: 2_000, 2: 4_000, 10: 20_000, 50: 100_000, 100: 200_000, 200: 400_000, 500: 1_000_000, 1_000: 2_000_000
}  # fmt: skip
"""Big groups (10 groups, 100 members per unit; 20 messages/s in): outbound messages/s."""

CapacityWorkload = Literal["echo", "broadcast", "small groups", "big groups"]
CAPACITY_WORKLOADS: tuple[CapacityWorkload, ...] = ("echo", "broadcast", "small groups", "big groups")
_PUBLISHED: dict[str, dict[int, int]] = {
    "echo": PUBLISHED_ECHO_PER_S,
    "broadcast": PUBLISHED_BROADCAST_OUT_PER_S,
    "small groups": PUBLISHED_SMALL_GROUPS_OUT_PER_S,
    "big groups": PUBLISHED_BIG_GROUPS_OUT_PER_S,
}
_DEFAULT_UNITS: dict[str, tuple[int, ...]] = {
    "echo": (1, 2),
    "broadcast": (1, 2, 10, 50, 100),
    "small groups": (1, 2),
    "big groups": (1, 2, 10),
}
"""The unit counts :func:`published_capacity_frame` runs the model at by default. Echo and groups
send once per connection (or group) and second, so their runs grow with the clients: they stop early
to keep ``simscale figures`` quick (the model's units are independent workers, so its capacity per
unit is the same at every count while the app servers keep up; notebook 08 asserts it at 1 and 2)."""

_RATES_PER_S = (0.5, 1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0)
"""Broadcast rates tried per unit count (each unit holds ~1,000 clients, so ×1,000 ≈ out msg/s per unit)."""
_FACTORS = (1.0, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0)
"""Echo and groups: the multiples of the published inbound rate tried, lowest first."""
_CLIENT_MACHINES = 50
"""The published test drove its clients from up to 50 client VMs: 50 source addresses' worth of ports."""


def _within_capacity(result: SimulationResult, measured_from_s: float, until_s: float) -> bool:
    """p99 under 1 s, and no queue building up: the sends of the window's last fifth wait no longer
    than those of its second fifth (plus 20 ms; the first may still settle after the warm-up). A short
    run slightly beyond capacity would otherwise pass, its queue not yet 1 s long when the run ends;
    the published runs were long enough for any such queue to pass 1 s."""
    p99_ms = result.summary.latency_p99_ms
    if p99_ms is None or p99_ms >= 1_000.0:
        return False
    fifth_s = (until_s - measured_from_s) / 5
    early = [r.latency_max_s for r in result.records.deliveries
             if measured_from_s + fifth_s <= r.sent_at_s < measured_from_s + 2 * fifth_s]  # fmt: skip
    late = [r.latency_max_s for r in result.records.deliveries if r.sent_at_s >= until_s - fifth_s]
    if not early or not late:
        return False
    return sum(late) / len(late) <= sum(early) / len(early) + 0.020


def _app_servers(workload: str, units: int) -> int:
    # As in the published test: echo needs an app server per 10,000 connections, broadcasts and
    # big groups one per 50,000 (at least one; two from Unit50).
    if workload in ("echo", "small groups"):
        return max(1, units // 10)
    return 1 if units < 50 else 2


def _workload_fields(workload: str, clients: int) -> tuple[dict[str, Any], float, int]:
    """Scenario fields, the published inbound rate (sends/s) and the recipients per send."""
    if workload == "echo":
        # An echo is a send to one connection: one message into the service, one out.
        return {"send_target": "connection"}, float(clients), 1
    if workload == "small groups":
        groups = clients // 10
        return {"send_target": "group", "groups": groups, "group_size": 10, "groups_per_client": 1}, 2.0 * groups, 10
    size = clients // 10
    return {"send_target": "group", "groups": 10, "group_size": size, "groups_per_client": 1}, 20.0, size


def model_capacity_per_s(workload: CapacityWorkload, units: int, *, seed: int = 0, duration_s: float = 5.0) -> float:
    """The model's highest outbound messages/s with p99 < 1 s on ``units`` units (2 KB messages).

    Each unit holds 1,000 connections minus its share of the app servers' server connections; the
    sends go out on a regular schedule, like the published test's (each sender sends once a second),
    at multiples of the published inbound rate until p99 reaches 1 s. Broadcasts use
    :func:`model_broadcast_capacity_per_s` (30 s runs, as before).

    Example:

        >>> from simscale.scenarios.hosting import model_capacity_per_s
        >>> 2_000 <= model_capacity_per_s("big groups", 1) <= 2_857  # the published 2,000; a unit's full rate
        True
    """
    if workload == "broadcast":
        return model_broadcast_capacity_per_s(units, seed=seed)
    if workload not in _PUBLISHED:
        raise ValueError(f"workload must be one of {', '.join(CAPACITY_WORKLOADS)}, got {workload!r}")
    servers = _app_servers(workload, units)
    clients = units * 1_000 - servers * 5
    fields, inbound_per_s, recipients = _workload_fields(workload, clients)
    best = 0.0
    for factor in _FACTORS:
        rate = factor * inbound_per_s
        scenario = preset(
            "azure-signalr-service", servers=servers, clients=clients, service_units=units, message_bytes=2_048,
            broadcast_rate_per_s=rate, broadcast_offsets_s=tuple(k / rate for k in range(1, int(duration_s * rate))),
            duration_s=duration_s, warmup_s=min(2.0, duration_s / 4), client_addresses=_CLIENT_MACHINES, seed=seed,
            **fields,
        )  # fmt: skip
        if not _within_capacity(simulate(scenario), scenario.warmup_s, duration_s):
            break
        best = rate * recipients
    return best


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
        if not _within_capacity(simulate(scenario), scenario.warmup_s, duration_s):
            break
        best = rate * clients
    return best


def published_capacity_frame(
    units: Sequence[int] | None = None, workloads: Sequence[CapacityWorkload] = ("broadcast",)
) -> pd.DataFrame:
    """Columns ``workload``, ``units``, ``source`` (``published`` | ``model``), ``out_messages_per_s``
    and ``source_url`` (the public page of a published value; empty for the model's).

    Args:
        units: the unit counts of both sources (default: the published table at 1, 2, 10, 50 and 100
            units, the model at ``_DEFAULT_UNITS`` of each workload).
        workloads: any of :data:`CAPACITY_WORKLOADS`.

    Example:

        >>> from simscale.scenarios.hosting import published_capacity_frame
        >>> frame = published_capacity_frame(units=(1,))
        >>> frame[frame["source"] == "published"]["out_messages_per_s"].tolist()
        [2000.0]
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for workload in workloads:
        if workload not in _PUBLISHED:
            raise ValueError(f"workloads must be among {', '.join(CAPACITY_WORKLOADS)}, got {workload!r}")
        table_units = (1, 2, 10, 50, 100) if units is None else tuple(units)
        model_units = _DEFAULT_UNITS[workload] if units is None else tuple(units)
        rows += [{"workload": workload, "units": u, "source": "published",
                  "out_messages_per_s": float(_PUBLISHED[workload][u]), "source_url": PERFORMANCE_GUIDE_URL}
                 for u in table_units]  # fmt: skip
        rows += [{"workload": workload, "units": u, "source": "model",
                  "out_messages_per_s": float(model_capacity_per_s(workload, u)), "source_url": ""}
                 for u in model_units]  # fmt: skip
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
