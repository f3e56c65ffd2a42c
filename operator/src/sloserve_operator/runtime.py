"""What the operator's parts share in one process: the state cache and the API/HTTP clients.

``main.serve`` creates it; the controller's startup handler connects the clients. The
controller writes the cache and the autoscaler reads it, and both write through the same
``Kube`` (its retries and request metrics), so neither part needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from .cache import StateCache
from .controller import ControllerConfig
from .k8s import Kube
from .metrics import OperatorMetrics


@dataclass(frozen=True)
class Clients:
    kube: Kube
    http: httpx.AsyncClient
    """For the engine pods: knob pushes and metric scrapes."""

    @classmethod
    async def connect(cls, metrics: OperatorMetrics, workers: int) -> Clients:
        kube = await Kube.connect(metrics, pool_size=2 * workers)
        return cls(kube, httpx.AsyncClient(limits=httpx.Limits(max_connections=256)))

    async def close(self) -> None:
        await self.http.aclose()
        await self.kube.close()


@dataclass
class Runtime:
    metrics: OperatorMetrics
    config: ControllerConfig = field(default_factory=ControllerConfig)
    cache: StateCache = field(default_factory=StateCache)
    clients: Clients | None = None
    """Set by the operator's startup handler, closed by its cleanup handler."""
