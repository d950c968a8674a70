"""Results: typed records (no pandas) and, in :mod:`simscale.metrics.frames`, tidy DataFrames."""

from simscale.metrics.histogram import LatencyHistogram
from simscale.metrics.reconnects import StormFigures, storm_figures
from simscale.metrics.records import (
    NO_SERVER,
    BroadcastRecord,
    ConnectionEvent,
    ConnectionEventKind,
    DeliveryRecord,
    ResourceSample,
    RunRecords,
    RunSummary,
)

__all__ = [
    "NO_SERVER",
    "BroadcastRecord",
    "ConnectionEvent",
    "ConnectionEventKind",
    "DeliveryRecord",
    "LatencyHistogram",
    "ResourceSample",
    "RunRecords",
    "RunSummary",
    "StormFigures",
    "storm_figures",
]
