"""Which waiting requests to put in this step's admit order (multi-resource batching).

The executor admits ``admit_order`` in order and stops at the first refusal
(vLLM's head-of-line rule), so the plan decides up front, by simulating the
step's two resources: the token budget left after running work, and KV blocks
under the policy's own gate. Rules:

- ``head``: priority order, stop at the first request that does not fit (vLLM).
- ``backfill``: priority order, skip a request that does not fit (it is held
  back, later ones may go), unless it has waited ``protect_after_s``: then
  stop, so large requests cannot starve behind a stream of small ones. A
  *paused stream* (a preempted request that already sent tokens) that does
  not fit may be passed only by other paused streams, never by new requests:
  those would take the blocks it needs and extend the freeze.
- ``tetris`` (AccelGen C3): among the fitting candidates, repeatedly pick the one
  whose demand best matches what is left of both resources,
  ``align = c·(1 − U_c) + m·(1 − U_m)``; a head that has waited
  ``protect_after_s`` or is a paused stream goes first, or blocks until it
  fits (ageing, AccelGen C2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .kvgate import blocks_for
from .views import RequestView


class Ledger(Protocol):
    """The policy's KV gate for one step (:class:`~.kvgate.KVLedger`)."""

    free_blocks: int

    def admits(self, candidate: RequestView) -> bool: ...

    def admit(self, candidate: RequestView) -> None: ...


class Batching(StrEnum):
    """Admission selection rule (the module docstring describes each)."""

    HEAD = "head"
    BACKFILL = "backfill"
    TETRIS = "tetris"


@dataclass(frozen=True, slots=True)
class StepResources:
    """What is left for admissions in this step."""

    token_budget: int
    """Total tokens of the step (denominator of compute utilisation)."""
    tokens_left: int
    """Budget left after running decodes and prefill chunks."""
    total_blocks: int
    block_size: int
    seats: int
    """``max_num_seqs`` minus running requests."""
    chunk_cap: int
    """Per-request chunk cap (0 = none)."""


def select_admissions(
    rule: Batching,
    candidates: Sequence[RequestView],
    res: StepResources,
    ledger: Ledger,
    now: float,
    protect_after_s: float = 10.0,
) -> tuple[str, ...]:
    """Admit order for this step (a subsequence of ``candidates``, possibly reordered)."""
    chosen: list[str] = []
    tokens_left = res.tokens_left
    pool = list(candidates)
    streams_only = False  # a paused stream was skipped: only other paused streams may pass it
    while pool and tokens_left > 0 and len(chosen) < res.seats:
        pick: RequestView | None = None
        if rule is Batching.TETRIS:
            head = pool[0]
            if _protected(head, now, protect_after_s):  # ageing outranks alignment
                if not _fits_now(head, ledger, res):
                    return tuple(chosen)
                pick = head
            else:
                pick = _best_aligned(pool, ledger, tokens_left, res)
        else:
            while pool:
                head = pool[0]
                paused = head.output_tokens > 0
                if streams_only and not paused:
                    return tuple(chosen)
                if _fits_now(head, ledger, res):
                    pick = head
                    break
                if rule is Batching.HEAD or (
                    not paused and now - head.arrival_time >= protect_after_s
                ):
                    return tuple(chosen)
                streams_only = streams_only or paused
                pool.pop(0)
        if pick is None:
            break
        pool.remove(pick)
        chosen.append(pick.request_id)
        ledger.admit(pick)
        chunk = pick.remaining_tokens
        if res.chunk_cap:
            chunk = min(chunk, res.chunk_cap)
        tokens_left -= chunk
    return tuple(chosen)


def _protected(r: RequestView, now: float, protect_after_s: float) -> bool:
    """May not be skipped: it waited too long, or it is a paused stream."""
    return r.output_tokens > 0 or now - r.arrival_time >= protect_after_s


def _fits_now(r: RequestView, ledger: Ledger, res: StepResources) -> bool:
    prompt_blocks = blocks_for(r.total_tokens, res.block_size) - r.blocks_held
    return prompt_blocks <= ledger.free_blocks and ledger.admits(r)


def _best_aligned(
    pool: Sequence[RequestView], ledger: Ledger, tokens_left: int, res: StepResources
) -> RequestView | None:
    budget = max(res.token_budget, 1)
    total = max(res.total_blocks, 1)
    u_c = 1.0 - tokens_left / budget
    u_m = 1.0 - ledger.free_blocks / total
    best: RequestView | None = None
    best_align = -1.0
    for r in pool:
        if not _fits_now(r, ledger, res):
            continue
        c = min(r.remaining_tokens, tokens_left) / budget
        m = blocks_for(r.total_tokens, res.block_size) / total
        align = c * (1.0 - u_c) + m * (1.0 - u_m)
        if align > best_align:
            best, best_align = r, align
    return best
