"""A fluid upper bound on the sustainable request rate for a GPU profile, KV budget and workload.

No scheduler can beat it: it assumes perfect packing (every KV token in use,
no preemption, no fragmentation beyond the last block of each request, every
prefill done in one chunk) and only counts the work the trace demands.

* **KV bound on concurrency.** A decoding request holds its prompt plus the
  output so far; averaged over its decode steps that is ``P + (O - 1) / 2``
  tokens (rounded up to a block, half a block on average). The cache then holds
  at most ``C = min(max_num_seqs, kv_tokens / F)`` decoding requests, where
  ``F`` is the decode-step-weighted mean footprint.
* **Compute bound.** Serving ``λ`` requests/s takes, per second of GPU time,
  ``λ·E[P]·(prefill_token_s + prefill_ctx_s)`` for prefills,
  ``λ·E[O]·(decode_seq_s + decode_ctx_s·F)`` for decode tokens, and, since one
  step decodes at most ``C`` requests, at least ``λ·E[O] / C`` steps of fixed
  cost (``c0_s`` plus, when scheduling is synchronous, the CPU gap; minus the
  host time asynchronous scheduling hides).

Setting the total to one second gives ``λ_max``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..sim.costmodel import SimProfile
from ..sim.engine import SimConfig
from ..sim.workload import TraceRequest


@dataclass(frozen=True, slots=True)
class CapacityBound:
    rate: float
    """Upper bound on the sustainable rate, requests/s."""
    max_concurrency: float
    """Decoding requests the KV cache (or max_num_seqs) can hold at once."""
    mean_footprint_tokens: float
    step_fixed_s: float
    prefill_s_per_request: float
    decode_s_per_request: float
    fixed_s_per_request: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def capacity_bound(
    requests: list[TraceRequest], profile: SimProfile, config: SimConfig
) -> CapacityBound:
    if not requests:
        raise ValueError("capacity bound of an empty workload")
    m = profile.step
    bs = config.block_size
    n = len(requests)
    mean_p = sum(r.prompt_tokens for r in requests) / n
    mean_o = sum(r.output_tokens for r in requests) / n
    decode_steps = sum(r.output_tokens for r in requests)
    footprint = (
        sum(r.output_tokens * (r.prompt_tokens + (r.output_tokens - 1) / 2) for r in requests)
        / decode_steps
        + bs / 2
    )
    usable_tokens = config.usable_blocks * bs
    concurrency = min(float(config.max_num_seqs), usable_tokens / footprint)
    if config.scheduling == "sync":
        fixed = m.c0_s + m.cpu_per_step_s
        per_decode = m.decode_seq_s + m.cpu_per_request_s
    else:
        fixed = m.c0_s - profile.async_hidden_step_s
        per_decode = m.decode_seq_s
    prefill = mean_p * (m.prefill_token_s + m.prefill_ctx_s)
    decode = mean_o * (per_decode + m.decode_ctx_s * footprint)
    fixed_per_request = mean_o * fixed / concurrency
    return CapacityBound(
        rate=1.0 / (prefill + decode + fixed_per_request),
        max_concurrency=concurrency,
        mean_footprint_tokens=footprint,
        step_fixed_s=fixed,
        prefill_s_per_request=prefill,
        decode_s_per_request=decode,
        fixed_s_per_request=fixed_per_request,
    )
