"""Deleted children come back, deletion garbage-collects, a killed operator converges, and an
idle operator makes no API calls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from operator_e2e import (
    GROUP_PATH,
    OperatorThread,
    apply,
    llmservice,
    sample,
    wait_condition,
    wait_converged,
)

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubelet import ProcessKubelet

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(400)]

CHILDREN = {
    "deployments": "/apis/apps/v1",
    "services": "/api/v1",
    "configmaps": "/api/v1",
    "poddisruptionbudgets": "/apis/policy/v1",
    "secrets": "/api/v1",
}
PER_SERVICE = {
    "deployments": 2,
    "services": 2,
    "configmaps": 1,
    "poddisruptionbudgets": 2,
    "secrets": 1,
}
"""Children of each kind per LLMService (render.children): engines and routers each get a
Deployment and a budget (the router ones even at ``router.replicas: 0``, scaled to none),
there are two Services (the client one and the engines' headless one), one knob ConfigMap
and one admin Secret."""


def children(k8s: DevCluster, namespace: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for plural, prefix in CHILDREN.items():
        out[plural] = k8s.control_plane.api.get(
            f"{prefix}/namespaces/{namespace}/{plural}",
            params={"labelSelector": "app.kubernetes.io/managed-by=sloserve-operator"},
        )["items"]
    return out


def test_deleted_or_edited_children_are_restored(
    k8s: DevCluster, namespace: str, operator: OperatorThread
) -> None:
    api = k8s.control_plane.api
    apply(k8s, namespace, sample("sim", replicas=2))
    wait_condition(k8s, namespace, "sim", "Available")
    before = {
        p: {o["metadata"]["uid"] for o in objs} for p, objs in children(k8s, namespace).items()
    }
    token = api.get(f"/api/v1/namespaces/{namespace}/secrets/sim-admin")["data"]["token"]

    deleted = ("deployments", "services", "configmaps", "poddisruptionbudgets")
    for plural in deleted:
        for obj in children(k8s, namespace)[plural]:
            name = obj["metadata"]["name"]
            api.delete(f"{CHILDREN[plural]}/namespaces/{namespace}/{plural}/{name}")

    def recreated() -> bool:
        now = children(k8s, namespace)
        return all(
            len(now[p]) == PER_SERVICE[p] and not {o["metadata"]["uid"] for o in now[p]} & before[p]
            for p in deleted
        )

    eventually(recreated, "children recreated with new uids", timeout_s=30)
    # Someone scales the Deployment by hand: the operator's replicas win back.
    k8s.kubectl("scale", "deployment/sim", "-n", namespace, "--replicas=5")
    eventually(
        lambda: (
            api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/sim")["spec"]["replicas"]
            == 2
        ),
        "replicas restored to spec",
        timeout_s=30,
    )
    assert api.get(f"/api/v1/namespaces/{namespace}/secrets/sim-admin")["data"]["token"] == token
    wait_condition(k8s, namespace, "sim", "Available")


def test_delete_garbage_collects_children(
    k8s: DevCluster, namespace: str, operator: OperatorThread
) -> None:
    apply(k8s, namespace, sample("sim", replicas=1))
    wait_condition(k8s, namespace, "sim", "Available")
    assert all(children(k8s, namespace).values())
    k8s.kubectl("delete", "llms", "sim", "-n", namespace, "--wait=true")
    eventually(lambda: not any(children(k8s, namespace).values()), "children garbage-collected", 60)


def test_idle_operator_makes_no_api_calls(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet, operator: OperatorThread
) -> None:
    for i in range(3):
        apply(k8s, namespace, sample(f"idle-{i}", replicas=1))
    for i in range(3):
        wait_converged(k8s, namespace, f"idle-{i}", 1)
    time.sleep(3)  # let the last status writes and their watch echoes settle
    start = operator.metrics.api_request_count()
    window_s = 30
    time.sleep(window_s)
    calls = operator.metrics.api_request_count() - start
    print(f"\nidle API calls over {window_s} s with 3 services: {calls:.0f}")
    assert calls == 0


def _spawn_operator(k8s: DevCluster, namespace: str, workers: int = 16) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "sloserve_operator.cli", "operator", "--standalone"]
    argv += ["--workers", str(workers)]
    argv += ["-n", namespace, "--metrics-port", "0", "--liveness-port", "0", "--no-autoscaler"]
    return subprocess.Popen(argv, env={**os.environ, **k8s.control_plane.env()})


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    k8s: DevCluster, namespace: str, crds: None
) -> None:
    names = [f"svc-{i}" for i in range(12)]
    proc = _spawn_operator(k8s, namespace, workers=1)  # serial, so the kill lands mid-way
    try:
        time.sleep(4)  # let it start watching
        for name in names:
            apply(k8s, namespace, sample(name, replicas=1))
        # Kill it as soon as the first children appear: some services are half done.
        eventually(lambda: children(k8s, namespace)["secrets"], "first child created", 60, 0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        partial = {p: len(objs) for p, objs in children(k8s, namespace).items()}
        tokens = {
            o["metadata"]["name"]: o["data"]["token"] for o in children(k8s, namespace)["secrets"]
        }
        proc = _spawn_operator(k8s, namespace)
        for name in names:
            wait_condition(k8s, namespace, name, "Available", timeout_s=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    print(f"\nchildren when killed: {partial}")
    assert min(partial.values()) < len(names), f"killed too late to be mid-way: {partial}"
    final = children(k8s, namespace)
    for plural, objs in final.items():
        owners = Counter(o["metadata"]["ownerReferences"][0]["name"] for o in objs)
        expected = Counter(dict.fromkeys(names, PER_SERVICE[plural]))
        assert owners == expected, f"{plural}: {owners}"
    for secret in final["secrets"]:  # admin tokens survive the restart (never rotated)
        name = secret["metadata"]["name"]
        if name in tokens:
            assert secret["data"]["token"] == tokens[name]
    for name in names:
        obj = llmservice(k8s, namespace, name)
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert k8s.control_plane.api.get(f"{GROUP_PATH}/namespaces/{namespace}/llmservices")["items"]
