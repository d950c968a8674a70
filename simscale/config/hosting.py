"""Where the hubs run: the allowed Azure SignalR Service unit counts, and the checks on them.

Azure SignalR Service sells capacity in *units* of 1,000 concurrent connections (client and server
connections both count). A Standard or Premium_P1 instance can only be scaled to 1-10, 20, 30, …, 100
units, and a Premium_P2 instance to 100, 200, …, 1,000 (docs/SOURCES.md#azure-signalr-service).
This module imports nothing of simscale but :mod:`simscale.config.fields`'s neighbours.
"""

from __future__ import annotations

import math
from typing import Any, Literal

__all__ = ["HostingKind", "ServiceTier", "allowed_service_units", "check_hosting", "service_units_for"]

HostingKind = Literal["self-hosted", "azure-signalr"]
ServiceTier = Literal["standard", "premium_p1", "premium_p2"]

_STANDARD_UNITS: tuple[int, ...] = (*range(1, 11), *range(20, 101, 10))
_P2_UNITS: tuple[int, ...] = tuple(range(100, 1_001, 100))


def allowed_service_units(tier: str) -> tuple[int, ...]:
    """The unit counts an instance of ``tier`` can be scaled to.

    Example:

        >>> from simscale.config.hosting import allowed_service_units
        >>> allowed_service_units("standard")[8:12], allowed_service_units("premium_p2")[:3]
        ((9, 10, 20, 30), (100, 200, 300))
    """
    return _P2_UNITS if tier == "premium_p2" else _STANDARD_UNITS


def service_units_for(connections: int, tier: str, connections_per_unit: int = 1_000) -> int:
    """The smallest allowed unit count of ``tier`` that holds ``connections`` (the largest when none does).

    Example:

        >>> from simscale.config.hosting import service_units_for
        >>> service_units_for(1_005, "standard"), service_units_for(10_001, "standard")
        (2, 20)
        >>> service_units_for(5, "premium_p2")
        100
    """
    needed = max(1, math.ceil(connections / connections_per_unit))
    options = allowed_service_units(tier)
    return next((units for units in options if units >= needed), options[-1])


def check_hosting(scenario: Any) -> None:
    """The rules between the hosting fields of a Scenario (its ``__post_init__`` calls this).

    Example:

        >>> from simscale import Scenario
        >>> Scenario(hosting="azure-signalr", service_units=11)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: service_units must be 0 (the smallest that holds the connections) or one of 1-10, ... got 11
    """
    s = scenario
    if s.service_units and s.service_units not in allowed_service_units(s.service_tier):
        options = "100, 200, …, 1000" if s.service_tier == "premium_p2" else "1-10, 20, 30, …, 100"
        raise ValueError(
            "service_units must be 0 (the smallest that holds the connections) or one of "
            f"{options} for service_tier {s.service_tier!r}, got {s.service_units}"
        )
    if s.hosting == "azure-signalr" and s.backplane != "none":
        raise ValueError(
            "backplane must be 'none' with hosting 'azure-signalr' (the service joins the servers), "
            f"got {s.backplane!r}"
        )
    if s.web_servers and s.web_request_rate_per_s == 0:
        raise ValueError("web_servers needs web_request_rate_per_s > 0 (no web requests to serve)")
