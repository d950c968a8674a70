"""The clients as arrays, not processes: a million clients cost a few numpy columns.

Each client is a row: which server it is connected to (-1 when not), its source address, which
proxy address its backend hop uses, when it connected, how many attempts of its current reconnect
sequence failed, and its keep-alive phase. Events act on batches of rows, so the number of
simulation events grows with batches and servers, not with clients
(docs/SOURCES.md#simulating-many-clients).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ClientPopulation"]

IntArray = npt.NDArray[np.int64]


class ClientPopulation:
    """Per-client state columns plus per-server counts kept in step with them."""

    def __init__(self, clients: int, servers: int, phases: int, client_addresses: int) -> None:
        self.size = clients
        self.server_of = np.full(clients, -1, dtype=np.int32)
        self.address = (
            np.arange(clients, dtype=np.int64) % client_addresses
            if client_addresses > 0
            else np.arange(clients, dtype=np.int64)
        )
        self.proxy_address = np.zeros(clients, dtype=np.int32)
        self.connected_at = np.zeros(clients, dtype=np.float64)
        self.failed_attempts = np.zeros(clients, dtype=np.int16)
        self.was_dropped = np.zeros(clients, dtype=bool)
        self.gave_up = np.zeros(clients, dtype=bool)
        self.ever_connected = np.zeros(clients, dtype=bool)
        self.close_at = np.full(clients, np.inf, dtype=np.float64)
        self.phase = (np.arange(clients) % phases).astype(np.int32)
        self.invocation_busy = np.zeros(clients, dtype=bool)
        self.invocation_backlog = np.zeros(clients, dtype=np.int32)
        self.per_server = np.zeros(servers, dtype=np.int64)
        self.per_server_phase = np.zeros((servers, phases), dtype=np.int64)
        self.connected = 0

    def attach(self, ids: IntArray, server: int, now_s: float) -> None:
        """Mark ``ids`` connected to ``server``."""
        self.server_of[ids] = server
        self.connected_at[ids] = now_s
        self.ever_connected[ids] = True
        self.failed_attempts[ids] = 0
        self.was_dropped[ids] = False
        self.per_server[server] += len(ids)
        self.per_server_phase[server] += np.bincount(self.phase[ids], minlength=self.per_server_phase.shape[1])
        self.connected += len(ids)

    def detach(self, ids: IntArray) -> None:
        """Mark ``ids`` (all connected) as disconnected."""
        servers = self.server_of[ids]
        phases = self.phase[ids]
        np.add.at(self.per_server_phase, (servers, phases), -1)
        self.per_server -= np.bincount(servers, minlength=len(self.per_server))
        self.server_of[ids] = -1
        self.close_at[ids] = np.inf
        self.connected -= len(ids)

    def random_connected(self, rng: np.random.Generator) -> int:
        """A uniformly random connected client, or -1 when none is connected."""
        if self.connected == 0:
            return -1
        # Rejection sampling is O(1) while most clients are connected; fall back to a scan otherwise.
        for _ in range(32):
            candidate = int(rng.integers(self.size))
            if self.server_of[candidate] >= 0:
                return candidate
        connected = np.flatnonzero(self.server_of >= 0)
        return int(connected[rng.integers(len(connected))])
