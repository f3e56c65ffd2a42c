"""Operator replicas of the chart: exactly one is active, another takes over on exit or crash.

Both run as local processes with the installed Deployment's own args and the chart's
ServiceAccount token (kwok pods run nothing; see test_helm_install.py), each with its own
metrics port as each pod would have its own network namespace.
"""

from __future__ import annotations

import contextlib
import subprocess
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

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(420)]

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


def test_one_replica_is_active_and_the_others_take_over(
    k8s: DevCluster, namespace: str, helm_bin: Path, tmp_path: Path
) -> None:
    """Three replicas started in turn: A serves; A exits cleanly -> B; B crashes -> C."""
    release = f"sloserve-{uuid.uuid4().hex[:6]}"
    helm(helm_bin, "install", release, str(CHART), "-n", namespace)
    pod_spec = deployment(k8s, namespace, release)["spec"]["template"]["spec"]
    args: list[str] = pod_spec["containers"][0]["args"]
    kubeconfig = token_kubeconfig(
        k8s, namespace, pod_spec["serviceAccountName"], tmp_path / "sa.kubeconfig"
    )
    peering = f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}"
    ports = {r: free_port() for r in "abc"}
    paths: list[str] = []

    def start(stack: contextlib.ExitStack, replica: str) -> subprocess.Popen[bytes]:
        own = [*args, f"--metrics-port={ports[replica]}", f"--liveness-port={free_port()}"]
        log = tmp_path / f"{replica}.log"
        return stack.enter_context(operator_process(kubeconfig, own, log, f"replica-{replica}"))

    def serve_next(name: str, what: str, timeout_s: float) -> None:
        paths.append(apply_service(k8s, namespace, name))
        eventually(lambda: reconciled(k8s, paths[-1]), what, timeout_s)

    def peers() -> set[str]:
        return set((get_or_none(k8s, peering) or {}).get("status", {}))

    def log(replica: str) -> str:
        return (tmp_path / f"{replica}.log").read_text()

    try:
        with contextlib.ExitStack() as stack:
            a = start(stack, "a")
            serve_next("first", "replica A reconciles alone", 90)
            # Priority = minus the start time inside the process: start C only once B is
            # registered, so B is the older standby.
            b = start(stack, "b")
            eventually(lambda: "replica-b" in peers(), "B keeps alive in the peering object")
            start(stack, "c")
            eventually(lambda: "replica-c" in peers(), "C keeps alive in the peering object")
            assert "replica-a" in peers()
            before = {r: status_patches(ports[r]) for r in "bc"}
            serve_next("second", "the active replica reconciles", 45)
            assert {r: status_patches(ports[r]) for r in "bc"} == before, "a standby wrote"
            # B and C start paused (peering is mandatory) and stay so while A lives.
            assert "Resuming operations" not in log("b") + log("c")

            a.terminate()  # a clean exit removes A's keep-alive: B resumes at once
            a.wait(30)
            serve_next("third", "B takes over after A exits", 45)
            assert status_patches(ports["b"]) > before["b"]
            assert status_patches(ports["c"]) == before["c"], "C wrote while B was active"

            b.kill()  # a crash leaves B's keep-alive until kopf's 60 s lifetime expires
            b.wait(30)
            serve_next("fourth", "C takes over after B's keep-alive expires", 120)
            assert status_patches(ports["c"]) > before["c"]
            for path in paths:  # while an operator runs, so nothing is left half-deleted
                remove_llmservice(k8s, path)
    finally:
        for path in paths:
            remove_llmservice(k8s, path)
        helm(helm_bin, "uninstall", release, "-n", namespace)
