"""The model's components: the policies behind the balancer interface, the client-host seam, and the
rules the split follows (small modules that say what they model; only the deployment reads the Scenario)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import simpy

from simscale.model.balancer import LeastConnections, RoundRobin, StickyIp, make_load_balancer
from simscale.model.client_host import FreeClientHost
from simscale.model.deployment import Deployment
from simscale.model.loadgen_loop import OneLoopClientHost
from simscale.model.population import ClientPopulation
from simscale.scenarios import preset

MODEL = Path(__file__).resolve().parents[2] / "simscale" / "model"


class _Server:
    def __init__(self, index: int, handshakes: int = 0) -> None:
        self.index = index
        self.handshakes_in_progress = handshakes


def test_round_robin_continues_where_the_last_batch_ended() -> None:
    balancer = RoundRobin(ClientPopulation(10, 3, 1, 0), [_Server(i) for i in range(3)])  # type: ignore[misc]
    assert balancer.choose(np.arange(4)).tolist() == [0, 1, 2, 0]
    assert balancer.choose(np.arange(2)).tolist() == [1, 2]


def test_least_connections_fills_the_emptiest_server_counting_handshakes() -> None:
    population = ClientPopulation(10, 3, 1, 0)
    population.attach(np.arange(3), 0, 0.0)
    balancer = LeastConnections(population, [_Server(0), _Server(1, handshakes=2), _Server(2)])  # type: ignore[list-item]
    assert balancer.choose(np.arange(3, 7)).tolist() == [2, 2, 1, 2]


def test_sticky_ip_sends_an_address_to_the_same_server_every_time() -> None:
    population = ClientPopulation(100, 4, 1, 5)
    balancer = StickyIp(population, [_Server(i) for i in range(4)])  # type: ignore[misc]
    first = balancer.choose(np.arange(100))
    assert (balancer.choose(np.arange(100)) == first).all()
    for address in range(5):
        assert len(set(first[population.address == address].tolist())) == 1


def test_an_unknown_policy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="load_balancer"):
        make_load_balancer("random-walk", ClientPopulation(1, 1, 1, 0), [])


@pytest.mark.parametrize(("client_host", "kind"), [("free", FreeClientHost), ("one-loop", OneLoopClientHost)])
def test_the_client_host_field_chooses_the_host(client_host: str, kind: type) -> None:
    deployment = Deployment(preset("single-server", client_host=client_host), np.random.default_rng(0))
    assert isinstance(deployment.client_host, kind)
    assert isinstance(deployment.env, simpy.Environment)


@pytest.mark.parametrize("path", sorted(MODEL.glob("*.py")), ids=lambda path: path.name)
def test_every_model_module_is_small_and_says_what_it_models(path: Path) -> None:
    source = path.read_text()
    # The deployment only wires the components (a few lines each), so it may be a little longer.
    assert len(source.splitlines()) <= (440 if path.name == "deployment.py" else 400)
    assert ast.get_docstring(ast.parse(source)), f"{path.name} opens with no docstring"


@pytest.mark.parametrize("path", sorted(MODEL.glob("*.py")), ids=lambda path: path.name)
def test_only_the_deployment_reads_the_scenario(path: Path) -> None:
    if path.name == "deployment.py":
        return
    imported = {
        node.module for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
    } | {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
         for alias in node.names}  # fmt: skip
    assert not {name for name in imported if name and name.startswith(("simscale.config", "simscale.scenarios"))}
