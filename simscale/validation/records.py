"""What the measuring part hands to fitting and comparing: plain frozen records, no processes.

:mod:`simscale.validation.measuring` fills them from real hub processes; the pure parts
(:mod:`simscale.validation.fitting`, :mod:`simscale.validation.comparing`) read them, and their tests
build them by hand. Every figure is a raw reading (CPU seconds, bytes, counts, wall seconds) so that
what is derived from it is derived in one place, the pure one.
"""

from __future__ import annotations

from dataclasses import dataclass

from simscale.metrics.records import RunSummary

__all__ = ["BroadcastRun", "CalibrationMeasurements", "LoadRun", "LoopbackMeasurements"]


@dataclass(frozen=True, slots=True)
class BroadcastRun:
    """CPU of the hub and of the load generator over one calibration run's broadcast phase."""

    wall_s: float
    clients: int
    broadcasts: int
    deliveries: int
    hub_cpu_s: float
    loadgen_cpu_s: float
    reads: int
    wakeups: int
    sends_s: tuple[float, ...]
    passes: tuple[tuple[float, float, int], ...]
    """The load generator's loop passes (first read, end, reads), on the clock of ``sends_s``."""


@dataclass(frozen=True, slots=True)
class CalibrationMeasurements:
    """Everything ``simscale calibrate`` measures, before any cost is fitted to it."""

    connections: int
    """Idle clients held, and clients of the quiet runs with many clients."""
    base_rss_bytes: float
    """RSS of the hub with no connections."""
    empty_idle_cpu_s: float
    """CPU the hub used over ``empty_idle_s`` with no connections."""
    empty_idle_s: float
    hold_s: float
    """How long the ``connections`` idle clients were held."""
    keepalive_interval_s: float
    """The hub's keep-alive interval during the hold (one ping per client per interval)."""
    connect_close_cpu_s: float
    """The hub's CPU to accept and then close all ``connections`` clients."""
    connected_rss_delta_bytes: float
    """RSS with the clients connected minus ``base_rss_bytes``."""
    held_idle_cpu_s: float
    """The hub's CPU over ``hold_s`` with the clients connected and idle (keep-alives only)."""
    quiet: tuple[BroadcastRun, ...]
    """One fan-out at a time: fit the hub's per-broadcast and per-recipient costs."""
    moderate: tuple[BroadcastRun, ...]
    """Busier but still mostly one fan-out at a time: how the load generator's stalls shrink."""
    busy: tuple[BroadcastRun, ...]
    """Work queued behind each fan-out: the busy per-recipient cost, and messages sharing reads."""
    serialize_cpu_s: float
    """In-process time to encode one message once per protocol."""
    publish_service_s: float
    """Redis time per PUBLISH, from a pipelined burst."""
    publish_round_trip_s: float
    """Median round trip of one PUBLISH (service time included)."""


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One broadcast rate of a loopback validation: what the load generator and the hubs saw."""

    rate_per_s: float
    summary: RunSummary
    broadcast_cpu_s: float
    """The load generator's CPU over its broadcast phase."""
    loop_wakeups: int
    socket_reads: int
    counted_broadcasts: int
    """Broadcasts counted after the warm-up (deliveries are counted over these only)."""
    hub_cpu_utilization: tuple[float | None, ...]
    """Each hub's CPU (fraction of a core) between the first and the last send; ``None`` below two sends."""
    backplane_messages_received: tuple[int, ...] = ()
    """Each hub's own ``backplane_messages_received`` counter over the run (empty: not read)."""


@dataclass(frozen=True, slots=True)
class LoopbackMeasurements:
    """A loopback validation's runs, and the hubs' memory before and after the clients connected."""

    runs: tuple[LoadRun, ...]
    base_rss_bytes: tuple[float, ...]
    """Each hub's RSS before the first run."""
    connected_rss_bytes: tuple[float, ...] | None
    """Each hub's RSS once all clients of the first run were connected (``None``: not sampled)."""
