"""The SimPy model: clients, load balancer, servers (thread pool, CPU, memory, ports), backplane.

It emits typed records (:mod:`simscale.metrics.records`) and never imports pandas or plots.
"""

from simscale.model.backplane import SimBackplane
from simscale.model.hub_model import HubModel, ModelRun
from simscale.model.ports import PortPool
from simscale.model.threadpool import ThreadPool

__all__ = ["HubModel", "ModelRun", "PortPool", "SimBackplane", "ThreadPool"]
