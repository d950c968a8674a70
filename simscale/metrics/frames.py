"""Records → tidy pandas DataFrames with a fixed schema per kind (one row per record).

Columns and units:

* ``broadcasts``: source, scenario, broadcast_id, origin_server, sent_at_s, connected_clients, audience
* ``deliveries``: source, scenario, broadcast_id, server, origin_server, sent_at_s, recipients,
  delivered, latency_mean_s, latency_max_s, audience (``all``, ``group``, ``user`` or ``connection``)
* ``connections``: source, scenario, time_s, server, event, reason, clients
* ``resources``: source, scenario, time_s, server, cpu_utilization (0-1), connections,
  memory_bytes, threads, threadpool_queue, ports_in_use, ports_time_wait, backplane_queue

The dtypes are the same whatever produced the records (model or hub), so frames concatenate.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from simscale.metrics.records import (
    RunRecords,
    RunSummary,
)

__all__ = ["SCHEMAS", "summaries_frame", "to_frame", "to_frames"]

SCHEMAS: dict[str, dict[str, str]] = {
    "broadcasts": {
        "source": "string",
        "scenario": "string",
        "broadcast_id": "int64",
        "origin_server": "int64",
        "sent_at_s": "float64",
        "connected_clients": "int64",
        "audience": "string",
    },
    "deliveries": {
        "source": "string",
        "scenario": "string",
        "broadcast_id": "int64",
        "server": "int64",
        "origin_server": "int64",
        "sent_at_s": "float64",
        "recipients": "int64",
        "delivered": "int64",
        "latency_mean_s": "float64",
        "latency_max_s": "float64",
        "audience": "string",
    },
    "connections": {
        "source": "string",
        "scenario": "string",
        "time_s": "float64",
        "server": "int64",
        "event": "string",
        "reason": "string",
        "clients": "int64",
    },
    "resources": {
        "source": "string",
        "scenario": "string",
        "time_s": "float64",
        "server": "int64",
        "cpu_utilization": "float64",
        "connections": "int64",
        "memory_bytes": "float64",
        "threads": "float64",
        "threadpool_queue": "float64",
        "ports_in_use": "float64",
        "ports_time_wait": "float64",
        "backplane_queue": "float64",
    },
}


def to_frame(kind: str, records: list[Any]) -> pd.DataFrame:
    """One kind of record as a DataFrame with that kind's schema (empty frames keep the columns)."""
    schema = SCHEMAS[kind]
    rows = [{name: getattr(record, name) for name in schema} for record in records]
    frame = pd.DataFrame(rows, columns=list(schema))
    if "event" in schema and len(frame):
        frame["event"] = frame["event"].map(str)
    return frame.astype(schema)


def to_frames(records: RunRecords) -> dict[str, pd.DataFrame]:
    """Every kind of record of one run, keyed ``broadcasts``, ``deliveries``, ``connections``, ``resources``."""
    return {
        "broadcasts": to_frame("broadcasts", records.broadcasts),
        "deliveries": to_frame("deliveries", records.deliveries),
        "connections": to_frame("connections", records.connections),
        "resources": to_frame("resources", records.resources),
    }


def summaries_frame(summaries: list[RunSummary], extra: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per summary (plus optional extra columns per row, e.g. sweep factors)."""
    rows = []
    for position, summary in enumerate(summaries):
        row = dataclasses.asdict(summary)
        if extra is not None:
            row = {**extra[position], **row}
        rows.append(row)
    return pd.DataFrame(rows)
