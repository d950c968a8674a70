"""The real asyncio hub server: it speaks the SignalR hub protocol so official clients connect.

Reading order: :mod:`~simscale.hub.hub` (what an application writes), :mod:`~simscale.hub.chat`
(the built-in chat hub), :mod:`~simscale.hub.server` (negotiate, the WebSocket loop, the sweep),
:mod:`~simscale.hub.dispatch` (invocation → method → Completion) and
:mod:`~simscale.hub.lifetime` (local connections, groups and the fan-out over the backplane).
"""

from __future__ import annotations

from simscale.hub.auth import (
    AnonymousAuthenticator,
    AuthenticationError,
    Authenticator,
    StaticTokenAuthenticator,
    TokenIsUserAuthenticator,
)
from simscale.hub.chat import ChatHub
from simscale.hub.connection import HubConnection
from simscale.hub.hub import ClientProxy, GroupManager, Hub, HubClients, HubError
from simscale.hub.metrics import HubCounters
from simscale.hub.server import HubServer
from simscale.hub.settings import HubSettings
from simscale.hub.transports import TransportSettings, TransportType

__all__ = [
    "AnonymousAuthenticator",
    "AuthenticationError",
    "Authenticator",
    "ChatHub",
    "ClientProxy",
    "GroupManager",
    "Hub",
    "HubClients",
    "HubConnection",
    "HubCounters",
    "HubError",
    "HubServer",
    "HubSettings",
    "StaticTokenAuthenticator",
    "TokenIsUserAuthenticator",
    "TransportSettings",
    "TransportType",
]
