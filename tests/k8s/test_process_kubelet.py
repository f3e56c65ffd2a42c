"""The process kubelet serves real HTTP at pod IPs and follows the pod's life.

The pod runs a trivial ``python -m http.server`` (the generic path of the rewrite rules); the
engine-specific path (``sloserve-engine`` -> ``--simulated``) is covered in
test_kubelet_rules.py and, once the simulated engine exists, by the operator's e2e tests.
"""

from __future__ import annotations

import os

import httpx
import pytest

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubeapi import JsonObj
from sloserve_dev.devcluster.kubelet import ProcessKubelet

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(240)]

PORT = 8080


def web_pod(name: str) -> JsonObj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "sloserve-engine"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "web",
                    "image": "python:3.11",
                    "command": ["python3", "-m", "http.server"],
                    "args": [str(PORT), "--bind", "0.0.0.0", "--directory", "/srv/content"],
                    "volumeMounts": [{"name": "content", "mountPath": "/srv/content"}],
                }
            ],
            "volumes": [{"name": "content", "configMap": {"name": "content"}}],
        },
    }


def content(text: str) -> JsonObj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "content"},
        "data": {"hello.txt": text},
    }


def fetch(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_pod_is_served_at_its_ip_follows_configmap_and_stops_with_the_pod(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet
) -> None:
    api = k8s.control_plane.api
    api.create(f"/api/v1/namespaces/{namespace}/configmaps", content("v1"))
    api.create(f"/api/v1/namespaces/{namespace}/pods", web_pod("web"))
    pod_ip = eventually(
        lambda: api.get(f"/api/v1/namespaces/{namespace}/pods/web")["status"].get("podIP"),
        "pod IP assigned",
        timeout_s=90,
    )
    url = f"http://{pod_ip}:{PORT}/hello.txt"
    assert eventually(lambda: fetch(url), f"HTTP at {url}", timeout_s=60) == "v1"
    record = kubelet.running(namespace, "web")
    assert record is not None and record.proc is not None
    pid = record.proc.pid

    cm = content("v2")
    api.apply(f"/api/v1/namespaces/{namespace}/configmaps/content", cm)
    assert eventually(lambda: fetch(url) == "v2", "ConfigMap update visible", timeout_s=30)

    api.delete(f"/api/v1/namespaces/{namespace}/pods/web")
    eventually(lambda: not pid_alive(pid), f"process {pid} stopped", timeout_s=30)
    assert kubelet.running(namespace, "web") is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2.0)


def engine_pod(name: str) -> JsonObj:
    """An engine pod exactly as contract 3 describes it (image and real mode notwithstanding)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "sloserve-engine", "sloserve.io/service": "m"},
        },
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "engine",
                    "image": "sloserve/engine:dev",
                    "command": ["sloserve-engine"],
                    "ports": [{"name": "http", "containerPort": 8000}],
                    "readinessProbe": {"httpGet": {"path": "/sloserve/health", "port": "http"}},
                    "args": [
                        "--host",
                        "0.0.0.0",
                        "--port",
                        "8000",
                        "--served-model-name",
                        "m",
                        "--knobs-file",
                        "/etc/sloserve/knobs/knobs.json",
                        "--admin-token-file",
                        "/etc/sloserve/admin/token",
                    ],
                    "volumeMounts": [
                        {"name": "knobs", "mountPath": "/etc/sloserve/knobs"},
                        {"name": "admin", "mountPath": "/etc/sloserve/admin", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "knobs", "configMap": {"name": "m-knobs"}},
                {"name": "admin", "secret": {"secretName": "m-admin"}},
            ],
        },
    }


def test_engine_pod_runs_simulated_engine_with_its_configmap_and_secret(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet
) -> None:
    api = k8s.control_plane.api
    ns = f"/api/v1/namespaces/{namespace}"
    api.create(f"{ns}/configmaps", {"metadata": {"name": "m-knobs"}, "data": {"knobs.json": "{}"}})
    api.create(f"{ns}/secrets", {"metadata": {"name": "m-admin"}, "stringData": {"token": "t0ken"}})
    api.create(f"{ns}/pods", engine_pod("engine"))
    pod_ip = eventually(
        lambda: api.get(f"{ns}/pods/engine")["status"].get("podIP"), "pod IP assigned", timeout_s=90
    )
    base = f"http://{pod_ip}:8000"
    eventually(lambda: fetch(f"{base}/sloserve/health") is not None, "engine healthy", timeout_s=90)
    record = kubelet.running(namespace, "engine")
    assert record is not None and record.proc is not None
    assert "--simulated" in record.proc.argv

    knobs = httpx.get(f"{base}/sloserve/knobs", timeout=5).json()
    assert {"revision", "knobs"} <= set(knobs)
    put = httpx.put(f"{base}/sloserve/knobs", json=knobs["knobs"], timeout=5)
    assert put.status_code == 401  # no token
    put = httpx.put(
        f"{base}/sloserve/knobs",
        json=knobs["knobs"],
        timeout=5,
        headers={"Authorization": "Bearer t0ken"},
    )  # the Secret's token
    assert put.status_code == 200
    assert "sloserve_knobs_revision" in httpx.get(f"{base}/metrics", timeout=5).text
    eventually(lambda: ready_condition(k8s, namespace, "engine") == "True", "engine pod Ready")


def ready_condition(k8s: DevCluster, namespace: str, pod: str) -> str | None:
    status = k8s.control_plane.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")["status"]
    for cond in status.get("conditions") or []:
        if cond["type"] == "Ready":
            return str(cond["status"])
    return None


def test_readiness_probe_decides_the_ready_condition(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet
) -> None:
    api = k8s.control_plane.api
    pod = web_pod("probed")
    container = pod["spec"]["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": PORT}]
    container["readinessProbe"] = {
        "httpGet": {"path": "/ready.txt", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    api.create(f"/api/v1/namespaces/{namespace}/configmaps", content("v1"))
    api.create(f"/api/v1/namespaces/{namespace}/pods", pod)
    # kwok marks the pod Ready at once; the kubelet's probe (404: no ready.txt) takes it back
    eventually(lambda: kubelet.running(namespace, "probed"), "process started", timeout_s=90)
    eventually(lambda: ready_condition(k8s, namespace, "probed") == "False", "Ready=False")
    assert ready_condition(k8s, namespace, "probed") == "False"

    served = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "content"},
        "data": {"hello.txt": "v1", "ready.txt": "ok"},
    }
    api.apply(f"/api/v1/namespaces/{namespace}/configmaps/content", served)
    eventually(
        lambda: ready_condition(k8s, namespace, "probed") == "True", "Ready=True", timeout_s=30
    )

    # what the node lifecycle controller does when a node misses heartbeats: the kubelet,
    # which owns the condition, sets it back
    api.patch_status(
        f"/api/v1/namespaces/{namespace}/pods/probed/status",
        {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
    )
    assert ready_condition(k8s, namespace, "probed") == "False"
    eventually(
        lambda: ready_condition(k8s, namespace, "probed") == "True",
        "Ready=True re-asserted",
        timeout_s=30,
    )

    api.apply(f"/api/v1/namespaces/{namespace}/configmaps/content", content("v1"))
    eventually(
        lambda: ready_condition(k8s, namespace, "probed") == "False",
        "Ready=False after failureThreshold failed probes",
        timeout_s=30,
    )


def test_a_process_that_exits_shows_crash_loop_back_off_not_running(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet
) -> None:
    """kwok reported the container running; the kubelet says it exited and is backing off."""
    api = k8s.control_plane.api
    pod = web_pod("crashing")
    pod["spec"]["containers"][0]["command"] = ["python3", "-c", "import sys; sys.exit(3)"]
    pod["spec"]["containers"][0]["args"] = []
    api.create(f"/api/v1/namespaces/{namespace}/configmaps", content("v1"))
    api.create(f"/api/v1/namespaces/{namespace}/pods", pod)

    def crashed() -> JsonObj | None:
        status = api.get(f"/api/v1/namespaces/{namespace}/pods/crashing")["status"]
        (container,) = status.get("containerStatuses") or [{}]
        waiting = container.get("state", {}).get("waiting", {})
        return container if waiting.get("reason") == "CrashLoopBackOff" else None

    container = eventually(crashed, "CrashLoopBackOff", timeout_s=60)
    assert "running" not in container["state"]
    assert container["restartCount"] >= 1 and not container["ready"]
    assert container["lastState"]["terminated"]["exitCode"] == 3
    assert "container.log" in container["state"]["waiting"]["message"]
    table = k8s.kubectl("get", "pod", "crashing", "-n", namespace, "--no-headers").stdout
    assert "CrashLoopBackOff" in table and " 0/1 " in f" {table} "
