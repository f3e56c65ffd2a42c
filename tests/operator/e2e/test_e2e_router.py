"""spec.router on the real control plane: router pods run (process kubelet), become Ready,
and a completion sent to a router pod IP is answered by an engine behind it over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from operator_e2e import OperatorThread, apply, engine_pods, sample, wait_condition
from prometheus_client.parser import text_string_to_metric_families

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubelet import ProcessKubelet
from sloserve_engine.contract.metrics import REQUESTS_FINISHED

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(300)]


def _ready(pod: dict[str, Any]) -> bool:
    conds = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _by_component(pods: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/name") == name]


def _finished(ip: str) -> float:
    """Requests an engine finished, from its real /metrics."""
    text = httpx.get(f"http://{ip}:8000/metrics", timeout=2.0).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == REQUESTS_FINISHED
    )


def test_router_pods_serve_completions_from_the_engines_behind_them(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet, operator: OperatorThread
) -> None:
    body = sample("rt", replicas=2)
    body["spec"]["router"] = {"replicas": 2}
    apply(k8s, namespace, body)
    wait_condition(k8s, namespace, "rt", "Available")

    def routers_ready() -> list[dict[str, Any]] | None:
        pods = engine_pods(k8s, namespace, "rt")
        routers = _by_component(pods, "sloserve-router")
        engines = _by_component(pods, "sloserve-engine")
        ok = len(routers) == 2 and len(engines) == 2 and all(map(_ready, routers + engines))
        # Ready must come from the router's own /health probe, i.e. a live process.
        ok = ok and all(kubelet.running(namespace, p["metadata"]["name"]) for p in routers)
        return routers if ok else None

    routers = eventually(routers_ready, "2 router pods and 2 engine pods Ready", timeout_s=120)
    # The LLMService's Service is the routers'.
    svc = k8s.control_plane.api.get(f"/api/v1/namespaces/{namespace}/services/rt")
    assert svc["spec"]["selector"]["app.kubernetes.io/name"] == "sloserve-router"

    engines = _by_component(engine_pods(k8s, namespace, "rt"), "sloserve-engine")
    engine_ips = {p["status"]["podIP"] for p in engines}
    model = body["spec"]["model"].get("servedName") or body["spec"]["model"]["name"]
    for router in routers:
        ip = router["status"]["podIP"]
        assert ip not in engine_ips

        def engines_seen(ip: str = ip) -> dict[str, Any] | None:
            health = httpx.get(f"http://{ip}:8000/sloserve/health", timeout=2.0).json()
            return health if health["engines"]["live"] == 2 else None

        eventually(engines_seen, f"router {ip} has both engines live", timeout_s=30)

        def answered(ip: str = ip) -> httpx.Response | None:
            r = httpx.post(
                f"http://{ip}:8000/v1/completions",
                json={"model": model, "prompt": "hello router", "max_tokens": 8},
                timeout=30.0,
            )
            return r if r.status_code == 200 else None

        resp = eventually(answered, f"a completion through router {ip}", timeout_s=30)
        out = resp.json()
        assert out["object"] == "text_completion"
        assert out["usage"]["completion_tokens"] == 8
        assert out["choices"][0]["text"]
    # The routers placed them on the engines: the engines counted them as finished.
    assert sum(_finished(ip) for ip in engine_ips) >= len(routers)
