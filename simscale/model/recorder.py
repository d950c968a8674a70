"""The run's recorder: the one place that owns the records a run produces.

Every component reports what happened through it (a connection event, a broadcast sent, a fan-out
delivered, a resource sample), so the records keep one schema — the one the real hub's load
generator fills too (:mod:`simscale.metrics.records`) — and no component appends to a list of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import simpy

from simscale.metrics.records import (
    BroadcastRecord,
    ConnectionEvent,
    ConnectionEventKind,
    DeliveryRecord,
    ResourceSample,
    RunRecords,
)

__all__ = ["Recorder"]


class Recorder:
    """Appends the model's records (``source="model"``) for one scenario."""

    def __init__(self, env: simpy.Environment, scenario_name: str) -> None:
        self.env = env
        self.scenario_name = scenario_name
        self.records = RunRecords()
        self._audiences: dict[int, tuple[str, Callable[[], int]]] = {}
        """Sends to a group, a user or a connection: their kind and how to count their connected recipients."""

    def connection_event(self, kind: ConnectionEventKind, server: int, reason: str, clients: int) -> None:
        """``clients`` connections had event ``kind`` on ``server`` just now (nothing recorded for none)."""
        if clients:
            self.records.connections.append(
                ConnectionEvent("model", self.scenario_name, float(self.env.now), server, kind, reason, clients)
            )

    def broadcast(self, broadcast_id: int, origin_server: int, sent_at_s: float, connected_clients: int) -> None:
        """A counted broadcast was sent through ``origin_server`` at ``sent_at_s``.

        For a send registered with :meth:`audience`, the audience's connected recipients replace
        ``connected_clients`` (everyone connected).
        """
        audience = "all"
        if (registered := self._audiences.get(broadcast_id)) is not None:
            audience, count_connected = registered
            connected_clients = count_connected()
        self.records.broadcasts.append(
            BroadcastRecord(
                "model", self.scenario_name, broadcast_id, origin_server, sent_at_s, connected_clients, audience
            )
        )

    def audience(self, broadcast_id: int, kind: str, count_connected: Callable[[], int]) -> None:
        """Send ``broadcast_id`` goes to a ``kind`` audience (``group``, ``user``, ``connection``) whose
        connected recipients ``count_connected`` counts when the send is recorded."""
        self._audiences[broadcast_id] = (kind, count_connected)

    def fan_out(
        self,
        server: int,
        broadcast_id: int,
        origin_server: int,
        sent_at_s: float,
        recipients: int,
        received_s: npt.NDArray[np.float64],
        *,
        delivered: int | None = None,
    ) -> None:
        """A fan-out whose sampled recipients received it at ``received_s`` (``delivered``: how many of
        the ``recipients`` got it, when not all did); a sample stands for ``recipients / len(sample)``."""
        latencies = received_s - sent_at_s
        got = recipients if delivered is None else delivered
        self.records.latency.add(latencies, weight=got / len(latencies))
        self.records.deliveries.append(
            DeliveryRecord(
                "model",
                self.scenario_name,
                broadcast_id,
                server,
                origin_server,
                sent_at_s,
                recipients,
                got,
                float(latencies.mean()),
                float(latencies.max()),
                self._audiences[broadcast_id][0] if broadcast_id in self._audiences else "all",
            )
        )

    def fan_outs(
        self,
        servers: npt.NDArray[np.int64],
        broadcast_id: int,
        origin_server: int,
        sent_at_s: float,
        recipients: npt.NDArray[np.int64],
        received_s: npt.NDArray[np.float64],
    ) -> None:
        """Fan-outs of one send on several servers, each delivered to all its recipients; row ``i`` of
        ``received_s`` is server ``servers[i]``'s sample (as :meth:`fan_out`, in one numpy step)."""
        latencies = received_s - sent_at_s
        weights = recipients / latencies.shape[1]
        for weight in np.unique(weights).tolist():  # servers alike hold as many clients: one add for all
            self.records.latency.add(latencies[weights == weight], weight=weight)
        audience = self._audiences[broadcast_id][0] if broadcast_id in self._audiences else "all"
        name = self.scenario_name
        means, maxima = latencies.mean(axis=1).tolist(), latencies.max(axis=1).tolist()
        append = self.records.deliveries.append
        for server, count, mean_s, max_s in zip(servers.tolist(), recipients.tolist(), means, maxima, strict=True):
            append(
                DeliveryRecord(
                    "model", name, broadcast_id, server, origin_server, sent_at_s, count, count, mean_s, max_s,
                    audience,
                )
            )  # fmt: skip

    def resource(self, sample: ResourceSample) -> None:
        """A resource sample (built by the sampler, which knows what each part exposes)."""
        self.records.resources.append(sample)

    def clients_ever_connected(self, clients: int) -> None:
        """At the end of the run: how many distinct clients held a connection at some point."""
        self.records.clients_ever_connected = clients

    def first_connects(self, attempted: int, failed: int) -> None:
        """At the end of the run: first connect attempts made, and how many of them failed."""
        self.records.first_connects_attempted = attempted
        self.records.first_connects_failed = failed
