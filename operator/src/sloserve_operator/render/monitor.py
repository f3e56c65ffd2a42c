"""ServiceMonitor (Prometheus operator), rendered only where its CRD is installed.

Engine series get an ``llmservice`` label from the pod label, which the shipped alerts and
dashboards join on.
"""

from __future__ import annotations

from typing import Any

from .target import Target

GROUP = "monitoring.coreos.com"
PLURAL = "servicemonitors"


def render(target: Target) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ServiceMonitor",
        "metadata": target.metadata(target.name),
        "spec": {
            "selector": {"matchLabels": target.selector},
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
