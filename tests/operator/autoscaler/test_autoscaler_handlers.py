"""The operator-side loop's scheduling, over the operator's state cache and real (unconnected)
clients."""

from __future__ import annotations

import asyncio

import httpx
from kubernetes_asyncio import client
from prometheus_client import CollectorRegistry

from sloserve_operator.autoscaler.handlers import AutoscalerLoop
from sloserve_operator.autoscaler.loop import Autoscaler
from sloserve_operator.autoscaler.metrics import AutoscalerMetrics
from sloserve_operator.cache import ServiceView, StateCache
from sloserve_operator.k8s import Kube
from sloserve_operator.metrics import OperatorMetrics
from sloserve_operator.runtime import Clients


def body(name: str, **autoscaling: object) -> dict[str, object]:
    return {
        "apiVersion": "sloserve.io/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "generation": 1},
        "spec": {"model": {"name": "m"}, "autoscaling": autoscaling},
    }


async def test_disabled_and_invalid_services_are_looked_at_rarely_and_gone_ones_forgotten() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    async with httpx.AsyncClient() as http:
        clients = Clients(Kube(client.ApiClient(), metrics), http)
        cache = StateCache()
        cache.put(("ns", "off"), ServiceView(body=body("off", enabled=False)))
        cache.put(("ns", "bad"), ServiceView(body=body("bad", minReplicas=5, maxReplicas=2)))
        registry = CollectorRegistry()
        loop = AutoscalerLoop(Autoscaler(AutoscalerMetrics(registry)))
        loop.tick(cache, clients, now=0.0)
        await asyncio.sleep(0.1)
        assert {k: s.due > 20 for k, s in loop._services.items()} == {
            ("ns", "off"): True,
            ("ns", "bad"): True,
        }
        due = {k: s.due for k, s in loop._services.items()}
        loop.tick(cache, clients, now=1.0)  # nothing is due: no new evaluation
        await asyncio.sleep(0.1)
        assert {k: s.due for k, s in loop._services.items()} == due
        cache.pop(("ns", "off"))
        loop.tick(cache, clients, now=2.0)
        assert set(loop._services) == {("ns", "bad")}
        await loop.stop()
