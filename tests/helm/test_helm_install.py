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

import re
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from chart_cluster import (
    deployment,
    free_port,
    get_or_none,
    operator_process,
    rbac_denials,
    token_kubeconfig,
)
from chartkit import CHART, REPO, dashboard_exprs, helm, rules
from promql import parse

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(420)]

SAMPLE = REPO / "docs" / "examples" / "llmservice-simulated.yaml"
LLMSERVICES = "/apis/sloserve.io/v1alpha1"
APPS = "/apis/apps/v1"


def test_install_reconcile_upgrade_uninstall(
    k8s: DevCluster, namespace: str, helm_bin: Path, tmp_path: Path
) -> None:
    release = f"sloserve-{uuid.uuid4().hex[:6]}"  # contains the chart name: fullname = release
    metrics_port, health_port = free_port(), free_port()
    ports = ["--set", f"operator.ports.metrics={metrics_port}"]
    ports += ["--set", f"operator.ports.health={health_port}"]

    # -- install: CRDs from crds/, operator Deployment with 2 replicas, RBAC, peering object
    out = helm(helm_bin, "install", release, str(CHART), "-n", namespace, *ports).stdout
    assert "kubectl apply --server-side -f crds/" in out  # NOTES.txt tells the next steps
    for crd in ("llmservices.sloserve.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        assert get_or_none(k8s, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
    eventually(
        lambda: deployment(k8s, namespace, release).get("status", {}).get("readyReplicas") == 2,
        "2 operator replicas Ready (kwok)",
        timeout_s=90,
    )
    assert get_or_none(k8s, f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}") is not None

    # -- the installed Deployment's own command line, run as the chart's ServiceAccount
    pod_spec = deployment(k8s, namespace, release)["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    kubeconfig = token_kubeconfig(
        k8s, namespace, pod_spec["serviceAccountName"], tmp_path / "sa.kubeconfig"
    )
    sample = yaml.safe_load(SAMPLE.read_text())
    name = sample["metadata"]["name"]
    with operator_process(
        kubeconfig, container["args"], tmp_path / "operator.log", "pod-a"
    ) as proc:
        k8s.kubectl("apply", "-n", namespace, "-f", str(SAMPLE))
        svc_path = f"{LLMSERVICES}/namespaces/{namespace}/llmservices/{name}"

        def reconciled() -> bool:
            obj = get_or_none(k8s, svc_path) or {}
            status = obj.get("status", {})
            return status.get("observedGeneration") == obj["metadata"]["generation"] and bool(
                get_or_none(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            )

        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            eventually(reconciled, "the operator (as the chart SA) reconciles the sample", 120)
        except TimeoutError as exc:
            api_calls = [ln for ln in httpx.get(metrics_url).text.splitlines() if "api_req" in ln]
            raise AssertionError(f"{exc}; operator API requests: {api_calls}") from exc
        peers = get_or_none(k8s, f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}") or {}
        assert peers.get("status"), "the operator did not write keep-alives into the peering"
        assert proc.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
        sa = pod_spec["serviceAccountName"]
        forbidden = rbac_denials(k8s, metrics_url, namespace, sa)
        assert not forbidden, f"requests RBAC denied to the chart's ServiceAccount: {forbidden}"
        # The live endpoint serves every operator series the shipped alerts and dashboard read.
        served = set(re.findall(r"^# TYPE (\S+) ", httpx.get(metrics_url).text, re.M))
        wanted = {
            re.sub(r"_(bucket|sum|count)$", "", s.metric)
            for expr in [r["expr"] for r in rules(helm_bin)] + dashboard_exprs()
            for s in parse(expr).selectors
            if s.metric.startswith("sloserve_operator_")
        }
        assert wanted and wanted <= served, sorted(wanted - served)

    # -- upgrade with changed values: 3 replicas, watch only this namespace
    helm(
        helm_bin, "upgrade", release, str(CHART), "-n", namespace, *ports,
        "--set", "operator.replicaCount=3",
        "--set-json", f'operator.watch.namespaces=["{namespace}"]',
    )  # fmt: skip
    upgraded = deployment(k8s, namespace, release)
    assert upgraded["spec"]["replicas"] == 3
    assert (
        f"--namespace={namespace}" in upgraded["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    role = k8s.control_plane.api.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "kopfpeerings" in resources and "namespaces" not in resources
    assert get_or_none(k8s, f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings/{release}")
    assert get_or_none(k8s, f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}") is None
    bad = helm(
        helm_bin, "upgrade", release, str(CHART), "-n", namespace,
        "--set", "operator.replicaCount=0", check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "replicaCount" in bad.stderr

    # -- uninstall: the operator goes; CRDs, LLMService objects and their engines stay
    helm(helm_bin, "uninstall", release, "-n", namespace)
    eventually(
        lambda: (
            get_or_none(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{release}") is None
        ),
        "the operator Deployment deleted",
    )
    assert get_or_none(k8s, f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}") is None
    assert get_or_none(k8s, f"/api/v1/namespaces/{namespace}/serviceaccounts/{release}") is None
    assert get_or_none(
        k8s, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/llmservices.sloserve.io"
    )
    assert get_or_none(k8s, f"{LLMSERVICES}/namespaces/{namespace}/llmservices/{name}") is not None
    assert get_or_none(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}") is not None

    # -- with no operator running, deleting an LLMService completes (no finalizer holds it)
    # and garbage collection removes its engines through the owner references.
    k8s.kubectl("delete", "llmservice", name, "-n", namespace, "--timeout=60s")
    eventually(
        lambda: get_or_none(k8s, f"{APPS}/namespaces/{namespace}/deployments/{name}") is None,
        "the engine Deployment garbage-collected",
    )
