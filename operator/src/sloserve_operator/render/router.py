"""The router Deployment: ``sloserve-router`` from the engine image, no GPU.

Routers are cheap and stateless (reservations carry leases that expire), so they surge during
a rollout instead of dropping to fewer replicas, and spread across nodes so that losing one
node leaves a router. Like the engines they read their knob document from the mounted
ConfigMap at start and get later changes through their admin API, so a knob change rolls
nothing.
"""

from __future__ import annotations

from typing import Any

from .deployment import probe
from .target import (
    ADMIN_DIR,
    ADMIN_TOKEN_KEY,
    HTTP_PORT,
    KNOBS_DIR,
    KNOBS_FILE,
    ROUTER_KNOBS_FILE,
    ROUTER_NAME,
    Target,
)

TERMINATION_GRACE_S = 30
"""Time for in-flight streams to finish when a router pod stops."""


def router_args(target: Target) -> list[str]:
    """The router's command line: where engines are found, the model name clients send, its
    knobs, the engines' knobs (the SLO of requests without one) and the shared admin token
    (its own admin API and the engines' reservation API)."""
    model, engine = target.spec.model, target.spec.engine
    args = [
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
        "--engines-dns",
        f"{target.engines_service}.{target.namespace}.svc:{HTTP_PORT}",
        "--served-model-name",
        model.served_name or model.name,
        "--knobs-file",
        f"{KNOBS_DIR}/{ROUTER_KNOBS_FILE}",
        "--engine-knobs-file",
        f"{KNOBS_DIR}/{KNOBS_FILE}",
        "--admin-token-file",
        f"{ADMIN_DIR}/{ADMIN_TOKEN_KEY}",
    ]
    if engine.profile:
        args += ["--profile", engine.profile]
    if engine.max_model_len:
        args += ["--max-model-len", str(engine.max_model_len)]
    return args


def _container(target: Target) -> dict[str, Any]:
    engine, res = target.spec.engine, target.spec.router.resources
    return {
        "name": "router",
        "image": engine.image,
        "imagePullPolicy": engine.image_pull_policy,
        "command": [ROUTER_NAME],
        "args": router_args(target),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": res.cpu, "memory": res.memory},
            "limits": {"memory": res.memory},
        },
        "readinessProbe": probe(5, 3),
        "livenessProbe": probe(10, 6),
        "volumeMounts": [
            {"name": "knobs", "mountPath": KNOBS_DIR, "readOnly": True},
            {"name": "admin", "mountPath": ADMIN_DIR, "readOnly": True},
        ],
    }


def render(target: Target) -> dict[str, Any]:
    labels = target.router_labels
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": target.metadata(target.router_deployment, labels),
        "spec": {
            "replicas": target.spec.router.replicas,
            "selector": {"matchLabels": target.router_selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [_container(target)],
                    "enableServiceLinks": False,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": target.router_selector},
                        }
                    ],
                    "volumes": [
                        {"name": "knobs", "configMap": {"name": target.knobs_configmap}},
                        {
                            "name": "admin",
                            "secret": {"secretName": target.admin_secret, "defaultMode": 0o400},
                        },
                    ],
                },
            },
        },
    }
