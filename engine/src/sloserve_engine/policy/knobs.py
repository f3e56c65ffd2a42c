"""Tunable parameters every policy reads on each step (changed live between steps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..contract.attainment import STALL_BOUND_MS_DEFAULT
from .views import PreemptionMode, SLOTarget

POLICY_NAMES = ("vllm", "ecoserve", "cacheopt", "accelgen", "sloserve")
"""Named policies, in the order they are usually compared; ``sloserve`` is the default."""


@dataclass(frozen=True, slots=True)
class PolicyKnobs:
    """Knob values as plain numbers; the validated wire document is ``sloserve_engine.knobs``."""

    reservation_ratio: float = 0.05
    """Share of KV blocks kept as a global reserve that admissions may not take (CacheOPT)."""
    predictor_confidence: float = 0.9
    """Probability that a request's output stays within its KV reservation."""
    chunk_min_tokens: int = 64
    """Smallest prefill chunk worth scheduling; below it, a step runs decodes only."""
    chunk_max_tokens: int = 8192
    """Largest prefill chunk (and step token budget) a policy may use."""
    preemption_mode: PreemptionMode | None = None
    """Force swap or recompute; ``None`` lets the policy pick by predicted latency ("auto")."""
    default_slo: SLOTarget = field(default_factory=SLOTarget)
    """SLO applied to requests that carry none."""
    stall_bound_s: float = STALL_BOUND_MS_DEFAULT / 1000.0
    """Longest gap between two tokens strict attainment accepts (measurement, not scheduling)."""
