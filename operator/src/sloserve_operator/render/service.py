"""The ClusterIP Service in front of the engines (OpenAI API, metrics)."""

from __future__ import annotations

from typing import Any

from .target import HTTP_PORT, Target


def render(target: Target) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": target.metadata(target.name),
        "spec": {
            "type": "ClusterIP",
            "selector": target.selector,
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
