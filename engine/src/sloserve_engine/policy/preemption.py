"""Preemption victim scoring and swap-vs-recompute (CacheOPT C4, C5).

The executor preempts from the end of the running order, so a policy expresses
its victim choice by sorting: the highest :func:`victim_score` goes last.
"""

from __future__ import annotations

from collections.abc import Callable

from .costmodel import StepCostModel
from .kvgate import reserved_output
from .views import PreemptionMode, RequestView


def preemption_cost_s(r: RequestView, model: StepCostModel) -> float:
    """Predicted latency to restore ``r``'s KV: the faster of swap and recompute (C5)."""
    tokens = r.computed_tokens
    return min(model.swap_s(tokens), model.prefill_s(tokens))


def remaining_tokens_estimate(r: RequestView, block_size: int, extension_fraction: float) -> int:
    """Tokens ``r`` still has to compute: the rest of its prompt plus outputs up to its bound."""
    prefill_left = max(r.prompt_tokens - r.computed_tokens, 0)
    output_left = reserved_output(r, block_size, extension_fraction) - r.output_tokens
    return prefill_left + max(output_left, 1)


def victim_score(
    r: RequestView, model: StepCostModel, block_size: int, extension_fraction: float
) -> float:
    """Higher = better victim: long TBT SLO, long remaining time, cheap to restore (C4).

    CacheOPT's normalised product ``(tbt/max tbt)·(T_rem/max T_rem)·(min T_pre/T_pre)``
    ranks exactly like ``tbt · T_rem / T_pre`` (the normalisers are constant across
    candidates); remaining time is in steps, since every running request gains
    one token per step.
    """
    remaining = remaining_tokens_estimate(r, block_size, extension_fraction)
    cost = preemption_cost_s(r, model) + 1e-6
    return r.slo.tbt_s * remaining / cost


def victim_scorer(
    model: StepCostModel, block_size: int, extension_fraction: float
) -> Callable[[RequestView], float]:
    """:func:`victim_score` with the model's constants hoisted (it runs per request per step).

    Equal to :func:`victim_score` (property-tested); only the proactive extension
    of a request at its bound goes through :func:`.kvgate.reserved_output`.
    """
    swap_per_token = model.kv_bytes_per_token * (
        1 / model.d2h_bytes_per_s + 1 / model.h2d_bytes_per_s
    )
    c0 = model.c0_s
    prefill_per_token = model.prefill_token_s + model.prefill_ctx_s
    attn = model.prefill_attn_s

    def score(r: RequestView) -> float:
        out = r.output_tokens
        computed = r.computed_tokens
        bound = r.output_bound
        if out + block_size > bound:
            reserved = reserved_output(r, block_size, extension_fraction)
        else:
            reserved = max(min(bound, r.max_output_tokens), out)
        left = reserved - out
        remaining = max(r.prompt_tokens - computed, 0) + (left if left > 1 else 1)
        swap = computed * swap_per_token
        recompute = (
            c0 + prefill_per_token * computed + attn * (computed * (computed + 1) // 2)
            if computed > 0
            else 0.0
        )
        return r.slo.tbt_s * remaining / ((swap if swap < recompute else recompute) + 1e-6)

    return score


def choose_mode(
    victim: RequestView, model: StepCostModel, forced: PreemptionMode | None
) -> PreemptionMode:
    """The knob wins; otherwise swap when its round trip is predicted faster than recompute."""
    if forced is not None:
        return forced
    tokens = victim.computed_tokens
    if tokens > 0 and model.swap_s(tokens) < model.prefill_s(tokens):
        return PreemptionMode.SWAP
    return PreemptionMode.RECOMPUTE
