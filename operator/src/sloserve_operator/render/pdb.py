"""PodDisruptionBudgets: drains take engines, and routers, down one at a time.

``maxUnavailable: 1`` rather than ``minAvailable`` so a single-replica service can still be
drained (a node upgrade must not hang on it) while larger ones never lose two at once.
"""

from __future__ import annotations

from typing import Any

from .target import Target


def render(target: Target) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": target.metadata(target.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": target.selector}},
    }


def render_router(target: Target) -> dict[str, Any]:
    """Routers too: a drain must never take every router of a service at once."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": target.metadata(target.router_deployment, target.router_labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": target.router_selector}},
    }
