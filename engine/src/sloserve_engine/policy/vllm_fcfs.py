"""``vllm``: stock vLLM 0.26.0 FCFS scheduling, as the baseline every claim is measured against.

It returns the identity plan: running requests in admission order (so the
victim is the last admitted, as in vLLM's FCFS branch), every waiting request
eligible in queue order, the full token budget, no chunk cap, no admission
gate beyond vLLM's own (the whole prompt must fit), recompute preemption
unless ``preemptionMode`` names a mode (``swap`` gives stock scheduling with
victims reloaded through the KV offload connector, vLLM v0's swap space).
It predicts nothing: the prediction fields carry the model-wide cap.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..contract.knobs import DEFAULT_KNOBS, Knobs
from .ordering import StartDeadline
from .views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
)


class VllmFcfsPolicy:
    """Identity plan: both executors then behave exactly like stock vLLM."""

    name = "vllm"

    def __init__(self, knobs: Knobs = DEFAULT_KNOBS) -> None:
        self.knobs = knobs

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        return Prediction(info.max_output_tokens, info.max_output_tokens)

    def on_finish(self, info: FinishedInfo) -> None:
        return None

    def start_deadline(self, now: float) -> StartDeadline | None:
        """FCFS: a new request waits behind every waiting one."""
        return None

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        return StepPlan(
            running_order=tuple(r.request_id for r in snapshot.running),
            admit_order=tuple(r.request_id for r in snapshot.waiting),
            token_budget=snapshot.max_num_batched_tokens,
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
        return True

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        mode = self.knobs.preemption_mode
        return PreemptionMode.RECOMPUTE if mode == "auto" else PreemptionMode(mode)
