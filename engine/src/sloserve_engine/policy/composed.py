"""A policy assembled from the component units; the named policies are specs of it.

The only state is learned state (the length predictor and the arrival-rate
EWMA); every decision is a pure function of the snapshot, the knobs and the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ..contract.knobs import Knobs
from .batching import Batching, StepResources, select_admissions
from .capacity import CapacityEstimate
from .chunking import decode_load, slo_prefill_budget
from .costmodel import StepCostModel
from .kvgate import Gate, GateConfig, KVLedger, blocks_for
from .ordering import (
    OrderingConfig,
    StartDeadline,
    admit_key,
    order_running,
    order_waiting,
    split_phases,
    start_order,
)
from .predictor import ArrivalRate, LengthPredictor, PredictorConfig, confidence_for_rate
from .preemption import choose_mode, victim_scorer
from .slack import TokenInterval, latest_start
from .views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
)

VictimKey = Callable[[RequestView], tuple[float, ...]]


class VictimRule(StrEnum):
    """How running requests are ordered for preemption (victims from the end)."""

    ADMISSION = "admission"
    """vLLM FCFS: keep admission order, the newest request is the victim."""
    LENGTH_GROUPS = "length_groups"
    """EconoServe GT groups: by predicted-length bucket, longest group last."""
    SCORE = "score"
    """CacheOPT C4 score: long TBT SLO, long remaining time, cheap restore last."""
    SLACK = "slack"
    """Most SLO slack last (:func:`.slack.latest_start`): preempt who can afford to wait."""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """Which components a named policy combines, and their parameters."""

    name: str
    """The name ``make_policy`` knows it by."""
    predictor: PredictorConfig | None = field(default_factory=PredictorConfig)
    """``None``: no prediction (the bound is the model-wide cap, as in vLLM)."""
    fixed_confidence: float | None = None
    """Ignore the knob and the rate adjustment (EconoServe reserves the point estimate)."""
    gate: GateConfig = field(default_factory=GateConfig)
    """KV admission gate (its ``reservation_ratio`` is replaced by the knob)."""
    use_reserve: bool = True
    """Apply the ``reservation_ratio`` knob; ``False`` keeps no global reserve."""
    ordering: OrderingConfig = field(default_factory=OrderingConfig)
    """Order of waiting requests."""
    batching: Batching = Batching.BACKFILL
    """How the admit order is cut to what fits this step."""
    decodes_first: bool = True
    """Serve running decodes before prefill chunks (EconoServe's separate queues)."""
    victims: VictimRule = VictimRule.SCORE
    """Which running request is preempted first."""
    dynamic_chunking: bool = True
    """Size the prefill budget to the tightest TBT SLO (AccelGen C1); else the full budget."""
    chunk_margin: float = 0.05
    """AccelGen's ε: steps aim at ``(1 - margin)`` of the TBT target."""
    chunk_bank_cap: float = 1.0
    """Steps may spend banked TPOT time up to this multiple of the TBT SLO (1 = never)."""
    chunk_prior_context: bool = True
    """Size chunks for the longest prompt already in prefill: a chunk attends to
    everything computed before it (``False``: as if every chunk started a prompt,
    the code before issue 14, whose steps overran the TBT target on long prompts)."""
    auto_swap: bool = True
    """Pick swap or recompute by predicted latency; ``False`` recomputes (vLLM V1)."""
    scan_limit: int = 32
    """Waiting requests considered per step (the rest are held back this step)."""
    protect_after_s: float = 10.0
    """Backfill stops skipping a request that has waited this long (anti-starvation)."""
    length_group_tokens: int = 64
    """Width of EconoServe's predicted-length groups."""


class ComposedPolicy:
    """Implements :class:`~.base.Policy` from a :class:`PolicySpec`."""

    def __init__(self, spec: PolicySpec, knobs: Knobs, cost_model: StepCostModel) -> None:
        self.spec = spec
        self.name = spec.name
        self.knobs = knobs
        self.cost_model = cost_model
        self.predictor = LengthPredictor(spec.predictor) if spec.predictor is not None else None
        self.arrivals = ArrivalRate(spec.predictor.rate_tau_s if spec.predictor else 30.0)
        prior = spec.predictor.prior_output if spec.predictor else PredictorConfig().prior_output
        self.capacity = CapacityEstimate(cost_model, prior_output=prior)
        self._gate = self._gate_config(knobs)
        self.token_interval = TokenInterval()

    def _gate_config(self, knobs: Knobs) -> GateConfig:
        ratio = knobs.reservation_ratio if self.spec.use_reserve else 0.0
        return replace(self.spec.gate, reservation_ratio=ratio)

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self._gate = self._gate_config(knobs)

    def confidence(self, now: float) -> float:
        """The probability the bound is computed for, after the arrival-rate adjustment."""
        if self.spec.fixed_confidence is not None:
            return self.spec.fixed_confidence
        config = self.spec.predictor or PredictorConfig()
        return confidence_for_rate(
            self.knobs.predictor_confidence,
            self.arrivals.rate(now),
            config,
            self.capacity.rate,
        )

    def load(self, now: float) -> float:
        """Arrival-rate EWMA over the estimated capacity (0 before the first plan)."""
        cap = self.capacity.rate
        return self.arrivals.rate(now) / cap if cap else 0.0

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        self.arrivals.observe(info.arrival_time)
        self.capacity.observe_arrival(info.prompt_tokens)
        if self.predictor is None:
            return Prediction(info.max_output_tokens, info.max_output_tokens)
        return self.predictor.predict(
            info.slo,
            info.prompt_tokens,
            info.max_output_tokens,
            self.confidence(info.arrival_time),
        )

    def on_finish(self, info: FinishedInfo) -> None:
        self.capacity.observe_finish(info.output_tokens)
        if self.predictor is not None:
            self.predictor.observe(info)

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        spec = self.spec
        knobs = self.knobs
        running = snapshot.running
        self.token_interval.observe(snapshot.now, bool(running))
        self.capacity.update(
            snapshot.total_blocks * snapshot.block_size,
            snapshot.block_size,
            snapshot.max_num_seqs,
        )
        budget = min(snapshot.max_num_batched_tokens, knobs.chunk_max_tokens)
        decodes, prefills = split_phases(running)
        load = decode_load(decodes, snapshot.now if spec.chunk_bank_cap > 1.0 else None)
        cap = 0
        if spec.dynamic_chunking:
            chunk = slo_prefill_budget(
                self.cost_model,
                load,
                knobs.chunk_min_tokens,
                knobs.chunk_max_tokens,
                spec.chunk_margin,
                prior_prefill_ctx=(
                    max((r.computed_tokens for r in prefills), default=0)
                    if spec.chunk_prior_context
                    else 0
                ),
                bank_cap=spec.chunk_bank_cap,
            )
            budget = max(min(budget, load.count + chunk), 1)
            cap = chunk
        running_order, prefill_tokens = self._running_order(
            snapshot, decodes, prefills, budget, cap
        )
        ledger = KVLedger(
            self._gate,
            snapshot.free_blocks,
            snapshot.total_blocks,
            snapshot.block_size,
            running,
        )
        admit = self._admit_order(
            snapshot, ledger, budget - load.count - prefill_tokens, budget, cap
        )
        notes: tuple[tuple[str, float], ...] = (
            ("chunk_tokens", float(budget - load.count)),
            ("reserved_blocks", float(ledger.held_back)),
        )
        return StepPlan(
            running_order=running_order,
            admit_order=admit,
            token_budget=budget,
            prefill_chunk_cap=cap,
            notes=notes,
        )

    def _running_order(
        self,
        snapshot: EngineSnapshot,
        decodes: list[RequestView],
        prefills: list[RequestView],
        budget: int,
        cap: int,
    ) -> tuple[tuple[str, ...], int]:
        """Service order, and the prefill tokens running requests will take from the budget."""
        b = snapshot.block_size
        left = budget - len(decodes)
        prefill_tokens = 0
        blocks_needed = len(decodes)
        for r in prefills:
            take = r.remaining_tokens if not cap else min(r.remaining_tokens, cap)
            take = min(take, max(left, 0))
            prefill_tokens += take
            left -= take
            blocks_needed += blocks_for(take, b) + 1
        # Order only matters for victims when a preemption is possible this step.
        key = self._victim_key(b, snapshot.now) if blocks_needed > snapshot.free_blocks else None
        order = order_running(snapshot.running, decodes, prefills, key, self.spec.decodes_first)
        return order, prefill_tokens

    def _victim_key(self, block_size: int, now: float) -> VictimKey | None:
        rule = self.spec.victims
        if rule is VictimRule.SLACK:
            model = self.cost_model
            step = self.token_interval.value
            return lambda r: (latest_start(r, model, step) - now,)
        if rule is VictimRule.SCORE:
            score = victim_scorer(self.cost_model, block_size, self.spec.gate.extension_fraction)
            return lambda r: (score(r),)
        if rule is VictimRule.LENGTH_GROUPS:
            width = self.spec.length_group_tokens
            return lambda r: (float(r.predicted_output // width), r.arrival_time)
        return None

    def _admit_order(
        self, snapshot: EngineSnapshot, ledger: KVLedger, tokens_left: int, budget: int, cap: int
    ) -> tuple[str, ...]:
        spec = self.spec
        waiting = snapshot.waiting
        seats = snapshot.max_num_seqs - len(snapshot.running)
        if not waiting or seats <= 0 or tokens_left <= 0:
            return ()
        if ledger.room_for_new < 1:  # KV full for new requests: only paused streams may go
            waiting = tuple([r for r in waiting if r.output_tokens > 0])
            if not waiting:
                return ()
        key = admit_key(
            spec.ordering,
            snapshot.now,
            self.cost_model,
            self.token_interval.value,
            self.load(snapshot.now),
        )
        if key is None and spec.batching is Batching.HEAD and spec.gate.gate is Gate.NONE:
            return tuple(r.request_id for r in waiting)
        candidates = order_waiting(waiting, key, min(spec.scan_limit, len(waiting)))
        resources = StepResources(
            token_budget=budget,
            tokens_left=tokens_left,
            total_blocks=snapshot.total_blocks,
            block_size=snapshot.block_size,
            seats=seats,
            chunk_cap=cap,
        )
        return select_admissions(
            spec.batching, candidates, resources, ledger, snapshot.now, spec.protect_after_s
        )

    def can_admit(
        self,
        free_blocks: int,
        total_blocks: int,
        block_size: int,
        running: Sequence[RequestView],
        candidate: RequestView,
        now: float,
    ) -> bool:
        del now  # the gate counts steps, not wall time
        ledger = KVLedger(self._gate, free_blocks, total_blocks, block_size, running)
        return ledger.admits(candidate)

    def start_deadline(self, now: float) -> StartDeadline | None:
        return start_order(
            self.spec.ordering, now, self.cost_model, self.token_interval.value, self.load(now)
        )

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        mode = self.knobs.preemption_mode
        forced = None if mode == "auto" else PreemptionMode(mode)
        if not self.spec.auto_swap and forced is None:
            return PreemptionMode.RECOMPUTE
        return choose_mode(victim, self.cost_model, forced)
