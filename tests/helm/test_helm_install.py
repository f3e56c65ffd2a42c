"""`helm install`, `upgrade` and `uninstall` of the chart on the real control plane.

There is no container runtime here: kwok marks the chart's operator pods Running without
running anything. So "the operator is Ready and reconciling" is proven the honest way: the
test runs `sloserve operator` as a local process with *exactly the args of the installed
Deployment*, authenticated as *the chart's ServiceAccount* (a TokenRequest token, no admin
rights), and checks that it joins the chart's peering object and reconciles a sample
LLMService without a single Forbidden answer. That proves the chart's RBAC sufficient;
test_helm_rbac.py proves it minimal.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chartkit import CHART, REPO, helm

from sloserve_operator.devcluster.cluster import DevCluster
from sloserve_operator.devcluster.eventually import eventually
from sloserve_operator.devcluster.kubeapi import KubeApiError

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(420)]

SAMPLE = REPO / "docs" / "examples" / "llmservice-simulated.yaml"
LLMSERVICES = "/apis/sloserve.io/v1alpha1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(k8s: DevCluster, path: str) -> dict[str, Any] | None:
    try:
        return k8s.control_plane.api.get(path)
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


def _token_kubeconfig(k8s: DevCluster, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (TokenRequest API), not as admin."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    token = k8s.control_plane.api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token", request
    )["status"]["token"]
    admin = yaml.safe_load(Path(k8s.control_plane.env()["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": sa, "user": {"token": token}}],
                "contexts": [{"name": sa, "context": {"cluster": cluster["name"], "user": sa}}],
                "current-context": sa,
            }
        )
    )
    return path


@contextlib.contextmanager
def _operator_as(kubeconfig: Path, args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_ID": f"test-{uuid.uuid4().hex[:6]}"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sloserve_operator.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _forbidden_requests(metrics_url: str) -> list[str]:
    text = httpx.get(metrics_url, timeout=5).text
    return [
        line
        for line in text.splitlines()
        if line.startswith("sloserve_operator_api_requests_total{") and 'code="403"' in line
    ]


def _deployment(k8s: DevCluster, namespace: str, name: str) -> dict[str, Any]:
    found = _get(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    assert found is not None, f"deployment {namespace}/{name} not found"
    return found


def test_install_reconcile_upgrade_uninstall(
    k8s: DevCluster, namespace: str, helm_bin: Path, tmp_path: Path
) -> None:
    release = f"sloserve-{uuid.uuid4().hex[:6]}"  # contains the chart name: fullname = release
    metrics_port, health_port = _free_port(), _free_port()
    ports = ["--set", f"operator.ports.metrics={metrics_port}"]
    ports += ["--set", f"operator.ports.health={health_port}"]

    # -- install: CRDs from crds/, operator Deployment with 2 replicas, RBAC, peering object
    out = helm(helm_bin, "install", release, str(CHART), "-n", namespace, *ports).stdout
    assert "kubectl apply --server-side -f crds/" in out  # NOTES.txt tells the next steps
    for crd in ("llmservices.sloserve.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        assert _get(k8s, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
    eventually(
        lambda: _deployment(k8s, namespace, release).get("status", {}).get("readyReplicas") == 2,
        "2 operator replicas Ready (kwok)",
        timeout_s=90,
    )
    assert _get(k8s, f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}") is not None

    # -- the installed Deployment's own command line, run as the chart's ServiceAccount
    deployment = _deployment(k8s, namespace, release)
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    kubeconfig = _token_kubeconfig(
        k8s, namespace, pod_spec["serviceAccountName"], tmp_path / "sa.kubeconfig"
    )
    sample = yaml.safe_load(SAMPLE.read_text())
    name = sample["metadata"]["name"]
    with _operator_as(kubeconfig, container["args"], tmp_path / "operator.log") as proc:
        k8s.kubectl("apply", "-n", namespace, "-f", str(SAMPLE))
        svc_path = f"{LLMSERVICES}/namespaces/{namespace}/llmservices/{name}"

        def reconciled() -> bool:
            obj = _get(k8s, svc_path) or {}
            status = obj.get("status", {})
            return status.get("observedGeneration") == obj["metadata"]["generation"] and bool(
                _get(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            )

        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            eventually(reconciled, "the operator (as the chart SA) reconciles the sample", 120)
        except TimeoutError as exc:
            api_calls = [ln for ln in httpx.get(metrics_url).text.splitlines() if "api_req" in ln]
            raise AssertionError(f"{exc}; operator API requests: {api_calls}") from exc
        peers = _get(k8s, f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}") or {}
        assert peers.get("status"), "the operator did not write keep-alives into the peering"
        assert proc.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
        forbidden = _forbidden_requests(metrics_url)
        log = (tmp_path / "operator.log").read_text()
        assert not forbidden, forbidden
        assert not re.search(r"\b403\b|[Ff]orbidden", log), log[-3000:]

    # -- upgrade with changed values: 3 replicas, watch only this namespace
    helm(
        helm_bin, "upgrade", release, str(CHART), "-n", namespace, *ports,
        "--set", "operator.replicaCount=3",
        "--set-json", f'operator.watch.namespaces=["{namespace}"]',
    )  # fmt: skip
    upgraded = _deployment(k8s, namespace, release)
    assert upgraded["spec"]["replicas"] == 3
    assert (
        f"--namespace={namespace}" in upgraded["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    role = k8s.control_plane.api.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "kopfpeerings" in resources and "namespaces" not in resources
    assert _get(k8s, f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings/{release}")
    assert _get(k8s, f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}") is None
    bad = helm(
        helm_bin, "upgrade", release, str(CHART), "-n", namespace,
        "--set", "operator.replicaCount=0", check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "replicaCount" in bad.stderr

    # -- uninstall: the operator goes; CRDs, LLMService objects and their engines stay
    helm(helm_bin, "uninstall", release, "-n", namespace)
    eventually(
        lambda: _get(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{release}") is None,
        "the operator Deployment deleted",
    )
    assert _get(k8s, f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}") is None
    assert _get(k8s, f"/api/v1/namespaces/{namespace}/serviceaccounts/{release}") is None
    assert _get(
        k8s, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/llmservices.sloserve.io"
    )
    assert _get(k8s, f"{LLMSERVICES}/namespaces/{namespace}/llmservices/{name}") is not None
    assert _get(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}") is not None
