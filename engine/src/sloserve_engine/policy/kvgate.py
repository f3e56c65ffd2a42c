"""KV-cache admission: reservation for the predicted length, lending, reserve (EcoServe, CacheOPT).

vLLM allocates KV blocks lazily, one block as a request grows, so a
"reservation" here is accounting in the admission gate, not physical blocks:
a candidate is admitted only if the blocks that running requests (and the
candidate) will still grow into, up to their output bound, fit beside the
global reserve. Running requests may always grow into the reserve (vLLM lets
them take any free block): that is CacheOPT's "extensions may use the reserve,
admissions may not". A preempted request that has already streamed tokens
counts as running here: its resume may use the reserve too.

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

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..contract.knobs import DEFAULT_KNOBS
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
    """Which admission rule applies."""
    reservation_ratio: float = DEFAULT_KNOBS.reservation_ratio
    """Global reserve as a share of all blocks: the knob's default here, the knob in force
    once a composed policy builds its gate (``ComposedPolicy._gate_config``)."""
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


class KVLedger:
    """The gate's view of one KV state: built once per state, asked once per candidate.

    Building is O(n log n) in running requests; :meth:`admits` is O(1) for
    ``reservation`` and at most O(n) arithmetic (no sorting) for ``lending``,
    so a plan can try many candidates per step.
    """

    __slots__ = (
        "_block_size",
        "_capacity",
        "_checks",
        "_config",
        "_counts",
        "_growth",
        "_items",
        "_max_from",
        "_other",
        "_reserve",
        "_stale",
        "_sums",
        "free_blocks",
        "total_blocks",
    )

    def __init__(
        self,
        config: GateConfig,
        free_blocks: int,
        total_blocks: int,
        block_size: int,
        running: Sequence[RequestView],
    ) -> None:
        self._config = config
        self.free_blocks = free_blocks
        self.total_blocks = total_blocks
        self._block_size = block_size
        self._reserve = reserve_blocks(total_blocks, config.reservation_ratio)
        self._items: list[tuple[int, int]] = []
        self._growth = 0
        self._other = 0
        self._capacity = 0
        self._checks: list[int] = []
        self._sums: list[int] = []
        self._counts: list[int] = []
        self._max_from: list[float] = []
        self._stale = False
        if config.gate in (Gate.RESERVATION, Gate.LENDING):
            self._account(running)

    @property
    def room_for_new(self) -> int:
        """Free blocks above the reserve: below 1, no new request can be admitted.

        (A new request needs at least one block; an empty engine has the whole
        cache, which is never below the reserve.) Lets a plan skip ordering the
        waiting queue when only paused streams could go.
        """
        reserve = 0 if self._config.gate is Gate.NONE else self._reserve
        return self.free_blocks - reserve

    @property
    def held_back(self) -> int:
        """Blocks kept from new admissions: the reserve plus reserved, unused growth.

        The plan exports it as ``reserved_blocks`` (``sloserve_kv_reserved_blocks``).
        """
        reserve = 0 if self._config.gate is Gate.NONE else self._reserve
        return reserve + self._growth

    @property
    def reserved_unused(self) -> int:
        """Blocks reserved, not yet held by running requests (``sloserve_kv_reserved_blocks``)."""
        return self._growth

    def _account(self, running: Sequence[RequestView]) -> None:
        b = self._block_size
        ext = self._config.extension_fraction
        guard = self._config.guard_steps
        held = 0
        growth = 0
        items = self._items
        for r in running:
            out = r.output_tokens
            x = r.prompt_tokens + out
            if r.computed_tokens > x:
                x = r.computed_tokens
            end = r.prompt_tokens + (
                r.output_bound if out + b <= r.output_bound else reserved_output(r, b, ext)
            )
            if end < x:
                end = x
            need = -(-end // b) - r.blocks_held
            if need > 0:
                growth += need
            held += r.blocks_held
            items.append((end - x + guard, x))
        self._growth = growth
        self._other = max(self.total_blocks - self.free_blocks - held, 0)
        self._capacity = self.total_blocks - self._reserve - self._other
        self._stale = self._config.gate is Gate.LENDING

    def _build_timeline(self) -> None:
        """Checkpoints (distinct finish steps, ascending) with the alive set's sums at each."""
        items = sorted(self._items, reverse=True)
        b = self._block_size
        checks: list[int] = []
        sums: list[int] = []
        counts: list[int] = []
        demand: list[float] = []
        sum_x = 0
        for k, (d, x) in enumerate(items):
            sum_x += x
            alive = k + 1
            if k + 1 == len(items) or items[k + 1][0] != d:
                checks.append(d)
                sums.append(sum_x)
                counts.append(alive)
                demand.append((sum_x + alive * (d + b - 1)) / b)
        checks.reverse()
        sums.reverse()
        counts.reverse()
        demand.reverse()
        max_from = demand[:]
        for i in range(len(max_from) - 2, -1, -1):
            if max_from[i + 1] > max_from[i]:
                max_from[i] = max_from[i + 1]
        self._checks, self._sums, self._counts = checks, sums, counts
        self._max_from = max_from

    def admits(self, candidate: RequestView) -> bool:
        """Whether admitting ``candidate`` keeps every reservation and the reserve intact."""
        gate = self._config.gate
        if gate is Gate.NONE:
            return True
        b = self._block_size
        prompt_blocks = blocks_for(candidate.total_tokens, b) - candidate.blocks_held
        if self.free_blocks == self.total_blocks:
            return prompt_blocks <= self.free_blocks  # an empty engine always makes progress
        # A paused stream (preempted after its first token) is running work: like a
        # running request it may use the reserve, which exists to keep streams going.
        reserve = 0 if candidate.output_tokens > 0 else self._reserve
        if self.free_blocks - prompt_blocks < reserve:
            return False
        if gate is Gate.WATERMARK:
            return True
        x_c = candidate.total_tokens
        end_c = max(reserved_total_tokens(candidate, b, self._config.extension_fraction), x_c)
        cap_c = blocks_for(end_c, b)
        if gate is Gate.RESERVATION:
            own = cap_c - candidate.blocks_held
            return self.free_blocks - self._growth - own >= reserve
        capacity = self._capacity + self._reserve - reserve
        return self._fits_timeline(x_c, end_c - x_c + self._config.guard_steps, cap_c, capacity)

    def admit(self, candidate: RequestView) -> None:
        """Account ``candidate`` as admitted: its prompt blocks go, its reservation counts."""
        b = self._block_size
        prompt_blocks = blocks_for(candidate.total_tokens, b) - candidate.blocks_held
        self.free_blocks -= prompt_blocks
        if self._config.gate not in (Gate.RESERVATION, Gate.LENDING):
            return
        x_c = candidate.total_tokens
        end_c = max(reserved_total_tokens(candidate, b, self._config.extension_fraction), x_c)
        self._growth += max(blocks_for(end_c, b) - candidate.blocks_held - prompt_blocks, 0)
        self._items.append((end_c - x_c + self._config.guard_steps, x_c))
        self._stale = self._config.gate is Gate.LENDING

    def _fits_timeline(self, x_c: int, d_c: int, cap_c: int, capacity: int) -> bool:
        """max over future steps t of blocks held at t <= capacity (total - reserve - other).

        A running request r holds at most ``(x_r + t + B - 1) / B`` blocks at step
        t while alive (x_r: tokens now, one more per step) and none after its
        finish step d_r (reservation end + guard). Between finishes the sum only
        grows, so the checkpoints are the finish steps, plus the candidate's own.
        """
        if self._stale:
            self._build_timeline()
            self._stale = False
        b = self._block_size
        checks = self._checks
        first_after = bisect.bisect_right(checks, d_c)
        if first_after < len(checks) and self._max_from[first_after] > capacity:
            return False  # already over-committed after the candidate is gone
        at_d_c = bisect.bisect_left(checks, d_c)
        own_at_end = min(cap_c, (x_c + d_c + b - 1) // b)
        if at_d_c < len(checks):
            alive_demand = (self._sums[at_d_c] + self._counts[at_d_c] * (d_c + b - 1)) / b
        else:
            alive_demand = 0.0
        if alive_demand + own_at_end > capacity:
            return False
        if not first_after or self._max_from[0] + cap_c <= capacity:
            return True
        sums = self._sums
        counts = self._counts
        for i in range(first_after):
            t = checks[i]
            own = min(cap_c, (x_c + t + b - 1) // b)
            if (sums[i] + counts[i] * (t + b - 1)) / b + own > capacity:
                return False
        return True


def admissible(
    config: GateConfig,
    free_blocks: int,
    total_blocks: int,
    block_size: int,
    running: Sequence[RequestView],
    candidate: RequestView,
) -> bool:
    """One-shot gate: whether admitting ``candidate`` keeps reservations and reserve intact."""
    return KVLedger(config, free_blocks, total_blocks, block_size, running).admits(candidate)
