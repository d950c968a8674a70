"""Closed forms to set next to a simulation: Erlang B, Erlang C and Pollaczek–Khinchine.

A simulation is only believable once its simple cases agree with the formulas a textbook gives.
Three of simscale's components have such a case:

* TCP ports are an M/G/c/c loss system (a full pool refuses): **Erlang B**;
* the thread pool with injection off is an M/M/c queue (a busy pool makes work wait): **Erlang C**;
* the Redis backplane, one publisher at a time, is an M/G/1 queue: **Pollaczek–Khinchine**.

Loads are in erlangs (arrival rate × mean holding time). Pure Python and ``math``; no numpy needed.
"""

from __future__ import annotations

import math

__all__ = [
    "erlang_b",
    "erlang_c",
    "mmc_mean_wait_s",
    "pollaczek_khinchine_wait_s",
    "servers_for_blocking",
    "servers_for_wait_probability",
]


def _check(offered_load: float, servers: int) -> None:
    if not (isinstance(servers, int) and servers >= 1):
        raise ValueError(f"servers must be an integer >= 1, got {servers!r}")
    if not (math.isfinite(offered_load) and offered_load >= 0):
        raise ValueError(f"offered_load must be a finite number >= 0, got {offered_load!r}")


def erlang_b(offered_load: float, servers: int) -> float:
    """Probability an arrival finds all ``servers`` busy and is lost (M/G/c/c; any holding time).

    Args:
        offered_load: arrival rate × mean holding time, in erlangs.
        servers: how many can be held at once (ports, connections, lines).
    """
    _check(offered_load, servers)
    # The stable recurrence B(k) = A·B(k-1) / (k + A·B(k-1)), B(0) = 1.
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking


def erlang_c(offered_load: float, servers: int) -> float:
    """Probability an arrival has to wait (M/M/c); 1 when the load reaches the servers.

    Args:
        offered_load: arrival rate × mean service time, in erlangs.
        servers: parallel servers (threads, cores).
    """
    _check(offered_load, servers)
    if offered_load >= servers:
        return 1.0
    blocking = erlang_b(offered_load, servers)
    utilisation = offered_load / servers
    return blocking / (1 - utilisation * (1 - blocking))


def mmc_mean_wait_s(arrival_rate_per_s: float, service_s: float, servers: int) -> float:
    """Mean time in queue before service starts (M/M/c); ``inf`` when the system is overloaded."""
    if arrival_rate_per_s < 0 or service_s <= 0:
        raise ValueError("arrival_rate_per_s must be >= 0 and service_s > 0")
    offered = arrival_rate_per_s * service_s
    if offered >= servers:
        return math.inf
    return erlang_c(offered, servers) * service_s / (servers - offered)


def pollaczek_khinchine_wait_s(arrival_rate_per_s: float, service_s: float, service_scv: float = 0.0) -> float:
    """Mean time in queue of an M/G/1 queue (Pollaczek–Khinchine); ``inf`` when overloaded.

    Args:
        arrival_rate_per_s: Poisson arrival rate.
        service_s: mean service time.
        service_scv: squared coefficient of variation of the service time: 0 for constant
            service (M/D/1, the default), 1 for exponential (M/M/1).
    """
    if arrival_rate_per_s < 0 or service_s <= 0 or service_scv < 0:
        raise ValueError("arrival_rate_per_s >= 0, service_s > 0 and service_scv >= 0 are required")
    utilisation = arrival_rate_per_s * service_s
    if utilisation >= 1:
        return math.inf
    return utilisation * service_s * (1 + service_scv) / (2 * (1 - utilisation))


def servers_for_blocking(offered_load: float, target: float) -> int:
    """The fewest servers whose Erlang B blocking is at most ``target`` (0 < target < 1)."""
    if not 0 < target < 1:
        raise ValueError(f"target must be within (0, 1), got {target!r}")
    _check(offered_load, 1)
    servers, blocking = 0, 1.0
    while blocking > target:
        servers += 1
        blocking = offered_load * blocking / (servers + offered_load * blocking)
    return max(servers, 1)


def servers_for_wait_probability(offered_load: float, target: float) -> int:
    """The fewest servers whose Erlang C probability of waiting is at most ``target``."""
    if not 0 < target < 1:
        raise ValueError(f"target must be within (0, 1), got {target!r}")
    servers = max(1, math.floor(offered_load) + 1)
    while erlang_c(offered_load, servers) > target:
        servers += 1
    return servers
