"""Clients of the hub: what stands on the far side of every WebSocket the server holds.

* :mod:`~simscale.client.hub_client`: :class:`HubClient`, the full asyncio client (negotiate,
  invocations with results, streams both ways, a reader task per connection), on aiohttp.
* :mod:`~simscale.client.lean`: :class:`LeanHubClient`, the load generator's client: no task per
  connection, messages decoded and time-stamped inside the socket callback.
* :mod:`~simscale.client.websocket`: the WebSocket under the lean client, one asyncio Protocol per
  connection, framing with the same pure :mod:`simscale.protocol.websocket_frames` the server uses.

Both speak the hub protocol through the sans-I/O :class:`simscale.protocol.ClientConnection`;
neither imports anything of the server (:mod:`simscale.hub`).
"""

from __future__ import annotations

from simscale.client.hub_client import HubClient, HubConnectionError, HubError, resolve_websocket_url
from simscale.client.lean import InvocationHandler, LeanHubClient

__all__ = [
    "HubClient",
    "HubConnectionError",
    "HubError",
    "InvocationHandler",
    "LeanHubClient",
    "resolve_websocket_url",
]
