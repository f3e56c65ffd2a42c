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
    tightest_bank_s: float | None = None
    """Smallest step each decode could take with its mean TPOT still on target (banked time)."""


def decode_load(decodes: Sequence[RequestView], now: float | None = None) -> DecodeLoad:
    """Load of the requests that decode this step (see :func:`.ordering.split_phases`).

    With ``now``, also the banked time: a request with ``n`` tokens whose first
    came at ``f`` keeps its mean TPOT on target if its next token comes within
    ``tbt·n − (now − f)`` (the SLO is on the mean, not on every gap).
    """
    ctx = 0
    tightest: float | None = None
    bank: float | None = None
    for r in decodes:
        out = r.output_tokens
        ctx += r.prompt_tokens + out
        tbt = r.slo.tbt_s
        if tightest is None or tbt < tightest:
            tightest = tbt
        if now is not None:
            first = r.first_token_time
            allowed = tbt if first is None else max(tbt * out - (now - first), tbt)
            if bank is None or allowed < bank:
                bank = allowed
    return DecodeLoad(len(decodes), ctx, tightest, bank)


def slo_prefill_budget(
    model: StepCostModel,
    load: DecodeLoad,
    chunk_min: int,
    chunk_max: int,
    margin: float = 0.05,
    prior_prefill_ctx: int = 0,
    bank_cap: float = 1.0,
) -> int:
    """Prefill tokens for this step: in ``[chunk_min, chunk_max]``, or 0 (decodes only).

    Without decodes there is no TBT to protect, so the budget is ``chunk_max``.
    ``margin`` is AccelGen's ε: the step aims at ``(1 - margin) × tightest TBT``.
    ``bank_cap > 1`` lets the step spend banked time (``load.tightest_bank_s``) up
    to ``bank_cap × tightest TBT``: longer chunks when everyone is ahead of target.
    """
    if load.tightest_tbt_s is None:
        return chunk_max
    target = load.tightest_tbt_s
    if bank_cap > 1.0 and load.tightest_bank_s is not None:
        target = max(target, min(load.tightest_bank_s, bank_cap * target))
    limit = target * (1.0 - margin)
    fit = model.max_prefill_tokens(limit, load.count, load.ctx_sum, prior_prefill_ctx)
    if fit < chunk_min:
        return 0
    return min(fit, chunk_max)
