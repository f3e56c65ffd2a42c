"""Two operator replicas of the chart: exactly one is active, the other takes over on exit.

Both run as local processes with the installed Deployment's own args and the chart's
ServiceAccount token (kwok pods run nothing; see test_helm_install.py), each with its own
metrics port as each pod would have its own network namespace.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chart_cluster import (
    deployment,
    free_port,
    get_or_none,
    operator_process,
    remove_llmservice,
    token_kubeconfig,
)
from chartkit import CHART, REPO, helm

from sloserve_operator.devcluster.cluster import DevCluster
from sloserve_operator.devcluster.eventually import eventually

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(300)]

SAMPLE = REPO / "docs" / "examples" / "llmservice-simulated.yaml"


def status_patches(metrics_port: int) -> float:
    """LLMService status writes this process made: zero while it is paused by peering."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sloserve_operator_api_requests_total{")
        and 'resource="llmservices/status"' in line
    )


def apply_service(k8s: DevCluster, namespace: str, name: str) -> str:
    manifest: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    manifest["metadata"]["name"] = name
    k8s.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(manifest))
    return f"/apis/sloserve.io/v1alpha1/namespaces/{namespace}/llmservices/{name}"


def reconciled(k8s: DevCluster, path: str) -> bool:
    obj = get_or_none(k8s, path) or {}
    status = obj.get("status", {})
    return bool(status) and status.get("observedGeneration") == obj["metadata"]["generation"]


def test_one_replica_is_active_and_the_other_takes_over(
    k8s: DevCluster, namespace: str, helm_bin: Path, tmp_path: Path
) -> None:
    release = f"sloserve-{uuid.uuid4().hex[:6]}"
    helm(helm_bin, "install", release, str(CHART), "-n", namespace)
    pod_spec = deployment(k8s, namespace, release)["spec"]["template"]["spec"]
    args: list[str] = pod_spec["containers"][0]["args"]
    kubeconfig = token_kubeconfig(
        k8s, namespace, pod_spec["serviceAccountName"], tmp_path / "sa.kubeconfig"
    )
    peering = f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}"
    port_a, port_b = free_port(), free_port()

    def own_ports(port: int) -> list[str]:
        return [*args, f"--metrics-port={port}", f"--liveness-port={free_port()}"]

    paths: list[str] = []
    try:
        with operator_process(kubeconfig, own_ports(port_a), tmp_path / "a.log", "replica-a") as a:
            paths.append(apply_service(k8s, namespace, "first"))
            eventually(lambda: reconciled(k8s, paths[0]), "replica A reconciles alone", 90)

            with operator_process(kubeconfig, own_ports(port_b), tmp_path / "b.log", "replica-b"):
                eventually(
                    lambda: (
                        {"replica-a", "replica-b"}
                        <= set((get_or_none(k8s, peering) or {}).get("status", {}))
                    ),
                    "both replicas keep alive in the chart's peering object",
                )
                before_b = status_patches(port_b)
                paths.append(apply_service(k8s, namespace, "second"))
                eventually(lambda: reconciled(k8s, paths[1]), "the active replica reconciles", 45)
                assert status_patches(port_b) == before_b, "the standby replica wrote status too"
                # B starts paused (peering is mandatory) and stays so while A lives.
                assert "Resuming operations" not in (tmp_path / "b.log").read_text()

                a.terminate()  # a clean exit removes A's keep-alive: B resumes at once
                a.wait(30)
                paths.append(apply_service(k8s, namespace, "third"))
                eventually(lambda: reconciled(k8s, paths[2]), "B takes over after A exits", 90)
                assert status_patches(port_b) > before_b
                assert "Resuming operations" in (tmp_path / "b.log").read_text()
                for path in paths:
                    remove_llmservice(k8s, path)
    finally:
        for path in paths:
            remove_llmservice(k8s, path)
        helm(helm_bin, "uninstall", release, "-n", namespace)
