"""The live-knob ConfigMap: engines start from it; pushes keep running engines in step."""

from __future__ import annotations

from typing import Any

from .target import KNOBS_FILE, KNOBS_REVISION_ANNOTATION, Target


def render(target: Target) -> dict[str, Any]:
    knobs = target.spec.knobs()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": target.metadata(
            target.knobs_configmap,
            annotations={KNOBS_REVISION_ANNOTATION: str(knobs.revision())},
        ),
        "data": {KNOBS_FILE: knobs.canonical_json() + "\n"},
    }
