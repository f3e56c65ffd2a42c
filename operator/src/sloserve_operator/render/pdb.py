"""PodDisruptionBudget: drains take engines down one at a time.

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
