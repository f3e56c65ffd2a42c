"""The engine Deployment.

Knob values never enter the pod template: they live in the mounted ConfigMap and reach running
engines through the admin API, so a knob change rolls nothing. Only engine settings (image,
model, parallelism, resources) change the template and therefore restart pods.
"""

from __future__ import annotations

from typing import Any

from sloserve_engine.contract.pod import HEALTH_PATH

from .target import (
    ADMIN_DIR,
    ADMIN_TOKEN_KEY,
    ENGINE_NAME,
    HTTP_PORT,
    KNOBS_DIR,
    KNOBS_FILE,
    Target,
)

STARTUP_BUDGET_S = 1800
"""Model download and load can take long; the startup probe allows this before liveness."""


def engine_args(target: Target) -> list[str]:
    """The engine command line (docs/engine.md): engine flags, then ``--``, then vLLM's."""
    model, engine = target.spec.model, target.spec.engine
    args = ["--simulated"] if engine.simulated else []
    if engine.simulated_startup_delay_s:
        args += ["--startup-delay-s", f"{engine.simulated_startup_delay_s:g}"]
    args += [
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
        "--served-model-name",
        model.served_name or model.name,
        "--knobs-file",
        f"{KNOBS_DIR}/{KNOBS_FILE}",
        "--admin-token-file",
        f"{ADMIN_DIR}/{ADMIN_TOKEN_KEY}",
    ]
    if engine.profile:
        args += ["--profile", engine.profile]
    if engine.kv_tokens:
        args += ["--kv-tokens", str(engine.kv_tokens)]
    args += [
        "--",
        "--model",
        model.source or model.name,
        "--tensor-parallel-size",
        str(engine.tensor_parallel_size),
        "--gpu-memory-utilization",
        str(engine.gpu_memory_utilization),
    ]
    if engine.max_model_len:
        args += ["--max-model-len", str(engine.max_model_len)]
    return args + list(engine.extra_args)


def probe(period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(target: Target) -> dict[str, Any]:
    engine = target.spec.engine
    gpus = {engine.gpu.resource_name: str(engine.gpu.count)}
    return {
        "name": "engine",
        "image": engine.image,
        "imagePullPolicy": engine.image_pull_policy,
        "command": [ENGINE_NAME],
        "args": engine_args(target),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": engine.resources.cpu, "memory": engine.resources.memory, **gpus},
            "limits": {"memory": engine.resources.memory, **gpus},
        },
        "startupProbe": probe(10, STARTUP_BUDGET_S // 10),
        "readinessProbe": probe(5, 3),
        "livenessProbe": probe(10, 6),
        "volumeMounts": [
            {"name": "knobs", "mountPath": KNOBS_DIR, "readOnly": True},
            {"name": "admin", "mountPath": ADMIN_DIR, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }


def _pod_spec(target: Target) -> dict[str, Any]:
    engine = target.spec.engine
    spec: dict[str, Any] = {
        "containers": [_container(target)],
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "tolerations": [
            {"key": engine.gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": target.selector},
            }
        ],
        "volumes": [
            {"name": "knobs", "configMap": {"name": target.knobs_configmap}},
            {"name": "admin", "secret": {"secretName": target.admin_secret, "defaultMode": 0o400}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if engine.node_selector:
        spec["nodeSelector"] = dict(engine.node_selector)
    return spec


def render(target: Target) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": target.metadata(target.name),
        "spec": {
            "replicas": target.spec.desired_replicas(),
            "selector": {"matchLabels": target.selector},
            # GPUs are usually all taken: replace one pod at a time instead of surging.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": STARTUP_BUDGET_S,
            "template": {"metadata": {"labels": target.labels}, "spec": _pod_spec(target)},
        },
    }
