"""SLO-guaranteed dynamic chunking (AccelGen C1).

Each step, the prefill budget is the largest token count whose predicted step
time keeps every request that decodes in this step within its TBT SLO. The
cost model is linear, so the "binary search" of the paper is one division.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .costmodel import StepCostModel
from .views import RequestView


@dataclass(frozen=True, slots=True)
class DecodeLoad:
    """What the decodes of one step cost and tolerate."""

    count: int
    ctx_sum: int
    tightest_tbt_s: float | None
    """Smallest TBT SLO among the decodes; ``None`` when nothing decodes."""


def decode_load(decodes: Sequence[RequestView]) -> DecodeLoad:
    """Load of the requests that decode this step (see :func:`.ordering.split_phases`)."""
    ctx = 0
    tightest: float | None = None
    for r in decodes:
        ctx += r.prompt_tokens + r.output_tokens
        tbt = r.slo.tbt_s
        if tightest is None or tbt < tightest:
            tightest = tbt
    return DecodeLoad(len(decodes), ctx, tightest)


def slo_prefill_budget(
    model: StepCostModel,
    load: DecodeLoad,
    chunk_min: int,
    chunk_max: int,
    margin: float = 0.05,
    prior_prefill_ctx: int = 0,
) -> int:
    """Prefill tokens for this step: in ``[chunk_min, chunk_max]``, or 0 (decodes only).

    Without decodes there is no TBT to protect, so the budget is ``chunk_max``.
    ``margin`` is AccelGen's ε: the step aims at ``(1 - margin) × tightest TBT``.
    """
    if load.tightest_tbt_s is None:
        return chunk_max
    limit = load.tightest_tbt_s * (1.0 - margin)
    fit = model.max_prefill_tokens(limit, load.count, load.ctx_sum, prior_prefill_ctx)
    if fit < chunk_min:
        return 0
    return min(fit, chunk_max)
