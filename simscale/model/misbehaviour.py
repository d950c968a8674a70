"""Wiring of the optional misbehaviour: blocking handshakes, an admission limit, server loss.

:class:`~simscale.model.deployment.Deployment` hands it the scenario's fields named in
:data:`MISBEHAVIOUR_FIELDS` (it never sees the Scenario itself). With those fields at their defaults it
wires nothing and the model runs exactly as without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import simpy

from simscale.model.connections import Connections
from simscale.model.failures import ServerFailures
from simscale.model.handshakes import PerClientHandshakes
from simscale.model.population import ClientPopulation
from simscale.model.server import SimServer

__all__ = ["MISBEHAVIOUR_FIELDS", "wire_misbehaviour"]

MISBEHAVIOUR_FIELDS: tuple[str, ...] = (
    "handshake_wait_s",
    "max_concurrent_handshakes",
    "handshake_cpu_s",
    "handshake_timeout_s",
    "server_failure_kind",
    "server_failure_at_s",
    "server_failure_server",
    "server_failure_duration_s",
    "deploy_interval_s",
    "keepalive_interval_s",
    "server_timeout_s",
)
"""The scenario fields :func:`wire_misbehaviour` takes, by name."""


def wire_misbehaviour(
    env: simpy.Environment,
    rng: np.random.Generator,
    population: ClientPopulation,
    servers: Sequence[SimServer],
    connections: Connections,
    *,
    handshake_wait_s: float,
    max_concurrent_handshakes: int,
    handshake_cpu_s: float,
    handshake_timeout_s: float,
    server_failure_kind: str,
    server_failure_at_s: float,
    server_failure_server: int,
    server_failure_duration_s: float,
    deploy_interval_s: float,
    keepalive_interval_s: float,
    server_timeout_s: float,
) -> ServerFailures | None:
    """Blocking handshakes and the admission limit (on ``connections``), and the server failure, if any.

    Example (the defaults wire nothing):

        >>> import numpy as np
        >>> from simscale import preset
        >>> from simscale.model import Deployment
        >>> deployment = Deployment(preset("no-backplane", clients=30), np.random.default_rng(0))
        >>> deployment.failures is None, deployment.connections.per_client_handshakes is None
        (True, True)
        >>> type(Deployment(preset("reconnect-storm"), np.random.default_rng(0)).failures).__name__
        'ServerFailures'
    """
    if handshake_wait_s > 0 or max_concurrent_handshakes > 0:
        connections.per_client_handshakes = PerClientHandshakes(
            env,
            connections,
            wait_s=handshake_wait_s,
            cpu_s=handshake_cpu_s,
            timeout_s=handshake_timeout_s,
            max_concurrent=max_concurrent_handshakes,
        )
    if server_failure_kind == "none":
        return None
    return ServerFailures(
        env,
        rng,
        population,
        servers,
        connections,
        kind=server_failure_kind,
        at_s=server_failure_at_s,
        server=server_failure_server,
        duration_s=server_failure_duration_s,
        deploy_interval_s=deploy_interval_s,
        keepalive_interval_s=keepalive_interval_s,
        server_timeout_s=server_timeout_s,
    )
