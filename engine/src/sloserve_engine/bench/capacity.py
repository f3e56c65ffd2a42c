"""The fluid capacity bound of :mod:`sloserve_engine.policy.capacity` for a whole trace.

The policies estimate it online from running means; here it is computed from
the trace itself: the decode-step-weighted mean footprint and the exact mean
attention pairs of the prompts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..policy.capacity import fluid_capacity
from ..policy.costmodel import attention_pairs
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
    if config.scheduling == "sync":
        fixed = m.c0_s + m.cpu_per_step_s
        extra = m.cpu_per_request_s
    else:
        fixed = m.c0_s - profile.async_hidden_step_s
        extra = 0.0
    attention = sum(attention_pairs(r.prompt_tokens, 0) for r in requests) / n
    bound = fluid_capacity(
        m, mean_p, mean_o, footprint, usable_tokens, config.max_num_seqs, fixed, attention, extra
    )
    return CapacityBound(
        rate=bound.rate,
        max_concurrency=bound.max_concurrency,
        mean_footprint_tokens=footprint,
        step_fixed_s=fixed,
        prefill_s_per_request=bound.prefill_s_per_request,
        decode_s_per_request=bound.decode_s_per_request,
        fixed_s_per_request=bound.fixed_s_per_request,
    )
