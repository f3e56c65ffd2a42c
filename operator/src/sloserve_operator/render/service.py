"""The LLMService's Services: the one clients use, and the engines' headless one.

With a router tier the LLMService's Service selects the router pods, and routers find the
engines through the headless ``NAME-engines`` Service (one DNS record per ready engine pod);
without one (``router.replicas: 0``) the Service selects the engines, as before the tier. The
``sloserve.io/metrics`` label marks the Services the ServiceMonitor scrapes, so engine pods are
scraped once whichever Service selects them.
"""

from __future__ import annotations

from typing import Any

from .target import HTTP_PORT, METRICS_LABEL, Target

_PORTS = [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}]


def render(target: Target) -> dict[str, Any]:
    """The client-facing ClusterIP Service (OpenAI API) named after the LLMService."""
    if target.routed:
        labels = {**target.router_labels, METRICS_LABEL: "router"}
        selector = target.router_selector
    else:
        labels, selector = dict(target.labels), target.selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": target.metadata(target.name, labels),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": _PORTS},
    }


def render_engines(target: Target) -> dict[str, Any]:
    """Headless: DNS answers with each ready engine pod's IP, which is what routers place on."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": target.metadata(
            target.engines_service, {**target.labels, METRICS_LABEL: "engine"}
        ),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "selector": target.selector,
            "ports": _PORTS,
        },
    }
