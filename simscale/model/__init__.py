"""The SimPy model: clients, load balancer, servers (thread pool, CPU, memory, ports), backplane.

:class:`Deployment` builds the parts from a Scenario and runs them; each behaviour is a component of
its own module (see :mod:`simscale.model.deployment` for the map). It emits typed records
(:mod:`simscale.metrics.records`) and never imports pandas or plots.
"""

from simscale.model.backplane import SimBackplane
from simscale.model.balancer import LoadBalancer
from simscale.model.client_host import ClientHost
from simscale.model.deployment import Deployment, HubModel, ModelRun
from simscale.model.ports import PortPool
from simscale.model.threadpool import ThreadPool

__all__ = ["ClientHost", "Deployment", "HubModel", "LoadBalancer", "ModelRun", "PortPool", "SimBackplane", "ThreadPool"]
