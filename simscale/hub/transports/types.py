"""The vocabulary of the transports: their names, what negotiate says of them, their settings."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from simscale.config.fields import setting, validate_fields

__all__ = ["ALL_TRANSPORTS", "TransportSettings", "TransportType", "parse_transports"]


class TransportType(enum.Enum):
    """A SignalR transport, named as negotiate and the clients name it (``HttpTransportType``).

    Example:

        >>> from simscale.hub import TransportType
        >>> TransportType.SERVER_SENT_EVENTS.negotiate_entry()
        {'transport': 'ServerSentEvents', 'transferFormats': ['Text']}
    """

    WEBSOCKETS = "WebSockets"
    SERVER_SENT_EVENTS = "ServerSentEvents"
    LONG_POLLING = "LongPolling"

    @property
    def transfer_formats(self) -> tuple[str, ...]:
        """What negotiate lists for it: an event stream carries text only."""
        return ("Text",) if self is TransportType.SERVER_SENT_EVENTS else ("Text", "Binary")

    def negotiate_entry(self) -> dict[str, object]:
        """This transport's element of negotiate's ``availableTransports``."""
        return {"transport": self.value, "transferFormats": list(self.transfer_formats)}


ALL_TRANSPORTS: frozenset[TransportType] = frozenset(TransportType)
"""Every transport: ASP.NET Core's default (``HttpTransports.All``)."""

_NEGOTIATE_ORDER = (TransportType.WEBSOCKETS, TransportType.SERVER_SENT_EVENTS, TransportType.LONG_POLLING)


def negotiate_entries(enabled: Iterable[TransportType]) -> list[dict[str, object]]:
    """``availableTransports`` for ``enabled``, in ASP.NET Core's order (the client tries them in it)."""
    chosen = set(enabled)
    return [t.negotiate_entry() for t in _NEGOTIATE_ORDER if t in chosen]


def parse_transports(text: str) -> frozenset[TransportType]:
    """``"WebSockets,LongPolling"`` (any case; ``all``) → the transports.

    Example:

        >>> from simscale.hub.transports import parse_transports
        >>> sorted(t.value for t in parse_transports("websockets, LongPolling"))
        ['LongPolling', 'WebSockets']

    Raises:
        ValueError: an unknown name, or none at all.
    """
    by_name = {t.value.lower(): t for t in TransportType}
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return ALL_TRANSPORTS
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        allowed = ", ".join(t.value for t in _NEGOTIATE_ORDER)
        raise ValueError(f"transports must be a comma-separated list of {allowed} (or all), got {text!r}")
    return frozenset(by_name[n] for n in names)


_REF = "docs/SOURCES.md#hub-transports"


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Which transports a hub server accepts, and the long-polling timer.

    Example (a server that offers long polling only, as ``hub serve --transports LongPolling``):

        >>> from simscale.hub import HubServer, TransportSettings
        >>> from simscale.hub.transports import parse_transports
        >>> settings = TransportSettings(enabled=parse_transports("LongPolling"))
        >>> server = HubServer(transport_settings=settings)
        >>> sorted(t.value for t in server.transport_settings.enabled), settings.long_poll_timeout_s
        (['LongPolling'], 90.0)
    """

    long_poll_timeout_s: float = setting(
        90.0, gt=0, section="timers", source=f"{_REF} (LongPollingOptions.PollTimeout)",
        help="How long a poll waits for data before it is answered 200 with an empty body.",
    )  # fmt: skip
    enabled: frozenset[TransportType] = ALL_TRANSPORTS
    """Transports negotiate lists and requests may use; another gets 404 as in ASP.NET Core."""

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.enabled or not all(isinstance(t, TransportType) for t in self.enabled):
            raise ValueError(f"enabled must be a non-empty set of TransportType, got {self.enabled!r}")
