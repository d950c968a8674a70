"""The load balancer in front of the servers: which server a connecting client is sent to.

Each policy is a small class behind one interface, :class:`LoadBalancer` — ``choose(ids)`` returns a
server index per connecting client — so a new policy is a new class, not another branch:

* ``round-robin``: the next server in turn (a plain TCP/HTTP balancer's default);
* ``least-connections``: the server with the fewest connections and handshakes in progress;
* ``sticky-ip``: a stable hash of the client's address (nginx ``ip_hash``), so one address always
  lands on the same server;
* ``random``: a uniformly random server per request;
* ``sticky-cookie``: round-robin for a client's first request, whose response sets an affinity
  cookie; the client's next request (the transport after negotiate) follows the cookie.

A balancer sends requests only to servers that are up (its health checks notice a server that is
down); :meth:`LoadBalancer.choose_transport` routes the second request of a negotiated connection.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = [
    "LeastConnections",
    "LoadBalancer",
    "RandomChoice",
    "RoundRobin",
    "StickyCookie",
    "StickyIp",
    "make_load_balancer",
]

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
        >>> balancer.sticky
        False
    """

    sticky = False
    """Whether a client's second request reaches the server of its first one."""

    def __init__(
        self, population: ClientPopulation, servers: Sequence[SimServer], rng: np.random.Generator | None = None
    ) -> None:
        self.population = population
        self.servers = servers
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def up_servers(self) -> IntArray:
        """Indices of the servers that are up (every server, unless one failed)."""
        return np.array([server.index for server in self.servers if _is_up(server)], dtype=np.int64)

    @abstractmethod
    def choose(self, ids: IntArray) -> IntArray:
        """The server index for each client in ``ids``, in order (only called while a server is up)."""
        raise NotImplementedError

    def choose_transport(self, ids: IntArray, negotiated: IntArray) -> IntArray:
        """The server for each client's transport request after it negotiated on ``negotiated``.

        A balancer without affinity treats it as a new request; a sticky one keeps the server.
        """
        if self.sticky:
            up = np.isin(negotiated, self.up_servers())
            if up.all():
                return negotiated
            chosen = negotiated.copy()
            chosen[~up] = self.choose(ids[~up])
            return chosen
        return self.choose(ids)


class RoundRobin(LoadBalancer):
    """Servers in turn, continuing where the last batch ended."""

    def __init__(
        self, population: ClientPopulation, servers: Sequence[SimServer], rng: np.random.Generator | None = None
    ) -> None:
        super().__init__(population, servers, rng)
        self._next = 0

    def choose(self, ids: IntArray) -> IntArray:
        up = self.up_servers()
        count, servers = len(ids), len(up)
        chosen = (self._next + np.arange(count)) % servers
        self._next = int((self._next + count) % servers)
        return up[chosen].astype(np.int64)


class StickyIp(LoadBalancer):
    """A stable hash of each client's source address (``ip_hash``)."""

    sticky = True

    def choose(self, ids: IntArray) -> IntArray:
        up = self.up_servers()
        addresses = self.population.address[ids]
        return np.array([up[_address_hash(int(a)) % len(up)] for a in addresses], dtype=np.int64)


class LeastConnections(LoadBalancer):
    """Each newcomer to the currently least-loaded server (connections plus handshakes under way)."""

    def choose(self, ids: IntArray) -> IntArray:
        loads = self.population.per_server.astype(np.int64) + np.array(
            [server.handshakes_in_progress for server in self.servers], dtype=np.int64
        )
        loads[[not _is_up(server) for server in self.servers]] = np.iinfo(np.int64).max // 2
        chosen = np.empty(len(ids), dtype=np.int64)
        for position in range(len(ids)):
            target = int(np.argmin(loads))
            chosen[position] = target
            loads[target] += 1
        return chosen


class RandomChoice(LoadBalancer):
    """A uniformly random server that is up, for every request (the run's own generator)."""

    def choose(self, ids: IntArray) -> IntArray:
        up = self.up_servers()
        return up[self.rng.integers(len(up), size=len(ids))].astype(np.int64)


class StickyCookie(RoundRobin):
    """Round-robin for a first request; the affinity cookie it sets pins the next one to the same server."""

    sticky = True


_POLICIES: dict[str, type[LoadBalancer]] = {
    "round-robin": RoundRobin,
    "least-connections": LeastConnections,
    "sticky-ip": StickyIp,
    "random": RandomChoice,
    "sticky-cookie": StickyCookie,
}


def make_load_balancer(
    policy: str,
    population: ClientPopulation,
    servers: Sequence[SimServer],
    rng: np.random.Generator | None = None,
) -> LoadBalancer:
    """The balancer for ``policy`` (``round-robin``, ``least-connections``, ``sticky-ip``, ``random``,
    ``sticky-cookie``); ``rng`` is the run's generator, which ``random`` draws from.

    Example:

        >>> from simscale.model.balancer import make_load_balancer
        >>> from simscale.model.population import ClientPopulation
        >>> make_load_balancer("random-walk", ClientPopulation(1, 1, 1, 0), [])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: load_balancer must be one of 'round-robin', ..., 'sticky-cookie', got 'random-walk'
    """
    try:
        return _POLICIES[policy](population, servers, rng)
    except KeyError:
        raise ValueError(f"load_balancer must be one of {', '.join(map(repr, _POLICIES))}, got {policy!r}") from None


def _is_up(server: SimServer) -> bool:
    # A stand-in server without the flag (a test double) counts as up.
    return bool(getattr(server, "up", True))


def _address_hash(address: int) -> int:
    """A stable hash of a client address (ip_hash): the same address always maps the same way."""
    return zlib.crc32(address.to_bytes(8, "little"))
