"""The process kubelet serves real HTTP at pod IPs and follows the pod's life.

The pod runs a trivial ``python -m http.server`` (the generic path of the rewrite rules); the
engine-specific path (``sloserve-engine`` -> ``--simulated``) is covered in
test_kubelet_rules.py and, once the simulated engine exists, by the operator's e2e tests.
"""

from __future__ import annotations

import os

import httpx
import pytest

from sloserve_operator.devcluster.cluster import DevCluster
from sloserve_operator.devcluster.eventually import eventually
from sloserve_operator.devcluster.kubeapi import JsonObj
from sloserve_operator.devcluster.kubelet import ProcessKubelet

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
