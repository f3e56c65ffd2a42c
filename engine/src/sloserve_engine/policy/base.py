"""The policy protocol both executors call (semantics in :mod:`.views`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..contract.knobs import Knobs
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


class Policy(Protocol):
    """A scheduling policy: stateful only where it learns (predictor, arrival rate)."""

    name: str
    knobs: Knobs

    def set_knobs(self, knobs: Knobs) -> None:
        """Replace the knobs; takes effect at the next :meth:`plan` call."""
        ...

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        """Called once per request when it arrives; the prediction travels in its views."""
        ...

    def on_finish(self, info: FinishedInfo) -> None:
        """Called once per finished request, so predictors can learn online."""
        ...

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        """Decide the order, holdback and budget of the next step."""
        ...

    def can_admit(
        self,
        free_blocks: int,
        total_blocks: int,
        block_size: int,
        running: Sequence[RequestView],
        candidate: RequestView,
        now: float,
    ) -> bool:
        """Final KV gate for one admission, evaluated with the state at that moment.

        ``running`` includes requests admitted earlier in the same step. The
        executor has already checked that the candidate's prompt fits.
        """
        ...

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        """Swap or recompute for a request that is being preempted."""
        ...

    def start_deadline(self, now: float) -> StartDeadline | None:
        """Where a new request would join the waiting queue at ``now``, as a start deadline
        per waiting request (:func:`.ordering.start_order`); ``None`` when the order is not by
        deadline (a new request waits behind every waiting one). What the engine publishes
        for routers (:func:`sloserve_engine.router.snapshot.snapshot_from_view`)."""
        ...
