"""What a plan is asked: the load, the requirements, the hosting; validated on construction.

A :class:`PlanRequest` is to :func:`~simscale.planning.plan` what a
:class:`~simscale.scenarios.Scenario` is to ``simulate``: frozen, with units in its field names, and a
bad value raises ``ValueError`` naming the field and what it allows. What it does not say comes
from the ``backplane`` preset (or a ``base`` scenario of your own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONSTRAINTS",
    "Constraint",
    "Hosting",
    "NoDeploymentFits",
    "NotAvailableYet",
    "PlanRequest",
    "SendTarget",
]

Constraint = Literal["ports", "connection_limit", "threads", "cpu", "memory", "backplane", "latency", "service_units"]
"""The limits a deployment can hit, by the name the plan gives them."""

CONSTRAINTS: tuple[Constraint, ...] = (
    "ports",
    "connection_limit",
    "threads",
    "cpu",
    "memory",
    "backplane",
    "latency",
    "service_units",
)
"""Every binding-constraint name, in the order a failing candidate is judged: connection failures
first (a refused client distorts every other figure), then the resources, then latency."""

Hosting = Literal["self-hosted", "azure-signalr"]
SendTarget = Literal["all", "group"]
BackplaneChoice = Literal["redis", "none"]

_HOSTINGS: tuple[Hosting, ...] = ("self-hosted", "azure-signalr")
_SEND_TARGETS: tuple[SendTarget, ...] = ("all", "group")
_BACKPLANES: tuple[BackplaneChoice, ...] = ("redis", "none")


class NoDeploymentFits(Exception):
    """No deployment within the limits carries the load; ``reason`` says which limit stops it.

    Example:

        >>> import simscale
        >>> from simscale.planning import NoDeploymentFits
        >>> try:
        ...     simscale.plan(clients=100, broadcast_rate_per_s=1.0, backplane="none",
        ...                   base=simscale.preset("backplane", ephemeral_ports=50))
        ... except NoDeploymentFits as verdict:
        ...     print(verdict.reason)
        ports: without a backplane one server must carry every client, and it cannot
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotAvailableYet(ValueError):
    """A combination the model cannot simulate in this version (group sends on Azure SignalR
    Service, whose model fans out broadcasts only); a ``ValueError``.

    Example:

        >>> from simscale.planning import PlanRequest
        >>> request = PlanRequest(clients=10, broadcast_rate_per_s=1.0, hosting="azure-signalr",
        ...                       send_target="group", group_size=5)
        >>> request.check_supported()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        simscale.planning.request.NotAvailableYet: --send-target group with --hosting azure-signalr: ...
    """


def _positive_int(name: str, value: object, upper: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= upper:
        raise ValueError(f"{name} must be an integer >= 1 and <= {upper:,}, got {value!r}")


def _positive_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """The load and the requirements a deployment must meet.

    Example:

        >>> from simscale.planning import PlanRequest
        >>> PlanRequest(clients=1_000, broadcast_rate_per_s=5.0).latency_p99_ms
        250.0
        >>> PlanRequest(clients=1_000, broadcast_rate_per_s=5.0, cpu_headroom=1.5)
        Traceback (most recent call last):
        ...
        ValueError: cpu_headroom must be within (0, 1], got 1.5
    """

    clients: int
    """Clients that must all hold a connection (none refused or dropped)."""
    broadcast_rate_per_s: float
    """Broadcasts per second, all senders together."""
    message_bytes: int | None = None
    """Payload of each broadcast; ``None``: the base scenario's."""
    send_target: SendTarget = "all"
    """``all``: every broadcast goes to every client; ``group``: to a group of ``group_size``."""
    group_size: int | None = None
    """Clients per group (with ``send_target="group"``)."""
    latency_p99_ms: float = 250.0
    """Send-to-receive p99 target, in milliseconds."""
    cpu_headroom: float = 0.7
    """Highest allowed mean CPU of the busiest server over the busy period, a fraction in (0, 1]."""
    backplane_utilization_max: float = 0.7
    """Highest allowed utilisation of the Redis backplane, a fraction in (0, 1]."""
    hosting: Hosting = "self-hosted"
    """``self-hosted`` app servers, or ``azure-signalr`` (Azure SignalR Service units)."""
    backplane: BackplaneChoice = "redis"
    """``redis`` joins the servers; ``none``: one server only (no backplane delivers to the others).
    Ignored with ``hosting="azure-signalr"`` (the service joins the app servers)."""
    cores_per_server: int | None = None
    """Cores of each server; ``None``: the base scenario's."""
    memory_per_server_bytes: float | None = None
    """Memory each server may use; ``None``: no memory limit (the model sets none)."""
    replications: int = 2
    """Simulations per candidate (independent seeds); 2 or more give confidence intervals."""
    max_servers: int = 64
    """The largest deployment the plan considers."""

    def __post_init__(self) -> None:
        _positive_int("clients", self.clients, 10_000_000)
        _positive_float("broadcast_rate_per_s", self.broadcast_rate_per_s)
        if self.message_bytes is not None:
            _positive_int("message_bytes", self.message_bytes, 1_048_576)
        if self.send_target not in _SEND_TARGETS:
            raise ValueError(f"send_target must be one of {', '.join(_SEND_TARGETS)}, got {self.send_target!r}")
        if self.send_target == "group":
            if self.group_size is None:
                raise ValueError("group_size is required with send_target 'group'")
            _positive_int("group_size", self.group_size, self.clients)
        elif self.group_size is not None:
            raise ValueError("group_size applies only with send_target 'group'")
        _positive_float("latency_p99_ms", self.latency_p99_ms)
        for name in ("cpu_headroom", "backplane_utilization_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise ValueError(f"{name} must be within (0, 1], got {value!r}")
        if self.hosting not in _HOSTINGS:
            raise ValueError(f"hosting must be one of {', '.join(_HOSTINGS)}, got {self.hosting!r}")
        if self.backplane not in _BACKPLANES:
            raise ValueError(f"backplane must be one of {', '.join(_BACKPLANES)}, got {self.backplane!r}")
        if self.cores_per_server is not None:
            _positive_int("cores_per_server", self.cores_per_server, 1_024)
        if self.memory_per_server_bytes is not None:
            _positive_float("memory_per_server_bytes", self.memory_per_server_bytes)
        _positive_int("replications", self.replications, 1_000)
        _positive_int("max_servers", self.max_servers, 10_000)

    def check_supported(self) -> None:
        """Raise :class:`NotAvailableYet` for what the model cannot simulate in this version."""
        if self.hosting == "azure-signalr" and self.send_target == "group":
            raise NotAvailableYet(
                "--send-target group with --hosting azure-signalr: the service model fans out broadcasts only, "
                "not available in this version"
            )
