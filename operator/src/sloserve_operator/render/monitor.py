"""ServiceMonitor (Prometheus operator), rendered only where its CRD is installed.

It selects the Services labelled ``sloserve.io/metrics`` (the engines' headless Service and,
with a router tier, the routers' Service), so every engine and router pod is one target. Series
get an ``llmservice`` label from the pod label, which the shipped alerts and dashboards join on.
"""

from __future__ import annotations

from typing import Any

from .target import METRICS_LABEL, SERVICE_LABEL, Target

GROUP = "monitoring.coreos.com"
PLURAL = "servicemonitors"


def render(target: Target) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ServiceMonitor",
        "metadata": target.metadata(target.name),
        "spec": {
            "selector": {
                "matchLabels": {SERVICE_LABEL: target.name},
                "matchExpressions": [{"key": METRICS_LABEL, "operator": "Exists"}],
            },
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": "15s",
                    "relabelings": [
                        {
                            "sourceLabels": ["__meta_kubernetes_pod_label_sloserve_io_service"],
                            "targetLabel": "llmservice",
                        }
                    ],
                }
            ],
        },
    }
