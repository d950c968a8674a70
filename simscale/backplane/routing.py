"""Who delivers a hub message to which clients: the one rule shared by the real hub and the model.

Two ways to run a scaled-out hub:

* ``direct-local`` (simscale's default): the sending server writes to its own clients at once and
  publishes for the other servers; when its own publish comes back from the backplane it drops it
  (echo suppression by origin server). Local clients never pay the backplane round trip.
* ``via-backplane`` (what ASP.NET Core's Redis backplane does, dotnet/aspnetcore#48624): every
  delivery, even to the sender's own clients, goes out to the backplane and back. When the backplane
  is down nobody gets the message, not even clients on the sending server.

Pure module: no asyncio, no redis.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT_ROUTING_MODE", "RoutingMode", "accepts_from_backplane", "delivers_locally_on_send"]


class RoutingMode(StrEnum):
    """How the origin server reaches its own clients.

    Example:

        >>> from simscale.backplane import RoutingMode, delivers_locally_on_send
        >>> [(mode.value, delivers_locally_on_send(mode)) for mode in RoutingMode]
        [('direct-local', True), ('via-backplane', False)]
    """

    DIRECT_LOCAL = "direct-local"
    VIA_BACKPLANE = "via-backplane"


DEFAULT_ROUTING_MODE = RoutingMode.DIRECT_LOCAL


def delivers_locally_on_send(mode: RoutingMode) -> bool:
    """Whether the sending server writes to its own matching clients before publishing.

    Example:

        >>> from simscale.backplane import RoutingMode, delivers_locally_on_send
        >>> delivers_locally_on_send(RoutingMode.VIA_BACKPLANE)
        False
    """
    return mode is RoutingMode.DIRECT_LOCAL


def accepts_from_backplane(mode: RoutingMode, origin_server: str, this_server: str) -> bool:
    """Whether a server delivers a message it received from the backplane to its local clients.

    Args:
        mode: the routing mode of the cluster.
        origin_server: the name of the server that published; empty when unknown (e.g. a message
            published by ASP.NET Core, which carries no origin marker).
        this_server: the receiving server's name.

    Example (with direct-local routing a server drops its own echo):

        >>> from simscale.backplane import RoutingMode, accepts_from_backplane
        >>> accepts_from_backplane(RoutingMode.DIRECT_LOCAL, "one", "one")
        False
        >>> accepts_from_backplane(RoutingMode.DIRECT_LOCAL, "one", "two")
        True
    """
    if mode is RoutingMode.VIA_BACKPLANE:
        return True
    # An unknown origin cannot be our own echo, so it is delivered.
    return not origin_server or origin_server != this_server
