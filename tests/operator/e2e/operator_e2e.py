"""Helpers for operator e2e tests: the operator run in-process, sample objects, probes.

The operator runs exactly as ``sloserve operator`` does (``main.serve``: kopf, the controller,
real HTTP to engines), in a thread with its own event loop, watching only the test's namespace
so tests stay independent and a restart is quick.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import yaml

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_operator.controller import ControllerConfig
from sloserve_operator.main import OperatorOptions, serve
from sloserve_operator.metrics import default_metrics

ROOT = Path(__file__).resolve().parents[3]
GROUP_PATH = "/apis/sloserve.io/v1alpha1"


class OperatorThread:
    """One operator instance in a background thread; ``stop()`` is a clean kopf shutdown."""

    def __init__(self, namespace: str, **controller: Any) -> None:
        self.options = OperatorOptions(
            namespaces=(namespace,),
            controller=ControllerConfig(**controller),
            autoscaler=False,
        )
        self.metrics = default_metrics()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(
                serve(self.options, self.metrics, stop_flag=self._stop, ready_flag=self._ready)
            )
        except BaseException as exc:
            self.error = exc

    def start(self) -> OperatorThread:
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError(f"operator did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "operator did not stop within 30 s"


def sample(name: str = "sim-8b", *, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    """The simulated example with a fixed replica count (no autoscaler in these tests)."""
    body: dict[str, Any] = yaml.safe_load(
        (ROOT / "docs/examples/llmservice-simulated.yaml").read_text()
    )
    body["metadata"] = {"name": name}
    body["spec"]["autoscaling"] = {"enabled": False, "minReplicas": 1, "maxReplicas": 8}
    body["spec"]["replicas"] = replicas
    # No router tier unless a test asks for one (test_e2e_router.py does): two router
    # processes per service would only slow the tests that are about engines on 2 cores.
    body["spec"]["router"] = {"replicas": 0}
    for key, value in spec.items():
        body["spec"][key] = {**body["spec"].get(key, {}), **value}
    return body


def apply(k8s: DevCluster, namespace: str, body: dict[str, Any]) -> None:
    k8s.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(body))


def llmservice(k8s: DevCluster, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = k8s.control_plane.api.get(
        f"{GROUP_PATH}/namespaces/{namespace}/llmservices/{name}"
    )
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def wait_condition(
    k8s: DevCluster,
    namespace: str,
    name: str,
    type_: str,
    status: str = "True",
    timeout_s: float = 90,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = llmservice(k8s, namespace, name)
        cond = condition(obj, type_)
        gen = obj["metadata"]["generation"]
        ok = cond.get("status") == status and cond.get("observedGeneration") == gen
        return obj if ok else None

    return eventually(probe, f"{name} {type_}={status}", timeout_s=timeout_s)


def engine_pods(k8s: DevCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = k8s.control_plane.api.get(
        f"/api/v1/namespaces/{namespace}/pods",
        params={"labelSelector": f"sloserve.io/service={name}"},
    )["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def engine_revision(pod_ip: str) -> int | None:
    try:
        r = httpx.get(f"http://{pod_ip}:8000/sloserve/knobs", timeout=1.0)
    except httpx.HTTPError:
        return None
    return int(r.json()["revision"]) if r.status_code == 200 else None


def wait_converged(
    k8s: DevCluster, namespace: str, name: str, replicas: int, timeout_s: float = 120
) -> dict[str, Any]:
    """All replicas ready (engines answer their probes) and all of them on the spec's knobs."""

    def probe() -> dict[str, Any] | None:
        obj = llmservice(k8s, namespace, name)
        cond = condition(obj, "KnobsApplied")
        ready = obj.get("status", {}).get("readyReplicas") == replicas
        current = cond.get("observedGeneration") == obj["metadata"]["generation"]
        return obj if ready and current and cond.get("status") == "True" else None

    return eventually(probe, f"{name}: {replicas} ready replicas on the spec's knobs", timeout_s)
