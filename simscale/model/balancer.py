"""The load balancer in front of the servers: which server a connecting client is sent to.

Each policy is a small class behind one interface, :class:`LoadBalancer` — ``choose(ids)`` returns a
server index per connecting client — so a new policy is a new class, not another branch:

* ``round-robin``: the next server in turn (a plain TCP/HTTP balancer's default);
* ``least-connections``: the server with the fewest connections and handshakes in progress;
* ``sticky-ip``: a stable hash of the client's address (nginx ``ip_hash``), so one address always
  lands on the same server.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = ["LeastConnections", "LoadBalancer", "RoundRobin", "StickyIp", "make_load_balancer"]

IntArray = npt.NDArray[np.int64]


class LoadBalancer(ABC):
    """Chooses a server for each client of a batch that is connecting now.

    Subclasses implement :meth:`choose`; they may keep state between batches (a round-robin cursor).
    The scenario's ``load_balancer`` picks one.

    Example (the deployment builds it; round-robin sends six newcomers to three servers in turn):

        >>> import numpy as np
        >>> from simscale import preset
        >>> from simscale.model import Deployment, LoadBalancer
        >>> scenario = preset("no-backplane", clients=9, duration_s=3.0, warmup_s=1.0, seed=1)
        >>> balancer = Deployment(scenario, np.random.default_rng(scenario.seed)).connections.balancer
        >>> isinstance(balancer, LoadBalancer), type(balancer).__name__
        (True, 'RoundRobin')
        >>> balancer.choose(np.arange(6)).tolist()
        [0, 1, 2, 0, 1, 2]
    """

    def __init__(self, population: ClientPopulation, servers: Sequence[SimServer]) -> None:
        self.population = population
        self.servers = servers

    @abstractmethod
    def choose(self, ids: IntArray) -> IntArray:
        """The server index for each client in ``ids``, in order."""
        raise NotImplementedError


class RoundRobin(LoadBalancer):
    """Servers in turn, continuing where the last batch ended."""

    def __init__(self, population: ClientPopulation, servers: Sequence[SimServer]) -> None:
        super().__init__(population, servers)
        self._next = 0

    def choose(self, ids: IntArray) -> IntArray:
        count, servers = len(ids), len(self.servers)
        chosen = (self._next + np.arange(count)) % servers
        self._next = int((self._next + count) % servers)
        return chosen.astype(np.int64)


class StickyIp(LoadBalancer):
    """A stable hash of each client's source address (``ip_hash``)."""

    def choose(self, ids: IntArray) -> IntArray:
        addresses = self.population.address[ids]
        return np.array([_address_hash(int(a)) % len(self.servers) for a in addresses], dtype=np.int64)


class LeastConnections(LoadBalancer):
    """Each newcomer to the currently least-loaded server (connections plus handshakes under way)."""

    def choose(self, ids: IntArray) -> IntArray:
        loads = self.population.per_server.astype(np.int64) + np.array(
            [server.handshakes_in_progress for server in self.servers], dtype=np.int64
        )
        chosen = np.empty(len(ids), dtype=np.int64)
        for position in range(len(ids)):
            target = int(np.argmin(loads))
            chosen[position] = target
            loads[target] += 1
        return chosen


_POLICIES: dict[str, type[LoadBalancer]] = {
    "round-robin": RoundRobin,
    "least-connections": LeastConnections,
    "sticky-ip": StickyIp,
}


def make_load_balancer(policy: str, population: ClientPopulation, servers: Sequence[SimServer]) -> LoadBalancer:
    """The balancer for ``policy`` (one of ``round-robin``, ``least-connections``, ``sticky-ip``)."""
    try:
        return _POLICIES[policy](population, servers)
    except KeyError:
        raise ValueError(f"load_balancer must be one of {', '.join(map(repr, _POLICIES))}, got {policy!r}") from None


def _address_hash(address: int) -> int:
    """A stable hash of a client address (ip_hash): the same address always maps the same way."""
    return zlib.crc32(address.to_bytes(8, "little"))
