"""``SimEngine``: vLLM 0.26.0's engine loop on a simulated GPU, one step at a time.

The same object serves the offline discrete-event benchmark
(:mod:`sloserve_engine.sim.runner`) and the real-time fake GPU behind
``sloserve-engine --simulated``: the caller adds requests when they arrive,
calls :meth:`SimEngine.step`, and gets back how long the step took on the
modelled GPU and which requests got a token at its end. Scheduling follows
the ``StepPlan`` semantics in :mod:`sloserve_engine.policy.views`.

Asynchronous scheduling (vLLM's default ``AsyncScheduler`` with a batch queue
of depth 2) is modelled as in ``EngineCore.step_with_batch_queue``: batch k+1
is scheduled when batch k starts, while k's tokens are still placeholders and
k's finished requests still hold their blocks; outputs of k are applied when k
ends. Synchronous scheduling applies outputs before scheduling and pays a CPU
gap per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..contract.slo import SLO
from ..policy.base import Policy
from ..policy.costmodel import attention_pairs
from ..policy.views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
    effective_chunk_cap,
    make_request_view,
)
from .costmodel import SimProfile

Scheduling = Literal["async", "sync"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Engine limits; defaults match the H200 GPU baseline (docs/benchmarks.md)."""

    kv_tokens: int = 97_488
    """KV-cache size in tokens as vLLM reports it (``num_gpu_blocks × block_size``)."""
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    max_model_len: int = 8192
    long_prefill_token_threshold: int = 0
    """vLLM's cap on one request's prefill chunk per step (0 = none, vLLM's default); the
    step applies the tighter of it and the plan's ``prefill_chunk_cap``."""
    scheduling: Scheduling = "async"
    """``async`` = vLLM's default AsyncScheduler; ``sync`` = the step-logged baseline."""

    @property
    def usable_blocks(self) -> int:
        """Blocks requests can hold: vLLM's block pool keeps one null block."""
        return self.kv_tokens // self.block_size - 1

    def __post_init__(self) -> None:
        if self.block_size <= 0 or self.kv_tokens < 2 * self.block_size:
            raise ValueError("kv_tokens must hold at least two blocks of block_size > 0 tokens")
        if self.max_num_seqs <= 0 or self.max_num_batched_tokens <= 0:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be positive")
        if self.long_prefill_token_threshold < 0:
            raise ValueError("long_prefill_token_threshold must be >= 0 (0 = no cap)")
        if self.scheduling not in ("async", "sync"):
            raise ValueError(f"scheduling must be 'async' or 'sync', not {self.scheduling!r}")


@dataclass(slots=True)
class StepResult:
    """One executed batch: it ran on the GPU from ``start`` to ``end``."""

    start: float
    end: float
    emitted: list[str] = field(default_factory=list)
    """Requests that received exactly one new output token at ``end``."""
    finished: list[str] = field(default_factory=list)
    """Requests that produced their last token at ``end`` (their blocks are free)."""
    preempted: list[tuple[str, PreemptionMode]] = field(default_factory=list)
    """Requests preempted while this step (or, async, the overlapped next one) was scheduled."""
    prefill_tokens: int = 0
    decode_tokens: int = 0
    snapshot: EngineSnapshot | None = None
    """What the policy saw when it planned this batch (None for an idle step)."""
    plan: StepPlan | None = None
    """The plan this batch was scheduled with."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def idle(self) -> bool:
        """True when nothing could be scheduled (the caller should wait for arrivals)."""
        return self.prefill_tokens == 0 and self.decode_tokens == 0


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Counters and gauges for metrics and reports."""

    now: float
    steps: int
    total_blocks: int
    free_blocks: int
    running: int
    waiting: int
    preemptions_recompute: int
    preemptions_swap: int
    finished: int
    submitted: int
    swap_seconds: float

    @property
    def kv_usage(self) -> float:
        return 1.0 - self.free_blocks / self.total_blocks


class _Req:
    """Mutable per-request state (plain ints; views are built lazily and cached)."""

    __slots__ = (
        "arrival",
        "blocks",
        "bound",
        "computed",
        "done",
        "finished",
        "first_token",
        "mark",
        "max_out",
        "npre",
        "out",
        "pending",
        "pred",
        "prompt",
        "rid",
        "running",
        "slo",
        "swapped",
        "target",
        "view",
    )

    def __init__(
        self, rid: str, arrival: float, prompt: int, target: int, slo: SLO, max_out: int
    ) -> None:
        self.rid = rid
        self.arrival = arrival
        self.prompt = prompt
        self.target = target
        self.slo = slo
        self.max_out = max_out
        self.pred = max_out
        self.bound = max_out
        self.out = 0
        self.pending = 0  # sampled tokens in flight (async placeholders)
        self.computed = 0
        self.blocks = 0
        self.first_token: float | None = None
        self.npre = 0
        self.swapped = 0
        self.done = False  # last token scheduled, output not yet applied
        self.finished = False
        self.running = False
        self.mark = 0
        self.view: RequestView | None = None


class _Batch:
    __slots__ = (
        "decode_ctx",
        "decodes",
        "plan",
        "prefill_attn",
        "prefill_ctx",
        "prefill_tokens",
        "reqs",
        "snapshot",
    )

    def __init__(self) -> None:
        self.reqs: list[tuple[_Req, bool]] = []  # (request, samples a token at the end)
        self.prefill_tokens = 0
        self.prefill_ctx = 0
        self.prefill_attn = 0
        self.decodes = 0
        self.decode_ctx = 0
        self.snapshot: EngineSnapshot | None = None
        self.plan: StepPlan | None = None


class SimEngine:
    """vLLM 0.26.0's scheduler loop with a policy, on a modelled GPU.

    Drive it by calling :meth:`add_request` for every request whose arrival
    time is not after :attr:`now`, then :meth:`step`. When a step is idle
    (nothing schedulable), advance the clock with :meth:`advance_to`.
    """

    def __init__(
        self,
        policy: Policy,
        profile: SimProfile,
        config: SimConfig | None = None,
        *,
        start_time: float = 0.0,
    ) -> None:
        self.policy = policy
        self.profile = profile
        self.config = config or SimConfig()
        self._now = start_time
        self._total = self.config.usable_blocks
        self._free = self._total
        self._reqs: dict[str, _Req] = {}
        self._running: list[_Req] = []
        self._waiting: list[_Req] = []
        self._inflight: _Batch | None = None
        self._snapshot_ids: tuple[str, ...] = ()
        self._async = self.config.scheduling == "async"
        self._steps = 0
        self._stamp = 0
        self._pre_recompute = 0
        self._pre_swap = 0
        self._finished = 0
        self._submitted = 0
        self._swap_seconds = 0.0
        self._step_swap = 0.0
        self._step_preempted: list[tuple[str, PreemptionMode]] = []

    # ------------------------------------------------------------------ inputs

    @property
    def now(self) -> float:
        """The engine clock in seconds (the caller's clock when run in real time)."""
        return self._now

    def advance_to(self, t: float) -> None:
        """Let idle time pass (never moves the clock backwards)."""
        if t > self._now:
            self._now = t

    def add_request(
        self,
        request_id: str,
        prompt_tokens: int,
        output_tokens: int,
        *,
        slo: SLO | None = None,
        arrival_time: float | None = None,
    ) -> Prediction:
        """Queue a request that will produce exactly ``output_tokens`` tokens.

        Raises ``ValueError`` for requests the engine can never serve (too long
        for the model or for the whole KV cache) and for duplicate ids.
        """
        cfg = self.config
        if request_id in self._reqs:
            raise ValueError(f"duplicate request id {request_id!r}")
        if prompt_tokens < 1 or output_tokens < 1:
            raise ValueError("prompt_tokens and output_tokens must be at least 1")
        if prompt_tokens + output_tokens > cfg.max_model_len:
            raise ValueError(
                f"request {request_id!r}: {prompt_tokens} prompt + {output_tokens} output tokens "
                f"exceed max_model_len {cfg.max_model_len}"
            )
        if -(-(prompt_tokens + output_tokens) // cfg.block_size) > self._total:
            raise ValueError(
                f"request {request_id!r} needs more KV than the whole cache ({self._total} blocks)"
            )
        arrival = self._now if arrival_time is None else arrival_time
        slo = slo or self.policy.knobs.slo_defaults
        max_out = cfg.max_model_len - prompt_tokens
        r = _Req(request_id, arrival, prompt_tokens, output_tokens, slo, max_out)
        pred = self.policy.on_arrival(ArrivalInfo(request_id, arrival, prompt_tokens, slo, max_out))
        r.pred = pred.predicted_output
        r.bound = pred.output_bound
        self._reqs[request_id] = r
        self._waiting.append(r)
        self._submitted += 1
        return pred

    def abort_request(self, request_id: str) -> bool:
        """Drop a request (client went away); frees its blocks. False if unknown/finished."""
        r = self._reqs.pop(request_id, None)
        if r is None:
            return False
        r.finished = True
        self._release(r)
        return True

    # ------------------------------------------------------------------ views

    def _view(self, r: _Req) -> RequestView:
        v = r.view
        if v is None:
            # Rebuilt only after the request changed; the fast constructor matters (hot path).
            v = make_request_view(
                r.rid,
                r.arrival,
                r.prompt,
                r.out,
                r.computed,
                r.blocks,
                r.slo,
                r.pred,
                r.bound,
                r.max_out,
                r.first_token,
                r.npre,
                r.swapped,
            )
            r.view = v
        return v

    def snapshot(self) -> EngineSnapshot:
        """The engine as policies see it now."""
        view = self._view
        cfg = self.config
        running = self._running
        self._snapshot_ids = tuple([r.rid for r in running])
        return EngineSnapshot(
            self._now,
            cfg.block_size,
            self._total,
            self._free,
            cfg.max_num_batched_tokens,
            cfg.max_num_seqs,
            tuple([r.view or view(r) for r in running]),
            tuple([r.view or view(r) for r in self._waiting]),
        )

    def stats(self) -> EngineStats:
        return EngineStats(
            now=self._now,
            steps=self._steps,
            total_blocks=self._total,
            free_blocks=self._free,
            running=len(self._running),
            waiting=len(self._waiting),
            preemptions_recompute=self._pre_recompute,
            preemptions_swap=self._pre_swap,
            finished=self._finished,
            submitted=self._submitted,
            swap_seconds=self._swap_seconds,
        )

    @property
    def free_blocks(self) -> int:
        return self._free

    @property
    def has_unfinished(self) -> bool:
        return bool(self._reqs)

    def request_view(self, request_id: str) -> RequestView | None:
        r = self._reqs.get(request_id)
        return None if r is None else self._view(r)

    # ------------------------------------------------------------------ stepping

    def step(self, now: float | None = None) -> StepResult:
        """Run one batch on the modelled GPU and apply its outputs at its end.

        ``now`` (real-time drivers) first lets idle time pass up to that instant.
        """
        if now is not None:
            self.advance_to(now)
        start = self._now
        self._step_swap = 0.0
        self._step_preempted = []
        batch = self._inflight
        self._inflight = None
        if batch is None:
            batch = self._schedule()
        if not batch.reqs:
            return StepResult(start, start, preempted=self._step_preempted)
        profile = self.profile
        gpu = profile.step.gpu_step_s(
            batch.prefill_tokens,
            batch.prefill_ctx,
            batch.decodes,
            batch.decode_ctx,
            batch.prefill_attn,
        )
        if self._async:
            # The next batch is scheduled now, while this one runs (placeholders).
            nxt = self._schedule()
            duration = profile.async_step_s(gpu, len(batch.reqs))
            if nxt.reqs:
                self._inflight = nxt
        else:
            duration = profile.step.cpu_step_s(len(batch.reqs)) + gpu
        duration += self._step_swap
        self._swap_seconds += self._step_swap
        end = start + duration
        self._now = end
        self._steps += 1
        result = StepResult(
            start,
            end,
            preempted=self._step_preempted,
            prefill_tokens=batch.prefill_tokens,
            decode_tokens=batch.decodes,
            snapshot=batch.snapshot,
            plan=batch.plan,
        )
        self._apply_outputs(batch, result)
        return result

    def _apply_outputs(self, batch: _Batch, result: StepResult) -> None:
        end = result.end
        emitted = result.emitted
        for r, samples in batch.reqs:
            if not samples or r.finished:
                continue
            r.pending -= 1
            r.out += 1
            r.view = None
            emitted.append(r.rid)
            if r.first_token is None:
                r.first_token = end
            if r.out >= r.target:
                r.finished = True
                del self._reqs[r.rid]
                self._release(r)
                self._finished += 1
                result.finished.append(r.rid)
                self.policy.on_finish(FinishedInfo(r.rid, r.prompt, r.out, r.slo, r.pred, end))

    def _release(self, r: _Req) -> None:
        self._free += r.blocks
        r.blocks = 0
        if r.running:
            self._running.remove(r)
            r.running = False
        else:
            self._waiting.remove(r)

    def _preempt(self, r: _Req) -> None:
        mode = self.policy.preemption_mode(self._view(r))
        if mode is PreemptionMode.SWAP:
            r.swapped = r.computed
            step = self.profile.step
            self._step_swap += r.computed * step.kv_bytes_per_token / step.d2h_bytes_per_s
            self._pre_swap += 1
        else:
            self._pre_recompute += 1
        self._free += r.blocks
        r.blocks = 0
        r.computed = 0
        r.npre += 1
        r.running = False
        r.view = None
        self._waiting.insert(0, r)
        self._step_preempted.append((r.rid, mode))

    def _ordered_running(self, order: tuple[str, ...]) -> list[_Req]:
        running = self._running
        if order == self._snapshot_ids:
            return running
        self._stamp += 1
        stamp = self._stamp
        reqs = self._reqs
        out: list[_Req] = []
        for rid in order:
            r = reqs.get(rid)
            if r is not None and r.running and r.mark != stamp:
                r.mark = stamp
                out.append(r)
        # Requests the plan forgot keep their relative order at the end.
        out.extend(r for r in running if r.mark != stamp)
        return out

    def _schedule(self) -> _Batch:
        """vLLM 0.26.0 ``Scheduler.schedule()`` under a ``StepPlan``."""
        cfg = self.config
        bs = cfg.block_size
        snapshot = self.snapshot()
        plan = self.policy.plan(snapshot)
        budget = min(plan.token_budget, cfg.max_num_batched_tokens)
        cap = effective_chunk_cap(cfg.long_prefill_token_threshold, plan.prefill_chunk_cap)
        running = self._ordered_running(plan.running_order)
        self._running = running
        batch = _Batch()
        batch.snapshot = snapshot
        batch.plan = plan
        breqs = batch.reqs
        preempted = False
        i = 0
        while i < len(running) and budget > 0:
            r = running[i]
            if r.done:
                i += 1
                continue
            computed = r.computed
            known = r.prompt + r.out + r.pending
            n = known - computed
            if n == 1 and computed >= r.prompt and r.blocks * bs > computed:
                # Decode that fits its last block: the hot path, inlined.
                r.computed = known
                r.view = None
                r.pending += 1
                if r.out + r.pending >= r.target:
                    r.done = True
                batch.decodes += 1
                batch.decode_ctx += known
                breqs.append((r, True))
                budget -= 1
                i += 1
                continue
            if 0 < cap < n:
                n = cap
            if n > budget:
                n = budget
            if n <= 0:
                i += 1
                continue
            need = -(-(computed + n) // bs) - r.blocks
            self_preempted = False
            while need > self._free:
                victim = running.pop()
                self._preempt(victim)
                preempted = True
                if victim is r:
                    self_preempted = True
                    break
            if self_preempted:
                break
            self._free -= need
            r.blocks += need
            self._commit(r, n, known, batch)
            budget -= n
            i += 1

        if not preempted:
            self._admit(plan.admit_order, cap, budget, batch)
        return batch

    def _commit(self, r: _Req, n: int, known: int, batch: _Batch) -> None:
        """Account ``n`` scheduled tokens of ``r`` (vLLM's ``_update_after_schedule``)."""
        is_decode = n == 1 and r.computed >= r.prompt
        r.computed += n
        r.view = None
        samples = r.computed >= known
        if samples:
            r.pending += 1
            if r.out + r.pending >= r.target:
                r.done = True
        if is_decode:
            batch.decodes += 1
            batch.decode_ctx += r.computed
        else:
            batch.prefill_tokens += n
            batch.prefill_ctx += r.computed
            batch.prefill_attn += attention_pairs(n, r.computed - n)
        batch.reqs.append((r, samples))

    def _admit(self, admit_order: tuple[str, ...], cap: int, budget: int, batch: _Batch) -> None:
        cfg = self.config
        bs = cfg.block_size
        running = self._running
        reqs = self._reqs
        running_views: list[RequestView] | None = None
        for rid in admit_order:
            if budget <= 0 or len(running) >= cfg.max_num_seqs:
                break
            r = reqs.get(rid)
            if r is None or r.running:
                continue
            known = r.prompt + r.out + r.pending
            base = r.swapped
            n = known - base
            if 0 < cap < n:
                n = cap
            if n > budget:
                n = budget
            if -(-known // bs) > self._free:
                break  # the full sequence must fit (scheduler_reserve_full_isl)
            if running_views is None:
                running_views = [self._view(x) for x in running]
            if not self.policy.can_admit(
                self._free, self._total, bs, running_views, self._view(r), self._now
            ):
                break
            blocks = -(-(base + n) // bs)
            self._free -= blocks
            r.blocks = blocks
            if base:
                step = self.profile.step
                self._step_swap += base * step.kv_bytes_per_token / step.h2d_bytes_per_s
                r.computed = base
                r.swapped = 0
            self._waiting.remove(r)
            r.running = True
            running.append(r)
            self._commit(r, n, known, batch)
            running_views.append(self._view(r))
            budget -= n
