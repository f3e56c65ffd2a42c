"""apply -> children with the expected content, engine pods Running on GPU nodes, Available."""

from __future__ import annotations

import json

import pytest
from operator_e2e import (
    OperatorThread,
    apply,
    engine_pods,
    engine_revision,
    llmservice,
    sample,
    wait_condition,
    wait_converged,
)

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.kubelet import ProcessKubelet
from sloserve_engine.contract.knobs import Knobs

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]


def test_apply_creates_children_and_becomes_available(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet, operator: OperatorThread
) -> None:
    api = k8s.control_plane.api
    apply(k8s, namespace, sample("sim", replicas=2))
    obj = wait_condition(k8s, namespace, "sim", "Available")
    uid = obj["metadata"]["uid"]
    base = f"/namespaces/{namespace}"

    dep = api.get(f"/apis/apps/v1{base}/deployments/sim")
    svc = api.get(f"/api/v1{base}/services/sim")
    headless = api.get(f"/api/v1{base}/services/sim-engines")
    router = api.get(f"/apis/apps/v1{base}/deployments/sim-router")
    cm = api.get(f"/api/v1{base}/configmaps/sim-knobs")
    pdb = api.get(f"/apis/policy/v1{base}/poddisruptionbudgets/sim")
    secret = api.get(f"/api/v1{base}/secrets/sim-admin")
    for child in (dep, svc, headless, router, cm, pdb, secret):
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("LLMService", uid, True)
        managers = {m["manager"] for m in child["metadata"]["managedFields"]}
        assert "sloserve-operator" in managers

    assert dep["spec"]["replicas"] == 2
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sloserve-engine"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # Without a router tier the Service selects the engines; the router Deployment exists
    # with no pods, and the engines' headless Service is there for routers to come.
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert headless["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert headless["spec"]["clusterIP"] == "None"
    assert router["spec"]["replicas"] == 0
    assert router["spec"]["template"]["spec"]["containers"][0]["command"] == ["sloserve-router"]
    assert pdb["spec"]["maxUnavailable"] == 1
    knobs = Knobs.model_validate_json(cm["data"]["knobs.json"])
    assert knobs.policy == "accelgen" and knobs.slo_defaults.ttft_ms == 500

    pods = engine_pods(k8s, namespace, "sim")
    assert len(pods) == 2
    nodes = {n.name for n in k8s.nodes}
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] in nodes
    # Engines (real processes at the pod IPs) run the spec's knob revision.
    wait_converged(k8s, namespace, "sim", 2)
    for pod in pods:
        assert engine_revision(pod["status"]["podIP"]) == knobs.revision()

    status = llmservice(k8s, namespace, "sim")["status"]
    assert status["readyReplicas"] == 2 and status["knobsRevision"] == knobs.revision()
    assert {p["name"] for p in status["pods"]} == {p["metadata"]["name"] for p in pods}
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["selector"] == "app.kubernetes.io/name=sloserve-engine,sloserve.io/service=sim"

    table = k8s.kubectl("get", "llms", "-n", namespace, "-o", "wide").stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "READY", "REPLICAS", "ROUTERS", "ACTIVITY", "SLO"]
    assert row.split()[1:3] == ["True", "2"]
    assert "accelgen" in row

    scale = json.loads(
        k8s.kubectl(
            "get", "--raw", f"/apis/sloserve.io/v1alpha1{base}/llmservices/sim/scale"
        ).stdout
    )
    assert scale["status"]["replicas"] == 2 and scale["spec"]["replicas"] == 2


def test_examples_are_accepted_by_the_api_server(
    k8s: DevCluster, namespace: str, crds: None
) -> None:
    from operator_e2e import ROOT

    for path in sorted((ROOT / "docs/examples").glob("*.yaml")):
        k8s.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))
