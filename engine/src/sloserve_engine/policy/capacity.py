"""The engine's sustainable request rate, derived from the step cost model (no trace constant).

A fluid bound: it assumes perfect packing and counts only the work requests
demand, so no scheduler beats it.

* **KV bound on concurrency.** A decoding request holds its prompt plus the
  output so far, ``P + (O - 1) / 2`` tokens averaged over its decode steps (plus
  half a block). The cache holds at most ``C = min(max_num_seqs, kv_tokens / F)``
  decoding requests, ``F`` the mean footprint.
* **Compute bound.** Serving ``λ`` requests/s costs, per second of GPU time,
  ``λ·E[P]`` prefill tokens, ``λ·E[O]`` decode tokens and, since one step decodes
  at most ``C`` requests, at least ``λ·E[O] / C`` steps of fixed cost.

Setting the total to one second gives ``λ_max``. The benchmark reports it per
trace (``sloserve_engine.bench.capacity``); the policies learn ``E[P]``, ``E[O]``
online and use it as the load scale of the arrival-rate adjustments
(:class:`CapacityEstimate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .costmodel import StepCostModel, attention_pairs


@dataclass(frozen=True, slots=True)
class FluidCapacity:
    """The bound and its parts (times in seconds per request)."""

    rate: float
    """Upper bound on the sustainable rate, requests/s."""
    max_concurrency: float
    """Decoding requests the KV cache (or ``max_num_seqs``) can hold at once."""
    prefill_s_per_request: float
    decode_s_per_request: float
    fixed_s_per_request: float


def fluid_capacity(
    model: StepCostModel,
    mean_prompt: float,
    mean_output: float,
    footprint_tokens: float,
    kv_tokens: int,
    max_num_seqs: int,
    step_fixed_s: float,
    mean_prompt_attention: float | None = None,
    decode_extra_s: float = 0.0,
) -> FluidCapacity:
    """``λ_max`` for a workload with these means (module docstring).

    ``mean_prompt_attention`` is ``E[attention_pairs(P, 0)]`` (every prompt in one
    chunk); by default that of a prompt of the mean length. ``decode_extra_s`` is
    host time per decode token that is not overlapped (synchronous scheduling).
    """
    if mean_prompt < 0 or mean_output <= 0 or footprint_tokens <= 0:
        raise ValueError("mean_output and footprint_tokens must be > 0, mean_prompt >= 0")
    attention = (
        attention_pairs(round(mean_prompt), 0)
        if mean_prompt_attention is None
        else mean_prompt_attention
    )
    concurrency = max(min(float(max_num_seqs), kv_tokens / footprint_tokens), 1.0)
    prefill = (
        mean_prompt * (model.prefill_token_s + model.prefill_ctx_s)
        + model.prefill_attn_s * attention
    )
    decode = mean_output * (
        model.decode_seq_s + decode_extra_s + model.decode_ctx_s * footprint_tokens
    )
    fixed = mean_output * step_fixed_s / concurrency
    return FluidCapacity(1.0 / (prefill + decode + fixed), concurrency, prefill, decode, fixed)


class CapacityEstimate:
    """The engine's fluid capacity for the traffic seen so far (learned state of a policy).

    Mean prompt length from arrivals, mean output length from finished requests
    (``prior_output`` until ``min_samples`` finished), KV size and sequence limit
    from the engine's snapshot, step costs from the cost model. ``rate`` is
    ``None`` until the policy has seen a snapshot and an arrival.
    """

    __slots__ = (
        "_arrivals",
        "_finished",
        "_model",
        "_out_sum",
        "_prompt_sum",
        "min_samples",
        "prior_output",
        "rate",
    )

    def __init__(
        self, model: StepCostModel, prior_output: int = 256, min_samples: int = 30
    ) -> None:
        self._model = model
        self.prior_output = prior_output
        self.min_samples = min_samples
        self._arrivals = 0
        self._prompt_sum = 0
        self._finished = 0
        self._out_sum = 0
        self.rate: float | None = None

    def observe_arrival(self, prompt_tokens: int) -> None:
        self._arrivals += 1
        self._prompt_sum += prompt_tokens

    def observe_finish(self, output_tokens: int) -> None:
        self._finished += 1
        self._out_sum += output_tokens

    def update(self, kv_tokens: int, block_size: int, max_num_seqs: int) -> float | None:
        """Recompute the bound for the engine's KV size; returns it (``None`` before traffic)."""
        if not self._arrivals:
            return None
        p = self._prompt_sum / self._arrivals
        if self._finished >= self.min_samples:
            o = self._out_sum / self._finished
        else:
            o = float(self.prior_output)
        footprint = p + (o - 1.0) / 2.0 + block_size / 2.0
        self.rate = fluid_capacity(
            self._model, p, o, footprint, kv_tokens, max_num_seqs, self._model.c0_s
        ).rate
        return self.rate
