"""Negotiate, then the transport: a connection that takes two requests through the balancer.

A SignalR client that negotiates first POSTs ``/negotiate`` — the server that answers creates the
connection id — then opens the transport (a WebSocket, a Server-Sent Events stream or the first long
poll) with that id. The balancer routes the second request on its own: unless it is sticky (an
``ip_hash`` or an affinity cookie), it may pick another server, which knows no such connection and
answers 404 ("No Connection with that ID"). A WebSockets client that skips negotiation makes one
request and never meets this (docs/SOURCES.md#load-balancers-and-sticky-sessions).

With a balancer that picks uniformly at random among N servers, the transport request lands on
the negotiating server with probability 1/N, so (N − 1)/N of the attempts fail.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simscale.model.balancer import LoadBalancer

__all__ = ["NOT_FOUND_REASON", "route_connects"]

IntArray = npt.NDArray[np.int64]

NOT_FOUND_REASON = "negotiate_404"
"""The reason recorded for a transport request that reached a server that did not negotiate it."""


def route_connects(balancer: LoadBalancer, ids: IntArray, *, negotiate: bool) -> tuple[IntArray, IntArray]:
    """The server of each client's transport request, and a mask of those that fail with 404.

    Without negotiation the balancer's one choice is the server. The caller makes sure a server is up.

    Example (random over four servers, negotiating: about three in four transport requests miss):

        >>> import numpy as np
        >>> from simscale.model.balancer import RandomChoice
        >>> from simscale.model.population import ClientPopulation
        >>> from simscale.model.negotiation import route_connects
        >>> class Up:
        ...     up = True
        ...     def __init__(self, index): self.index = index
        >>> balancer = RandomChoice(ClientPopulation(4000, 4, 1, 0), [Up(i) for i in range(4)],
        ...                         np.random.default_rng(1))
        >>> servers, not_found = route_connects(balancer, np.arange(4000), negotiate=True)
        >>> abs(float(not_found.mean()) - 3 / 4) < 0.02
        True
        >>> bool(route_connects(balancer, np.arange(10), negotiate=False)[1].any())
        False
    """
    if not negotiate:
        return balancer.choose(ids), np.zeros(len(ids), dtype=bool)
    negotiated = balancer.choose(ids)
    transport = balancer.choose_transport(ids, negotiated)
    return transport, transport != negotiated
