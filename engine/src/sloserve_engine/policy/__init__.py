"""Scheduling policies: pure decisions over immutable views (see :mod:`.views`).

:func:`make_policy` is the one factory both executors, the engine server and the
benchmarks call; the names are :data:`.knobs.POLICY_NAMES`.
"""

from __future__ import annotations

from .base import Policy
from .composed import ComposedPolicy, PolicySpec
from .costmodel import StepCostModel, cost_model_for
from .knobs import POLICY_NAMES, PolicyKnobs
from .presets import SPECS
from .vllm_fcfs import VllmFcfsPolicy

__all__ = [
    "POLICY_NAMES",
    "ComposedPolicy",
    "Policy",
    "PolicyKnobs",
    "PolicySpec",
    "StepCostModel",
    "make_policy",
]


def make_policy(
    name: str, knobs: PolicyKnobs | None = None, cost_model: StepCostModel | None = None
) -> Policy:
    """Build the named policy; ``cost_model`` defaults to the H200 Llama-3.1-8B profile."""
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    knobs = knobs or PolicyKnobs()
    if name == "vllm":
        return VllmFcfsPolicy(knobs)
    return ComposedPolicy(SPECS[name], knobs, cost_model or cost_model_for())
