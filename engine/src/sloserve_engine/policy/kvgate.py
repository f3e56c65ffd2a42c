"""KV-cache admission: reservation for the predicted length, lending, reserve (EcoServe, CacheOPT).

vLLM allocates KV blocks lazily, one block as a request grows, so a
"reservation" here is accounting in the admission gate, not physical blocks:
a candidate is admitted only if the blocks that running requests (and the
candidate) will still grow into, up to their output bound, fit beside the
global reserve. Running requests may always grow into the reserve (vLLM lets
them take any free block): that is CacheOPT's "extensions may use the reserve,
admissions may not".

Three gates, from most to least permissive:

- :attr:`Gate.WATERMARK`: the prompt must fit above the reserve (vLLM's own
  check plus a watermark; no prediction).
- :attr:`Gate.RESERVATION` (CacheOPT C2/C3, EconoServe "allocate for the
  predicted RL"): every running request's reservation counts now, in full.
- :attr:`Gate.LENDING` (EconoServe KVCPipe, CacheOPT reuse): a reservation
  counts only from the step its owner grows into it, and a request's blocks
  return at its bound. A candidate may therefore use blocks that others
  reserved but will not need before it is predicted to finish. Checked as a
  timeline: for every future step ``t``, the blocks held at ``t`` by requests
  still alive at ``t`` (everyone grows one token per step) must fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from .views import RequestView


class Gate(StrEnum):
    """Which admission rule :func:`admissible` applies."""

    NONE = "none"
    WATERMARK = "watermark"
    RESERVATION = "reservation"
    LENDING = "lending"


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Parameters of the KV gate."""

    gate: Gate = Gate.LENDING
    reservation_ratio: float = 0.05
    """Global reserve as a share of all blocks (knob ``reservation_ratio``)."""
    extension_fraction: float = 0.25
    """Proactive extension step for a request that reaches its bound, as a share of the bound."""
    guard_steps: int = 2
    """Steps added to every predicted finish (EconoServe's GUARD), covering prefill and jitter."""


def blocks_for(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


def reserve_blocks(total_blocks: int, ratio: float) -> int:
    return math.ceil(total_blocks * ratio)


def reserved_output(r: RequestView, block_size: int, extension_fraction: float) -> int:
    """Output tokens covered by ``r``'s reservation: its bound, extended ahead of need.

    Proactive allocation (CacheOPT C3): once a request is within one block of
    its bound, the reservation grows by ``max(block, fraction × bound)`` tokens,
    so the gate keeps room for an under-predicted request before it runs out.
    """
    bound = r.output_bound
    ahead = r.output_tokens + block_size
    if ahead > bound:
        step = max(block_size, math.ceil(extension_fraction * r.output_bound))
        bound += -(-(ahead - bound) // step) * step
    return max(min(bound, r.max_output_tokens), r.output_tokens)


def reserved_total_tokens(r: RequestView, block_size: int, extension_fraction: float) -> int:
    return r.prompt_tokens + reserved_output(r, block_size, extension_fraction)


def reserved_unused_blocks(
    running: Sequence[RequestView], block_size: int, extension_fraction: float
) -> int:
    """Blocks reserved by running requests but not yet held (``sloserve_kv_reserved_blocks``)."""
    total = 0
    for r in running:
        need = blocks_for(reserved_total_tokens(r, block_size, extension_fraction), block_size)
        total += max(need - r.blocks_held, 0)
    return total


def admissible(
    config: GateConfig,
    free_blocks: int,
    total_blocks: int,
    block_size: int,
    running: Sequence[RequestView],
    candidate: RequestView,
) -> bool:
    """Whether admitting ``candidate`` keeps every reservation and the reserve intact."""
    if config.gate is Gate.NONE:
        return True
    reserve = reserve_blocks(total_blocks, config.reservation_ratio)
    prompt_blocks = blocks_for(candidate.total_tokens, block_size) - candidate.blocks_held
    if config.gate is Gate.WATERMARK:
        return free_blocks - prompt_blocks >= reserve
    if free_blocks - prompt_blocks < reserve:
        return False
    if config.gate is Gate.RESERVATION:
        return _fits_full_reservation(config, free_blocks, block_size, running, candidate, reserve)
    return _fits_timeline(
        config, free_blocks, total_blocks, block_size, running, candidate, reserve
    )


def _fits_full_reservation(
    config: GateConfig,
    free_blocks: int,
    block_size: int,
    running: Sequence[RequestView],
    candidate: RequestView,
    reserve: int,
) -> bool:
    growth = reserved_unused_blocks(running, block_size, config.extension_fraction)
    own = blocks_for(
        reserved_total_tokens(candidate, block_size, config.extension_fraction), block_size
    )
    return free_blocks - growth - (own - candidate.blocks_held) >= reserve


def _fits_timeline(
    config: GateConfig,
    free_blocks: int,
    total_blocks: int,
    block_size: int,
    running: Sequence[RequestView],
    candidate: RequestView,
    reserve: int,
) -> bool:
    """max over future steps t of blocks held at t <= capacity (total minus reserve).

    Each request r holds at most ``(x_r + t + B - 1) / B`` blocks at step t while
    alive (x_r: tokens now; it gains one per step) and none after its finish step
    ``d_r`` (reservation end + guard). Between finishes the sum only grows, so it
    suffices to check the finish steps, which a descending sweep with running sums
    does in O(n log n).
    """
    b = block_size
    ext = config.extension_fraction
    guard = config.guard_steps
    held_sum = 0
    items: list[tuple[int, int]] = []
    for r in running:
        x = max(r.total_tokens, r.computed_tokens)
        end = max(reserved_total_tokens(r, b, ext), x)
        items.append((end - x + guard, x))
        held_sum += r.blocks_held
    other = max(total_blocks - free_blocks - held_sum, 0)
    capacity = total_blocks - reserve - other
    x_c = candidate.total_tokens
    end_c = max(reserved_total_tokens(candidate, b, ext), x_c)
    d_c = end_c - x_c + guard
    cap_c = blocks_for(end_c, b)

    items.sort(reverse=True)
    checks = sorted({d for d, _ in items} | {d_c}, reverse=True)
    sum_x = 0
    alive = 0
    i = 0
    n = len(items)
    for t in checks:
        while i < n and items[i][0] >= t:
            sum_x += items[i][1]
            alive += 1
            i += 1
        demand = (sum_x + alive * (t + b - 1)) / b
        if t <= d_c:
            demand += min(cap_c, (x_c + t + b - 1) // b)
        if demand > capacity:
            return False
    return True
