"""Scale to zero and back on the real control plane (issue 16): operator and autoscaler
in-process, engine and router pods run by the process kubelet as real processes (the router
finds the engines through the file the kubelet keeps in place of the headless Service's DNS),
requests over real HTTP to the router pod (there is no kube-proxy for the Service IP).

Waking from zero with a burst is shown with real processes in the bench harness
(docs/benchmarks.md, "Scale to zero"); on this control plane it is not tested yet: see the
note in docs/autoscaling.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubelet import ProcessKubelet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_autoscaler_e2e_k8s import autoscaling_operator, service  # noqa: F401 (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from operator_e2e import OperatorThread, apply, condition, engine_pods, llmservice

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(600)]

IDLE_S = 30
STARTUP_DELAY_S = 8
"""The rendered engines wait this long before they listen (engine.simulatedStartupDelayS)."""


def _pods(k8s: DevCluster, namespace: str, name: str, kind: str) -> list[dict[str, Any]]:
    return [
        p
        for p in engine_pods(k8s, namespace, name)
        if p["metadata"]["labels"].get("app.kubernetes.io/name") == kind
    ]


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _complete(url: str) -> tuple[int, float]:
    started = time.monotonic()
    body = {"model": "meta-llama/Llama-3.1-8B-Instruct", "prompt": [1, 2, 3] * 50, "max_tokens": 8}
    response = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    return response.status_code, time.monotonic() - started


def test_idle_service_goes_to_zero_and_keeps_its_router(
    k8s: DevCluster,
    namespace: str,
    kubelet: ProcessKubelet,
    autoscaling_operator: OperatorThread,  # noqa: F811
) -> None:
    body = service("zero")
    body["spec"]["router"] = {"replicas": 1}
    body["spec"]["engine"]["simulatedStartupDelayS"] = STARTUP_DELAY_S
    body["spec"]["autoscaling"].update(
        minReplicas=0, scaleToZeroAfterS=IDLE_S, scaleDownStabilizationSeconds=IDLE_S
    )
    body["spec"]["replicas"] = 1  # start warm, then idle
    apply(k8s, namespace, body)

    def router_url() -> str | None:
        routers = [p for p in _pods(k8s, namespace, "zero", "sloserve-router") if _ready(p)]
        return f"http://{routers[0]['status']['podIP']}:8000" if routers else None

    url = eventually(router_url, "a ready router pod", 120)
    assert eventually(
        lambda: _complete(url)[0] == 200 or None, "a first answer through the router", 120
    )
    # Idle: the autoscaler scales to zero after the window; the router stays.
    eventually(
        lambda: llmservice(k8s, namespace, "zero")["status"].get("activity") == "Idle" or None,
        "status.activity Idle",
        IDLE_S + 90,
    )
    obj = llmservice(k8s, namespace, "zero")
    assert obj["spec"]["replicas"] == 0
    assert obj["status"]["lastScale"]["reason"] == "ScaleToZero"
    assert obj["status"]["lastRequestTime"]
    assert condition(obj, "Available")["status"] == "True"  # a router holds and wakes
    eventually(
        lambda: not _pods(k8s, namespace, "zero", "sloserve-engine") or None, "no engine", 90
    )
    assert router_url() is not None
