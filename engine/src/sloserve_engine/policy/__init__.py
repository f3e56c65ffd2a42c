"""Scheduling policies: pure decisions over immutable views (see :mod:`.views`).

:func:`make_policy` is the one factory both executors, the engine server and the
benchmarks call; the names are :data:`~sloserve_engine.contract.knobs.POLICY_NAMES`.
:func:`apply_knobs` is the one way both executors put a new knobs document into force.
"""

from __future__ import annotations

from ..contract.knobs import DEFAULT_KNOBS, POLICY_NAMES, Knobs
from .base import Policy
from .composed import ComposedPolicy, PolicySpec
from .costmodel import StepCostModel, cost_model_for
from .presets import SPECS
from .vllm_fcfs import VllmFcfsPolicy

__all__ = [
    "ComposedPolicy",
    "Policy",
    "PolicySpec",
    "StepCostModel",
    "apply_knobs",
    "make_policy",
]


def make_policy(
    name: str, knobs: Knobs = DEFAULT_KNOBS, cost_model: StepCostModel | None = None
) -> Policy:
    """Build the named policy; ``cost_model`` defaults to the H200 Llama-3.1-8B profile.

    ``knobs.policy`` is not consulted: benchmarks run one knobs document under many names.
    """
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    if name == "vllm":
        return VllmFcfsPolicy(knobs)
    return ComposedPolicy(SPECS[name], knobs, cost_model or cost_model_for())


def apply_knobs(policy: Policy, knobs: Knobs, cost_model: StepCostModel | None = None) -> Policy:
    """The policy to run from the next step on under ``knobs``.

    The same object with the new knobs when ``knobs.policy`` names it, else a
    new policy of that name (the caller then re-announces live requests to it,
    if it tracks them). Used by the vLLM scheduler and the simulated engine alike.
    """
    if knobs.policy == policy.name:
        policy.set_knobs(knobs)
        return policy
    return make_policy(knobs.policy, knobs, cost_model)
