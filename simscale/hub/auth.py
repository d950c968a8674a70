"""Who is calling: turning a bearer token into a user id.

A SignalR client sends its access token either as the ``access_token`` query value (browsers, where a
WebSocket cannot carry headers) or as an ``Authorization: Bearer …`` header (Node, .NET, Python
clients). The hub extracts the token once per request and asks a pluggable :class:`Authenticator`
for the user id; that id drives ``Clients.user(id)`` and the backplane's user channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = [
    "AnonymousAuthenticator",
    "AuthenticationError",
    "Authenticator",
    "StaticTokenAuthenticator",
    "TokenIsUserAuthenticator",
    "bearer_token",
]


class AuthenticationError(Exception):
    """The token was missing or wrong; the request is answered with 401.

    Example:

        >>> import asyncio
        >>> from simscale.hub import AuthenticationError, StaticTokenAuthenticator
        >>> try:
        ...     asyncio.run(StaticTokenAuthenticator({"t1": "ann"}).authenticate("wrong"))
        ... except AuthenticationError:
        ...     print("401")
        401
    """


@runtime_checkable
class Authenticator(Protocol):
    """Maps a bearer token (or ``None`` when the client sent none) to a user id.

    Example (an authenticator of our own: the token is the user's name):

        >>> import asyncio
        >>> from simscale.hub import AuthenticationError, Authenticator
        >>> class NameIsToken(Authenticator):
        ...     async def authenticate(self, token: str | None) -> str | None:
        ...         if token is None:
        ...             raise AuthenticationError("a token is required")
        ...         return token
        >>> asyncio.run(NameIsToken().authenticate("ann"))
        'ann'
    """

    async def authenticate(self, token: str | None) -> str | None:
        """Return the user id, ``None`` for an anonymous user, or raise :class:`AuthenticationError`."""
        ...


class AnonymousAuthenticator:
    """Everybody is anonymous; tokens are ignored (the default).

    Example:

        >>> import asyncio
        >>> from simscale.hub import AnonymousAuthenticator
        >>> print(asyncio.run(AnonymousAuthenticator().authenticate("any token")))
        None
    """

    async def authenticate(self, token: str | None) -> str | None:
        """Always ``None``: no user id."""
        return None


class StaticTokenAuthenticator:
    """A fixed table of tokens and the users they stand for (tests, demos, ``--token``).

    Args:
        users_by_token: token → user id.
        allow_anonymous: accept requests that carry no token at all (as anonymous users).

    Example (a client that sends the token connects as its user):

        >>> import asyncio
        >>> from simscale.client import HubClient
        >>> from simscale.hub import HubServer, StaticTokenAuthenticator
        >>> async def connect_with_token() -> str:
        ...     server = HubServer(authenticator=StaticTokenAuthenticator({"t1": "ann"}))
        ...     client = HubClient(f"{await server.listen('127.0.0.1', 0)}/chatHub", access_token="t1")
        ...     try:
        ...         await client.start()
        ...         return await client.invoke("Echo", "in")
        ...     finally:
        ...         await client.stop()
        ...         await server.close()
        >>> asyncio.run(connect_with_token())
        'in'
    """

    def __init__(self, users_by_token: Mapping[str, str], *, allow_anonymous: bool = True) -> None:
        self._users_by_token = dict(users_by_token)
        self._allow_anonymous = allow_anonymous

    async def authenticate(self, token: str | None) -> str | None:
        """The user the token belongs to; unknown tokens are refused."""
        if token is None:
            if self._allow_anonymous:
                return None
            raise AuthenticationError("an access token is required")
        try:
            return self._users_by_token[token]
        except KeyError:
            raise AuthenticationError("unknown access token") from None


class TokenIsUserAuthenticator:
    """The bearer token names its user: the token's text is the user id (load tests, ``--users-from-tokens``).

    ASP.NET Core takes a connection's user id from the ``ClaimTypes.NameIdentifier`` claim of the
    authenticated principal (https://learn.microsoft.com/aspnet/core/signalr/groups, "Users in
    SignalR"). A real app reads that claim out of a validated token; this stands in for such a token
    whose only claim is its own text, so a load generator can connect thousands of distinct users
    without a table of them. It checks nothing: never expose it beyond a test bench.

    Args:
        allow_anonymous: accept requests that carry no token at all (as anonymous users).

    Example:

        >>> import asyncio
        >>> from simscale.hub import TokenIsUserAuthenticator
        >>> asyncio.run(TokenIsUserAuthenticator().authenticate("ann"))
        'ann'
        >>> print(asyncio.run(TokenIsUserAuthenticator().authenticate(None)))
        None
    """

    def __init__(self, *, allow_anonymous: bool = True) -> None:
        self._allow_anonymous = allow_anonymous

    async def authenticate(self, token: str | None) -> str | None:
        """The token itself as the user id (``None``, or refused, without a token)."""
        if token is None:
            if self._allow_anonymous:
                return None
            raise AuthenticationError("an access token is required")
        return token


def bearer_token(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The access token of a request: the ``access_token`` query value, else the Bearer header."""
    token = query.get("access_token")
    if token:
        return token
    authorization = headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
