"""The real control plane schedules GPU pods onto simulated GPU nodes, as a cluster would."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubeapi import JsonObj
from sloserve_dev.devcluster.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE, GPU_TYPE_LABEL

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(240)]


def gpu_deployment(name: str, replicas: int, gpus: int) -> JsonObj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {GPU_TYPE_LABEL: "h100"},
                    "containers": [
                        {
                            "name": "engine",
                            "image": "sloserve/engine:dev",
                            "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
                        }
                    ],
                },
            },
        },
    }


def pods(k8s: DevCluster, namespace: str, app: str) -> list[JsonObj]:
    listing = k8s.control_plane.api.get(
        f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": f"app={app}"}
    )
    items: list[JsonObj] = listing["items"]
    return items


def test_nodes_advertise_gpus_and_gpu_type(k8s: DevCluster) -> None:
    nodes = k8s.control_plane.api.get("/api/v1/nodes")["items"]
    assert len(nodes) == 2
    for node in nodes:
        assert node["status"]["allocatable"][GPU_RESOURCE] == "8"
        assert node["metadata"]["labels"][GPU_PRODUCT_LABEL] == "NVIDIA-H100-80GB-HBM3"
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"


def test_gpu_deployment_pods_run_on_gpu_nodes_with_loopback_ips(
    k8s: DevCluster, namespace: str
) -> None:
    k8s.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input_text=json.dumps(gpu_deployment("llm", replicas=3, gpus=2)),
    )

    def all_running() -> list[JsonObj] | None:
        current = pods(k8s, namespace, "llm")
        running = [p for p in current if p["status"].get("phase") == "Running"]
        return running if len(running) == 3 else None

    running = eventually(all_running, "3 GPU pods Running", timeout_s=90)
    node_names = {n.name for n in k8s.nodes}
    cidr = ipaddress.IPv4Network(k8s.control_plane.pod_cidr)
    assert cidr.subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))
    for pod in running:
        assert pod["spec"]["nodeName"] in node_names
        assert ipaddress.ip_address(pod["status"]["podIP"]) in cidr
    assert len({p["status"]["podIP"] for p in running}) == 3
    rollout = k8s.kubectl("rollout", "status", "-n", namespace, "deploy/llm", "--timeout=60s")
    assert "successfully rolled out" in rollout.stdout


def test_pod_requesting_more_gpus_than_any_node_stays_pending_with_reason(
    k8s: DevCluster, namespace: str
) -> None:
    k8s.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input_text=json.dumps(gpu_deployment("huge", replicas=1, gpus=16)),
    )

    def unschedulable() -> JsonObj | None:
        for pod in pods(k8s, namespace, "huge"):
            for cond in pod["status"].get("conditions") or []:
                if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    return {"pod": pod, "condition": cond}
        return None

    found = eventually(unschedulable, "PodScheduled=False/Unschedulable", timeout_s=90)
    assert found["pod"]["status"]["phase"] == "Pending"
    assert f"Insufficient {GPU_RESOURCE}" in found["condition"]["message"]
    assert "nodeName" not in found["pod"]["spec"]


def test_helm_installs_a_chart_and_waits_for_ready_pods(
    k8s: DevCluster, namespace: str, tmp_path: Path
) -> None:
    helm = str(k8s.control_plane.testenv.binary("helm"))
    env = {**k8s.control_plane.env(), "HOME": str(tmp_path)}  # helm's config and cache dirs

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([helm, *args], env=env, capture_output=True, text=True, check=False)

    chart = tmp_path / "hello"
    assert run("create", str(chart)).returncode == 0
    (chart / "Chart.yaml").write_text(
        (chart / "Chart.yaml").read_text() + 'kubeVersion: ">=1.36.0-0"\n'
    )
    result = run("install", "hello", str(chart), "-n", namespace, "--wait", "--timeout", "90s")
    assert result.returncode == 0, result.stderr
    status = run("status", "hello", "-n", namespace)
    assert "STATUS: deployed" in status.stdout
