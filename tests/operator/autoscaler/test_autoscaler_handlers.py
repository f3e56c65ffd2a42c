"""The operator-side loop's scheduling, over a real (unconnected) operator Controller."""

from __future__ import annotations

import asyncio

import httpx
from kubernetes_asyncio import client
from prometheus_client import CollectorRegistry

from sloserve_operator.autoscaler.handlers import AutoscalerLoop
from sloserve_operator.autoscaler.loop import Autoscaler
from sloserve_operator.autoscaler.metrics import AutoscalerMetrics
from sloserve_operator.controller import Controller, ServiceState
from sloserve_operator.k8s import Kube
from sloserve_operator.metrics import OperatorMetrics


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
        controller = Controller(Kube(client.ApiClient(), metrics), http, metrics)
        controller.states[("ns", "off")] = ServiceState(body=body("off", enabled=False))
        controller.states[("ns", "bad")] = ServiceState(body=body("bad", minReplicas=0))
        registry = CollectorRegistry()
        loop = AutoscalerLoop(Autoscaler(AutoscalerMetrics(registry)))
        loop.tick(controller, now=0.0)
        await asyncio.sleep(0.1)
        assert {k: s.due > 20 for k, s in loop._services.items()} == {
            ("ns", "off"): True,
            ("ns", "bad"): True,
        }
        due = {k: s.due for k, s in loop._services.items()}
        loop.tick(controller, now=1.0)  # nothing is due: no new evaluation
        await asyncio.sleep(0.1)
        assert {k: s.due for k, s in loop._services.items()} == due
        del controller.states[("ns", "off")]
        loop.tick(controller, now=2.0)
        assert set(loop._services) == {("ns", "bad")}
        await loop.stop()
