"""The live-knob ConfigMap: engines and routers start from it; pushes keep running pods in step.

One object holds both documents (``knobs.json`` for engines, ``router.json`` for routers), so a
service has one place where its live settings can be read.
"""

from __future__ import annotations

from typing import Any

from .target import (
    KNOBS_FILE,
    KNOBS_REVISION_ANNOTATION,
    ROUTER_KNOBS_FILE,
    ROUTER_KNOBS_REVISION_ANNOTATION,
    Target,
)


def render(target: Target) -> dict[str, Any]:
    knobs, router = target.spec.knobs(), target.spec.router_knobs()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": target.metadata(
            target.knobs_configmap,
            annotations={
                KNOBS_REVISION_ANNOTATION: str(knobs.revision()),
                ROUTER_KNOBS_REVISION_ANNOTATION: str(router.revision()),
            },
        ),
        "data": {
            KNOBS_FILE: knobs.canonical_json() + "\n",
            ROUTER_KNOBS_FILE: router.canonical_json() + "\n",
        },
    }
