"""The contract between scheduling policies and the engines that execute them.

Policies never see a vLLM object or a simulator object: both executors (the
discrete-event simulator in ``sloserve_engine.sim`` and the vLLM adapter in
``sloserve_engine.vllm``) build these immutable views, ask the policy, and apply
the answer with the same step semantics, vLLM 0.26.0's ``Scheduler.schedule()``
loop, parameterised by a :class:`StepPlan`:

1. Running requests are served in ``StepPlan.running_order``. Each gets its
   remaining tokens (a decode gets 1), capped by ``prefill_chunk_cap`` (0 = no
   cap) and by what is left of ``token_budget``. When the KV cache cannot hold a
   request's new tokens, the executor preempts from the *end* of the running
   order (the least important request last), with the mode that
   :meth:`Policy.preemption_mode` returns, until it fits.
2. Only if nothing was preempted in this step, the waiting requests named in
   ``StepPlan.admit_order`` are admitted in that order (everything else waits:
   vLLM's "holdback"), while budget, ``max_num_seqs`` and KV allow. The whole
   prompt must fit in free blocks (vLLM's ``scheduler_reserve_full_isl``), and
   :meth:`Policy.can_admit` must agree; the first refusal stops admission for
   the step (head-of-line, as in vLLM).

The ``vllm`` policy returns the identity plan, which makes both executors
behave exactly like stock vLLM; every other policy only reorders, holds back,
shrinks the budget or refuses admissions, so what it asks for is always
something vLLM can do without a forked scheduler.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..contract.slo import SLO


class PreemptionMode(enum.StrEnum):
    """How a preempted request gets its KV back."""

    RECOMPUTE = "recompute"
    """Drop the KV; the request recomputes prompt and output so far on resume."""
    SWAP = "swap"
    """Copy the KV to host memory (vLLM's CPU KV-offload connector) and load it on resume."""


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a policy may know about one request.

    The per-request ``max_tokens`` is deliberately absent: benchmarks replay
    traces with ``max_tokens`` equal to the true output length, so reading it
    would be an oracle. Only the model-wide cap ``max_output_tokens`` is visible.
    """

    request_id: str
    arrival_time: float
    """Seconds, on the executor's clock (the same clock as ``EngineSnapshot.now``)."""
    prompt_tokens: int
    output_tokens: int
    """Tokens generated so far."""
    computed_tokens: int
    """Tokens whose KV is computed or scheduled (vLLM's ``num_computed_tokens``)."""
    blocks_held: int
    """KV blocks on the GPU that this request holds now."""
    slo: SLO
    predicted_output: int
    """Point prediction of the total output length, made at arrival."""
    output_bound: int
    """Output length that holds with the configured probability (prediction + padding)."""
    max_output_tokens: int
    """Model-wide cap on output length (``max_model_len - prompt_tokens``)."""
    first_token_time: float | None = None
    num_preemptions: int = 0
    swapped_tokens: int = 0
    """Tokens whose KV waits in host memory after a swap preemption (0 if none)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def remaining_tokens(self) -> int:
        """Tokens still to compute before the next output token (1 for a pure decode)."""
        return max(self.total_tokens - self.computed_tokens, 0)

    @property
    def in_prefill(self) -> bool:
        """True while the prompt (or, after a recompute preemption, the context) is computed."""
        return self.computed_tokens < self.total_tokens - 1 or self.output_tokens == 0


_new_object = object.__new__
(
    _set_request_id,
    _set_arrival_time,
    _set_prompt_tokens,
    _set_output_tokens,
    _set_computed_tokens,
    _set_blocks_held,
    _set_slo,
    _set_predicted_output,
    _set_output_bound,
    _set_max_output_tokens,
    _set_first_token_time,
    _set_num_preemptions,
    _set_swapped_tokens,
) = (getattr(RequestView, name).__set__ for name in RequestView.__dataclass_fields__)


def make_request_view(
    request_id: str,
    arrival_time: float,
    prompt_tokens: int,
    output_tokens: int,
    computed_tokens: int,
    blocks_held: int,
    slo: SLO,
    predicted_output: int,
    output_bound: int,
    max_output_tokens: int,
    first_token_time: float | None,
    num_preemptions: int,
    swapped_tokens: int,
) -> RequestView:
    """``RequestView(...)`` with every field given positionally, about 3x faster.

    Executors rebuild a view for every running request on every step, and the
    frozen dataclass ``__init__`` (one ``object.__setattr__`` per field) is
    their largest per-step cost; writing the slots directly gives an equal object.
    """
    view = _new_object(RequestView)
    _set_request_id(view, request_id)
    _set_arrival_time(view, arrival_time)
    _set_prompt_tokens(view, prompt_tokens)
    _set_output_tokens(view, output_tokens)
    _set_computed_tokens(view, computed_tokens)
    _set_blocks_held(view, blocks_held)
    _set_slo(view, slo)
    _set_predicted_output(view, predicted_output)
    _set_output_bound(view, output_bound)
    _set_max_output_tokens(view, max_output_tokens)
    _set_first_token_time(view, first_token_time)
    _set_num_preemptions(view, num_preemptions)
    _set_swapped_tokens(view, swapped_tokens)
    return view


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """The engine as the policy sees it at the start of a step."""

    now: float
    block_size: int
    total_blocks: int
    """Usable KV blocks (vLLM's null block excluded)."""
    free_blocks: int
    max_num_batched_tokens: int
    max_num_seqs: int
    running: tuple[RequestView, ...]
    """Requests with KV on the GPU, in the current service order."""
    waiting: tuple[RequestView, ...]
    """Queued requests (new and preempted) in queue order."""

    @property
    def used_blocks(self) -> int:
        return self.total_blocks - self.free_blocks


@dataclass(frozen=True, slots=True)
class StepPlan:
    """A policy's instructions for one step (see the module docstring for semantics)."""

    running_order: tuple[str, ...]
    """Service order of running requests; preemption victims are taken from the end."""
    admit_order: tuple[str, ...]
    """Waiting requests that may be admitted this step, in order; the rest are held back."""
    token_budget: int
    """Tokens this step may schedule, at most ``max_num_batched_tokens``."""
    prefill_chunk_cap: int = 0
    """Largest prefill chunk per request this step; 0 means no cap."""
    notes: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    """Numbers the policy wants exported (e.g. ``("chunk_tokens", 512)``) for metrics."""


def effective_chunk_cap(configured: int, plan_cap: int) -> int:
    """The step's prefill chunk cap: the tighter of the engine's ``long_prefill_token_threshold``
    and the plan's ``prefill_chunk_cap`` (0 = none), as both executors apply it."""
    caps = [c for c in (configured, plan_cap) if c > 0]
    return min(caps) if caps else 0


@dataclass(frozen=True, slots=True)
class ArrivalInfo:
    """What the policy learns when a request arrives (before it is queued)."""

    request_id: str
    arrival_time: float
    prompt_tokens: int
    slo: SLO
    max_output_tokens: int


@dataclass(frozen=True, slots=True)
class Prediction:
    """The policy's output-length estimate for one request."""

    predicted_output: int
    output_bound: int


@dataclass(frozen=True, slots=True)
class FinishedInfo:
    """A finished request, for online learning (predictor) and metrics."""

    request_id: str
    prompt_tokens: int
    output_tokens: int
    slo: SLO
    predicted_output: int
    finish_time: float
