"""Adapter counters: what the scheduler did, for tests, logs and the docs' examples.

The Prometheus view of the same facts is ``telemetry.metrics.EngineMetrics``;
these counters add what only the adapter knows (refused admissions, swaps
asked for without an offload connector, rejected knob documents). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..policy.views import PreemptionMode, StepPlan


def _zero_by_mode() -> dict[PreemptionMode, int]:
    return dict.fromkeys(PreemptionMode, 0)


@dataclass(slots=True)
class AdapterStats:
    """Cumulative since the scheduler started, plus the last step's plan."""

    steps: int = 0
    preemptions: dict[PreemptionMode, int] = field(default_factory=_zero_by_mode)
    """Preempted requests by the mode actually used."""
    admissions_refused: int = 0
    """Admissions the policy's ``can_admit`` refused (each ends that step's admissions)."""
    swap_unavailable: int = 0
    """Swaps the policy asked for without a KV offload connector (recomputed instead)."""
    invalid_slo: int = 0
    """Requests whose ``vllm_xargs`` SLO was unusable (the defaults were applied)."""
    knobs_errors: int = 0
    """Knob documents rejected (invalid file contents or unknown policy)."""
    policy_errors: int = 0
    """Policy calls that raised (stock vLLM's decision was used for each)."""
    knobs_revision: int = 0
    finished: int = 0
    aborted: int = 0
    last_scheduled_tokens: int = 0
    last_plan: StepPlan | None = None
