"""Scale: N LLMService objects (default 200) reconciled by one operator process.

The objects exist before the operator starts. Reports, from operator start, the time until
every one is reconciled (children applied, ``observedGeneration`` current) and until every one
is Available (which also waits for the controller-manager and kwok to create and start the
pods), and the operator's peak RSS, into ``out/operator-scale.json``. Engines are not started
(no process kubelet): Available comes from the Deployments' ready replicas, which kwok reports.

    SLOSERVE_SCALE_N=1000 .venv/bin/pytest tests/operator/e2e/test_e2e_scale.py -m k8s -s
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import psutil
import pytest
import yaml
from operator_e2e import GROUP_PATH, ROOT, sample

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.nodes import GpuNodeSpec, register_gpu_nodes

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(900)]

N = int(os.environ.get("SLOSERVE_SCALE_N", "200"))
GPUS_PER_NODE = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api_calls(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("sloserve_operator_api_requests_total{")
        )
    )


def _reconciled(items: list[dict[str, Any]]) -> int:
    return sum(
        1
        for obj in items
        if obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
    )


def _available(items: list[dict[str, Any]]) -> int:
    return sum(
        1
        for obj in items
        for c in obj.get("status", {}).get("conditions") or []
        if c["type"] == "Available" and c["status"] == "True"
    )


def test_many_llmservices_become_available(k8s: DevCluster, namespace: str, crds: None) -> None:
    api = k8s.control_plane.api
    nodes = [
        GpuNodeSpec(f"scale-gpu-{i}", gpus=GPUS_PER_NODE, max_pods=250)
        for i in range(N // GPUS_PER_NODE + 1)
    ]
    register_gpu_nodes(api, nodes)
    # Create every object first, then start the operator: the clock measures the operator
    # (startup, initial listing, reconciles), not how fast a client can create objects.
    docs = [sample(f"svc-{i:04d}", replicas=1) for i in range(N)]
    created = time.perf_counter()
    k8s.kubectl("create", "-n", namespace, "-f", "-", input_text=yaml.safe_dump_all(docs))
    create_s = time.perf_counter() - created
    argv = [sys.executable, "-m", "sloserve_operator.cli", "operator", "--standalone"]
    metrics_port = _free_port()
    argv += ["-n", namespace, "--metrics-port", str(metrics_port), "--liveness-port", "0"]
    argv += ["--no-autoscaler"]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, **k8s.control_plane.env()})
    peak = {"rss": 0, "cpu": 0.0}
    done = threading.Event()

    def sample_rss() -> None:
        ps = psutil.Process(proc.pid)
        while not done.wait(0.25):
            try:
                peak["rss"] = max(peak["rss"], ps.memory_info().rss)
                times = ps.cpu_times()
                peak["cpu"] = times.user + times.system
            except psutil.NoSuchProcess:
                return

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        available = 0
        reconciled_s = None
        while available < N:
            items = api.get(f"{GROUP_PATH}/namespaces/{namespace}/llmservices")["items"]
            available = _available(items)
            if reconciled_s is None and _reconciled(items) == N:
                reconciled_s = time.perf_counter() - started
            if time.perf_counter() - started > 600:
                pytest.fail(f"only {available}/{N} Available after 600 s")
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        rss_mb = peak["rss"] / 2**20
        api_calls = _api_calls(metrics_port)
    finally:
        done.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        for node in nodes:
            k8s.kubectl("delete", "node", node.name, "--wait=false", check=False)
    result = {
        "services": N,
        "kubectl_create_s": round(create_s, 1),
        "all_children_applied_s": round(reconciled_s or elapsed, 1),
        "all_available_s": round(elapsed, 1),
        "operator_peak_rss_mb": round(rss_mb, 1),
        "operator_cpu_s": round(peak["cpu"], 1),
        "operator_api_calls": api_calls,
        "machine_load_1min": round(os.getloadavg()[0], 1),
    }
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "operator-scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nscale: {result}")
    assert rss_mb < 400, result
