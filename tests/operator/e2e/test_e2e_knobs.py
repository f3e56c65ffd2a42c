"""Live knobs: spec.scheduler changes reach every engine within seconds, nothing restarts."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from operator_e2e import (
    GROUP_PATH,
    ROOT,
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
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubelet import ProcessKubelet
from sloserve_operator.api.v1alpha1 import LLMServiceSpec

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]

CHANGES = 20
BUDGET_S = 2.0


def _pods_fingerprint(k8s: DevCluster, namespace: str) -> dict[str, tuple[str, str, int]]:
    return {
        p["metadata"]["name"]: (
            p["metadata"]["uid"],
            p["metadata"]["labels"]["pod-template-hash"],
            sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses") or []),
        )
        for p in engine_pods(k8s, namespace, "sim")
    }


def _wait_all(ips: list[str], revision: int, pool: ThreadPoolExecutor, timeout_s: float) -> float:
    """Poll every engine's GET /sloserve/knobs until all report ``revision``; seconds taken."""
    start = time.perf_counter()
    pending = set(ips)
    while pending:
        answers = list(pool.map(engine_revision, sorted(pending)))
        pending = {ip for ip, rev in zip(sorted(pending), answers, strict=True) if rev != revision}
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"engines {sorted(pending)} still not on revision {revision}")
        if pending:
            time.sleep(0.01)
    return time.perf_counter() - start


def test_knob_changes_reach_all_engines_without_restarts(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet, operator: OperatorThread
) -> None:
    api = k8s.control_plane.api
    body = sample("sim", replicas=3)
    apply(k8s, namespace, body)
    wait_converged(k8s, namespace, "sim", 3)
    before = _pods_fingerprint(k8s, namespace)
    dep_before = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/sim")
    procs = {name: kubelet.running(namespace, name) for name in before}
    pids = {name: (p.proc.pid, p.restarts) for name, p in procs.items() if p and p.proc}
    assert len(pids) == len(before), "every engine pod has a running process"
    ips = [p["status"]["podIP"] for p in engine_pods(k8s, namespace, "sim")]
    path = f"{GROUP_PATH}/namespaces/{namespace}/llmservices/sim"

    latencies = []
    with ThreadPoolExecutor(len(ips)) as pool:
        for i in range(CHANGES):
            scheduler = {
                "policy": ("sloserve", "vllm", "accelgen", "ecoserve")[i % 4],
                "reservationRatio": round(0.01 * (i + 1), 2),
                "preemptionMode": ("auto", "recompute", "swap")[i % 3],
                "chunkMaxTokens": 2048 + 64 * i,
            }
            body["spec"]["scheduler"] = {**body["spec"]["scheduler"], **scheduler}
            revision = LLMServiceSpec.model_validate(body["spec"]).knobs().revision()
            started = time.perf_counter()
            api.apply(path, body, field_manager="e2e-user")
            _wait_all(ips, revision, pool, timeout_s=10)
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    result = {
        "changes": CHANGES,
        "engines": len(ips),
        "p50_s": p50,
        "p99_s": p99,
        "max_s": max(latencies),
    }
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "operator-knob-latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nknob propagation over {CHANGES} changes x {len(ips)} engines: {result}")

    wait_condition(k8s, namespace, "sim", "KnobsApplied")
    told = [e["message"] for e in _events(k8s, namespace, "KnobsApplied")]
    assert any("; changed " in m and "chunkMaxTokens: " in m for m in told), told
    assert p99 < BUDGET_S, result
    after = _pods_fingerprint(k8s, namespace)
    assert after == before, "pods were replaced or restarted"
    dep_after = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/sim")
    assert dep_after["spec"]["template"] == dep_before["spec"]["template"]
    assert dep_after["metadata"]["generation"] == dep_before["metadata"]["generation"]
    for name, (pid, restarts) in pids.items():
        proc = kubelet.running(namespace, name)
        assert proc is not None and proc.proc is not None and proc.proc.pid == pid
        assert proc.restarts == restarts
    status = llmservice(k8s, namespace, "sim")["status"]
    assert {p.get("knobsRevision") for p in status["pods"]} == {status["knobsRevision"]}


def _events(k8s: DevCluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    items = k8s.control_plane.api.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in items if e.get("reason") == reason]


def test_pods_refusing_the_push_are_reported_then_healed(
    k8s: DevCluster, namespace: str, kubelet: ProcessKubelet, operator: OperatorThread
) -> None:
    """The admin token changes behind the operator's back: engines answer 401, the condition
    and a Warning event carry their message, the operator re-reads the Secret and recovers."""
    api = k8s.control_plane.api
    body = sample("sim", replicas=1)
    apply(k8s, namespace, body)
    wait_converged(k8s, namespace, "sim", 1)
    (pod,) = engine_pods(k8s, namespace, "sim")
    running = kubelet.running(namespace, pod["metadata"]["name"])
    assert running is not None
    token_file = running.mounts()["/etc/sloserve/admin"] / "token"

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sim-admin"}}
    secret["stringData"] = {"token": "rotated-by-someone"}
    api.apply(f"/api/v1/namespaces/{namespace}/secrets/sim-admin", secret, field_manager="e2e-user")
    eventually(lambda: token_file.read_text() == "rotated-by-someone", "engine sees new token", 30)

    body["spec"]["scheduler"]["reservationRatio"] = 0.33
    api.apply(
        f"{GROUP_PATH}/namespaces/{namespace}/llmservices/sim", body, field_manager="e2e-user"
    )
    rejected = eventually(
        lambda: _events(k8s, namespace, "KnobsRejected"), "KnobsRejected event", 30
    )
    assert "401" in rejected[0]["message"] and pod["metadata"]["name"] in rejected[0]["message"]
    wait_condition(k8s, namespace, "sim", "KnobsApplied", timeout_s=30)
    revision = LLMServiceSpec.model_validate(body["spec"]).knobs().revision()
    assert engine_revision(pod["status"]["podIP"]) == revision
