"""Simulated GPU nodes: real Node objects whose status kwok keeps alive.

The scheduler sees ``nvidia.com/gpu`` capacity and GPU-type labels exactly as the NVIDIA
device plugin and GPU feature discovery would publish them on a real node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sloserve_dev.devcluster.controlplane import (
    KWOK_NODE_ANNOTATION,
    KWOK_NODE_ANNOTATION_VALUE,
)
from sloserve_dev.devcluster.kubeapi import JsonObj, KubeApi, KubeApiError

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TYPE_LABEL = "sloserve.io/gpu-type"
GPU_PRODUCTS = {
    "h100": "NVIDIA-H100-80GB-HBM3",
    "h200": "NVIDIA-H200",
    "a100": "NVIDIA-A100-SXM4-80GB",
    "l4": "NVIDIA-L4",
}


@dataclass(frozen=True)
class GpuNodeSpec:
    """One simulated node; the defaults describe an 8 x H100 server."""

    name: str
    gpu_type: str = "h100"
    gpus: int = 8
    cpu: str = "96"
    memory: str = "1024Gi"
    max_pods: int = 110


def gpu_node_manifest(spec: GpuNodeSpec) -> JsonObj:
    """The Node object; kwok manages nodes with the annotation and keeps the given status."""
    if spec.gpu_type not in GPU_PRODUCTS:
        known = ", ".join(sorted(GPU_PRODUCTS))
        raise ValueError(f"unknown GPU type {spec.gpu_type!r}; known: {known}")
    resources = {
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": str(spec.max_pods),
        GPU_RESOURCE: str(spec.gpus),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                GPU_PRODUCT_LABEL: GPU_PRODUCTS[spec.gpu_type],
                "nvidia.com/gpu.count": str(spec.gpus),
                GPU_TYPE_LABEL: spec.gpu_type,
            },
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def default_gpu_nodes(count: int = 2, gpu_type: str = "h100", gpus: int = 8) -> list[GpuNodeSpec]:
    return [GpuNodeSpec(f"gpu-{gpu_type}-{i}", gpu_type, gpus) for i in range(count)]


def node_ready(node: JsonObj) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def register_gpu_nodes(api: KubeApi, specs: list[GpuNodeSpec], timeout_s: float = 60.0) -> None:
    """Create (or re-apply) the nodes and wait until kwok reports every one Ready."""
    for spec in specs:
        try:  # create, not apply: a Node's status (its GPU capacity) is kept only on create
            api.create("/api/v1/nodes", gpu_node_manifest(spec))
        except KubeApiError as exc:
            if exc.status != 409:
                raise
    deadline = time.monotonic() + timeout_s
    pending = {s.name for s in specs}
    while pending:
        pending = {n for n in pending if not node_ready(api.get(f"/api/v1/nodes/{n}"))}
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"nodes {sorted(pending)} not Ready after {timeout_s:.0f} s; see the kwok log"
            )
        time.sleep(0.3)
